"""A workload file (a workflow, a Kubernetes manifest, a ``.env``) that sets both
``ANTHROPIC_API_KEY`` and ``ANTHROPIC_FEDERATION_RULE_ID``: the SDKs use the static key and
silently ignore federation, even when the key is an empty string. Stdlib only."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from keyguard.scanner.parallel import OPEN_FLAGS
from keyguard.scanner.sources import Target

RULE_ID = "anthropic-federation-shadowed"
_CANDIDATES = (".env", ".env.*", "*.env", ".envrc", "*.yml", "*.yaml", "Dockerfile*", "*.sh")
_MAX_BYTES = 1 << 20


def _setter(name: str) -> re.Pattern[str]:
    n = re.escape(name)
    return re.compile(
        rf"""^\s*(?:export\s+|ENV\s+|-\s*)?["']?{n}["']?\s*[=:\s]"""  # .env, shell, YAML, Docker
        rf"""|name:\s*["']?{n}["']?\s*$""",  # Kubernetes: - name: NAME
        re.MULTILINE,
    )


_API_KEY = _setter("ANTHROPIC_API_KEY")
_RULE = _setter("ANTHROPIC_FEDERATION_RULE_ID")


@dataclass(frozen=True)
class Shadowed:
    path: str
    line: int

    @property
    def message(self) -> str:
        return (
            f"{self.path}:{self.line}: sets ANTHROPIC_API_KEY beside ANTHROPIC_FEDERATION_RULE_ID "
            f"[{RULE_ID}]: the static key silently wins over federation in the SDKs (even "
            "empty); remove it from this workload"
        )


def _units(text: str) -> Iterator[tuple[int, str]]:
    """One workload per YAML document; a file without ``---`` is one workload."""
    start, lines = 0, text.split("\n")
    for number, line in enumerate(lines):
        if line.rstrip() == "---":
            yield start, "\n".join(lines[start:number])
            start = number + 1
    yield start, "\n".join(lines[start:])


def shadowed_lines(text: str) -> list[int]:
    """1-based lines setting ``ANTHROPIC_API_KEY`` in a workload that also names a rule."""
    out = []
    for offset, unit in _units(text):
        key, rule = _API_KEY.search(unit), _RULE.search(unit)
        if key and rule:
            out.append(offset + unit.count("\n", 0, key.start()) + 1)
    return out


#: Any of ``_CANDIDATES``, matched against a file's name (one pattern: this runs per file).
_CANDIDATE_RE = re.compile("|".join(fnmatch.translate(p) for p in _CANDIDATES))
#: Both names must appear in a file for it to shadow federation: checked on the bytes first.
_NAMES = (b"ANTHROPIC_FEDERATION_RULE_ID", b"ANTHROPIC_API_KEY")


def is_candidate(path: str) -> bool:
    return _CANDIDATE_RE.match(os.path.basename(path)) is not None


def workload_files(targets: Iterable[Target], into: list[Target]) -> Iterator[Target]:
    """``targets`` as they come, each workload file among them (by name) also kept in
    ``into``: a scan lists files once and checks its workloads afterwards."""
    for target in targets:
        if target.fs_path and target.size <= _MAX_BYTES and is_candidate(target.path):
            into.append(target)
        yield target


def shadowed_in(targets: Iterable[Target]) -> list[Shadowed]:
    """Every workload file among ``targets`` that shadows federation."""
    found: list[Shadowed] = []
    for target in targets:
        assert target.fs_path is not None
        try:
            fd = os.open(target.fs_path, OPEN_FLAGS)  # no blocking on a FIFO swapped in
        except OSError:
            continue
        try:
            data = os.read(fd, _MAX_BYTES + 1)
        except OSError:
            continue
        finally:
            os.close(fd)
        # ASCII names: in UTF-8 (even with bad bytes replaced) they are in the text only when
        # their bytes are in the file, so most files are never decoded.
        if all(name in data for name in _NAMES):
            text = data.decode("utf-8", "replace")
            found.extend(Shadowed(target.path, line) for line in shadowed_lines(text))
    return found
