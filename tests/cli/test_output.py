"""Output for people and for scripts: --help for every option, one JSON document per command,
tables that fit the terminal without cutting anything, colours that follow NO_COLOR, and
environment names that complete in the shell."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.cli import cli
from keyguard.keys import Secret

ROOT = Path(__file__).resolve().parents[2]


def every_command() -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        yield name, command
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                child = command.get_command(ctx, sub)
                assert child is not None
                yield f"{name} {sub}", child


def test_help_describes_every_option_of_every_command() -> None:
    missing = [
        f"keyguard {name} {'/'.join(p.opts)}"
        for name, command in [("", cli), *every_command()]
        for p in command.params
        if isinstance(p, click.Option) and not (p.help or "").strip()
    ]
    assert missing == []
    for name, command in every_command():
        assert (command.help or command.short_help or "").strip(), f"keyguard {name}"


@pytest.mark.parametrize("name", ["scan", "audit", "revoke"])
def test_every_command_that_writes_a_report_takes_o_and_output(name: str) -> None:
    command = dict(every_command())[name]
    opts = {o for p in command.params for o in p.opts}
    assert {"-o", "--output"} <= opts


def _env(sandbox: Sandbox, root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        ANTHROPIC_BASE_URL=sandbox.url,
        ANTHROPIC_ADMIN_KEY=sandbox.admin_key.reveal(),
        KEYGUARD_CONFIG=str(root / "keyguard.toml"),
        **extra,
    )
    return env


def kg(
    sandbox: Sandbox, root: Path, *args: str, stdin: str = "", **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyguard", *args],
        input=stdin,
        env=_env(sandbox, root, **extra),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(sandbox: Sandbox, tmp_path: Path) -> tuple[Path, Secret]:
    """prod serves a key (rotated in through the CLI); dev has none yet."""
    (tmp_path / "keyguard.toml").write_text(
        '[environments.dev]\nstores = ["file:dev.json"]\n'
        '[environments.prod]\nstores = ["file:prod-a.json", "file:prod-b.json"]\n'
    )
    _, key = sandbox.mint_key("prod-1")
    done = kg(sandbox, tmp_path, "rotate", "prod", "--grace", "0", "--yes", stdin=key.reveal())
    assert done.returncode == 0, done.stderr
    return tmp_path, key


def test_status_rotate_and_stores_check_print_one_json_document(
    sandbox: Sandbox, project: tuple[Path, Secret]
) -> None:
    root, key = project
    status = json.loads(kg(sandbox, root, "status", "--format", "json").stdout)
    assert [e["environment"] for e in status["environments"]] == ["dev", "prod"]
    assert json.loads(kg(sandbox, root, "status", "--json").stdout) == status

    check = kg(sandbox, root, "stores", "check", "--format", "json")
    doc = json.loads(check.stdout)
    assert check.returncode == doc["exit_code"] == 0
    assert [(s["environment"], s["status"]) for s in doc["stores"]] == [
        ("dev", "empty"),
        ("prod", "ok"),
        ("prod", "ok"),
    ]
    assert doc["stores"][1]["current"] == key.hint

    done = kg(sandbox, root, "rotate", "--all", "--format", "json")
    doc = json.loads(done.stdout)
    assert done.returncode == doc["exit_code"] == 5
    dev = doc["environments"][0]
    assert dev["environment"] == "dev" and dev["exit_code"] == 5
    assert dev["request"]["deliver"] == "keyguard deliver dev"
    for run in (done, check):
        assert key.reveal() not in run.stdout + run.stderr


def test_tables_fit_the_width_without_cutting_a_hint(
    sandbox: Sandbox, project: tuple[Path, Secret]
) -> None:
    root, key = project
    for width in (60, 80, 200):
        out = kg(sandbox, root, "stores", "check", COLUMNS=str(width)).stdout
        assert max(len(line) for line in out.splitlines()) <= width, out
        assert out.count(key.hint) == 2, out
        for head in ("store", "status", "current", "pending", "previous"):
            assert head in out, out


@pytest.fixture(scope="module")
def audit_org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path]]:
    """examples/audit_demo.py's organization, served by a sandbox."""
    root = tmp_path_factory.mktemp("audit") / "org"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "audit_demo.py"), str(root)],
        check=True,
        capture_output=True,
    )
    with Sandbox(state_file=root / "sandbox.json") as sb:
        yield sb, root


def test_the_audit_table_fits_80_columns_without_cutting_a_verdict(
    audit_org: tuple[Sandbox, Path],
) -> None:
    sb, root = audit_org
    done = kg(sb, root, "audit", COLUMNS="80")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    for verdict in ("ok", "due", "violation"):
        assert any(line.split()[-1:] == [verdict] for line in lines), (verdict, done.stdout)
    for head in ("Key / hint", "Age (d)", "Expires", "Status", "Stores", "Rotated", "24h", "7d"):
        assert head in done.stdout, head
    wide = kg(sb, root, "audit", COLUMNS="200").stdout
    assert "┃ Environment ┃" in wide  # wide enough: still one table


def _on_a_terminal(env: dict[str, str], *args: str) -> str:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real CLI on a terminal
        os.execve(sys.executable, [sys.executable, "-m", "keyguard", *args], env)
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.waitpid(pid, 0)
    os.close(fd)
    return seen.decode(errors="replace")


