"""`keyguard sandbox` start-up: a busy port is a one-line error with the fix, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest


def test_a_busy_port_says_so_and_names_port_0_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "keyguard", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and "--port 0" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "ANTHROPIC_ADMIN_KEY" not in proc.stdout


@pytest.mark.parametrize(
    "text", ["{not json", "[1, 2]", '{"keys": []}', '{"admin_key": 7, "keys": {}}', "[" * 100_000]
)
def test_a_damaged_state_file_is_one_line_and_left_as_it_was(tmp_path: Path, text: str) -> None:
    state = tmp_path / "sandbox.json"
    state.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "keyguard", "sandbox", "--port", "0", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert str(state) in proc.stderr
    assert state.read_text() == text  # nothing lost: never overwritten with a fresh organization
