"""The docs are true: every console block of README.md and docs/*.md runs as shown.

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
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from keyguard.config import load_config
from keyguard.keys import API_KEY_RE

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
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


def test_documented_configuration_loads(tmp_path: Path) -> None:
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


def yaml_blocks() -> list[Any]:
    text = (ROOT / "README.md").read_text("utf-8")
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]


def test_every_yaml_block_of_the_readme_parses() -> None:
    assert len(yaml_blocks()) >= 4


def test_the_rotation_recipe_saves_the_journal_even_after_a_failed_run() -> None:
    (workflow,) = [b for b in yaml_blocks() if b.get("name") == "rotate-anthropic-keys"]
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


def test_the_readme_uses_the_action_with_its_own_inputs() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    used = [
        step
        for block in yaml_blocks()
        for job in (block.get("jobs") or {}).values()
        for step in job["steps"]
        if "/keyguard@" in step.get("uses", "")
    ]
    assert used, "the README shows the action"
    for step in used:
        assert set(step.get("with") or {}) <= set(action["inputs"])
        assert step["uses"].endswith("@v0.1.0")


def test_the_pre_commit_example_pins_a_release() -> None:
    repos = [r for b in yaml_blocks() if "repos" in b for r in b["repos"]]
    pinned = [r for r in repos if r["repo"] != "local"]
    assert pinned and all(r["rev"] == "v0.1.0" for r in pinned)
    changelog = (ROOT / "CHANGELOG.md").read_text("utf-8")
    assert "## [Unreleased]" in changelog and "## [0.1.0]" in changelog
