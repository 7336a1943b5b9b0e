"""``keyguard-scan``: the pre-commit entry point. argparse and the scanner only, so it starts fast.

With no arguments it scans the staged content (the index), which is what a commit records.
Everything it needs for a clean staged scan is imported here; archives, JSON, TOML and the
process pool load only when a scan meets them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from keyguard.errors import ExitCode, KeyguardError, UsageError
from keyguard.scanner.settings import ScanSettings, load_scan_settings

#: ``typing`` costs the hook a few milliseconds: its names are for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn, TextIO

    from keyguard.scanner.run import ScanRun

#: Where the hook's advice suggests keeping a baseline when keyguard.toml names none.
DEFAULT_BASELINE = ".keyguard-baseline.json"


def present(run: ScanRun, fmt: str, output: str | None, out: TextIO, err: TextIO) -> int:
    """Write the report and the summary; returns the exit code (0 clean, 1 findings)."""
    from keyguard.scanner.report import render, summary, unread_lines
    from keyguard.scanner.unread import shown

    result = run.result
    report = render(result, fmt)
    if output:
        try:
            _write(Path(output), report)
        except OSError as exc:
            raise UsageError(
                f"cannot write the report to {shown(output)}: {exc.strerror}; "
                "choose a writable --output"
            ) from None
    elif report:
        out.write(report)
    for warning in run.warnings:
        err.write(f"keyguard: warning: {shown(warning)}\n")
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
    from keyguard.atomic import write_atomic

    write_atomic(path, text)


def refusal(settings: ScanSettings) -> str:
    """What the hook says when it refuses a commit: the commands that work from here."""
    from keyguard.scanner.unread import shown

    if settings.baseline is not None:
        where = shown(_rel(settings.baseline))
        accept = f"`keyguard scan --staged --update-baseline` (adds them to {where})"
    else:
        accept = (
            f'`[scan] baseline = "{DEFAULT_BASELINE}"` in keyguard.toml, then '
            "`keyguard scan --staged --update-baseline`"
        )
    return (
        "keyguard: commit refused: remove the key(s) above, then `git add` again; "
        f"to accept them on purpose (test keys): {accept}\n"
    )


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _parser() -> object:
    import argparse

    from keyguard.scanner.report import FORMATS

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            """argparse repeats what it was given: a key on the command line is redacted."""
            from keyguard.keys import scrub_text
            from keyguard.scanner.unread import shown

            self.print_usage(sys.stderr)
            self.exit(2, f"{self.prog}: error: {shown(scrub_text(message))}\n")

    p = Parser(
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


def _args(
    argv: Sequence[str] | None,
) -> tuple[list[str], str | None, str, str | None, str | None, str | None]:
    """(paths, history, format, output, baseline, config): argparse only when there are
    arguments (a hook run has none, and argparse costs a tenth of the start-up)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        return [], None, "text", None, None, None
    ns = _parser().parse_args(args)  # type: ignore[attr-defined]
    return ns.paths, ns.history, ns.format, ns.output, ns.baseline, ns.config


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``keyguard-scan``."""
    paths, history, fmt, output, baseline, config = _args(argv)
    try:
        settings = load_scan_settings(config)
        plain = not (paths or history is not None or output or baseline) and fmt == "text"
        if plain and (done := _quick(settings)) is not None:
            return done
        return _scan(settings, paths, history, fmt, output, baseline)
    except KeyguardError as exc:
        sys.stderr.write(f"keyguard: error: {exc}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("keyguard: interrupted\n")
        return int(ExitCode.INTERRUPTED)


def _quick(settings: ScanSettings) -> int | None:
    """A staged scan proven clean by the quick pass (see quick.py); None: scan in full."""
    if settings.exclude or settings.baseline is not None:
        return None  # what is excluded or baselined is counted by the full scan
    from keyguard.scanner.quick import staged_clean

    done = staged_clean()
    if done is None:
        return None
    files, nbytes, seconds = done
    sys.stderr.write(
        f"keyguard: scanned {files} file{'s' if files != 1 else ''}, {nbytes} bytes in "
        f"{seconds:.2f}s: 0 findings\n"
    )
    return int(ExitCode.OK)


def _scan(
    settings: ScanSettings,
    paths: list[str],
    history: str | None,
    fmt: str,
    output: str | None,
    baseline: str | None,
) -> int:
    from keyguard.scanner.run import ScanOptions, check_hook, run_scan

    opts = ScanOptions(
        paths=paths,
        staged=not paths and history is None,
        history=history,
        exclude=settings.exclude,
        config_root=settings.root,
        baseline=baseline,
        baseline_from_config=str(settings.baseline) if settings.baseline else None,
    )
    run = run_scan(opts)
    code = present(run, fmt, output, sys.stdout, sys.stderr)
    if opts.staged and (problem := check_hook(run)):
        sys.stderr.write(f"keyguard: error: {problem}\n")
        return int(ExitCode.USAGE)
    if code == ExitCode.FOUND:
        sys.stderr.write(refusal(settings))
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
