"""A fleet report as data: per repository its ref tips, its status and the places of keys.

The JSON report is the whole state of a fleet scan (no database): ``--since`` reads the tips
back, and ``fleet merge`` rebuilds the same report from shard reports. ``to_json`` is
deterministic (repositories by URL, keys live first, places sorted), so a merge of N shards and
one unsharded run give the same document apart from timings.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from math import isfinite
from pathlib import Path
from typing import Any

from keyguard.errors import UsageError
from keyguard.scanner.engine import masked
from keyguard.scanner.rules import RULES_BY_ID

FORMAT_VERSION = 1
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")

#: Verdict order: live keys first.
VERDICT_RANK = {"live": 0, "unknown": 1, "revoked": 2, None: 3}
#: Which verdict wins when two runs checked the same key: the one that says most.
_MERGE_RANK = {"live": 0, "revoked": 1, "unknown": 2}


@dataclass(frozen=True, order=True)
class Place:
    """One key at one place of one repository's history (never the key itself)."""

    fingerprint: str
    path: str
    commit: str
    line: int
    column: int
    rule: str
    redacted: str
    encoding: str = "plain"
    allowed_inline: bool = False  # the repository's own `keyguard: allow` marks it: reported


@dataclass
class RepoResult:
    """What one repository gave: tips scanned, places found, or the error that stopped it."""

    url: str
    status: str = "ok"  # ok | error
    error: str | None = None
    mode: str = "full"  # full | incremental | unchanged
    tips: dict[str, str] = field(default_factory=dict)
    places: list[Place] = field(default_factory=list)
    blobs: int = 0
    bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Gone:
    """A repository the previous report held that this run's sources no longer list."""

    url: str
    keys: tuple[str, ...] = ()  # fingerprints found there before


@dataclass
class FleetReport:
    """Every repository of a run (or of merged runs) and the verdict of each key checked.

    ``sources`` and ``engine`` say what the report is the state of: which sources were listed,
    and which scanner read them. ``--since`` reuses a report only for the same of both."""

    repos: list[RepoResult] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    sources: list[str] = field(default_factory=list)
    engine: str | None = None
    gone: list[Gone] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # for stderr, not part of the state

    @property
    def failed(self) -> list[RepoResult]:
        return [r for r in self.repos if r.status != "ok"]

    def groups(self) -> list[tuple[str, list[tuple[str, Place]]]]:
        """(fingerprint, [(repository, place)]) live keys first, then by rule and fingerprint."""
        groups: dict[str, list[tuple[str, Place]]] = {}
        for repo in self.repos:
            for p in repo.places:
                groups.setdefault(p.fingerprint, []).append((repo.url, p))
        for places in groups.values():
            places.sort(key=lambda rp: (rp[0], rp[1].path, rp[1].commit, rp[1].line, rp[1].column))

        def order(fp: str) -> tuple[int, int, str]:
            rule = RULES_BY_ID.get(groups[fp][0][1].rule)
            return (VERDICT_RANK.get(self.verdicts.get(fp), 3), rule.rank if rule else 99, fp)

        return [(fp, groups[fp]) for fp in sorted(groups, key=order)]

    def places(self) -> int:
        return sum(len(r.places) for r in self.repos)

    def allowed_inline(self) -> int:
        """Places a repository marked `keyguard: allow`: reported and counted all the same."""
        return sum(p.allowed_inline for r in self.repos for p in r.places)


@cache
def engine_id() -> str:
    """Which scanner finds keys here: keyguard's version and a digest of the scanner's source
    and of the fleet's worker (what it reads of a repository: blobs, ref names, inline allows).
    Places found by another scanner are not carried over by ``--since`` (it may find more)."""
    import keyguard
    import keyguard.scanner

    digest = hashlib.sha256()
    worker = Path(__file__).with_name("worker.py")
    for path in [*sorted(Path(keyguard.scanner.__file__).parent.glob("*.py")), worker]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"keyguard {keyguard.__version__} scanner {digest.hexdigest()[:16]}"


def to_json(report: FleetReport) -> dict[str, Any]:
    """The report as JSON data: repositories (state) and keys grouped by fingerprint."""
    repos = []
    for r in sorted(report.repos, key=lambda r: r.url):
        entry: dict[str, Any] = {"url": r.url, "status": r.status}
        if r.error:
            entry["error"] = r.error
        # A key used as a ref name is written masked: that tip then matches no remote ref, so
        # --since reads the repository again (and finds the key again) instead of trusting it.
        tips = dict(sorted((masked(ref), oid) for ref, oid in r.tips.items()))
        entry.update(mode=r.mode, tips=tips, blobs=r.blobs, bytes=r.bytes)
        entry["seconds"] = round(r.seconds, 3)
        if r.notes:
            entry["notes"] = r.notes
        repos.append(entry)
    keys = []
    for fp, places in report.groups():
        first = places[0][1]
        rule = RULES_BY_ID.get(first.rule)
        group: dict[str, Any] = {
            "fingerprint": fp,
            "redacted": first.redacted,
            "rule": first.rule,
            "severity": rule.severity if rule else "unknown",
        }
        if fp in report.verdicts:
            group["verdict"] = report.verdicts[fp]
        group["repositories"] = len({url for url, _ in places})
        group["places"] = [
            {
                "repository": url,
                "path": p.path,
                "commit": p.commit,
                "line": p.line,
                "column": p.column,
                "encoding": p.encoding,
                **({"allowed_inline": True} if p.allowed_inline else {}),
            }
            for url, p in places
        ]
        keys.append(group)
    head: dict[str, Any] = {"keyguard_fleet": FORMAT_VERSION}
    if report.engine is not None:
        head["engine"] = report.engine
    return {
        **head,
        "sources": sorted(set(report.sources)),
        "repositories": repos,
        "keys": keys,
        "gone": [
            {"url": g.url, "keys": sorted(g.keys)} for g in sorted(report.gone, key=lambda g: g.url)
        ],
        "stats": {
            "repositories": len(report.repos),
            "failed": len(report.failed),
            "blobs": sum(r.blobs for r in report.repos),
            "bytes": sum(r.bytes for r in report.repos),
            "keys": len(keys),
            "places": report.places(),
            "allowed_inline": report.allowed_inline(),
            "seconds": round(report.seconds, 3),
        },
    }


