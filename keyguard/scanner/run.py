"""One scan from options to result: the composition both ``keyguard scan`` and the hook use."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from keyguard.errors import UsageError
from keyguard.scanner.engine import ScanResult, Verifier, finish, scan_stdin, scan_targets
from keyguard.scanner.sources import (
    Notes,
    Target,
    git_toplevel,
    iter_paths,
    list_history,
    list_staged,
)
from keyguard.scanner.suppress import Excluder, load_baseline, write_baseline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from keyguard.scanner.shadow import Shadowed


@dataclass
class ScanOptions:
    """What to scan and how to filter it."""

    paths: list[str] = field(default_factory=lambda: ["."])
    staged: bool = False
    history: str | None = None  # None: no history; "": all refs; else a revision range
    stdin: bool = False
    exclude: tuple[str, ...] = ()
    config_root: Path | None = None
    baseline: str | None = None  # --baseline FILE
    baseline_from_config: str | None = None  # [scan] baseline, used when --baseline is not given
    update_baseline: bool = False
    verify: Verifier | None = None
    jobs: int | None = None
    #: Also report workload files where ANTHROPIC_API_KEY shadows federation (paths only).
    workloads: bool = False


@dataclass
class ScanRun:
    """The result plus what the caller must tell the user."""

    result: ScanResult
    baseline_written: int | None = None
    staged_paths: int | None = None
    warnings: list[str] = field(default_factory=list)
    shadowed: list[Shadowed] = field(default_factory=list)


def _modes(opts: ScanOptions) -> None:
    chosen = [opts.staged, opts.history is not None, opts.stdin]
    if sum(chosen) > 1:
        raise UsageError("choose one of --staged, --history and - / --stdin")
    if (opts.staged or opts.history is not None) and opts.paths not in ([], ["."]):
        raise UsageError("--staged and --history scan the repository; give no PATH with them")
    if opts.update_baseline and not (opts.baseline or opts.baseline_from_config):
        raise UsageError(
            "--update-baseline needs --baseline FILE (where to write it), or "
            '[scan] baseline = "FILE" in keyguard.toml'
        )


class _Excluding:
    """Targets without those ``[scan] exclude`` matches, counted as they pass. Globs see each
    path relative to keyguard.toml's folder."""

    def __init__(self, targets: Iterable[Target], opts: ScanOptions, base: Path | None) -> None:
        self.targets = targets
        self.excluder = Excluder(opts.exclude)
        self.root = (opts.config_root or Path.cwd()).resolve()
        self.base = base or Path.cwd()
        self.excluded = 0

    def _relative(self, t: Target) -> str:
        where = Path(t.fs_path) if t.fs_path else self.base / t.path
        try:
            return where.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return t.path

    def __iter__(self) -> Iterator[Target]:
        for t in self.targets:
            if self.excluder(self._relative(t)):
                self.excluded += 1
            else:
                yield t


def run_scan(opts: ScanOptions) -> ScanRun:
    """List targets, read them, apply suppressions; raises UsageError on bad input."""
    _modes(opts)
    started = time.perf_counter()
    run = ScanRun(ScanResult())
    baseline_file = opts.baseline or opts.baseline_from_config
    baseline = None
    if baseline_file and not opts.update_baseline:
        if not os.path.exists(baseline_file):
            source = "--baseline" if opts.baseline else "[scan] baseline in keyguard.toml"
            run.warnings.append(
                f"baseline {baseline_file} ({source}) does not exist, so it accepts nothing; "
                "create it with `keyguard scan --update-baseline`"
            )
        baseline = load_baseline(baseline_file)
    if opts.stdin or opts.paths == ["-"]:
        result = scan_stdin(sys.stdin.buffer)
    else:
        base: Path | None = None
        notes: Notes = []
        targets: Iterable[Target]
        if opts.staged:
            listing, run.staged_paths = list_staged()
            targets, notes, base = listing.targets, listing.notes, git_toplevel(".")
        elif opts.history is not None:
            listing = list_history(opts.history or None)
            targets, notes, base = listing.targets, listing.notes, git_toplevel(".")
        else:
            if "-" in opts.paths:
                raise UsageError("'-' (stdin) cannot be combined with other paths")
            targets = iter_paths(opts.paths or ["."], notes)
        excluding = _Excluding(targets, opts, base) if opts.exclude else None
        kept: Iterable[Target] = excluding or targets
        workloads: list[Target] = []
        if opts.workloads and not (opts.staged or opts.history is not None):
            from keyguard.scanner.shadow import workload_files

            kept = workload_files(kept, workloads)  # noted while listed: one walk, not two
        result = scan_targets(kept, jobs=opts.jobs or usable_cores())
        if workloads:
            from keyguard.scanner.shadow import shadowed_in

            run.shadowed = shadowed_in(workloads)
        result.note(notes)
        result.excluded = excluding.excluded if excluding is not None else 0
    run.result = finish(result, baseline=baseline, verify=opts.verify, started=started)
    if opts.update_baseline:
        assert baseline_file is not None
        # A staged scan sees only what changed: keep what the baseline accepted already.
        keep = load_baseline(baseline_file) if opts.staged else set()
        run.baseline_written = write_baseline(baseline_file, run.result.findings, keep=keep)
    return run


def usable_cores() -> int:
    """Cores this process may run on: a pool larger than that only adds start-up and
    switching (``os.cpu_count()`` counts the machine's, also in a process pinned to fewer)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


def check_hook(run: ScanRun) -> str | None:
    """Why a hook run must fail though it found nothing: staged files but nothing scanned."""
    r = run.result
    if run.staged_paths and r.files == 0 and r.excluded == 0:
        return (
            f"{run.staged_paths} staged file(s) but nothing was scanned; "
            "check `git diff --cached --stat` and run `keyguard scan --staged` by hand"
        )
    return None
