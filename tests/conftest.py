"""Shared fixtures. Fake keys are built at run time: no key literal lives in the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from keyguard.keys import Secret, generate_key

if TYPE_CHECKING:
    from keyguard.admin.sandbox import Sandbox

#: The folder of the running Python: ``keyguard``, ``keyguard-scan`` and ``pre-commit`` live
#: there. Put first on PATH so that ``venv/bin/pytest`` works without activating the venv, and
#: the commands tests start are this checkout's, never another install's.
BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != BIN:
    os.environ["PATH"] = os.pathsep.join([BIN, os.environ.get("PATH", "")]).rstrip(os.pathsep)


@pytest.fixture
def api_key() -> Secret:
    return generate_key("api")


@pytest.fixture
def admin_key() -> Secret:
    return generate_key("admin")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh Admin API sandbox on 127.0.0.1 (in memory), stopped after the test."""
    from keyguard.admin.sandbox import Sandbox

    sb = Sandbox().start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture(scope="session")
def demo_run() -> subprocess.CompletedProcess[str]:
    """`keyguard demo` run once, as a new user runs it: no credentials, no keyguard settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-m", "keyguard", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
