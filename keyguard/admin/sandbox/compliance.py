"""The sandbox's ``GET /v1/compliance/activities``: the activity feed, filtered and paged."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any

from keyguard.admin.parse import parse_time
from keyguard.admin.sandbox.wire import SandboxError, page


def _bad(message: str) -> SandboxError:
    return SandboxError(400, "invalid_request_error", message)


def _many(query: dict[str, list[str]], name: str) -> list[str]:
    return query.get(f"{name}[]", []) + query.get(name, [])


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


_BOUNDS: dict[str, Callable[[datetime, datetime], bool]] = {
    "created_at.gte": operator.ge,
    "created_at.gt": operator.gt,
    "created_at.lte": operator.le,
    "created_at.lt": operator.lt,
}


def list_activities(query: dict[str, list[str]], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Filter by type, actor and time; page with ``after_id``/``before_id``/``limit``."""
    try:
        limit = int(_one(query, "limit") or 100)
    except ValueError:
        raise _bad("limit: must be an integer") from None
    if not 1 <= limit <= 5000:
        raise _bad("limit: must be between 1 and 5000")
    order = _one(query, "order") or "desc"
    if order not in ("asc", "desc"):
        raise _bad("order: asc or desc")
    types = set(_many(query, "activity_types"))
    excluded = set(_many(query, "exclude_activity_types"))
    actors = set(_many(query, "actor_ids"))
    if any(not a.startswith("user_") for a in actors):
        raise _bad("actor_ids: user IDs only")
    bounds = []
    for name, test in _BOUNDS.items():
        raw = _one(query, name)
        if raw is not None:
            when = parse_time(raw)
            if when is None:
                raise _bad(f"{name}: not an RFC 3339 timestamp")
            bounds.append((test, when))
    chosen = []
    for event in events:
        at = parse_time(event.get("created_at"))
        if at is None or (types and event["type"] not in types) or event["type"] in excluded:
            continue
        if actors and event.get("actor", {}).get("user_id") not in actors:
            continue
        if all(test(at, bound) for test, bound in bounds):
            chosen.append(event)
    chosen.sort(key=lambda e: e["created_at"], reverse=order == "desc")
    return page(chosen, _one(query, "after_id"), _one(query, "before_id"), limit)
