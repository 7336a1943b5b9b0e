"""The work for one repository, run in a pool process or on a Dask worker.

Mirror it, decide what to read (everything; only what is new since the previous tips; or
nothing), and read it with the same engine as ``keyguard scan --history``. Whatever goes wrong
becomes the repository's error: one repository never stops the run. The result is plain data;
it holds a full key only when the run verifies keys (``want_keys``), for the one check per key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from keyguard.errors import KeyguardError
from keyguard.fleet import mirror
from keyguard.fleet.model import Place, RepoResult
from keyguard.fleet.sources import RepoSpec, redact_url
from keyguard.keys import redact
from keyguard.scanner.engine import finish, scan_targets
from keyguard.scanner.sources import list_blobs


@dataclass(frozen=True)
class Task:
    """One repository to scan, with what the previous report knew about it."""

    spec: RepoSpec
    cache: str
    previous: RepoResult | None = None
    want_keys: bool = False


@dataclass
class Outcome:
    """A repository's result, plus fingerprint -> key when the run verifies keys."""

    result: RepoResult
    keys: dict[str, str] = field(default_factory=dict)


def scan_repo(task: Task) -> Outcome:
    """Mirror and scan one repository; never raises for a problem of that repository."""
    started = time.perf_counter()
    result = RepoResult(url=task.spec.url)
    out = Outcome(result)
    try:
        _scan(task, out)
    except (mirror.MirrorError, KeyguardError, OSError) as exc:
        result.status, result.error = "error", _clean(str(exc))
        result.places, result.tips = [], {}
    except Exception as exc:  # one repository's surprise must not end a night's run
        result.status, result.error = "error", _clean(f"{type(exc).__name__}: {exc}")
        result.places, result.tips = [], {}
    result.seconds = time.perf_counter() - started
    return out


def _clean(message: str) -> str:
    import re

    return re.sub(r"sk-ant-[A-Za-z0-9_\-]*", lambda m: redact(m.group(0)), redact_url(message))


def _scan(task: Task, out: Outcome) -> None:
    result = out.result
    repo = mirror.update(task.spec, Path(task.cache))
    now = mirror.tips(repo)
    result.tips = now
    prev = task.previous
    revs = ["--all"]
    if prev is not None and prev.status == "ok" and prev.tips:
        if prev.tips == now:
            result.mode, result.places = "unchanged", list(prev.places)
            return
        if mirror.still_reachable(repo, prev.tips, now):
            result.mode, result.places = "incremental", list(prev.places)
            revs = ["--all", "--not", *sorted(set(prev.tips.values()))]
    if not now:
        return  # an empty repository: nothing to read
    listing = list_blobs(repo, revs)
    scanned = finish(scan_targets(listing.targets, jobs=1))
    result.blobs += scanned.files
    result.bytes += scanned.bytes
    result.notes.extend(_clean(n) for n in listing.notes + scanned.notes)
    seen = set(result.places)
    for f in scanned.findings:
        place = Place(
            f.fingerprint,
            f.path,
            f.commit or "",
            f.line,
            f.column,
            f.rule.id,
            f.redacted,
            f.encoding,
        )
        if place not in seen:
            seen.add(place)
            result.places.append(place)
        if task.want_keys:
            out.keys[f.fingerprint] = f.secret.reveal()
