"""A workload file (a workflow, a Kubernetes manifest, a ``.env``) that sets both
``ANTHROPIC_API_KEY`` and ``ANTHROPIC_FEDERATION_RULE_ID``: the SDKs use the static key and
silently ignore federation, even when the key is an empty string. Stdlib only."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from keyguard.scanner.sources import iter_paths
from keyguard.scanner.suppress import Excluder

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


def is_candidate(path: str) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(name, pattern) for pattern in _CANDIDATES)


def find_shadowed(paths: list[str], exclude: Iterable[str], root: Path | None) -> list[Shadowed]:
    """Every workload file under ``paths`` (minus ``[scan] exclude``) that shadows federation."""
    excluder = Excluder(exclude)
    base = (root or Path.cwd()).resolve()
    found: list[Shadowed] = []
    for target in iter_paths(paths, []):
        if not target.fs_path or not is_candidate(target.path) or target.size > _MAX_BYTES:
            continue
        try:
            relative = Path(target.fs_path).resolve().relative_to(base).as_posix()
        except ValueError:
            relative = target.path
        if excluder(relative):
            continue
        try:
            text = Path(target.fs_path).read_text("utf-8", "replace")
        except OSError:
            continue
        found.extend(Shadowed(target.path, line) for line in shadowed_lines(text))
    return found
