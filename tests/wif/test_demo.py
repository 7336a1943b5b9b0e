"""``keyguard demo`` walks an environment from its static key to federation, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from keyguard.keys import API_KEY_RE


def test_the_demo_has_the_keyless_chapter() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for says in (
        "keyguard wif plan ci",
        "created rule keyguard-ci",
        "exchange: ok",
        "scope: workspace:inference",
        "grace period",
        "ci: federated",
    ):
        assert says in out, says
    assert "sk-ant-oat01-" not in out + done.stderr
    assert not API_KEY_RE.search(out + done.stderr)
