"""One fleet scan from options to report: list, shard, scan each repository, verify keys."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from keyguard.fleet.executor import check_executor, run_tasks
from keyguard.fleet.model import FleetReport, RepoResult, load
from keyguard.fleet.sources import ApiOptions, RepoSpec, collect, shard_of
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
    before = load(opts.since) if opts.since else FleetReport()
    previous = {r.url: r for r in before.repos}
    specs, errors = select(opts)
    cache = str(opts.cache.expanduser().resolve())
    want_keys = opts.verify is not None
    tasks = [Task(s, cache, previous.get(s.url), want_keys) for s in specs]
    report = FleetReport(repos=list(errors))
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
    report.seconds = time.perf_counter() - started
    return report
