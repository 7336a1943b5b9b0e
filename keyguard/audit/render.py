"""Renderers for an audit report: JSON, CSV, Markdown and a rich terminal table."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from keyguard.audit.model import (
    AuditReport,
    EnvironmentReport,
    StageView,
    StoreView,
    UnmanagedKey,
    Verdict,
)

FORMATS = ("table", "json", "markdown", "csv", "html")


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
        f"{plural(len(report.environments), 'environment')}: {c['ok']} ok, {c['due']} due, "
        f"{c['violation']} violation; {plural(c['unmanaged'], 'unmanaged active key')}; "
        f"{plural(report.keys_listed, 'key')} listed"
    )


def _stage(view: StageView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    return {
        "key_id": view.key_id,
        "hint": view.hint,
        "fingerprint": view.fingerprint,
        "stored_at": iso(view.stored_at),
        "metadata_matches": not view.meta_mismatch,
    }


def _store(view: StoreView) -> dict[str, Any]:
    return {
        "uri": view.uri,
        "error": view.error,
        "current": _stage(view.current),
        "pending": _stage(view.pending),
        "previous": _stage(view.previous),
    }


def environment_dict(e: EnvironmentReport) -> dict[str, Any]:
    """One environment as plain JSON types."""
    return {
        "name": e.name,
        "verdict": e.verdict.value,
        "reasons": [
            {"code": r.code, "verdict": r.verdict.value, "message": r.message} for r in e.reasons
        ],
        "key_id": e.key_id,
        "key_name": e.key_name,
        "hint": e.hint,
        "workspace_id": e.workspace_id,
        "status": e.status,
        "created_at": iso(e.created_at),
        "created_by": e.created_by,
        "age_days": e.age_days,
        "expires_at": iso(e.expires_at),
        "stores_agree": e.stores_agree,
        "stores": [_store(s) for s in e.stores],
        "last_rotation": iso(e.last_rotation),
        "pending": {"key_id": e.pending_key_id, "hint": e.pending_hint}
        if e.pending_key_id or e.pending_hint
        else None,
        "previous": {"key_id": e.previous_key_id, "status": e.previous_status}
        if e.previous_key_id
        else None,
        "tokens_24h": e.tokens_24h,
        "tokens_7d": e.tokens_7d,
        "policy": {
            "name": e.limits.name,
            "due_after_days": days(e.limits.due_after),
            "max_age_days": days(e.limits.max_age),
            "expiry_warning_days": days(e.limits.expiry_warning),
        },
    }


def unmanaged_dict(u: UnmanagedKey) -> dict[str, Any]:
    return {
        "key_id": u.key_id,
        "key_name": u.key_name,
        "hint": u.hint,
        "workspace_id": u.workspace_id,
        "created_at": iso(u.created_at),
        "created_by": u.created_by,
        "age_days": u.age_days,
        "expires_at": iso(u.expires_at),
        "tokens_24h": u.tokens_24h,
        "tokens_7d": u.tokens_7d,
    }


def report_dict(report: AuditReport) -> dict[str, Any]:
    return {
        "generated_at": iso(report.generated_at),
        "summary": {**report.counts(), "keys_listed": report.keys_listed},
        "environments": [environment_dict(e) for e in report.environments],
        "unmanaged": [unmanaged_dict(u) for u in report.unmanaged],
        "notes": list(report.notes),
    }


def render_json(report: AuditReport) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"


CSV_FIELDS = (
    "kind",
    "environment",
    "verdict",
    "reasons",
    "key_id",
    "key_name",
    "hint",
    "workspace_id",
    "status",
    "created_at",
    "created_by",
    "age_days",
    "expires_at",
    "stores_agree",
    "last_rotation",
    "pending_key_id",
    "previous_key_id",
    "previous_status",
    "tokens_24h",
    "tokens_7d",
)


def render_csv(report: AuditReport) -> str:
    """One row per environment (kind=environment) and per unmanaged key (kind=unmanaged)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for e in report.environments:
        d = environment_dict(e)
        row = {k: d.get(k) for k in CSV_FIELDS}
        row.update(
            kind="environment",
            environment=e.name,
            reasons="; ".join(r.message for r in e.reasons),
            stores_agree="yes" if e.stores_agree else "no",
            pending_key_id=e.pending_key_id,
            previous_key_id=e.previous_key_id,
            previous_status=e.previous_status,
        )
        writer.writerow(row)
    for u in report.unmanaged:
        row = {k: v for k, v in unmanaged_dict(u).items() if k in CSV_FIELDS}
        row.update(kind="unmanaged", verdict="unmanaged", status="active")
        writer.writerow(row)
    return buf.getvalue()


