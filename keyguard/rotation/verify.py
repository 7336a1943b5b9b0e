"""The consumer check: a shell command that learns the new key's hint, never the key."""

from __future__ import annotations

import os
import subprocess

from keyguard.keys import ADMIN_KEY_RE, API_KEY_RE
from keyguard.rotation.state import KeyRef

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
    said = ADMIN_KEY_RE.sub("[key]", API_KEY_RE.sub("[key]", said))
    said = "".join(c if c.isprintable() else "?" for c in said)
    return f"the check command {command!r} exited {done.returncode}" + (
        f" and said: {said}" if said else " without output"
    )
