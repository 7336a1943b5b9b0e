"""Renderers for an audit report: JSON, CSV and Markdown; the terminal table is ``table.py``,
the HTML page ``html.py``."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from keyguard.audit import federation
from keyguard.audit.cells import DEPARTED_TEXT, days, number, rotation_state, short_date

# ``iso``, ``summary_line`` and the table's functions are imported from here (the CLI, tests):
# this module is where a caller finds every format.
from keyguard.audit.cells import iso as iso
from keyguard.audit.cells import summary_line as summary_line
from keyguard.audit.model import (
    AuditReport,
    EnvironmentReport,
    KeyKind,
    StageView,
    StoreView,
    UnmanagedKey,
)
from keyguard.audit.table import fit_table as fit_table
from keyguard.audit.table import least_width as least_width
from keyguard.audit.table import render_table as render_table
from keyguard.words import shown

FORMATS = ("table", "json", "markdown", "csv", "html")


def _stage(view: StageView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    return {
        "key_id": view.key_id,
        "hint": view.hint,
        "fingerprint": view.fingerprint,
        "stored_at": iso(view.stored_at),
        "metadata_matches": not view.meta_mismatch,
        "metadata_key_id": view.claimed_key_id,  # the other key a mismatched record names
    }


def _store(view: StoreView) -> dict[str, Any]:
    return {
        "uri": view.uri,
        "error": view.error,
        "current": _stage(view.current),
        "pending": _stage(view.pending),
        "previous": _stage(view.previous),
    }


def environment_dict(environment: EnvironmentReport) -> dict[str, Any]:
    """One environment as plain JSON types."""
    return {
        "name": environment.name,
        "verdict": environment.verdict.value,
        "reasons": [
            {"code": reason.code, "verdict": reason.verdict.value, "message": reason.message}
            for reason in environment.reasons
        ],
        "key_id": environment.key_id,
        "key_name": environment.key_name,
        "hint": environment.hint,
        "workspace_id": environment.workspace_id,
        **_kind(environment.kind),
        "status": environment.status,
        "created_at": iso(environment.created_at),
        "created_by": environment.created_by,
        "age_days": environment.age_days,
        "expires_at": iso(environment.expires_at),
        "stores_agree": environment.stores_agree,
        "stores": [_store(store) for store in environment.stores],
        "last_rotation": iso(environment.last_rotation),
        "pending": {"key_id": environment.pending_key_id, "hint": environment.pending_hint}
        if environment.pending_key_id or environment.pending_hint
        else None,
        "previous": {"key_id": environment.previous_key_id, "status": environment.previous_status}
        if environment.previous_key_id
        else None,
        "tokens_24h": environment.tokens_24h,
        "tokens_7d": environment.tokens_7d,
        "policy": {
            "name": environment.limits.name,
            "due_after_days": days(environment.limits.due_after),
            "max_age_days": days(environment.limits.max_age),
            "expiry_warning_days": days(environment.limits.expiry_warning),
        },
    }


def _kind(field: KeyKind) -> dict[str, Any]:
    """The key's type, scope and principal: the JSON fields every key carries."""
    return {
        "type": field.key_type,
        "scope": field.scope,
        "principal": field.principal,
        "default_workspace": field.default_workspace,
        "admin_equivalent": field.admin_equivalent,
    }


def unmanaged_dict(key: UnmanagedKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "key_name": key.key_name,
        "hint": key.hint,
        "workspace_id": key.workspace_id,
        **_kind(key.kind),
        "flags": list(key.flags),
        "created_at": iso(key.created_at),
        "created_by": key.created_by,
        "age_days": key.age_days,
        "expires_at": iso(key.expires_at),
        "tokens_24h": key.tokens_24h,
        "tokens_7d": key.tokens_7d,
    }


