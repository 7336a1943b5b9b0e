"""Verification rules: the key's workspace against the environment's, and the consumer check
(a shell command that learns the new key's hint, never the key).

An environment's ``workspace`` is a ``wrkspc_`` id or ``default`` (the Default Workspace, whose
real id only the ``anthropic-workspace-id`` response header tells). An organization-scoped key
works in any workspace its principal reaches, so it needs the environment to name one: the
header selects it on every call.

Which key of the organization a served value is must be proven, never guessed: a hint shows seven
characters anyone can copy, and store metadata is written by whoever can write the store.
"""

from __future__ import annotations

import os
import subprocess

from keyguard.admin.hints import key_matches_hint
from keyguard.errors import NotFoundError, UsageError
from keyguard.keys import Secret, scrub_text
from keyguard.models import ApiKey, VerifyResult
from keyguard.models import workspace_problem as key_workspace_problem
from keyguard.rotation.context import Admin
from keyguard.rotation.state import KeyRef

__all__ = ["identify_served_key", "key_workspace_problem", "run_check", "verify_problem"]

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


def identify_served_key(admin: Admin, value: Secret, recorded_id: str | None) -> ApiKey | str:
    """The organization's record of ``value``, proven; else why it cannot be (never a guess).

    ``value`` must be a live key (``GET /v1/models``): a hint is seven characters anyone can
    copy, and store metadata is whoever writes the store's word. Then a recorded id must name
    a key that shows ``value``'s hint; without one, exactly one key of the organization may
    show it once the tie-breakers ran (``find_key`` refuses more).
    """
    result = admin.verify_key(value)
    if not result.usable and result.problem is None:  # 401/403: dead, or no key at all
        return "it does not authenticate, so neither its hint nor its record proves which key it is"
    if recorded_id is not None:
        try:
            api = admin.get_key(recorded_id)
        except NotFoundError:
            return f"its recorded id {recorded_id} is no key of the organization"
        if api.partial_key_hint != value.hint:
            return (
                f"its recorded id {recorded_id} shows the hint {api.partial_key_hint}: "
                "the record does not prove which key it is"
            )
        namesakes = [k.id for k in admin.list_keys() if key_matches_hint(value, k.partial_key_hint)]
        if len(namesakes) > 1:  # the record may name the other one: a hint cannot tell
            return (
                f"{len(namesakes)} keys of the organization show its hint "
                f"({', '.join(namesakes)}), so its recorded id {recorded_id} does not prove "
                "which key it is"
            )
        return api
    try:
        return admin.find_key(value)
    except (NotFoundError, UsageError) as exc:
        return str(exc)
