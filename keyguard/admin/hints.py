"""Matching a full key to the ``partial_key_hint`` the Admin API shows for it."""

from __future__ import annotations

import re

from keyguard.keys import KEY_PREFIX_RE, Secret

_HINT_GAP_RE = re.compile(r"(\.\.\.|…|\*+)")


def hint_parts(hint: str | None) -> tuple[str, str, str] | None:
    """``(prefix, first 3 body chars, last 4 chars)`` of a ``partial_key_hint``, or None."""
    if not hint:
        return None
    m = KEY_PREFIX_RE.match(hint)
    if not m:
        return None
    body = hint[m.end() :]
    gap = _HINT_GAP_RE.search(body)
    if gap is None or gap.start() != 3 or len(body) - gap.end() != 4:
        return None
    return m.group(1), body[:3], body[-4:]


def key_matches_hint(key: Secret, hint: str | None) -> bool:
    """True when ``key`` has the prefix, first 3 and last 4 characters the hint shows."""
    parts = hint_parts(hint)
    if parts is None:
        return False
    prefix, first, last = parts
    value = key.reveal()
    body = value[len(prefix) :]
    return value.startswith(prefix) and len(body) >= 7 and body[:3] == first and body[-4:] == last
