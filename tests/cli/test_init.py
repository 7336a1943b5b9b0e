"""`keyguard init` writes a commented keyguard.toml keyguard reads; missing configs name it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from keyguard.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyguard", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def test_init_with_flags_writes_a_commented_config_keyguard_reads(tmp_path: Path) -> None:
    done = run(tmp_path, "init", "--env", "staging", "--env", "prod", "--store", "prod=file:p.json")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "keyguard.toml").read_text()
    assert text.count("\n# ") > 10, "the file explains its settings"
    config = load_config(tmp_path / "keyguard.toml")
    assert sorted(config.environments) == ["prod", "staging"]
    assert config.environments["prod"].stores == (f"file:{tmp_path / 'p.json'}",)
    assert config.admin_key_ref == "env:ANTHROPIC_ADMIN_KEY"
    check = run(tmp_path, "stores", "check")
    assert check.returncode == 0, check.stderr


def test_init_never_replaces_a_config_without_force(tmp_path: Path) -> None:
    (tmp_path / "keyguard.toml").write_text("# mine\n")
    done = run(tmp_path, "init")
    assert done.returncode == 2 and "--force" in done.stderr
    assert (tmp_path / "keyguard.toml").read_text() == "# mine\n"
    assert run(tmp_path, "init", "--force").returncode == 0
    assert "[environments.dev]" in (tmp_path / "keyguard.toml").read_text()


def test_a_bad_answer_writes_nothing(tmp_path: Path) -> None:
    done = run(tmp_path, "init", "--policy", "no-such-policy")
    assert done.returncode == 2 and "no-such-policy" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_on_a_terminal_asks(tmp_path: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real CLI on a terminal
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "keyguard", "init"], _env())
    seen = b""

    def answer(prompt: bytes, text: str) -> None:
        nonlocal seen
        while prompt not in seen:
            chunk = os.read(fd, 4096)
            assert chunk, seen
            seen += chunk
        os.write(fd, text.encode() + b"\r")

    answer(b"Environments", "web")
    answer(b"Store for web", "file:web.json")
    answer(b"Policy", "strict")
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    config = load_config(tmp_path / "keyguard.toml")
    assert list(config.environments) == ["web"]
    assert config.environments["web"].stores == (f"file:{tmp_path / 'web.json'}",)


def test_every_missing_config_message_points_at_keyguard_init(tmp_path: Path) -> None:
    for args in (["status"], ["rotate", "--all"], ["stores", "check"], ["get", "prod"]):
        done = run(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "keyguard init" in done.stderr, (args, done.stderr)
    done = run(tmp_path, "--config", str(tmp_path / "missing.toml"), "status")
    assert done.returncode == 2 and "keyguard init" in done.stderr
    done = run(tmp_path, "audit")  # no config is allowed here, but it is said
    assert "no environments configured" in done.stderr and "keyguard init" in done.stderr


def test_demo_ends_with_its_config_and_how_to_keep_it(tmp_path: Path) -> None:
    done = run(tmp_path, "demo")
    assert done.returncode == 0, done.stderr
    tail = done.stdout.rstrip().splitlines()[-25:]
    shown = "\n".join(tail)
    assert "[environments.prod]" in shown and 'admin_key = "file:admin.key"' in shown
    assert "keyguard demo --keep" in shown and "keyguard init" in shown
