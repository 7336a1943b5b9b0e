"""Lenient parsing of Admin API answers: unknown fields ignored, unknown values kept, nulls ok."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from keyguard.models import ApiKey, CostRow, Principal, UsageRow, Workspace

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


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return 0


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


def _cache_creation(result: dict[str, Any]) -> int:
    nested = result.get("cache_creation")
    if isinstance(nested, dict):
        return sum(_int(v) for v in nested.values())
    return _int(result.get("cache_creation_input_tokens"))


def _cache_1h(result: dict[str, Any]) -> int:
    nested = result.get("cache_creation")
    return _int(nested.get("ephemeral_1h_input_tokens")) if isinstance(nested, dict) else 0


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
                    uncached_input_tokens=_int(result.get("uncached_input_tokens")),
                    cache_read_input_tokens=_int(result.get("cache_read_input_tokens")),
                    cache_creation_input_tokens=_cache_creation(result),
                    output_tokens=_int(result.get("output_tokens")),
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
            if cents != cents:  # NaN
                continue
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
