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
        **_kind(e.kind),
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


def _kind(k: KeyKind) -> dict[str, Any]:
    """The key's type, scope and principal: the JSON fields every key carries."""
    return {
        "type": k.key_type,
        "scope": k.scope,
        "principal": k.principal,
        "default_workspace": k.default_workspace,
        "admin_equivalent": k.admin_equivalent,
    }


def unmanaged_dict(u: UnmanagedKey) -> dict[str, Any]:
    return {
        "key_id": u.key_id,
        "key_name": u.key_name,
        "hint": u.hint,
        "workspace_id": u.workspace_id,
        **_kind(u.kind),
        "flags": list(u.flags),
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
        "departed": [unmanaged_dict(u) for u in report.departed],
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
        row.update(
            kind="unmanaged", verdict="unmanaged", status="active", reasons="; ".join(u.flags)
        )
        writer.writerow(row)
    for u in report.departed:
        row = {k: v for k, v in unmanaged_dict(u).items() if k in CSV_FIELDS}
        row.update(kind="departed", verdict="departed", status="archived")
        writer.writerow(row)
    for kind, fid, name, verdict, reasons in federation.rows(report.federation):
        writer.writerow(
            {
                "kind": f"federation_{kind}",
                "key_id": fid,
                "key_name": name,
                "verdict": verdict,
                "reasons": reasons,
            }
        )
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


def environment_cells(e: EnvironmentReport) -> list[object]:
    """The cells of one environment row in the Markdown table: every field of the report."""
    known = e.status is not None  # Anthropic knows the key: no workspace id means the default
    return [
        e.name,
        e.verdict.value,
        e.key_id,
        e.key_name,
        e.hint,
        e.kind.workspace_label(e.workspace_id, known),
        e.kind.label() if known else None,
        e.kind.principal,
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
    "Type / scope",
    "Flags",
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
        u.kind.workspace_label(u.workspace_id),
        u.kind.label(),
        "; ".join(u.flags),
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
    if report.departed:
        lines += ["", "## Keys of departed members", "", DEPARTED_TEXT + ".", ""]
        lines += _table(UNMANAGED_HEADER, [unmanaged_cells(u) for u in report.departed])
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
