"""The docs are true: every console block of README.md, docs/*.md and bench/README.md runs as
shown, every YAML recipe loads, and every relative link leads somewhere.

Each ```console block runs in bash, in a fresh temporary folder that is a git repository
holding a copy of ``examples/`` (two commits), with no ``ANTHROPIC_*``/``KEYGUARD_*`` variables:
blocks that need an organization start ``keyguard sandbox`` themselves. A command must exit 0
unless the block checks its exit code (``cmd; echo "exit $?"   # 5``, or ``cmd || ...``); a
trailing ``# says: TEXT`` must appear in the block's output.

A block meant for real clouds or a real organization starts with a visible line
``# not run by the docs test: REASON``; it is skipped with that reason, never silently.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from keyguard.cli import cli
from keyguard.config import load_config
from keyguard.keys import API_KEY_RE

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
LINKED = [*DOCS, ROOT / "CHANGELOG.md"]  # files whose relative links must resolve
SKIP_MARK = "# not run by the docs test:"
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```console[ \t]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
EXIT_CHECK = re.compile(r';\s*echo "exit \$\?"\s*(?:#\s*(?P<code>\d+)\b)?')
SAYS = re.compile(r"[#,]\s*says:\s*(?P<text>.+)$")


def console_blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        for match in FENCE.finditer(text):
            indent = match.group("indent")
            body = "".join(
                line.removeprefix(indent) for line in match.group("body").splitlines(True)
            )
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{doc.relative_to(ROOT)}:{line}", body))
    return found


BLOCKS = console_blocks()


def script(body: str) -> tuple[str, list[int | None], list[str]]:
    """The block as a bash script that stops at the first unexpected failure."""
    expected: list[int | None] = []
    says: list[str] = []
    lines = ["set -e", "set -o pipefail"]
    for line in body.splitlines():
        check = EXIT_CHECK.search(line)
        if check:
            code = check.group("code")
            expected.append(int(code) if code else None)
            line = line[: check.start()] + ' && echo "exit 0" || echo "exit $?"'
        said = SAYS.search(line)
        if said:
            says.append(said.group("text").strip())
        lines.append(line)
    return "\n".join(lines) + "\n", expected, says


def skipped_commands() -> list[tuple[str, list[str]]]:
    """Each ``keyguard ...`` line of a block the docs test skips: its words up to the first
    comment, redirection or shell operator."""
    found = []
    for where, body in BLOCKS:
        if SKIP_MARK not in body:
            continue
        for line in body.splitlines():
            if not line.strip().startswith("keyguard "):
                continue
            lexer = shlex.shlex(line.strip(), posix=True, punctuation_chars=";&|<>")
            lexer.whitespace_split = True
            words = []
            for word in lexer:
                if set(word) <= set(";&|<>"):
                    break
                words.append(word)
            found.append((where, words[1:]))
    return found


def parse_command(words: list[str]) -> None:
    """Parse ``keyguard WORDS`` as click would, without running it; raises on a bad command,
    option or argument."""
    i = 0
    while i < len(words) and words[i].startswith("-"):  # the root's own options (--base-url)
        name = words[i].split("=", 1)[0]
        (param,) = [p for p in cli.params if name in p.opts]
        flag = isinstance(param, click.Option) and param.is_flag
        i += 1 if flag or "=" in words[i] else 2
    ctx = cli.make_context("keyguard", words[:i]) if i else click.Context(cli, info_name="keyguard")
    command: click.Command = cli
    args = words[i:]
    while isinstance(command, click.Group):
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"no command {args[0]!r} in {words}"
        if isinstance(sub, click.Group):
            ctx = click.Context(sub, info_name=args[0], parent=ctx)
        else:
            sub.make_context(args[0], args[1:], parent=ctx)
        command, args = sub, args[1:]


SKIPPED_COMMANDS = skipped_commands()


def test_skipped_blocks_still_have_their_commands_checked() -> None:
    assert len(SKIPPED_COMMANDS) >= 30
    with pytest.raises(click.UsageError):
        parse_command(["rotate", "prod", "--no-such-option"])
    with pytest.raises(AssertionError):
        parse_command(["wif", "no-such-command", "ci"])


@pytest.mark.parametrize(
    ("where", "words"), SKIPPED_COMMANDS, ids=[f"{w} {' '.join(c)}" for w, c in SKIPPED_COMMANDS]
)
def test_each_command_of_a_skipped_block_parses(where: str, words: list[str]) -> None:
    """A block the docs test cannot run (a real organization, a real cloud) still shows only
    commands and options keyguard has."""
    parse_command(words)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A fresh git repository with a copy of examples/ in two commits, as a user's checkout."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)

    git("init", "-q")
    (work / "README.txt").write_text("hello\n")
    git("add", "README.txt")
    git("commit", "-qm", "one")
    git("add", ".")
    git("commit", "-qm", "two")
    return work


def test_the_docs_have_console_blocks_and_skips_say_why() -> None:
    assert len(BLOCKS) >= 8
    # 14 blocks run when the README was split into docs/ (issue 15): one that stops running
    # must be replaced, not lost.
    assert sum(SKIP_MARK not in body for _, body in BLOCKS) >= 14
    for where, body in BLOCKS:
        if SKIP_MARK in body:
            reason = body.split(SKIP_MARK, 1)[1].splitlines()[0].strip()
            assert reason, f"{where}: a skipped block says why"


@pytest.mark.parametrize(("where", "body"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_console_block_runs_as_shown(where: str, body: str, workdir: Path) -> None:
    if SKIP_MARK in body:
        pytest.skip(body.split(SKIP_MARK, 1)[1].splitlines()[0].strip())
    text, expected, says = script(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env["HOME"] = str(workdir.parent)  # nothing from the real home (git config, caches)
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com")
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    proc = subprocess.Popen(
        ["bash", "-c", text],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a block's background sandbox is killed with it
    )
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    assert proc.returncode == 0, f"{where}: exit {proc.returncode}\n{text}\n---\n{out}"
    exits = [int(m) for m in re.findall(r"^exit (\d+)$", out, flags=re.M)]
    shown = [want if want is None else got for got, want in zip(exits, expected, strict=False)]
    assert len(exits) == len(expected) and shown == expected, (
        f"{where}: exit codes {exits}, the text says {expected}\n{out}"
    )
    for said in says:
        assert said in out, f"{where}: the text says {said!r}\n{out}"
    assert "Traceback" not in out, f"{where}\n{out}"
    assert not API_KEY_RE.search(out), f"{where}: a key in the output"
    doubled = re.search(r"^(\w[\w-]*): .*\b\1: ", out, flags=re.M)
    assert doubled is None, f"{where}: said twice: {doubled.group(0) if doubled else ''}"


def test_documented_configuration_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    text = (ROOT / "docs" / "architecture.md").read_text("utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/architecture.md shows a keyguard.toml"
    path = tmp_path / "keyguard.toml"
    path.write_text(blocks[-1])
    config = load_config(path)
    assert set(config.environments) == {"dev", "prod"}
    assert config.environments["prod"].policy.max_age.days == 30
    assert config.environments["dev"].policy.max_age.days == 90
    assert config.scan_exclude and config.webhook
    assert config.base_url == "https://api.anthropic.com"  # the default: nobody chose another


def yaml_blocks(*docs: Path) -> list[Any]:
    """Every document of every ```yaml block of the given files (default: all the docs)."""
    found: list[Any] = []
    for doc in docs or tuple(DOCS):
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text("utf-8"), flags=re.S):
            found.extend(yaml.safe_load_all(block))
    return found


def test_every_yaml_block_of_the_docs_parses() -> None:
    assert len(yaml_blocks(ROOT / "README.md")) >= 1
    assert len(yaml_blocks()) >= 10


def test_the_rotation_recipe_saves_the_journal_even_after_a_failed_run() -> None:
    rotation = yaml_blocks(ROOT / "docs" / "rotation.md")
    (workflow,) = [b for b in rotation if b.get("name") == "rotate-anthropic-keys"]
    steps = workflow["jobs"]["rotate"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    restore = steps[next(i for i, u in enumerate(uses) if u.startswith("actions/cache/restore@"))]
    save = steps[next(i for i, u in enumerate(uses) if u.startswith("actions/cache/save@"))]
    assert not any(u.startswith("actions/cache@") for u in uses), "cache@ saves only on success"
    assert save["if"] == "always()"
    assert uses.index(restore["uses"]) < uses.index(save["uses"])
    assert save["with"]["path"] == restore["with"]["path"] == ".keyguard"
    assert "github.run_id" in save["with"]["key"]  # a cache entry is never overwritten
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"])


def test_the_docs_use_the_action_with_its_own_inputs() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    used = [
        step
        for block in yaml_blocks()
        if isinstance(block, dict)
        for job in (block.get("jobs") or {}).values()
        for step in job["steps"]
        if "/keyguard@" in step.get("uses", "")
    ]
    assert used, "docs/scanner.md shows the action"
    for step in used:
        assert set(step.get("with") or {}) <= set(action["inputs"])
        assert step["uses"].endswith("@v0.1.0")


def test_the_pre_commit_example_pins_a_release() -> None:
    repos = [r for b in yaml_blocks() if isinstance(b, dict) and "repos" in b for r in b["repos"]]
    pinned = [r for r in repos if r["repo"] != "local"]
    assert pinned and all(r["rev"] == "v0.1.0" for r in pinned)
    in_readme = [b for b in yaml_blocks(ROOT / "README.md") if "repos" in b]
    assert in_readme, "the README shows the pre-commit configuration"
    changelog = (ROOT / "CHANGELOG.md").read_text("utf-8")
    assert "## [Unreleased]" in changelog and "## [0.1.0]" in changelog


def test_the_readme_starts_with_a_quickstart_that_runs() -> None:
    """The README is for users: short, and its first command that runs is `keyguard demo`."""
    readme = (ROOT / "README.md").read_text("utf-8")
    assert len(readme.splitlines()) <= 330, "the README stays short: details go to docs/"
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    assert headings[0] == "Quickstart"
    first = next(
        body for where, body in BLOCKS if where.startswith("README.md:") and SKIP_MARK not in body
    )
    assert first.strip() == "keyguard demo"


FENCED = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def anchors(doc: Path) -> set[str]:
    """The heading anchors GitHub makes for a Markdown file (lowercase, punctuation dropped)."""
    found: set[str] = set()
    for line in FENCED.sub("", doc.read_text("utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        unique, n = slug, 0
        while unique in found:
            n += 1
            unique = f"{slug}-{n}"
        found.add(unique)
    return found


def relative_links() -> list[tuple[str, Path, str]]:
    found = []
    for doc in LINKED:
        text = re.sub(r"`[^`\n]*`", "", FENCED.sub("", doc.read_text("utf-8")))
        for target in LINK.findall(text):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                found.append((str(doc.relative_to(ROOT)), doc, target))
    return found


def test_the_docs_link_to_each_other() -> None:
    links = relative_links()
    assert any(t.startswith("docs/rotation.md") for _, _, t in links), "README links onward"
    for where in ("README.md", "docs/rotation.md", "bench/README.md"):
        assert any(w == where for w, _, _ in links), f"{where} has relative links"


@pytest.mark.parametrize(("where", "doc", "target"), relative_links(), ids=lambda v: str(v))
def test_every_relative_link_resolves(where: str, doc: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    dest = (doc.parent / path).resolve() if path else doc
    assert dest.exists(), f"{where}: {target} names no file"
    assert dest.is_relative_to(ROOT), f"{where}: {target} leaves the repository"
    if anchor:
        assert dest.suffix == ".md", f"{where}: {target}: an anchor in a file that is no Markdown"
        assert anchor in anchors(dest), f"{where}: {target}: no such heading in {dest.name}"
