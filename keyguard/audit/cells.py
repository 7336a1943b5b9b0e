"""What every format of the audit report writes the same way: dates, numbers, counts, and the
cells of an environment's compact row (the terminal table and the HTML page)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keyguard.audit.model import AuditReport, EnvironmentReport, KeyKind


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC (``...Z``); a naive time is taken to be UTC already."""
    if value is None:
        return None
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


def days(delta: timedelta) -> float:
    return round(delta.total_seconds() / 86400, 1)


def short_date(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d}" if value is not None else "-"


def number(value: int | float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def summary_line(report: AuditReport) -> str:
    counts = report.counts()
    return (
        f"{plural(len(report.environments), 'environment')}: {counts['ok']} ok, "
        f"{counts['warning']} warning, {counts['due']} due, {counts['violation']} violation; "
        f"{plural(counts['unmanaged'], 'unmanaged active key')}; "
        f"{plural(report.keys_listed, 'key')} listed"
    )


def rotation_state(environment: EnvironmentReport) -> str:
    """The versions beside the current one: a delivery waiting, the key it replaced."""
    parts = []
    if environment.pending_key_id or environment.pending_hint:
        parts.append(f"pending {environment.pending_key_id or environment.pending_hint}")
    if environment.previous_key_id:
        parts.append(
            f"previous {environment.previous_key_id} ({environment.previous_status or 'unknown'})"
        )
    return "; ".join(parts)


DEPARTED_TEXT = (
    "Archived keys of a person or service account that is gone (every key it had is "
    "archived), listed once: the next audit does not repeat them"
)


def kind_line(kind: KeyKind) -> str:
    """``service_account / workspace`` (+ ``admin-equivalent``) under a key in compact tables."""
    if kind.key_type is None:
        return ""
    return kind.label() + (", admin-equivalent" if kind.admin_equivalent else "")


def compact_cells(environment: EnvironmentReport, with_limits: bool) -> list[str]:
    """An environment row with id and hint in one cell (terminal and HTML tables)."""
    key = (
        "\n".join(
            x for x in (environment.key_id, environment.hint, kind_line(environment.kind)) if x
        )
        or "-"
    )
    limits = (
        [f"{days(environment.limits.due_after):g}/{days(environment.limits.max_age):g}"]
        if with_limits
        else []
    )
    return [
        environment.name,
        environment.verdict.value,
        key,
        number(environment.age_days),
        *limits,
        short_date(environment.expires_at) if environment.expires_at else "never",
        environment.status or "-",
        ("1 store" if len(environment.stores) == 1 else f"{len(environment.stores)} agree")
        if environment.stores_agree
        else "DISAGREE",
        short_date(environment.last_rotation),
        number(environment.tokens_24h),
        number(environment.tokens_7d),
    ]
