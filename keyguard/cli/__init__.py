"""The ``keyguard`` command: the only place that prints, prompts and exits.

``main`` is the one error boundary. The click group (global options, lazily loaded
subcommands) lives in ``keyguard.cli.app``; the plain ``keyguard scan [PATH ...]`` (no option,
so nothing to parse) runs without it, as click alone costs about as much start-up as the
interpreter.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from keyguard.errors import ExitCode, KeyguardError
from keyguard.keys import KEYISH_RE, scrub_text
from keyguard.words import shown

#: ``typing`` is for the type checker only (start-up time).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def __getattr__(name: str) -> Any:
    """``cli`` (the click group), ``LazyGroup`` and ``COMMANDS``, loaded when first asked for."""
    if name in ("cli", "LazyGroup", "COMMANDS"):
        from keyguard.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _RedactingStream:
    """``sys.stderr`` that never repeats a key-shaped string the command line held."""

    def __init__(self, stream: Any, secrets: list[str]) -> None:
        self._stream = stream
        self._secrets = secrets

    def write(self, text: str) -> int:
        return int(self._stream.write(scrub_text(text, *self._secrets)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the single error boundary that turns errors into messages and exit codes."""
    args = list(argv) if argv is not None else sys.argv[1:]
    keyish = [m.group(0) for a in args for m in KEYISH_RE.finditer(a)]
    stderr = sys.stderr
    if keyish and stderr is not None:
        sys.stderr = _RedactingStream(stderr, keyish)
    try:
        return _run(args)
    finally:
        sys.stderr = stderr


def error_text(exc: BaseException) -> str:
    """An error's message for a terminal. It may repeat outside input (an argument, a path, an
    API's words): never a key, and no control character that a terminal would obey."""
    return "\n".join(shown(line) for line in scrub_text(str(exc)).split("\n"))


def _run(args: list[str]) -> int:
    try:
        if args[:1] == ["scan"] and not any(a.startswith("-") for a in args[1:]):
            from keyguard.cli.scanning import scan

            return scan(args[1:])  # only PATHs: what click would pass on, parsed or not
        from keyguard.cli.app import run

        return run(args)
    except KeyguardError as exc:
        sys.stderr.write(f"keyguard: error: {error_text(exc)}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("keyguard: interrupted\n")
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
