"""The audit report as rich tables for a terminal; a table too wide becomes one block per row."""

from __future__ import annotations

import io
from typing import Any

from keyguard.audit import federation
from keyguard.audit.cells import (
    DEPARTED_TEXT,
    compact_cells,
    days,
    kind_line,
    number,
    rotation_state,
    summary_line,
)
from keyguard.audit.model import AuditReport, Verdict
from keyguard.words import shown


def cell(value: object, style: str = "") -> Any:
    """A table cell from outside text (a key name, a store's word): never parsed as rich markup,
    control characters and terminal escapes shown escaped; its lines stay lines."""
    from rich.text import Text

    return Text("\n".join(shown(line) for line in str(value).split("\n")), style=style)


def _as_text(value: Any) -> Any:
    from rich.text import Text

    return value.copy() if isinstance(value, Text) else cell(value)


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


VERDICT_STYLE = {
    Verdict.OK: "green",
    Verdict.WARNING: "magenta",
    Verdict.DUE: "yellow",
    Verdict.VIOLATION: "bold red",
}


def render_table(report: AuditReport, *, width: int | None = None, color: bool = False) -> str:
    """The report as rich tables, as text (with ANSI colours when ``color``)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, force_terminal=color, no_color=not color, highlight=False
    )
    limits = {
        (environment.limits.due_after, environment.limits.max_age)
        for environment in report.environments
    }
    title = f"keyguard audit, {report.generated_at:%Y-%m-%d %H:%M} UTC"
    if len(limits) == 1:
        due, max_age = next(iter(limits))
        title += f"; policy: due {days(due):g}d, max {days(max_age):g}d; tokens 24h / 7d"
    envs = Table(title=title)
    heads = ["Environment", "Verdict", "Key / hint", "Age (d)"]
    heads += ["Due/max"] if len(limits) > 1 else []
    heads += ["Expires", "Status", "Stores", "Rotated", "24h", "7d"]
    # Ids and hints must stay whole to be matched in the Console: they get their full width.
    ids = [
        len(x)
        for environment in report.environments
        for x in (environment.key_id or "", environment.hint or "")
    ]
    for head in heads:
        envs.add_column(head, min_width=max(ids, default=10) if head == "Key / hint" else None)
    for environment in report.environments:
        cells = [cell(c) for c in compact_cells(environment, len(limits) > 1)]
        cells[1] = cell(environment.verdict.value, VERDICT_STYLE[environment.verdict])
        envs.add_row(*cells)
    fit_table(console, envs)
    flagged = [
        (environment, reason)
        for environment in report.environments
        for reason in environment.reasons
    ]
    if flagged:
        reasons_table = Table(title="Reasons", box=box.SIMPLE_HEAD, title_justify="left")
        for head in ("Environment", "Verdict", "Reason"):
            reasons_table.add_column(head)
        for environment, reason in flagged:
            reasons_table.add_row(
                cell(environment.name),
                cell(reason.verdict.value, VERDICT_STYLE[reason.verdict]),
                cell(reason.message),
            )
        console.print(reasons_table)
    states = [
        (environment, rotation_state(environment))
        for environment in report.environments
        if rotation_state(environment)
    ]
    if states:
        in_progress = Table(title="Rotation in progress", box=box.SIMPLE_HEAD, title_justify="left")
        for head in ("Environment", "Pending / previous"):
            in_progress.add_column(head)
        for environment, state in states:
            in_progress.add_row(cell(environment.name), cell(state))
        console.print(in_progress)
    if report.unmanaged:
        unmanaged = Table(title="Unmanaged active keys (no environment holds them; tokens 24h/7d)")
        ids = [len(x) for key in report.unmanaged for x in (key.key_id, key.hint or "")]
        unmanaged.add_column("Key / hint", min_width=max(ids))
        for head in ("Name", "Workspace", "Created by", "Age (d)", "24h", "7d"):
            unmanaged.add_column(head, overflow="fold")
        for key in report.unmanaged:
            unmanaged.add_row(
                *map(
                    cell,
                    (
                        "\n".join(
                            x for x in (key.key_id, key.hint, kind_line(key.kind), *key.flags) if x
                        ),
                        key.key_name,
                        key.kind.workspace_label(key.workspace_id) or "-",
                        key.created_by or "-",
                        number(key.age_days),
                        number(key.tokens_24h),
                        number(key.tokens_7d),
                    ),
                )
            )
        fit_table(console, unmanaged)
    if report.departed:
        gone = Table(title=DEPARTED_TEXT, box=box.SIMPLE_HEAD, title_justify="left")
        for head in ("Key / hint", "Name", "Type / scope", "Principal"):
            gone.add_column(head, overflow="fold")
        for key in report.departed:
            ident = "\n".join(x for x in (key.key_id, key.hint) if x)
            gone.add_row(
                *map(cell, (ident, key.key_name, key.kind.label(), key.kind.principal or "-"))
            )
        fit_table(console, gone)
    fed_rows = federation.rows(report.federation)
    if fed_rows:
        federation_table = Table(
            title="Federation (issuers and rules)", box=box.SIMPLE_HEAD, title_justify="left"
        )
        for head in federation.HEADER:
            federation_table.add_column(head, overflow="fold")
        for row in fed_rows:
            federation_table.add_row(*map(cell, row))
        fit_table(console, federation_table)
        assert report.federation is not None
        for item in report.federation.backlog:
            console.print(cell(f"Migration backlog: {item}"))
    for note in report.notes:
        console.print(cell(f"Note: {note}", "yellow"))
    console.print(cell(summary_line(report)))
    return buffer.getvalue()
