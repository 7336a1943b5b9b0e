"""Rendering a scan as text, JSON or SARIF 2.1.0. No format ever holds a full key."""

from __future__ import annotations

import json
from typing import Any

from keyguard import __version__
from keyguard.scanner.engine import Finding, ScanResult
from keyguard.scanner.rules import RULES
from keyguard.scanner.unread import KINDS, Unread, shown
from keyguard.words import plural

FORMATS = ("text", "json", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def summary(result: ScanResult) -> str:
    """One line: what was scanned, what was found, what was suppressed."""
    parts = [
        f"keyguard: scanned {result.files} file{'s' if result.files != 1 else ''}, "
        f"{result.bytes} bytes in {result.seconds:.2f}s: "
        f"{len(result.findings)} finding{'s' if len(result.findings) != 1 else ''}"
    ]
    extra = []
    if result.allowed:
        extra.append(f"{result.allowed} allowed inline")
    if result.baselined:
        extra.append(f"{result.baselined} in the baseline")
    if result.excluded:
        extra.append(f"{plural(result.excluded, 'file')} excluded by config")
    if extra:
        parts.append(f" ({', '.join(extra)})")
    if result.unread:
        counts: dict[str, int] = {}
        for u in result.unread:
            counts[u.kind] = counts.get(u.kind, 0) + 1
        kinds = ", ".join(f"{n} {KINDS.get(k, k)}" for k, n in counts.items())
        parts.append(f"; NOT READ: {len(result.unread)} ({kinds}): {unread_names(result)}")
    return "".join(parts)


def unread_names(result: ScanResult, most: int = 5) -> str:
    """The first ``most`` paths that were not read, escaped for a terminal."""
    names = [shown(u.path) for u in result.unread[:most]]
    more = len(result.unread) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def unread_lines(result: ScanResult) -> list[str]:
    """One line per item not read: path and why, escaped for a terminal."""
    return [f"keyguard: not read: {shown(u.path)}: {shown(u.detail)}" for u in result.unread]


def render(result: ScanResult, fmt: str) -> str:
    """The report in ``fmt`` (text, json or sarif), ending with a newline."""
    if fmt == "json":
        return json.dumps(to_json(result), indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(to_sarif(result), indent=2) + "\n"
    return to_text(result)


def _where(f: Finding) -> str:
    at = f"{shown(f.path)}:{f.line}:{f.column}" if f.line else f"{shown(f.path)} ({f.encoding})"
    return f"{at} (commit {f.commit[:12]})" if f.commit else at


def to_text(result: ScanResult) -> str:
    lines = []
    for f in result.findings:
        how = "" if f.encoding == "plain" or not f.line else f", {f.encoding}"
        verdict = f", {f.verdict}" if f.verdict else ""
        lines.append(
            f"{_where(f)}: {f.rule.id} ({f.rule.severity}{how}{verdict}) {f.redacted}\n"
            f"    {f.rule.fix}"
        )
    if result.findings:
        lines.append(
            "To accept a finding on purpose: add `keyguard: allow` in a comment on its line, or "
            "record it with `keyguard scan --update-baseline --baseline FILE`."
        )
    return "".join(line + "\n" for line in lines)


def finding_json(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule": f.rule.id,
        "severity": f.rule.severity,
        "path": f.path,
        "line": f.line,
        "column": f.column,
        "redacted": f.redacted,
        "fingerprint": f.fingerprint,
    }
    if f.encoding != "plain":
        out["encoding"] = f.encoding
    if f.commit:
        out["commit"] = f.commit
    if f.verdict:
        out["verdict"] = f.verdict
    return out


def to_json(result: ScanResult) -> dict[str, Any]:
    return {
        "findings": [finding_json(f) for f in result.findings],
        "unread": [{"path": u.path, "kind": u.kind, "reason": u.detail} for u in result.unread],
        "stats": {
            "files": result.files,
            "bytes": result.bytes,
            "seconds": round(result.seconds, 3),
            "unread": len(result.unread),
        },
    }


def _sarif_rule(index: int) -> dict[str, Any]:
    rule = RULES[index]
    return {
        "id": rule.id,
        "name": "".join(w.capitalize() for w in rule.id.split("-")),
        "shortDescription": {"text": rule.name},
        "fullDescription": {"text": rule.description},
        "help": {"text": rule.fix, "markdown": rule.fix},
        "defaultConfiguration": {"level": rule.sarif_level},
        "properties": {
            "tags": ["security", "secret"],
            "precision": "very-high" if rule.confidence == "high" else "medium",
            "security-severity": rule.security_severity,
        },
    }


def _sarif_result(f: Finding, index: dict[str, int]) -> dict[str, Any]:
    path, _, member = f.path.partition("!")
    text = f"{f.rule.name} {f.redacted}"
    if member:
        text += f" in archive member {member}"
    if f.commit:
        text += f", introduced in commit {f.commit}"
    text += f". {f.rule.fix}"
    result: dict[str, Any] = {
        "ruleId": f.rule.id,
        "ruleIndex": index[f.rule.id],
        "level": f.rule.sarif_level,
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": path.replace("\\", "/"), "uriBaseId": "%SRCROOT%"},
                    **(
                        {"region": {"startLine": f.line, "startColumn": f.column}} if f.line else {}
                    ),
                }
            }
        ],
        "partialFingerprints": {"keyguardKeySha256/v1": f.fingerprint},
        "properties": {"redacted": f.redacted, "encoding": f.encoding},
    }
    if member:
        result["properties"]["member"] = member
    if f.commit:
        result["properties"]["commit"] = f.commit
    return result


def _sarif_unread(u: Unread) -> dict[str, Any]:
    path = u.path.partition("!")[0]
    return {
        "level": "warning",
        "descriptor": {"id": f"keyguard/unread/{u.kind}"},
        "message": {"text": f"Not read: {u.path}: {u.detail}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": path.replace("\\", "/"), "uriBaseId": "%SRCROOT%"}
                }
            }
        ],
    }


def sarif_log(
    results: list[dict[str, Any]],
    properties: dict[str, Any],
    invocations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One SARIF 2.1.0 run of keyguard, with every rule described: the scan's and the fleet's."""
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "keyguard",
                "version": __version__,
                "rules": [_sarif_rule(i) for i in range(len(RULES))],
            }
        },
        "results": results,
    }
    if invocations is not None:
        run["invocations"] = invocations
    run["properties"] = properties
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def to_sarif(result: ScanResult) -> dict[str, Any]:
    index = {rule.id: i for i, rule in enumerate(RULES)}
    return sarif_log(
        [_sarif_result(f, index) for f in result.findings],
        {"files": result.files, "bytes": result.bytes, "unread": len(result.unread)},
        [
            {
                "executionSuccessful": True,
                "toolExecutionNotifications": [_sarif_unread(u) for u in result.unread],
            }
        ],
    )
