"""Verification rules: the key's workspace against the environment's, and the consumer check
(a shell command that learns the new key's hint, never the key).

An environment's ``workspace`` is a ``wrkspc_`` id or ``default`` (the Default Workspace, whose
real id only the ``anthropic-workspace-id`` response header tells). An organization-scoped key
works in any workspace its principal reaches, so it needs the environment to name one: the
header selects it on every call.
"""

from __future__ import annotations

import os
import subprocess

from keyguard.keys import scrub_text
from keyguard.models import VerifyResult
from keyguard.models import workspace_problem as key_workspace_problem
from keyguard.rotation.state import KeyRef

__all__ = ["key_workspace_problem", "run_check", "verify_problem"]

CHECK_TIMEOUT = 300.0


def run_check(command: str, environment: str, key: KeyRef) -> str | None:
    """Run ``command``; None when it exits 0, else what went wrong (redacted)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_TEST_"))
    }
    env.update(
        KEYGUARD_ENV=environment,
        KEYGUARD_KEY_HINT=key.hint,
        KEYGUARD_KEY_ID=key.id or "",
        KEYGUARD_KEY_FINGERPRINT=key.fingerprint,
    )
    try:
        done = subprocess.run(  # noqa: S602 - the operator's own configured command
            command,
            shell=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"the check command {command!r} did not finish within {CHECK_TIMEOUT:.0f}s"
    if done.returncode == 0:
        return None
    # Its own words, both streams (the last lines of each), keys masked, one line.
    said = "; ".join(
        f"{name}: " + " / ".join(lines[-5:])
        for name, text in (("stdout", done.stdout), ("stderr", done.stderr))
        if (lines := [line.strip() for line in (text or "").splitlines() if line.strip()])
    )
    said = scrub_text(said)
    said = "".join(c if c.isprintable() else "?" for c in said)
    return f"the check command {command!r} exited {done.returncode}" + (
        f" and said: {said}" if said else " without output"
    )


def verify_problem(expected: str | None, result: VerifyResult) -> str | None:
    """What ``GET /v1/models`` (sent with the environment's workspace) says is wrong."""
    if not result.usable:
        return result.problem or f"GET /v1/models refused it (HTTP {result.status_code})"
    if expected and expected != "default" and result.workspace_id not in (None, expected):
        return f"it answers for workspace {result.workspace_id}, not {expected}"
    return None
