"""The work for one repository, run in a pool process or on a Dask worker.

Mirror it, decide what to read (everything; only what is new since the previous tips; or
nothing), and read it with the same engine as ``keyguard scan --history``. Whatever goes wrong
becomes the repository's error: one repository never stops the run. The result is plain data;
it holds a full key only when the run verifies keys (``want_keys``), for the one check per key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from keyguard.errors import KeyguardError
from keyguard.fleet import mirror
from keyguard.fleet.model import Place, RepoResult
from keyguard.fleet.sources import RepoSpec, redact_url
from keyguard.keys import Secret, redact
from keyguard.scanner.detect import scan_bytes
from keyguard.scanner.engine import finish, masked, scan_targets
from keyguard.scanner.sources import list_blobs
from keyguard.scanner.unread import KINDS, Unread, shown


@dataclass(frozen=True)
class Task:
    """One repository to scan, with what the previous report knew about it."""

    spec: RepoSpec
    cache: str
    previous: RepoResult | None = None
    want_keys: bool = False
    fetched: dict[str, str] | None = None  # the tips, when the mirror was fetched already
    fetch_seconds: float = 0.0
    fetch_notes: tuple[str, ...] = ()  # what the fetch said (a cached mirror cloned again)


@dataclass
class Outcome:
    """A repository's result, plus fingerprint -> key when the run verifies keys."""

    result: RepoResult
    keys: dict[str, str] = field(default_factory=dict)


def scan_repo(task: Task) -> Outcome:
    """Mirror and scan one repository; never raises for a problem of that repository."""
    return _guarded(task, _scan)


def fetch(task: Task) -> Outcome | Task:
    """Only the mirror's fetch (I/O-bound: many run at once in threads). Returns the finished
    outcome when nothing is left to read (an error, or tips that did not move), else the task
    to scan with its tips filled in."""
    done = _guarded(task, _fetch_only)
    if done.result.status == "ok" and done.result.mode == "pending":
        return replace(
            task,
            fetched=done.result.tips,
            fetch_seconds=done.result.seconds,
            fetch_notes=tuple(done.result.notes),
        )
    return done


def _guarded(task: Task, step: Callable[[Task, Outcome], None]) -> Outcome:
    started = time.perf_counter()
    result = RepoResult(url=task.spec.url)
    out = Outcome(result)
    try:
        step(task, out)
    except (mirror.MirrorError, KeyguardError, OSError) as exc:
        result.status, result.error = "error", _clean(str(exc))
        result.places, result.tips = [], {}
    except Exception as exc:  # one repository's surprise must not end a night's run
        result.status, result.error = "error", _clean(f"{type(exc).__name__}: {exc}")
        result.places, result.tips = [], {}
    result.seconds = time.perf_counter() - started + task.fetch_seconds
    return out


def _fetch_only(task: Task, out: Outcome) -> None:
    prev = task.previous
    if prev is not None and prev.status == "ok" and prev.tips:
        # Ask the remote first: when its tips are the ones the previous report read, there is
        # nothing to fetch and nothing to read (the mirror, stale or absent, stays as it is).
        out.result.tips = mirror.remote_tips(task.spec) or {}
        if _unchanged(task, out):
            return
    repo = mirror.update(task.spec, Path(task.cache), out.result.notes)
    out.result.tips = mirror.tips(repo)
    if not _unchanged(task, out):
        out.result.mode = "pending"


def _unchanged(task: Task, out: Outcome) -> bool:
    prev = task.previous
    if prev is not None and prev.status == "ok" and prev.tips and prev.tips == out.result.tips:
        out.result.mode, out.result.places = "unchanged", list(prev.places)
        out.result.notes = [*_carried(prev.notes), *out.result.notes]  # still unread
        return True
    return False


def _carried(notes: list[str]) -> list[str]:
    """The previous report's notes that still hold: what was not read (not what a fetch said)."""
    return [n for n in notes if not n.startswith(mirror.RECLONED)]


def _clean(message: str | Unread) -> str:
    """A message fit for a report and a terminal: no key, no credentials, no control bytes (a
    hostile server writes what git prints)."""
    import re

    if isinstance(message, Unread):
        kind = KINDS.get(message.kind, message.kind)
        message = f"not read: {message.path}: {kind}: {message.detail}"
    text = re.sub(r"sk-ant-[A-Za-z0-9_\-]*", lambda m: redact(m.group(0)), redact_url(message))
    return shown(masked(text))  # a key in base64 (a ref name in git's words) too


def _scan(task: Task, out: Outcome) -> None:
    result = out.result
    if task.fetched is None:
        repo = mirror.update(task.spec, Path(task.cache), out.result.notes)
        result.tips = mirror.tips(repo)
    else:
        repo, result.tips = mirror.cache_dir(Path(task.cache), task.spec), task.fetched
        result.notes.extend(task.fetch_notes)
    now = result.tips
    prev = task.previous
    revs = ["--all"]
    if _unchanged(task, out):
        return
    if (
        prev is not None
        and prev.status == "ok"
        and prev.tips
        and mirror.still_reachable(repo, prev.tips, now)
    ):
        result.mode, result.places = "incremental", list(prev.places)
        result.notes = [*_carried(prev.notes), *result.notes]
        revs = ["--all", "--not", *sorted(set(prev.tips.values()))]
    if not now:
        return  # an empty repository: nothing to read
    # The mirror named in GIT_DIR: git never reads a repository in the folders above it.
    listing = list_blobs(repo, revs, env={**mirror.mirror_env(repo), "GIT_NO_REPLACE_OBJECTS": "1"})
    scanned = scan_targets(listing.targets, jobs=1)
    # A repository's own `keyguard: allow` does not hide a key from the security team's scan:
    # the key is reported, flagged as allowed inline, and counts like any other.
    inline = {id(f) for f in scanned.findings if f.allowed}
    for f in scanned.findings:
        f.allowed = False
    scanned = finish(scanned)
    result.blobs += scanned.files
    result.bytes += scanned.bytes
    result.notes.extend(_clean(n) for n in [*listing.notes, *scanned.notes, *scanned.unread])
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
            id(f) in inline,
        )
        if place not in seen:
            seen.add(place)
            result.places.append(place)
        if task.want_keys:
            out.keys[f.fingerprint] = f.secret.reveal()
    _ref_names(task, out, seen)


def _ref_names(task: Task, out: Outcome, seen: set[Place]) -> None:
    """Keys in the names of refs (``git branch sk-ant-...``): a place at line 0 of the masked
    ref name, at the commit it points to. The report's tips hold such a name masked."""
    result = out.result
    for ref, oid in sorted(result.tips.items()):
        for hit in scan_bytes(os.fsencode(ref)):
            secret = Secret(hit.key.decode("ascii"))
            place = Place(
                secret.fingerprint,
                masked(ref),
                oid,
                0,
                hit.column,
                hit.rule.id,
                secret.redacted,
                "ref name",
            )
            if place not in seen:
                seen.add(place)
                result.places.append(place)
            if task.want_keys:
                out.keys[secret.fingerprint] = secret.reveal()
