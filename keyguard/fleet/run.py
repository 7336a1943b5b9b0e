"""One fleet scan from options to report: list, shard, scan each repository, verify keys."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from keyguard.errors import UsageError
from keyguard.fleet.executor import check_executor, run_tasks
from keyguard.fleet.model import FleetReport, Gone, RepoResult, engine_id, load
from keyguard.fleet.report import printable
from keyguard.fleet.sources import (
    ApiOptions,
    RepoSpec,
    check_api,
    collect,
    redact_url,
    shard_of,
    spec_for,
)
from keyguard.fleet.worker import Task
from keyguard.keys import Secret

#: Classifies a key as "live", "revoked" or "unknown" (keyguard.liveness.LivenessChecker).
Verifier = Callable[[Secret], str]


@dataclass
class FleetOptions:
    """What to scan, where, and how."""

    sources: list[str]
    cache: Path = field(default_factory=lambda: default_cache())
    since: str | None = None
    shard: tuple[int, int] | None = None
    executor: str = "local"
    jobs: int = 0  # 0: one per core
    verify: Verifier | None = None
    api: ApiOptions = field(default_factory=ApiOptions)


@dataclass
class Progress:
    """Where a run is: repositories done of total, bytes read, places found, the slowest."""

    done: int = 0
    total: int = 0
    bytes: int = 0
    findings: int = 0
    failed: int = 0
    slowest: tuple[str, float] | None = None


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/keyguard/fleet`` (``~/.cache/keyguard/fleet``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keyguard" / "fleet"


def source_ids(opts: FleetOptions) -> list[str]:
    """The sources as a report records them: what ``--since`` checks a previous report against."""
    api = opts.api
    ids: set[str] = set()
    for source in opts.sources:
        kind, _, name = source.partition(":")
        if kind in ("github", "gitlab") and name:
            where = api.github_api_url if kind == "github" else api.gitlab_url
            default = ApiOptions.github_api_url if kind == "github" else ApiOptions.gitlab_url
            where = where.rstrip("/")
            ids.add(f"{kind}:{name.lower()}" + ("" if where == default else f" at {where}"))
        elif source.startswith("@"):
            ids.add(source)  # the list's lines may change from one run to the next
        else:
            ids.add(_identity(source))
    return sorted(ids)


def _identity(url: str) -> str:
    """A repository's normalized identity (for a URL or path that no longer parses: its text)."""
    try:
        return spec_for(url).key
    except UsageError:
        return redact_url(url)


def previous_state(opts: FleetOptions, sources: list[str]) -> tuple[FleetReport, bool]:
    """The ``--since`` report, and whether its places may be carried over. A report of other
    sources is refused; one read by another scanner means a full read (with a notice)."""
    if not opts.since:
        return FleetReport(), False
    before = load(opts.since)
    if before.sources and before.engine is not None and set(before.sources) != set(sources):
        theirs = printable(", ".join(before.sources))
        raise UsageError(
            f"{opts.since}: a report of other sources ({theirs}), not of {', '.join(sources)}; "
            "give the previous report of these sources, or leave out --since"
        )
    if before.engine != engine_id() or not before.sources:
        before.notices.append(
            f"{opts.since} was written by another version of the scanner: every repository is "
            "read in full this time"
        )
        return before, False
    return before, True


def select(opts: FleetOptions) -> tuple[list[RepoSpec], list[RepoResult]]:
    """This shard's repositories, and the refused list lines that fall in it (as errors)."""
    specs, refused = collect(opts.sources, opts.api)
    errors = [RepoResult(url=shown, status="error", error=why) for shown, why in refused]
    if opts.shard is not None:
        k, n = opts.shard
        specs = [s for s in specs if shard_of(s, n) == k]
        # A refused line has no normalized identity: its text stands in.
        errors = [e for e in errors if shard_of(RepoSpec(e.url, e.url), n) == k]
    return specs, errors


def run_fleet(
    opts: FleetOptions, progress: Callable[[Progress], None] | None = None
) -> FleetReport:
    """Scan every selected repository; a repository's failure is in its result, not raised."""
    started = time.perf_counter()
    check_executor(opts.executor)
    check_api(opts.api)
    sources = source_ids(opts)
    before, reuse = previous_state(opts, sources)
    previous = {r.url: r for r in before.repos} if reuse else {}
    specs, errors = select(opts)
    cache = str(opts.cache.expanduser().resolve())
    want_keys = opts.verify is not None
    tasks = [Task(s, cache, previous.get(s.url), want_keys) for s in specs]
    report = FleetReport(repos=list(errors), sources=sources, engine=engine_id())
    report.notices.extend(before.notices)
    state = Progress(total=len(tasks) + len(errors), done=len(errors), failed=len(errors))
    keys: dict[str, str] = {}
    jobs = opts.jobs or os.cpu_count() or 1
    if progress is not None:
        progress(state)
    for outcome in run_tasks(tasks, opts.executor, jobs):
        r = outcome.result
        report.repos.append(r)
        keys.update(outcome.keys)
        state.done += 1
        state.bytes += r.bytes
        state.findings += len(r.places)
        state.failed += r.status != "ok"
        if state.slowest is None or r.seconds > state.slowest[1]:
            state.slowest = (r.url, r.seconds)
        if progress is not None:
            progress(state)
    # Keys carried over from --since keep their verdict (their plaintext is not at hand).
    found = {p.fingerprint for r in report.repos for p in r.places}
    report.verdicts = {fp: v for fp, v in before.verdicts.items() if fp in found}
    if opts.verify is not None:
        for fp in sorted(keys):  # each distinct key once, whatever number of places
            report.verdicts[fp] = opts.verify(Secret(keys[fp]))
    report.gone = gone(before, report, opts.shard)
    report.seconds = time.perf_counter() - started
    return report


def gone(before: FleetReport, now: FleetReport, shard: tuple[int, int] | None) -> list[Gone]:
    """The previous report's repositories (of this shard) that this run did not list."""
    listed = {_identity(r.url) for r in now.repos}  # the same repository, spelled otherwise
    out = []
    for r in before.repos:
        identity = _identity(r.url)
        if identity in listed:
            continue
        if shard is not None and shard_of(RepoSpec(r.url, identity), shard[1]) != shard[0]:
            continue  # another shard's repository
        out.append(Gone(r.url, tuple(sorted({p.fingerprint for p in r.places}))))
    return out
