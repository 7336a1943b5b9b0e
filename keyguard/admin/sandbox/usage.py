"""The sandbox's ``GET /v1/organizations/usage_report/messages``, computed from its events."""

from __future__ import annotations

import base64
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from keyguard.admin.parse import parse_time
from keyguard.admin.sandbox.wire import SandboxError, iso

#: bucket width -> (length, default buckets per page, most buckets per page)
WIDTHS = {
    "1m": (timedelta(minutes=1), 60, 1440),
    "1h": (timedelta(hours=1), 24, 168),
    "1d": (timedelta(days=1), 7, 31),
}
GROUPS = (
    "api_key_id",
    "workspace_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "speed",
    "account_id",
    "service_account_id",
)
_FIXED = {"service_tier": "standard", "context_window": "0-200k", "inference_geo": "global"}
_TOKENS = (
    "uncached_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
)


def _bad(message: str) -> SandboxError:
    return SandboxError(400, "invalid_request_error", message)


def _snap(at: datetime, width: str) -> datetime:
    if width == "1m":
        return at.replace(second=0, microsecond=0)
    if width == "1h":
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _many(query: dict[str, list[str]], name: str) -> list[str]:
    return query.get(f"{name}[]", []) + query.get(name, [])


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def encode_page(at: datetime) -> str:
    return "page_" + base64.urlsafe_b64encode(iso(at.timestamp()).encode()).decode()  # type: ignore[union-attr]