def test_colours_follow_the_terminal_and_no_color(audit_org: tuple[Sandbox, Path]) -> None:
    sb, root = audit_org
    env = _env(sb, root, TERM="xterm-256color", COLUMNS="200")
    env["KEYGUARD_CONFIG"] = str(root / "keyguard.toml")
    colour = re.compile(r"\x1b\[[0-9;]*m")  # SGR: colours and bold, not cursor moves
    assert colour.search(_on_a_terminal(env, "audit"))
    assert not colour.search(_on_a_terminal({**env, "NO_COLOR": "1"}, "audit"))
    piped = kg(sb, root, "audit", TERM="xterm-256color").stdout
    assert not colour.search(piped)


def test_environment_names_complete_in_the_shell(tmp_path: Path) -> None:
    (tmp_path / "keyguard.toml").write_text(
        '[environments.dev]\nstores = ["file:d.json"]\n'
        '[environments.prod]\nstores = ["file:p.json"]\n'
        '[environments.preview]\nstores = ["file:v.json"]\n'
    )
    other = tmp_path / "other.toml"
    other.write_text('[environments.staging]\nstores = ["file:s.json"]\n')

    def complete(words: str) -> list[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGUARD_")}
        env.update(
            _KEYGUARD_COMPLETE="bash_complete",
            COMP_WORDS=words,
            COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        )
        done = subprocess.run(
            ["keyguard"], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return [line.split(",", 1)[1] for line in done.stdout.splitlines()]

    assert complete("keyguard rotate p") == ["preview", "prod"]
    assert complete("keyguard get ") == ["dev", "preview", "prod"]
    assert complete("keyguard status d") == ["dev"]
    assert complete(f"keyguard --config {other} rollback ") == ["staging"]
    assert complete("keyguard audit prod ") == ["dev", "preview", "prod"]


def test_the_demo_is_bold_on_a_terminal_but_not_with_no_color(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color")
    colour = re.compile(r"\x1b\[[0-9;]*m")
    assert colour.search(_on_a_terminal(env, "demo"))
    assert not colour.search(_on_a_terminal({**env, "NO_COLOR": "1"}, "demo"))


def test_scan_reports_a_shadowing_workload_once_and_honours_exclude(tmp_path: Path) -> None:
    """The workload check rides on the scan's own listing: each file once, `[scan] exclude`
    applies to it as to the scan."""
    both = "ANTHROPIC_FEDERATION_RULE_ID=fdrl_01abc\nANTHROPIC_API_KEY=\n"
    (tmp_path / "keyguard.toml").write_text('[scan]\nexclude = ["vendor/**"]\n')
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / ".env").write_text(both)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "prod.env").write_text(both)
    (tmp_path / "app" / "notes.txt").write_text(both)  # not a workload file
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "scan", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "KEYGUARD_CONFIG"}
        | {"PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("anthropic-federation-shadowed") == 1, done.stderr
    assert "app/prod.env:2:" in done.stderr


def _scan_in(folder: Path, *args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KEYGUARD_CONFIG"}
    program = (
        "import sys\nfrom keyguard.cli import main\n"
        f"code = main({list(args)!r})\n{code}sys.exit(code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", program],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env | {"PYTHONPATH": str(ROOT)},
        check=False,
    )


def test_plain_scan_starts_without_click_and_says_what_the_parsed_one_says(
    tmp_path: Path,
) -> None:
    """`keyguard scan [PATH ...]` has no option to parse: it runs without loading click, and
    its report, messages and exit code are those of the same scan with options spelled out."""
    from keyguard.keys import generate_key

    key = generate_key().reveal()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "settings.py").write_text(f"KEY = '{key}'\n")
    (tmp_path / ".env").write_text("ANTHROPIC_FEDERATION_RULE_ID=fdrl_1\nANTHROPIC_API_KEY=\n")
    click_loaded = "print('click' in sys.modules, file=sys.stderr)\n"
    plain = _scan_in(tmp_path, "scan", "src", ".env", code=click_loaded)
    parsed = _scan_in(tmp_path, "scan", "-f", "text", "src", ".env", code=click_loaded)
    timing = re.compile(r" in \d+\.\d+s")
    assert plain.returncode == parsed.returncode == 1
    assert plain.stdout == parsed.stdout and "settings.py:1:8" in plain.stdout
    assert timing.sub("", plain.stderr).replace("False", "True") == timing.sub("", parsed.stderr)
    assert plain.stderr.endswith("False\n") and parsed.stderr.endswith("True\n")
    assert key not in plain.stdout + plain.stderr
    missing = _scan_in(tmp_path, "scan", "nope")
    assert missing.returncode == 2
    assert missing.stderr == "keyguard: error: nope: no such file or folder; check the path\n"


def test_a_workload_file_named_with_a_key_is_reported_without_the_key(tmp_path: Path) -> None:
    from keyguard.keys import generate_key, redact

    key = generate_key().reveal()
    both = "ANTHROPIC_FEDERATION_RULE_ID=fdrl_1\nANTHROPIC_API_KEY=\n"
    (tmp_path / f"{key}.env").write_text(both)
    done = _scan_in(tmp_path, "scan", ".")
    assert done.returncode == 1
    assert key not in done.stdout + done.stderr
    assert f"{redact(key)}.env:2: sets ANTHROPIC_API_KEY" in done.stderr


def test_an_error_message_never_passes_terminal_controls_through(tmp_path: Path) -> None:
    """Error text often quotes outside input (a path, an API's message): an escape sequence in
    it must reach the terminal as visible text, not as a command to the terminal."""
    hostile = tmp_path / "no\x1b[2Jsuch\x9b.toml"
    env = {**os.environ, "KEYGUARD_CONFIG": str(hostile)}
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "status"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert "\x1b" not in done.stderr and "\x9b" not in done.stderr
    assert "no\\x1b[2Jsuch\\x9b.toml" in done.stderr
