"""`keyguard demo` ends with an audit that shows what today's keys are."""

from __future__ import annotations

import subprocess

from keyguard.keys import API_KEY_RE


def test_demo_audit_shows_an_org_scoped_and_a_legacy_workspace_key(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    done = demo_run
    assert done.returncode == 0, done.stderr
    audit = done.stdout[done.stdout.index("keyguard audit: what each key really is") :]
    assert "personal / organization" in audit and "organization-scoped" in audit
    assert "workspace / workspace" in audit and "legacy workspace key: migrate" in audit
    assert not API_KEY_RE.search(done.stdout + done.stderr)
