"""`venv/bin/pytest` works without activating the venv: tests find the tools beside Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("keyguard", "keyguard-scan", "pre-commit")


def test_tools_resolve_next_to_the_running_python() -> None:
    here = Path(sys.executable).parent
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None, f"{tool} not found on PATH"
        assert Path(found).parent == here, f"{tool} resolves to {found}, not beside {here}"


def test_pytest_from_an_unactivated_venv_finds_the_tools(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin"  # no venv on it, as after a fresh login
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{Path(__file__).relative_to(ROOT)}::test_tools_resolve_next_to_the_running_python",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
