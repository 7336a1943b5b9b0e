"""What ``keyguard scan`` does, without click: the click command (``cli/scan.py``) parses the
options and calls :func:`scan`; the plain ``keyguard scan [PATH ...]`` (no option: nothing to
parse) calls it directly, so the commonest scan starts without loading click."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from keyguard.cli.paths import check_writable
from keyguard.errors import ExitCode, UsageError
from keyguard.scanner.engine import Verifier, masked
from keyguard.scanner.hook import present, refusal
from keyguard.scanner.run import ScanOptions, check_hook, run_scan
from keyguard.scanner.settings import load_scan_settings
from keyguard.scanner.unread import shown

#: ``-f/--format`` when not given.
DEFAULT_FORMAT = "text"


def scan(
    paths: Sequence[str],
    *,
    staged: bool = False,
    history: str | None = None,
    use_stdin: bool = False,
    fmt: str = DEFAULT_FORMAT,
    output: str | None = None,
    baseline: str | None = None,
    update_baseline: bool = False,
    jobs: int | None = None,
    verify: bool = False,
    config_path: str | None = None,
    base_url: str | None = None,
) -> int:
    """Run one scan and report it; the exit code (0 clean, 1 found). Raises KeyguardError."""
    if output:
        check_writable(output, "--output")  # before the scan, not after it
    settings = load_scan_settings(config_path)
    if update_baseline and (target := baseline or settings.baseline):
        check_writable(str(target), "--baseline" if baseline else "[scan] baseline")
    opts = ScanOptions(
        paths=list(paths) or ["."],
        staged=staged,
        history=history,
        stdin=use_stdin,
        exclude=settings.exclude,
        config_root=settings.root,
        baseline=baseline,
        baseline_from_config=str(settings.baseline) if settings.baseline else None,
        update_baseline=update_baseline,
        verify=_verifier(config_path, base_url) if verify else None,
        jobs=jobs,
        workloads=True,
    )
    run = run_scan(opts)
    code = present(run, fmt, output, sys.stdout, sys.stderr)
    for item in run.shadowed:  # workload files where ANTHROPIC_API_KEY shadows federation
        # The name is a file's: escaped for the terminal, and a key in it redacted.
        sys.stderr.write(f"keyguard: {shown(masked(item.message))}\n")
        code = max(code, int(ExitCode.FOUND))
    if staged and (problem := check_hook(run)):
        raise UsageError(problem)
    if staged and code == ExitCode.FOUND:
        sys.stderr.write(refusal(settings).replace("commit refused", "staged keys found"))
    return code


def _verifier(config_path: str | None, base_url: str | None) -> Verifier:
    """The --verify seam: httpx loads only here; keys go only to the base URL the user chose."""
    from keyguard.config import find_config, load_config
    from keyguard.liveness import LivenessChecker

    return LivenessChecker(load_config(find_config(config_path), base_url=base_url).base_url)