def report_dict(report: AuditReport) -> dict[str, Any]:
    return {
        "generated_at": iso(report.generated_at),
        "summary": {**report.counts(), "keys_listed": report.keys_listed},
        "environments": [environment_dict(environment) for environment in report.environments],
        "unmanaged": [unmanaged_dict(key) for key in report.unmanaged],
        "departed": [unmanaged_dict(key) for key in report.departed],
        "notes": list(report.notes),
        **federation.json_part(report.federation),
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
    "type",
    "scope",
    "principal",
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


#: A cell starting with one of these is a formula to a spreadsheet (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """Text as a spreadsheet shows it, never runs it: a formula start gets a leading ``'``;
    control characters are escaped (the CSV may go to a terminal). Numbers stay numbers."""
    if not isinstance(value, str):
        return value
    return ("'" if value.startswith(FORMULA_STARTS) else "") + shown(value)


class _SafeWriter(csv.DictWriter):  # type: ignore[type-arg]
    def writerow(self, rowdict: Any) -> Any:
        return super().writerow({field: csv_cell(value) for field, value in rowdict.items()})


def render_csv(report: AuditReport) -> str:
    """One row per environment (kind=environment) and per unmanaged key (kind=unmanaged).
    Names and other outside text cannot become formulas (see :func:`csv_cell`)."""
    buffer = io.StringIO()
    writer = _SafeWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for environment in report.environments:
        fields = environment_dict(environment)
        row = {field: fields.get(field) for field in CSV_FIELDS}
        row.update(
            kind="environment",
            environment=environment.name,
            reasons="; ".join(reason.message for reason in environment.reasons),
            stores_agree="yes" if environment.stores_agree else "no",
            pending_key_id=environment.pending_key_id,
            previous_key_id=environment.previous_key_id,
            previous_status=environment.previous_status,
        )
        writer.writerow(row)
    for key in report.unmanaged:
        row = {field: value for field, value in unmanaged_dict(key).items() if field in CSV_FIELDS}
        row.update(
            kind="unmanaged", verdict="unmanaged", status="active", reasons="; ".join(key.flags)
        )
        writer.writerow(row)
    for key in report.departed:
        row = {field: value for field, value in unmanaged_dict(key).items() if field in CSV_FIELDS}
        row.update(kind="departed", verdict="departed", status="archived")
        writer.writerow(row)
    for kind, finding_id, name, verdict, reasons in federation.rows(report.federation):
        writer.writerow(
            {
                "kind": f"federation_{kind}",
                "key_id": finding_id,
                "key_name": name,
                "verdict": verdict,
                "reasons": reasons,
            }
        )
    return buffer.getvalue()


def _md(value: object) -> str:
    """A Markdown table cell of outside text: no table break, link, HTML or terminal escape."""
    text = "-" if value is None or value == "" else str(value)
    for special in ("\\", "|", "[", "]", "<", ">"):
        text = text.replace(special, "\\" + special)
    return "<br>".join(shown(line) for line in text.split("\n"))


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    return lines


ENV_HEADER = [
    "Environment",
    "Verdict",
    "Key",
    "Name",
    "Hint",
    "Workspace",
    "Type / scope",
    "Principal",
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


def environment_cells(environment: EnvironmentReport) -> list[object]:
    """The cells of one environment row in the Markdown table: every field of the report."""
    known = (
        environment.status is not None
    )  # Anthropic knows the key: no workspace id means the default
    return [
        environment.name,
        environment.verdict.value,
        environment.key_id,
        environment.key_name,
        environment.hint,
        environment.kind.workspace_label(environment.workspace_id, known),
        environment.kind.label() if known else None,
        environment.kind.principal,
        short_date(environment.created_at),
        number(environment.age_days),
        f"{days(environment.limits.due_after):g} / {days(environment.limits.max_age):g}",
        short_date(environment.expires_at) if environment.expires_at else "never",
        environment.status,
        "yes" if environment.stores_agree else "NO",
        short_date(environment.last_rotation),
        rotation_state(environment),
        number(environment.tokens_24h),
        number(environment.tokens_7d),
        "\n".join(reason.message for reason in environment.reasons),
    ]


UNMANAGED_HEADER = [
    "Key",
    "Name",
    "Hint",
    "Workspace",
    "Type / scope",
    "Flags",
    "Created by",
    "Age (days)",
    "Tokens 24h",
    "Tokens 7d",
]


def unmanaged_cells(key: UnmanagedKey) -> list[object]:
    return [
        key.key_id,
        key.key_name,
        key.hint,
        key.kind.workspace_label(key.workspace_id),
        key.kind.label(),
        "; ".join(key.flags),
        key.created_by,
        number(key.age_days),
        number(key.tokens_24h),
        number(key.tokens_7d),
    ]


def render_markdown(report: AuditReport) -> str:
    lines = [
        f"# keyguard audit, {report.generated_at:%Y-%m-%d %H:%M} UTC",
        "",
        summary_line(report) + ".",
        "",
        "## Environments",
        "",
        *_table(
            ENV_HEADER, [environment_cells(environment) for environment in report.environments]
        ),
        "",
        "## Unmanaged keys",
        "",
        "Active keys of the organization that no environment's store holds.",
        "",
    ]
    if report.unmanaged:
        lines += _table(UNMANAGED_HEADER, [unmanaged_cells(key) for key in report.unmanaged])
    else:
        lines.append("None.")
    if report.departed:
        lines += ["", "## Keys of departed members", "", DEPARTED_TEXT + ".", ""]
        lines += _table(UNMANAGED_HEADER, [unmanaged_cells(key) for key in report.departed])
    if federation.rows(report.federation):
        lines += [
            "",
            "## Federation",
            "",
            *_table(federation.HEADER, federation.rows(report.federation)),
        ]
        assert report.federation is not None
        if report.federation.backlog:
            lines += ["", "Migration backlog:", ""]
            lines += [f"- {_md(item)}" for item in report.federation.backlog]
    lines += [f"\n**Note:** {_md(note)}" for note in report.notes]
    return "\n".join(lines) + "\n"