def from_json(data: Any, source: str) -> FleetReport:
    """A report read back (``--since``, ``fleet merge``); hostile input: every field checked."""
    if not isinstance(data, dict) or data.get("keyguard_fleet") != FORMAT_VERSION:
        raise UsageError(f"{source}: not a keyguard fleet JSON report (write one with -f json)")
    try:
        report = FleetReport()
        by_url: dict[str, RepoResult] = {}
        for entry in data["repositories"]:
            if not isinstance(entry.get("tips", {}), dict):
                raise ValueError("the tips are not a mapping of ref to object id")
            tips = {str(ref): str(oid) for ref, oid in dict(entry.get("tips", {})).items()}
            if any(not _HEX40.fullmatch(oid) for oid in tips.values()):
                raise ValueError("a ref tip is not a 40-digit object id")
            repo = RepoResult(
                url=str(entry["url"]),
                status="ok" if entry.get("status") == "ok" else "error",
                error=str(entry["error"]) if entry.get("error") else None,
                mode=str(entry.get("mode", "full")),
                tips=tips,
                blobs=_count(entry.get("blobs", 0)),
                bytes=_count(entry.get("bytes", 0)),
                seconds=_seconds(entry.get("seconds", 0.0)),
                notes=[str(n) for n in entry.get("notes", [])],
            )
            by_url[repo.url] = repo
        for group in data["keys"]:
            fp = str(group["fingerprint"])
            if not _HEX64.fullmatch(fp):
                raise ValueError("a fingerprint is not a SHA-256")
            if group.get("verdict") in ("live", "revoked", "unknown"):
                report.verdicts[fp] = str(group["verdict"])
            for p in group["places"]:
                owner = by_url.get(str(p["repository"]))
                if owner is None:
                    raise ValueError(f"a place names an unknown repository {p['repository']!r}")
                owner.places.append(
                    Place(
                        fp,
                        str(p["path"]),
                        str(p.get("commit", "")),
                        _count(p["line"]),
                        _count(p["column"]),
                        str(group["rule"]),
                        str(group["redacted"]),
                        str(p.get("encoding", "plain")),
                        p.get("allowed_inline", False) is True,
                    )
                )
        report.repos = list(by_url.values())
        report.seconds = _seconds(data.get("stats", {}).get("seconds", 0.0))
        engine = data.get("engine")
        if engine is not None and not isinstance(engine, str):
            raise ValueError("the engine is not a string")
        report.engine = engine
        sources = data.get("sources", [])
        if not isinstance(sources, list) or not all(isinstance(x, str) for x in sources):
            raise ValueError("the sources are not a list of strings")
        report.sources = list(sources)
        gone = data.get("gone", [])
        if not isinstance(gone, list):
            raise ValueError("gone is not a list")
        for g in gone:
            if not isinstance(g["keys"], list):
                raise ValueError("a gone repository's keys are not a list")
            fps = tuple(str(fp) for fp in g["keys"])
            if any(not _HEX64.fullmatch(fp) for fp in fps):
                raise ValueError("a gone repository's key is not a SHA-256")
            report.gone.append(Gone(str(g["url"]), fps))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise UsageError(f"{source}: damaged fleet report ({exc}); write it again") from None
    except RecursionError:  # str() of a value nested past Python's stack
        message = "damaged fleet report (nested too deep); write it again"
        raise UsageError(f"{source}: {message}") from None
    return report


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a report holds")


def _count(value: Any) -> int:
    """A whole number from a report: never a bool, an infinity or NaN (int() of 1e999 raises
    OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a count is a {type(value).__name__}, not a number")
    return int(value)


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not isfinite(value):
        raise ValueError("a time is not a finite number of seconds")
    return float(value)


def load(path: str) -> FleetReport:
    """Read a fleet JSON report from ``path``."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror}); check the path") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
        raise UsageError(f"{path}: not JSON; give a report written with -f json") from None
    return from_json(data, path)


def merge(reports: list[FleetReport]) -> FleetReport:
    """One report from several (shards of one run): repositories by URL, verdicts combined."""
    out = FleetReport()
    by_url: dict[str, RepoResult] = {}
    gone: dict[str, Gone] = {}
    engines = {report.engine for report in reports}
    # Shards read by different scanners make a report that no --since trusts.
    out.engine = engines.pop() if len(engines) == 1 else None
    for report in reports:
        for repo in report.repos:
            by_url[repo.url] = repo
        out.sources.extend(s for s in report.sources if s not in out.sources)
        gone.update((g.url, g) for g in report.gone)
        for fp, verdict in report.verdicts.items():
            old = out.verdicts.get(fp)
            if old is None or _MERGE_RANK[verdict] < _MERGE_RANK[old]:
                out.verdicts[fp] = verdict
        out.seconds = max(out.seconds, report.seconds)
    out.repos = list(by_url.values())
    out.gone = [g for url, g in sorted(gone.items()) if url not in by_url]
    return out
