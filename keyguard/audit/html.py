"""The audit as one self-contained HTML page: inline CSS, an inline SVG chart, no scripts."""

from __future__ import annotations

from html import escape

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
from keyguard.audit.model import AuditReport, EnvironmentReport
from keyguard.words import shown

#: Nothing may load from anywhere: the page is read offline, often as a mail attachment.
CSP = "default-src 'none'; style-src 'unsafe-inline'"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;
margin:2rem;color:#1f2328;background:#fff}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:2rem 0 .5rem}
p.summary{color:#57606a;margin:.25rem 0 1rem}
table{border-collapse:collapse;font-size:.85rem;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.verdict{font-weight:600}td{white-space:nowrap}td.reasons{white-space:normal;min-width:16rem}
div.scroll{overflow-x:auto}
.v-ok{color:#1a7f37}.v-warning{color:#8250df}.v-due{color:#9a6700}.v-violation{color:#cf222e}
svg text{font-size:12px;fill:#1f2328}
rect.bar.ok{fill:#2da44e}rect.bar.warning{fill:#8250df}rect.bar.due{fill:#d4a72c}
rect.bar.violation{fill:#cf222e}
line.due{stroke:#9a6700;stroke-dasharray:4 3}line.max{stroke:#cf222e;stroke-dasharray:4 3}
line.axis{stroke:#8c959f}
"""

LABEL_W, BAR_H, ROW_H, TOP, RIGHT = 170, 14, 22, 34, 60
CHART_W = 900


def _chart(envs: tuple[EnvironmentReport, ...]) -> str:
    """Horizontal bars of key age per environment, with each policy's due and max marks."""
    limits = {(environment.limits.due_after, environment.limits.max_age) for environment in envs}
    scale_max = max(
        [environment.age_days or 0.0 for environment in envs]
        + [days(environment.limits.max_age) for environment in envs]
        + [1.0]
    )
    scale_max *= 1.1
    plot_w = CHART_W - LABEL_W - RIGHT
    height = TOP + ROW_H * len(envs) + 30

    def x(d: float) -> float:
        return round(LABEL_W + plot_w * d / scale_max, 1)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="age-chart" role="img" '
        f'width="{CHART_W}" height="{height}" viewBox="0 0 {CHART_W} {height}" '
        f'aria-label="Key age per environment against the policy limits">'
    ]
    bottom = TOP + ROW_H * len(envs)
    out.append(f'<line class="axis" x1="{LABEL_W}" y1="{TOP - 6}" x2="{LABEL_W}" y2="{bottom}"/>')
    for i, environment in enumerate(envs):
        y = TOP + i * ROW_H
        name = escape(environment.name)
        out.append(
            f'<text class="label" x="{LABEL_W - 8}" y="{y + BAR_H - 2}" '
            f'text-anchor="end">{name}</text>'
        )
        age = environment.age_days
        if age is not None:
            w = round(x(age) - LABEL_W, 1)
            out.append(
                f'<rect class="bar {environment.verdict.value}" data-env="{name}" '
                f'data-age-days="{age:g}" '
                f'x="{LABEL_W}" y="{y}" width="{max(w, 1.0)}" height="{BAR_H}">'
                f"<title>{name}: {age:g} days ({environment.verdict.value})</title></rect>"
            )
            # A short red bar needs its why beside it: expiring, shared, stores disagree...
            other = [
                reason.code
                for reason in environment.reasons
                if reason.code not in ("due", "max_age")
            ]
            note = f" ({escape(', '.join(other))})" if other else ""
            out.append(
                f'<text class="value" x="{x(age) + 4}" y="{y + BAR_H - 2}">{age:g}d{note}</text>'
            )
        else:
            why = escape(", ".join(reason.code for reason in environment.reasons)) or "no key"
            out.append(
                f'<text class="value none" data-env="{name}" x="{LABEL_W + 4}" '
                f'y="{y + BAR_H - 2}">no age known ({why})</text>'
            )
        if len(limits) > 1:
            for cls, lim in (
                ("due", environment.limits.due_after),
                ("max", environment.limits.max_age),
            ):
                lx = x(days(lim))
                out.append(
                    f'<line class="{cls}" data-env="{name}" x1="{lx}" y1="{y - 3}" x2="{lx}" '
                    f'y2="{y + BAR_H + 3}"/>'
                )
    if len(limits) == 1:
        due, max_age = next(iter(limits))
        # The due label sits left of its line and the max label right of it: they never touch.
        for cls, lim, anchor, dx in (("due", due, "end", -3), ("max", max_age, "start", 3)):
            lx = x(days(lim))
            out.append(
                f'<line class="{cls}" data-days="{days(lim):g}" x1="{lx}" y1="{TOP - 10}" '
                f'x2="{lx}" y2="{bottom}"/>'
                f'<text class="limit" x="{lx + dx}" y="{TOP - 14}" text-anchor="{anchor}">'
                f"{cls} {days(lim):g}d</text>"
            )
    out.append(
        f'<text x="{LABEL_W}" y="{bottom + 20}">age in days (0 to {scale_max:.0f})</text></svg>'
    )
    return "".join(out)


def _cell(value: object, cls: str = "") -> str:
    text = "-" if value is None or value == "" else str(value)
    body = "<br>".join(escape(shown(line)) for line in text.split("\n"))
    return f'<td class="{cls}">{body}</td>' if cls else f"<td>{body}</td>"


def _rows(headers: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_html(report: AuditReport) -> str:
    """The whole report as one HTML page that loads nothing from anywhere."""
    limits = {
        (environment.limits.due_after, environment.limits.max_age)
        for environment in report.environments
    }
    mixed = len(limits) > 1
    heads = ["Environment", "Verdict", "Key / hint", "Age (days)"]
    heads += ["Due / max"] if mixed else []
    heads += ["Expires", "Status", "Stores", "Last rotation", "Tokens 24h", "Tokens 7d"]
    heads += ["Pending / previous", "Reasons"]
    numeric = {"Age (days)", "Tokens 24h", "Tokens 7d"}
    env_rows = []
    for environment in report.environments:
        cells: list[object] = [
            *compact_cells(environment, mixed),
            rotation_state(environment),
            "\n".join(reason.message for reason in environment.reasons),
        ]
        tds = []
        for head, c in zip(heads, cells, strict=True):
            cls = "num" if head in numeric else ""
            if head == "Verdict":
                cls = f"verdict v-{environment.verdict.value}"
            elif head == "Reasons":
                cls = "reasons"
            tds.append(_cell(c, cls))
        env_rows.append(f'<tr data-env="{escape(environment.name)}">{"".join(tds)}</tr>')
    un_heads = [
        "Key / hint",
        "Name",
        "Workspace",
        "Created by",
        "Age (days)",
        "Tokens 24h",
        "Tokens 7d",
    ]
    un_rows = [
        f'<tr data-key="{escape(key.key_id)}">'
        + "".join(
            _cell(c, "num" if i >= 4 else "")
            for i, c in enumerate(
                [
                    "\n".join(
                        x for x in (key.key_id, key.hint, kind_line(key.kind), *key.flags) if x
                    ),
                    key.key_name,
                    key.kind.workspace_label(key.workspace_id),
                    key.created_by,
                    number(key.age_days),
                    number(key.tokens_24h),
                    number(key.tokens_7d),
                ]
            )
        )
        + "</tr>"
        for key in report.unmanaged
    ]
    when = f"{report.generated_at:%Y-%m-%d %H:%M} UTC"
    departed = ""
    if report.departed:
        gone = [
            "<tr>"
            + "".join(
                _cell(c)
                for c in (
                    "\n".join(x for x in (key.key_id, key.hint) if x),
                    key.key_name,
                    key.kind.label(),
                    key.kind.principal or "-",
                )
            )
            + "</tr>"
            for key in report.departed
        ]
        departed = f"<h2>Keys of departed members</h2><p>{escape(DEPARTED_TEXT)}.</p>" + _rows(
            ["Key / hint", "Name", "Type / scope", "Principal"], gone
        )
    unmanaged = _rows(un_heads, un_rows) if un_rows else "<p>None.</p>"
    fed_rows = [
        "<tr>"
        + "".join(_cell(c, f"verdict v-{c}" if i == 3 else "") for i, c in enumerate(row))
        + "</tr>"
        for row in federation.rows(report.federation)
    ]
    if fed_rows:
        unmanaged += f"<h2>Federation</h2>{_rows(federation.HEADER, fed_rows)}"
    unmanaged += "".join(f'<p class="note">Note: {escape(n)}</p>' for n in report.notes)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>keyguard audit, {when}</title><style>{CSS}</style></head><body>"
        f'<h1>keyguard audit</h1><p class="summary">Generated {when}. '
        f"{escape(summary_line(report))}.</p>"
        f"<h2>Key age against policy</h2>{_chart(report.environments)}"
        f"<h2>Environments</h2>{_rows(heads, env_rows)}"
        "<h2>Unmanaged keys</h2><p>Active keys of the organization that no environment's "
        f"store holds.</p>{unmanaged}{departed}"
        "</body></html>\n"
    )
