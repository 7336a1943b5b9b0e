"""``keyguard keys list/show/find`` and ``keyguard sandbox``, against a live sandbox."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.cli import main
from keyguard.keys import Secret, generate_key

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Sandbox:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYGUARD_CONFIG", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", sandbox.url)
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", sandbox.admin_key.reveal())
    return sandbox


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None
) -> tuple[int, str, str]:
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        code = main(argv)
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return code, out, err


def test_list_text_and_json(env: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    ws = env.add_workspace("prod")
    prod, _ = env.mint_key("prod-1", workspace_id=ws)
    dev, _ = env.mint_key("dev-1")
    code, out, _ = run(["keys", "list"], capsys)
    assert code == 0 and prod in out and dev in out and "prod-1" in out and "default" in out
    code, out, _ = run(["keys", "list", "--workspace", ws, "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and [k["id"] for k in data] == [prod]
    assert data[0]["workspace_id"] == ws and data[0]["partial_key_hint"].endswith("AA")
    env.client().update_key(dev, status="inactive")
    code, out, _ = run(["keys", "list", "--status", "inactive", "--format", "json"], capsys)
    assert [k["id"] for k in json.loads(out)] == [dev]


def test_show(env: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    key_id, secret = env.mint_key("prod-1")
    code, out, _ = run(["keys", "show", key_id], capsys)
    assert code == 0 and "prod-1" in out and secret.hint in out
    code, out, _ = run(["keys", "show", key_id, "--format", "json"], capsys)
    assert json.loads(out)["status"] == "active"
    code, _, err = run(["keys", "show", "apikey_nope"], capsys)
    assert code == 1 and "not_found_error" in err


@pytest.mark.parametrize("columns", ["200", "60"])  # one table; rows stacked one by one
def test_names_are_shown_as_text(
    env: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    columns: str,
) -> None:
    """Whoever creates a key picks its name: never rich markup, never a raw terminal escape."""
    monkeypatch.setenv("COLUMNS", columns)
    markup, fake = "batch [/bold] job", "[bold green]ok: managed by prod[/]"
    escape_id, _ = env.mint_key("\x1b[2J\x1b]0;owned\x07term")
    for name in (markup, fake):
        env.mint_key(name)
    code, out, err = run(["keys", "list"], capsys)
    assert (code, err) == (0, "")
    assert markup in out and fake in out, out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J\\x1b]0;owned\\x07term" in out
    code, out, _ = run(["keys", "show", escape_id], capsys)
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b]0;owned\\x07term" in out
    code, out, _ = run(["keys", "list", "--format", "json"], capsys)
    assert "\x1b[2J\x1b]0;owned\x07term" in {k["name"] for k in json.loads(out)}


def test_find_reads_the_key_from_stdin(env: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    key_id, secret = env.mint_key("prod-1")
    env.mint_key("other")
    code, out, _ = run(["keys", "find"], capsys, stdin=secret.reveal() + "\n")
    assert code == 0 and out.strip() == key_id
    code, _, err = run(["keys", "find"], capsys, stdin=generate_key().reveal())
    assert code == 1 and "matches" in err
    code, _, err = run(["keys", "find"], capsys, stdin="")
    assert code == 2 and "no key given" in err


def test_wrong_admin_key_exits_3(
    env: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", generate_key("admin").reveal())
    code, _, err = run(["keys", "list"], capsys)
    assert code == 3 and "authentication_error" in err


def test_unavailable_exits_4(env: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    # 429 with retry-after 0: every retry is immediate, so the test does not wait.
    env.set_faults(rate=1.0, kinds=("429",), retry_after=0)
    code, _, err = run(["keys", "list"], capsys)
    assert code == 4 and "unavailable" in err


def _subprocess_env(sandbox: Sandbox) -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": str(REPO),
        "ANTHROPIC_BASE_URL": sandbox.url,
        "ANTHROPIC_ADMIN_KEY": sandbox.admin_key.reveal(),
    }


def test_find_as_a_real_process(sandbox: Sandbox, tmp_path: Path) -> None:
    key_id, secret = sandbox.mint_key("prod-1")
    proc = subprocess.run(
        [sys.executable, "-m", "keyguard", "keys", "find"],
        input=secret.reveal(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_subprocess_env(sandbox),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == key_id
    assert secret.reveal() not in proc.stdout + proc.stderr


def test_sandbox_command_prints_url_and_its_admin_key(tmp_path: Path) -> None:
    state = tmp_path / "sb.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "keyguard", "sandbox", "--port", "0", "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        url, admin = exports["ANTHROPIC_BASE_URL"], exports["ANTHROPIC_ADMIN_KEY"]
        assert url.startswith("http://127.0.0.1:")
        with Sandbox(state_file=state) as twin:  # the same org, read from the state file
            assert twin.admin_key == Secret(admin)
        from keyguard.admin import AdminClient

        with AdminClient(Secret(admin), url) as client:
            assert client.me()["type"] == "organization"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "stopped" in err
