"""Suppressions that do not churn: path globs and a baseline of fingerprints (no line numbers)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from keyguard.atomic import write_atomic
from keyguard.errors import UsageError

if TYPE_CHECKING:
    from keyguard.scanner.engine import Finding

BASELINE_VERSION = 1


def _glob_re(pattern: str) -> re.Pattern[str]:
    """gitignore-flavoured glob: ``*`` within a segment, ``**`` across, no ``/`` = any depth."""
    raw = pattern.strip()
    anchored = "/" in raw.rstrip("/")
    pat = raw.strip("/")
    out = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pat.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c)))
        i += 1
    body = "".join(out)
    anchor = "" if anchored else "(?:.*/)?"
    # A folder pattern also excludes everything below it.
    return re.compile(f"^{anchor}{body}(?:/.*)?$")


class Excluder:
    """Matches report paths against ``[scan] exclude`` globs from keyguard.toml."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [p for p in patterns if p.strip()]
        self._res = [_glob_re(p) for p in self.patterns]

    def __call__(self, path: str) -> bool:
        path = path.replace(os.sep, "/").removeprefix("./")
        return any(r.match(path) for r in self._res)


def load_baseline(path: str | Path) -> set[str]:
    """The fingerprints a baseline file accepts; a missing file accepts nothing."""
    import json

    p = Path(path)
    if not p.exists():
        return set()
    try:
        data = json.loads(p.read_text("utf-8"))
        entries = data.get("fingerprints") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ValueError('no "fingerprints" list')
        if not all(isinstance(e, dict) and isinstance(e.get("fingerprint"), str) for e in entries):
            raise ValueError('an entry without a "fingerprint" string')
        return {e["fingerprint"] for e in entries}
    except (OSError, ValueError, RecursionError) as exc:
        from keyguard.scanner.unread import shown

        why = "nested too deeply" if isinstance(exc, RecursionError) else shown(str(exc))[:200]
        raise UsageError(
            f"baseline {shown(str(p))} is not a keyguard baseline ({why}); regenerate it with "
            "`keyguard scan --update-baseline --baseline FILE`"
        ) from None


def write_baseline(
    path: str | Path, findings: Iterable[Finding], *, keep: set[str] | None = None
) -> int:
    """Write every finding's fingerprint (no line numbers, no keys), atomically, plus the
    entries of the existing file whose fingerprints are in ``keep``; returns the count."""
    import json

    entries: dict[str, dict[str, str]] = {}
    if keep:
        data = json.loads(Path(path).read_text("utf-8"))
        for e in data["fingerprints"]:
            if e.get("fingerprint") in keep:
                entries[str(e["fingerprint"])] = {k: str(v) for k, v in e.items()}
    for f in findings:
        entries.setdefault(
            f.fingerprint, {"fingerprint": f.fingerprint, "rule": f.rule.id, "redacted": f.redacted}
        )
    data = {
        "version": BASELINE_VERSION,
        "fingerprints": sorted(entries.values(), key=lambda e: e["fingerprint"]),
    }
    p = Path(path)
    try:
        write_atomic(p, json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise _unwritable(p, exc) from None
    return len(entries)


def _unwritable(path: Path, exc: OSError) -> UsageError:
    from keyguard.scanner.unread import shown

    return UsageError(
        f"cannot write the baseline {shown(str(path))} ({exc.strerror or exc}); "
        "choose a writable --baseline FILE"
    )
