"""Lenient parsing of Admin API answers: unknown fields ignored, unknown values kept, nulls ok.

Numbers are the exception: a count or an amount a decision rests on (the audit, the rotation's
drain check, an incident's exposure) is either a number the API could send or a malformed
answer (``ApiError``), never a guess such as 0.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from keyguard.admin.errors import ApiError
from keyguard.models import ApiKey, CostRow, Principal, UsageRow, Workspace

#: The largest count an answer may hold: 2**53, the largest whole number every JSON reader
#: (and a float in the cost arithmetic) holds exactly; far above any real bucket's tokens.
MAX_COUNT = 2**53

#: Both shapes of ``principal``: Sept 2026 ``{type: user_actor, user_id}`` /
#: ``{type: service_account_actor, service_account_id}``; Aug 2026 ``{id, type: user}``.
_PRINCIPAL_KINDS = {
    "user_actor": ("user", "user_id"),
    "user": ("user", "id"),
    "service_account_actor": ("service_account", "service_account_id"),
    "service_account": ("service_account", "id"),
}
_KEY_TYPE_OF = {"user": "personal", "service_account": "service_account"}


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 string as an aware datetime (UTC if no zone given); None if absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, the form the API documents."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as inf
        raise ValueError(f"{text[:20]} is not a finite number")
    return value


def decode_answer(content: bytes | str) -> Any:
    """An API answer's JSON, refusing what the standard forbids but Python reads: ``NaN``,
    ``Infinity``, numbers too large for a float and nesting past the parser's depth
    (ValueError, as for any text not JSON)."""
    try:
        return json.loads(content, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested past the JSON parser's depth") from None


def answer_json(response: Any, what: str, base_url: str) -> Any:
    """The JSON of a successful answer to ``what``; anything else is the API error (its text is
    never shown: an answer may hold a token)."""
    try:
        return decode_answer(response.content)
    except ValueError:
        raise ApiError(
            f"Anthropic API answered {what} with something that is not JSON "
            f"(status {response.status_code}); check ANTHROPIC_BASE_URL ({base_url})",
            status=response.status_code,
            request_id=response.headers.get("request-id"),
        ) from None


def parse_count(value: Any, name: str, what: str) -> int:
    """A count from an answer (tokens, requests): absent or null is 0; a whole number from 0 to
    ``MAX_COUNT`` is itself; anything else (bool, text, negative, fraction, non-finite, huge)
    makes ``what`` (e.g. "a usage report") a malformed answer."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    if isinstance(value, float) and value.is_integer() and 0 <= value <= MAX_COUNT:
        return int(value)
    shown = repr(value)[:40]
    raise ApiError(
        f"Anthropic API answered {what} with {name} = {shown}: not a count (a whole number "
        f"from 0 to 2**53); nothing was decided on it: run again, and if it stays, check "
        "ANTHROPIC_BASE_URL and report it to Anthropic"
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_principal(value: Any) -> Principal | None:
    """Either documented ``principal`` shape; an unknown type is kept, never a crash."""
    if not isinstance(value, dict):
        return None
    kind = _str(value.get("type")) or "unknown"
    known = _PRINCIPAL_KINDS.get(kind)
    if known is None:
        ident = next((v for k, v in value.items() if k.endswith("id") and _str(v)), None)
        return Principal(kind, ident)
    name, id_field = known
    return Principal(name, _str(value.get(id_field)) or _str(value.get("id")))


def _scope(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(scope, real workspace id)``: ``scope`` first, the deprecated field only without it."""
    scope = data.get("scope")
    if isinstance(scope, dict):
        kind = _str(scope.get("type")) or "unknown"
        return kind, _str(scope.get("workspace_id")) if kind == "workspace" else None
    legacy = _str(data.get("workspace_id"))
    # A null ``workspace_id`` means the Default Workspace *or* an org-scoped key: unknown.
    return ("workspace", legacy) if legacy else (None, None)


def _key_type(data: dict[str, Any], principal: Principal | None) -> str:
    if principal is not None:
        return _KEY_TYPE_OF.get(principal.kind, principal.kind)
    if "principal" in data and data["principal"] is None:
        return "workspace"  # linked to no one: a legacy workspace key
    return "unknown"  # an older answer that does not say


def parse_api_key(data: Any) -> ApiKey:
    """An ``api_key`` object; raises ValueError only when it has no id."""
    if not isinstance(data, dict) or not _str(data.get("id")):
        raise ValueError("API key object without an id")
    created_by = data.get("created_by")
    creator = _str(created_by.get("id")) if isinstance(created_by, dict) else _str(created_by)
    scope, workspace = _scope(data)
    principal = parse_principal(data.get("principal"))
    default = None
    if isinstance(data.get("scope"), dict) and scope == "workspace" and "workspace_id" in data:
        # Only with ``scope`` does a null deprecated ``workspace_id`` mean the Default.
        default = data["workspace_id"] is None
    return ApiKey(
        id=data["id"],
        name=_str(data.get("name")) or "",
        status=_str(data.get("status")) or "unknown",
        created_at=parse_time(data.get("created_at")),
        workspace_id=workspace,
        partial_key_hint=_str(data.get("partial_key_hint")),
        expires_at=parse_time(data.get("expires_at")),
        created_by=creator,
        scope=scope,
        principal=principal,
        key_type=_key_type(data, principal),
        default_workspace=default,
        raw=dict(data),
    )


def parse_workspace(data: Any) -> Workspace:
    """A ``workspace`` object; raises ValueError only when it has no id."""
    if not isinstance(data, dict) or not _str(data.get("id")):
        raise ValueError("workspace object without an id")
    tags = data.get("tags")
    clean = {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}
    return Workspace(
        id=data["id"],
        name=_str(data.get("name")) or "",
        tags=clean,
        archived_at=parse_time(data.get("archived_at")),
    )


_USAGE = "a usage report"


def _cache_creation(result: dict[str, Any]) -> int:
    nested = result.get("cache_creation")
    if isinstance(nested, dict):
        # every ``*_tokens`` entry (5m, 1h, a new duration); other unknown entries are ignored
        return sum(
            parse_count(v, f"cache_creation[{str(k)[:40]!r}]", _USAGE)
            for k, v in nested.items()
            if str(k).endswith("_tokens")
        )
    name = "cache_creation_input_tokens"
    return parse_count(result.get(name), name, _USAGE)


def _cache_1h(result: dict[str, Any]) -> int:
    nested = result.get("cache_creation")
    if not isinstance(nested, dict):
        return 0
    return parse_count(
        nested.get("ephemeral_1h_input_tokens"), "cache_creation.ephemeral_1h_input_tokens", _USAGE
    )


def _tokens(result: dict[str, Any], name: str) -> int:
    return parse_count(result.get(name), name, _USAGE)


def parse_usage_page(data: Any) -> list[UsageRow]:
    """The rows of one usage-report page: one per bucket and group that has a result."""
    rows: list[UsageRow] = []
    buckets = data.get("data") if isinstance(data, dict) else None
    for bucket in buckets if isinstance(buckets, list) else []:
        if not isinstance(bucket, dict):
            continue
        start, end = parse_time(bucket.get("starting_at")), parse_time(bucket.get("ending_at"))
        results = bucket.get("results")
        if start is None or end is None or not isinstance(results, list):
            continue
        for result in results:
            if not isinstance(result, dict):
                continue
            rows.append(
                UsageRow(
                    starting_at=start,
                    ending_at=end,
                    api_key_id=_str(result.get("api_key_id")),
                    uncached_input_tokens=_tokens(result, "uncached_input_tokens"),
                    cache_read_input_tokens=_tokens(result, "cache_read_input_tokens"),
                    cache_creation_input_tokens=_cache_creation(result),
                    output_tokens=_tokens(result, "output_tokens"),
                    model=_str(result.get("model")),
                    cache_creation_1h_input_tokens=_cache_1h(result),
                )
            )
    return rows


def parse_cost_page(data: Any) -> list[CostRow]:
    """The rows of one ``cost_report`` page (``amount`` is a decimal string of cents)."""
    rows: list[CostRow] = []
    buckets = data.get("data") if isinstance(data, dict) else None
    for bucket in buckets if isinstance(buckets, list) else []:
        start = parse_time(bucket.get("starting_at")) if isinstance(bucket, dict) else None
        results = bucket.get("results") if isinstance(bucket, dict) else None
        if start is None or not isinstance(results, list):
            continue
        for result in results:
            if not isinstance(result, dict):
                continue
            try:
                cents = float(str(result.get("amount")))
            except ValueError:
                continue
            if not math.isfinite(cents):  # "NaN", "Infinity", "1e999": no sum may rest on it
                raise ApiError(
                    f"Anthropic API answered a cost report with amount = "
                    f"{str(result.get('amount'))[:40]!r}: not a finite amount; run again, and "
                    "if it stays, check ANTHROPIC_BASE_URL and report it to Anthropic"
                )
            rows.append(
                CostRow(
                    starting_at=start,
                    amount_cents=cents,
                    currency=_str(result.get("currency")) or "USD",
                    model=_str(result.get("model")),
                    token_type=_str(result.get("token_type")),
                    workspace_id=_str(result.get("workspace_id")),
                    description=_str(result.get("description")),
                )
            )
    return rows
