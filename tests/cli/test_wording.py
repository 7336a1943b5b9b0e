"""Messages read as sentences: no "would nothing", no "1 files", a "no" is not an interrupt."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from keyguard.admin.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]


def _env(sandbox: Sandbox, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        ANTHROPIC_BASE_URL=sandbox.url,
        ANTHROPIC_ADMIN_KEY=sandbox.admin_key.reveal(),
        KEYGUARD_CONFIG=str(root / "keyguard.toml"),
    )
    return env


def test_a_plan_with_no_old_key_says_nothing_to_revoke(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "keyguard.toml").write_text('[environments.prod]\nstores = ["file:prod.json"]\n')
    _, key = sandbox.mint_key("prod-1")
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "rotate", "prod", "--dry-run"],
        input=key.reveal(),
        env=_env(sandbox, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "prod: nothing to revoke" in done.stdout
    assert "would nothing" not in done.stdout


def test_one_excluded_file_is_one_file(tmp_path: Path) -> None:
    (tmp_path / "keyguard.toml").write_text('[scan]\nexclude = ["skip.txt"]\n')
    (tmp_path / "skip.txt").write_text("x\n")
    (tmp_path / "a.txt").write_text("y\n")
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "scan", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1 file excluded" in done.stderr + done.stdout, done.stderr


def test_answering_no_is_cancelled_not_interrupted(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "keyguard.toml").write_text('[environments.prod]\nstores = ["file:prod.json"]\n')
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real CLI on a terminal
        os.chdir(tmp_path)
        args = [sys.executable, "-m", "keyguard", "rollback", "prod"]
        os.execve(sys.executable, args, {**_env(sandbox, tmp_path), "TERM": "dumb"})
    seen = b""
    while b"again?" not in seen:
        chunk = os.read(fd, 4096)
        assert chunk, seen
        seen += chunk
    os.write(fd, b"n\r")
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
    text = seen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 130, text
    assert "cancelled" in text and "nothing changed" in text and "interrupted" not in text


def test_counted_nouns_agree_with_their_number() -> None:
    from keyguard.words import plural

    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert plural(1, "Admin API write") == "1 Admin API write"
    assert plural(3, "hour/model bucket") == "3 hour/model buckets"
