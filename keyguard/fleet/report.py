"""A fleet report as text, JSON, SARIF 2.1.0 or a self-contained HTML page. No full key, ever."""

from __future__ import annotations

import html
import json
from typing import Any

from keyguard.fleet.model import FleetReport, to_json
from keyguard.scanner.report import sarif_log
from keyguard.scanner.rules import RULES, RULES_BY_ID
from keyguard.scanner.unread import shown
from keyguard.words import plural

FORMATS = ("text", "json", "sarif", "html")
#: How a place the repository marked `keyguard: allow` is flagged (it is reported all the same).
ALLOWED_INLINE = "allowed inline by the repository"


def printable(text: str) -> str:
    """``text`` with control, format and undecodable characters escaped (``\\xNN``,
    ``\\uNNNN``), as ``keyguard scan`` shows them: a file name from a hostile repository must
    not move the cursor, recolour the terminal (C0, C1 such as U+009B) or reorder what is shown
    (bidi overrides such as U+202E)."""
    return shown(text)


def summary(report: FleetReport) -> str:
    """One line: repositories scanned and failed, bytes, keys and places."""
    data = to_json(report)["stats"]
    line = (
        f"keyguard fleet: {plural(data['repositories'], 'repository', 'repositories')} "
        f"({data['failed']} failed), {plural(data['blobs'], 'blob')}, "
        f"{plural(data['bytes'], 'byte')} in {report.seconds:.2f}s: "
        f"{plural(data['keys'], 'key')} at {plural(data['places'], 'place')}"
    )
    if data["allowed_inline"]:
        line += f" ({data['allowed_inline']} allowed inline by their repository, reported)"
    live = sum(1 for v in report.verdicts.values() if v == "live")
    return line + (f", {live} live" if report.verdicts else "")


def render(report: FleetReport, fmt: str) -> str:
    """The report in ``fmt``, ending with a newline."""
    if fmt == "json":
        return json.dumps(to_json(report), indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(to_sarif(report), indent=2) + "\n"
    if fmt == "html":
        return to_html(report)
    return to_text(report)


def to_text(report: FleetReport) -> str:
    lines: list[str] = []
    for fp, places in report.groups():
        first = places[0][1]
        verdict = report.verdicts.get(fp)
        repos = len({url for url, _ in places})
        lines.append(
            f"{first.redacted} {first.rule}{f' ({verdict})' if verdict else ''}: "
            f"{len(places)} place(s) in {repos} repositor{'y' if repos == 1 else 'ies'}, "
            f"fingerprint {fp[:16]}"
        )
        for url, p in places:
            lines.append(
                f"    {url} {p.path}:{p.line}:{p.column} (commit {p.commit[:12]})"
                + (f" ({ALLOWED_INLINE})" if p.allowed_inline else "")
            )
    for r in sorted(report.failed, key=lambda r: r.url):
        lines.append(f"not scanned: {r.url}: {r.error}")
    for g in sorted(report.gone, key=lambda g: g.url):
        lines.append(f"gone: {g.url} ({plural(len(g.keys), 'key')} found there before)")
    return "".join(printable(line) + "\n" for line in lines)


def to_sarif(report: FleetReport) -> dict[str, Any]:
    """One result per place; the repository and commit ride in the location and properties."""
    index = {rule.id: i for i, rule in enumerate(RULES)}
    results: list[dict[str, Any]] = []
    for fp, places in report.groups():
        verdict = report.verdicts.get(fp)
        for url, p in places:
            rule = RULES_BY_ID.get(p.rule)
            text = f"{rule.name if rule else p.rule} {p.redacted} in {url}, commit {p.commit}"
            if verdict:
                text += f" (key {verdict})"
            if p.allowed_inline:
                text += f" ({ALLOWED_INLINE})"
            result: dict[str, Any] = {
                "ruleId": p.rule,
                "ruleIndex": index.get(p.rule, 0),
                "level": rule.sarif_level if rule else "error",
                "message": {"text": text + (f". {rule.fix}" if rule else "")},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": p.path.partition("!")[0]},
                            "region": {"startLine": p.line, "startColumn": p.column},
                        },
                        "properties": {"repository": url},
                    }
                ],
                "partialFingerprints": {"keyguardKeySha256/v1": fp},
                "properties": {"repository": url, "commit": p.commit, "redacted": p.redacted},
            }
            if verdict:
                result["properties"]["verdict"] = verdict
            if p.allowed_inline:
                # A property, not a SARIF suppression: code scanning would hide a suppressed one.
                result["properties"]["allowedInline"] = True
            results.append(result)
    failed = [{"url": r.url, "error": r.error} for r in sorted(report.failed, key=lambda r: r.url)]
    return sarif_log(
        results,
        {
            "repositories": len(report.repos),
            "failed": failed,
            "gone": [{"url": g.url, "keys": sorted(g.keys)} for g in report.gone],
        },
    )


_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left}th{background:#f4f4f4}.live{color:#b00;font-weight:bold}code{font-size:13px}"
)


def to_html(report: FleetReport) -> str:
    """A self-contained page: no script, no external resource."""
    e = html.escape
    rows = []
    for fp, places in report.groups():
        first = places[0][1]
        verdict = report.verdicts.get(fp, "")
        where = "<br>".join(
            f"{e(url)} <code>{e(p.path)}:{p.line}</code> @{e(p.commit[:12])}"
            + (f" <em>{ALLOWED_INLINE}</em>" if p.allowed_inline else "")
            for url, p in places
        )
        rows.append(
            f"<tr><td><code>{e(first.redacted)}</code></td><td>{e(first.rule)}</td>"
            f"<td class='{e(verdict)}'>{e(verdict)}</td><td>{where}</td>"
            f"<td><code>{fp[:16]}</code></td></tr>"
        )
    failed = "".join(
        f"<li>{e(r.url)}: {e(r.error or '')}</li>"
        for r in sorted(report.failed, key=lambda r: r.url)
    )
    gone = "".join(
        f"<li>{e(g.url)}: {plural(len(g.keys), 'key')} found there before</li>"
        for g in sorted(report.gone, key=lambda g: g.url)
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\"><title>keyguard fleet report</title>"
        f"<style>{_STYLE}</style></head><body><h1>keyguard fleet report</h1>"
        f"<p>{e(summary(report))}</p><table><tr><th>key</th><th>rule</th><th>verdict</th>"
        f"<th>places</th><th>fingerprint</th></tr>{''.join(rows)}</table>"
        + (f"<h2>Not scanned</h2><ul>{failed}</ul>" if failed else "")
        + (f"<h2>Gone since the previous report</h2><ul>{gone}</ul>" if gone else "")
        + "</body></html>\n"
    )
