"""`keyguard demo` ends with an audit that shows what today's keys are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from keyguard.keys import API_KEY_RE


def test_demo_audit_shows_an_org_scoped_and_a_legacy_workspace_key() -> None:
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
    audit = done.stdout[done.stdout.index("keyguard audit: what each key really is") :]
    assert "personal / organization" in audit and "organization-scoped" in audit
    assert "workspace / workspace" in audit and "legacy workspace key: migrate" in audit
    assert not API_KEY_RE.search(done.stdout + done.stderr)
