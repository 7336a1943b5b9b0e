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


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def summary_line(report: AuditReport) -> str:
    c = report.counts()
    return (
        f"{plural(len(report.environments), 'environment')}: {c['ok']} ok, "
        f"{c['warning']} warning, {c['due']} due, {c['violation']} violation; "
        f"{plural(c['unmanaged'], 'unmanaged active key')}; "
        f"{plural(report.keys_listed, 'key')} listed"
    )


def rotation_state(e: EnvironmentReport) -> str:
    """The versions beside the current one: a delivery waiting, the key it replaced."""
    parts = []
    if e.pending_key_id or e.pending_hint:
        parts.append(f"pending {e.pending_key_id or e.pending_hint}")
    if e.previous_key_id:
        parts.append(f"previous {e.previous_key_id} ({e.previous_status or 'unknown'})")
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


def compact_cells(e: EnvironmentReport, with_limits: bool) -> list[str]:
    """An environment row with id and hint in one cell (terminal and HTML tables)."""
    key = "\n".join(x for x in (e.key_id, e.hint, kind_line(e.kind)) if x) or "-"
    limits = [f"{days(e.limits.due_after):g}/{days(e.limits.max_age):g}"] if with_limits else []
    return [
        e.name,
        e.verdict.value,
        key,
        number(e.age_days),
        *limits,
        short_date(e.expires_at) if e.expires_at else "never",
        e.status or "-",
        ("1 store" if len(e.stores) == 1 else f"{len(e.stores)} agree")
        if e.stores_agree
        else "DISAGREE",
        short_date(e.last_rotation),
        number(e.tokens_24h),
        number(e.tokens_7d),
    ]
