"""``keyguard-scan``: the pre-commit entry point. argparse and the scanner only, so it starts fast.

With no arguments it scans the staged content (the index), which is what a commit records.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from keyguard.errors import ExitCode, KeyguardError
from keyguard.scanner.report import FORMATS, render, summary, unread_lines
from keyguard.scanner.run import ScanOptions, ScanRun, check_hook, run_scan
from keyguard.scanner.unread import shown


def present(run: ScanRun, fmt: str, output: str | None, out: TextIO, err: TextIO) -> int:
    """Write the report and the summary; returns the exit code (0 clean, 1 findings)."""
    result = run.result
    report = render(result, fmt)
    if output:
        _write(Path(output), report)
    elif report:
        out.write(report)
    for note in result.notes:
        err.write(f"keyguard: note: {shown(note)}\n")
    for line in unread_lines(result):
        err.write(line + "\n")
    err.write(summary(result) + "\n")
    if run.baseline_written is not None:
        err.write(f"keyguard: wrote {run.baseline_written} fingerprint(s) to the baseline\n")
        return int(ExitCode.OK)
    return int(ExitCode.FOUND) if result.findings else int(ExitCode.OK)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_excludes(config_path: str | None) -> tuple[tuple[str, ...], Path | None]:
    """``[scan] exclude`` from keyguard.toml (``--config``, ``KEYGUARD_CONFIG`` or ./)."""
    from keyguard.config import find_config, load_config

    path = find_config(config_path)
    if path is None:
        return (), None
    config = load_config(path)
    return config.scan_exclude, config.root


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="keyguard-scan",
        description="Refuse a commit that holds an Anthropic key (scans the staged content).",
    )
    p.add_argument("paths", nargs="*", help="scan these paths instead of the staged content")
    p.add_argument("--history", nargs="?", const="", default=None, metavar="REV-RANGE")
    p.add_argument("-f", "--format", choices=FORMATS, default="text")
    p.add_argument("--output", metavar="FILE")
    p.add_argument("--baseline", metavar="FILE")
    p.add_argument("--config", metavar="FILE")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``keyguard-scan``."""
    args = _parser().parse_args(argv)
    try:
        exclude, root = load_excludes(args.config)
        opts = ScanOptions(
            paths=list(args.paths),
            staged=not args.paths and args.history is None,
            history=args.history,
            exclude=exclude,
            config_root=root,
            baseline=args.baseline,
        )
        run = run_scan(opts)
        code = present(run, args.format, args.output, sys.stdout, sys.stderr)
        if opts.staged and (problem := check_hook(run)):
            sys.stderr.write(f"keyguard: error: {problem}\n")
            return int(ExitCode.USAGE)
        if code == ExitCode.FOUND:
            sys.stderr.write(
                "keyguard: commit refused: remove the key(s) above, then `git add` again\n"
            )
        return code
    except KeyguardError as exc:
        sys.stderr.write(f"keyguard: error: {exc}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("keyguard: interrupted\n")
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