def decode_page(token: str) -> datetime:
    try:
        raw = base64.urlsafe_b64decode(token.removeprefix("page_").encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise _bad("page: not a token this report gave out") from None
    when = parse_time(raw)
    if when is None:
        raise _bad("page: not a token this report gave out")
    return when


def usage_report(
    query: dict[str, list[str]], events: list[dict[str, Any]], now: float
) -> dict[str, Any]:
    """The report for ``query`` (parsed query string) over ``events``."""
    start_text = _one(query, "starting_at")
    if not start_text:
        raise _bad("starting_at: Field required")
    starting_at = parse_time(start_text)
    if starting_at is None:
        raise _bad("starting_at: not an RFC 3339 timestamp")
    width = _one(query, "bucket_width") or "1d"
    if width not in WIDTHS:
        raise _bad("bucket_width: must be one of 1d, 1h, 1m")
    length, default_limit, max_limit = WIDTHS[width]
    try:
        limit = int(_one(query, "limit") or default_limit)
    except ValueError:
        raise _bad("limit: must be an integer") from None
    if not 1 <= limit <= max_limit:
        raise _bad(f"limit: must be between 1 and {max_limit} for bucket_width {width}")
    end_text = _one(query, "ending_at")
    ending_at = parse_time(end_text) if end_text else datetime.fromtimestamp(now, UTC)
    if ending_at is None:
        raise _bad("ending_at: not an RFC 3339 timestamp")
    if ending_at <= starting_at:
        raise _bad("ending_at must be after starting_at")
    group_by = _many(query, "group_by")
    for group in group_by:
        if group not in GROUPS:
            raise _bad(f"group_by: {group!r} is not one of {', '.join(GROUPS)}")
    key_ids = set(_many(query, "api_key_ids"))
    workspace_ids = set(_many(query, "workspace_ids"))
    models = set(_many(query, "models"))
    sa_ids = set(_many(query, "service_account_ids"))
    token = _one(query, "page")
    cursor = decode_page(token) if token else _snap(starting_at, width)

    buckets: list[dict[str, Any]] = []
    while len(buckets) < limit and cursor < ending_at:
        end = cursor + length
        lo, hi = cursor.timestamp(), end.timestamp()
        sums: dict[tuple[Any, ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(_TOKENS, 0))
        for e in events:
            if not lo <= e["at"] < hi:
                continue
            if key_ids and e["api_key_id"] not in key_ids:
                continue
            if workspace_ids and e["workspace_id"] not in workspace_ids:
                continue
            if models and e["model"] not in models:
                continue
            if sa_ids and e.get("service_account_id") not in sa_ids:
                continue
            dims = tuple(e.get(g, _FIXED.get(g)) for g in group_by)
            for t in _TOKENS:
                sums[dims][t] += int(e.get(t, 0))
        results = []
        for dims, tokens in sums.items():
            row: dict[str, Any] = dict.fromkeys(GROUPS)
            row.update(zip(group_by, dims, strict=True))
            row.update(
                uncached_input_tokens=tokens["uncached_input_tokens"],
                cache_creation={
                    "ephemeral_1h_input_tokens": 0,
                    "ephemeral_5m_input_tokens": tokens["cache_creation_input_tokens"],
                },
                cache_read_input_tokens=tokens["cache_read_input_tokens"],
                output_tokens=tokens["output_tokens"],
                server_tool_use={"web_search_requests": 0},
            )
            results.append(row)
        buckets.append(
            {
                "starting_at": iso(lo),
                "ending_at": iso(hi),
                "results": results,
            }
        )
        cursor = end
    has_more = cursor < ending_at
    return {
        "data": buckets,
        "has_more": has_more,
        "next_page": encode_page(cursor) if has_more else None,
    }


#: What the sandbox's "Anthropic" charges, USD per million tokens: (input, output). Cache reads
#: cost 0.1x input, 5-minute cache writes 1.25x (Anthropic's multipliers).
SANDBOX_PRICES = (
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-6", 5.0, 25.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
)
_COST_TOKENS = {
    "uncached_input_tokens": ("uncached_input_tokens", 1.0, "input"),
    "output_tokens": ("output_tokens", 1.0, "output"),
    "cache_read_input_tokens": ("cache_read_input_tokens", 0.1, "input"),
    "cache_creation.ephemeral_5m_input_tokens": ("cache_creation_input_tokens", 1.25, "input"),
}


def _price(model: str) -> tuple[float, float]:
    matches = [p for p in SANDBOX_PRICES if model.startswith(p[0])]
    best = max(matches, key=lambda p: len(p[0]), default=("", 15.0, 75.0))
    return best[1], best[2]


def cost_report(
    query: dict[str, list[str]], events: list[dict[str, Any]], now: float
) -> dict[str, Any]:
    """``GET /v1/organizations/cost_report``: daily buckets of cents, by model and token type."""
    start_text = _one(query, "starting_at")
    starting_at = parse_time(start_text) if start_text else None
    if starting_at is None:
        raise _bad("starting_at: Field required (RFC 3339)")
    if (_one(query, "bucket_width") or "1d") != "1d":
        raise _bad("bucket_width: only 1d")
    try:
        limit = int(_one(query, "limit") or 7)
    except ValueError:
        raise _bad("limit: must be an integer") from None
    if not 1 <= limit <= 31:
        raise _bad("limit: must be between 1 and 31")
    end_text = _one(query, "ending_at")
    ending_at = parse_time(end_text) if end_text else datetime.fromtimestamp(now, UTC)
    if ending_at is None or ending_at <= starting_at:
        raise _bad("ending_at: an RFC 3339 timestamp after starting_at")
    token = _one(query, "page")
    cursor = decode_page(token) if token else _snap(starting_at, "1d")
    buckets: list[dict[str, Any]] = []
    while len(buckets) < limit and cursor < ending_at:
        end = cursor + timedelta(days=1)
        lo, hi = cursor.timestamp(), end.timestamp()
        cents: dict[tuple[str, str, str | None], float] = defaultdict(float)
        for e in events:
            if not lo <= e["at"] < hi:
                continue
            prices = dict(zip(("input", "output"), _price(e["model"]), strict=True))
            for token_type, (field_name, factor, side) in _COST_TOKENS.items():
                count = int(e.get(field_name, 0))
                if count:
                    usd = count / 1_000_000 * prices[side] * factor
                    cents[(e["model"], token_type, e.get("workspace_id"))] += usd * 100
        results = [
            {
                "amount": f"{amount:.4f}",
                "currency": "USD",
                "cost_type": "tokens",
                "description": f"{model} {token_type}",
                "model": model,
                "service_tier": "standard",
                "token_type": token_type,
                "workspace_id": workspace,
                "context_window": "0-200k",
            }
            for (model, token_type, workspace), amount in sorted(
                cents.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")
            )
        ]
        buckets.append({"starting_at": iso(lo), "ending_at": iso(hi), "results": results})
        cursor = end
    has_more = cursor < ending_at
    return {
        "data": buckets,
        "has_more": has_more,
        "next_page": encode_page(cursor) if has_more else None,
    }