def _md(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


ENV_HEADER = [
    "Environment",
    "Verdict",
    "Key",
    "Name",
    "Hint",
    "Workspace",
    "Created",
    "Age (days)",
    "Due / max",
    "Expires",
    "Status",
    "Stores agree",
    "Last rotation",
    "Pending / previous",
    "Tokens 24h",
    "Tokens 7d",
    "Reasons",
]


def rotation_state(e: EnvironmentReport) -> str:
    """The versions beside the current one: a delivery waiting, the key it replaced."""
    parts = []
    if e.pending_key_id or e.pending_hint:
        parts.append(f"pending {e.pending_key_id or e.pending_hint}")
    if e.previous_key_id:
        parts.append(f"previous {e.previous_key_id} ({e.previous_status or 'unknown'})")
    return "; ".join(parts)


def environment_cells(e: EnvironmentReport) -> list[object]:
    """The cells of one environment row in the Markdown table: every field of the report."""
    known = e.status is not None  # Anthropic knows the key: no workspace id means the default
    return [
        e.name,
        e.verdict.value,
        e.key_id,
        e.key_name,
        e.hint,
        e.workspace_id or ("default" if known else None),
        short_date(e.created_at),
        number(e.age_days),
        f"{days(e.limits.due_after):g} / {days(e.limits.max_age):g}",
        short_date(e.expires_at) if e.expires_at else "never",
        e.status,
        "yes" if e.stores_agree else "NO",
        short_date(e.last_rotation),
        rotation_state(e),
        number(e.tokens_24h),
        number(e.tokens_7d),
        "\n".join(r.message for r in e.reasons),
    ]


UNMANAGED_HEADER = [
    "Key",
    "Name",
    "Hint",
    "Workspace",
    "Created by",
    "Age (days)",
    "Tokens 24h",
    "Tokens 7d",
]


def unmanaged_cells(u: UnmanagedKey) -> list[object]:
    return [
        u.key_id,
        u.key_name,
        u.hint,
        u.workspace_id or "default",
        u.created_by,
        number(u.age_days),
        number(u.tokens_24h),
        number(u.tokens_7d),
    ]


def render_markdown(report: AuditReport) -> str:
    lines = [
        f"# keyguard audit, {report.generated_at:%Y-%m-%d %H:%M} UTC",
        "",
        summary_line(report) + ".",
        "",
        "## Environments",
        "",
        *_table(ENV_HEADER, [environment_cells(e) for e in report.environments]),
        "",
        "## Unmanaged keys",
        "",
        "Active keys of the organization that no environment's store holds.",
        "",
    ]
    if report.unmanaged:
        lines += _table(UNMANAGED_HEADER, [unmanaged_cells(u) for u in report.unmanaged])
    else:
        lines.append("None.")
    lines += [f"\n**Note:** {_md(note)}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _as_text(value: Any) -> Any:
    from rich.text import Text

    return value.copy() if isinstance(value, Text) else Text.from_markup(str(value))


def least_width(table: Any) -> int:
    """The narrowest the table can be without cutting a word, an id or a no-wrap cell."""
    total = len(table.columns) + 1 if table.box else 0
    for column in table.columns:
        texts = [str(column.header), *(_as_text(c).plain for c in column.cells)]
        lines = [line for t in texts for line in t.splitlines()]
        if column.no_wrap:
            least = max((len(line) for line in lines), default=0)
        elif column.overflow == "fold":
            least = 10
        else:
            least = max((len(w) for line in lines for w in line.split()), default=0)
        total += max(least, column.min_width or 0) + 2
    return total


def fit_table(console: Any, table: Any) -> None:
    """Print a rich table when it fits the console; else each row stacked, ``Header: value``.

    Nothing is cut: a verdict, an id or a hint is never shortened to fit, and no column is
    dropped; a table too wide for the terminal becomes one block per row instead.
    """
    from rich.text import Text

    if least_width(table) <= console.width:
        console.print(table)
        return
    if table.title:
        console.print(Text(str(table.title), style="italic"))
    heads = [str(c.header) for c in table.columns]
    pad = max((len(h) for h in heads), default=0) + 2
    cells = [list(c.cells) for c in table.columns]
    for row in range(table.row_count):
        values = [_as_text(col[row] if row < len(col) else "") for col in cells]
        console.print(Text(values[0].plain.replace("\n", " / "), style="bold"))
        for head, text in zip(heads[1:], values[1:], strict=True):
            text.plain = text.plain.replace("\n", " / ")
            console.print(Text(f"  {head:<{pad}}").append_text(text), overflow="fold")
    console.print("")


VERDICT_STYLE = {Verdict.OK: "green", Verdict.DUE: "yellow", Verdict.VIOLATION: "bold red"}


def compact_cells(e: EnvironmentReport, with_limits: bool) -> list[str]:
    """An environment row with id and hint in one cell (terminal and HTML tables)."""
    key = "\n".join(x for x in (e.key_id, e.hint) if x) or "-"
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


def render_table(report: AuditReport, *, width: int | None = None, color: bool = False) -> str:
    """The report as rich tables, as text (with ANSI colours when ``color``)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buf = io.StringIO()
    console = Console(
        file=buf, width=width, force_terminal=color, no_color=not color, highlight=False
    )
    limits = {(e.limits.due_after, e.limits.max_age) for e in report.environments}
    title = f"keyguard audit, {report.generated_at:%Y-%m-%d %H:%M} UTC"
    if len(limits) == 1:
        due, max_age = next(iter(limits))
        title += f"; policy: due {days(due):g}d, max {days(max_age):g}d; tokens 24h / 7d"
    envs = Table(title=title)
    heads = ["Environment", "Verdict", "Key / hint", "Age (d)"]
    heads += ["Due/max"] if len(limits) > 1 else []
    heads += ["Expires", "Status", "Stores", "Rotated", "24h", "7d"]
    # Ids and hints must stay whole to be matched in the Console: they get their full width.
    ids = [len(x) for e in report.environments for x in (e.key_id or "", e.hint or "")]
    for head in heads:
        envs.add_column(head, min_width=max(ids, default=10) if head == "Key / hint" else None)
    for e in report.environments:
        cells = [Text(c) for c in compact_cells(e, len(limits) > 1)]
        cells[1] = Text(e.verdict.value, style=VERDICT_STYLE[e.verdict])
        envs.add_row(*cells)
    fit_table(console, envs)
    flagged = [(e, r) for e in report.environments for r in e.reasons]
    if flagged:
        why = Table(title="Reasons", box=box.SIMPLE_HEAD, title_justify="left")
        for head in ("Environment", "Verdict", "Reason"):
            why.add_column(head)
        for e, r in flagged:
            why.add_row(e.name, Text(r.verdict.value, style=VERDICT_STYLE[r.verdict]), r.message)
        console.print(why)
    states = [(e, rotation_state(e)) for e in report.environments if rotation_state(e)]
    if states:
        mid = Table(title="Rotation in progress", box=box.SIMPLE_HEAD, title_justify="left")
        for head in ("Environment", "Pending / previous"):
            mid.add_column(head)
        for e, state in states:
            mid.add_row(e.name, state)
        console.print(mid)
    if report.unmanaged:
        un = Table(title="Unmanaged active keys (no environment holds them; tokens 24h/7d)")
        ids = [len(x) for u in report.unmanaged for x in (u.key_id, u.hint or "")]
        un.add_column("Key / hint", min_width=max(ids))
        for head in ("Name", "Workspace", "Created by", "Age (d)", "24h", "7d"):
            un.add_column(head, overflow="fold")
        for u in report.unmanaged:
            un.add_row(
                "\n".join(x for x in (u.key_id, u.hint) if x),
                u.key_name,
                u.workspace_id or "default",
                u.created_by or "-",
                number(u.age_days),
                number(u.tokens_24h),
                number(u.tokens_7d),
            )
        fit_table(console, un)
    for note in report.notes:
        console.print(Text(f"Note: {note}", style="yellow"))
    console.print(summary_line(report))
    return buf.getvalue()
