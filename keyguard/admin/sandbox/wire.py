"""What every part of the sandbox answers with: Anthropic's ids, timestamps, error and paging."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from typing import Any

_ID_ALPHABET = string.ascii_letters + string.digits


class SandboxError(Exception):
    """An API error the handler turns into Anthropic's error body."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def new_id(prefix: str) -> str:
    """An id in Anthropic's shape, e.g. ``apikey_01`` + 22 characters."""
    return prefix + "01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def page(
    items: list[dict[str, Any]],
    after_id: str | None,
    before_id: str | None,
    limit: int,
) -> dict[str, Any]:
    """Anthropic's cursor paging over ``items`` in their listed order."""
    ids = [item["id"] for item in items]
    if after_id is not None:
        if after_id not in ids:
            raise SandboxError(400, "invalid_request_error", f"after_id {after_id} not found")
        rest = items[ids.index(after_id) + 1 :]
        chosen, has_more = rest[:limit], len(rest) > limit
    elif before_id is not None:
        if before_id not in ids:
            raise SandboxError(400, "invalid_request_error", f"before_id {before_id} not found")
        rest = items[: ids.index(before_id)]
        chosen, has_more = rest[-limit:], len(rest) > limit
    else:
        chosen, has_more = items[:limit], len(items) > limit
    return {
        "data": chosen,
        "has_more": has_more,
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
    }
