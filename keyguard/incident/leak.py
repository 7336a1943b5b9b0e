"""What leaked: the keys piped in, or a scan report's findings read again where the scan found
them (never trusted as they stand: the text there must still hold the report's fingerprint)."""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from keyguard.errors import NotFoundError, UsageError
from keyguard.keys import Secret, find_admin_keys, find_api_keys
from keyguard.models import Say
from keyguard.scanner.engine import scan_stdin

_COMMIT_RE = re.compile(r"[0-9a-fA-F]{4,64}")
#: A file read again for a finding: past this, the scan report is not trusted to point at it.
REREAD_LIMIT = 256 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    """What the operator gave: a key (from stdin or read again for a scan finding), or an id."""

    key: Secret | None = None
    key_id: str | None = None
    fingerprint: str | None = None
    hint: str | None = None
    commits: tuple[str, ...] = ()  # history findings: commits the scanner found the key in
    note: str | None = None  # how a scan finding was matched

    def __post_init__(self) -> None:
        if self.key is not None:
            object.__setattr__(self, "fingerprint", self.key.fingerprint)
            object.__setattr__(self, "hint", self.key.hint)


def keys_in_input(given: Secret, say: Say) -> list[Secret]:
    """Every API key in what was piped or pasted, found by its shape (text around it is fine)."""
    keys = find_api_keys(given.reveal())
    for admin_key in find_admin_keys(given.reveal()):
        say(
            f"keyguard: warning: the input also holds the admin key {admin_key.hint}: keyguard "
            "does not revoke admin keys; delete it in the Console (Settings > Admin keys) now"
        )
    if not keys:
        raise UsageError(
            "no Anthropic API key (sk-ant-api03-...) found in the input; pipe the leaked key "
            "itself (a line like `ANTHROPIC_API_KEY=...` or a JSON line is fine)"
        )
    return keys


@dataclass(frozen=True)
class ScanFinding:
    """One finding of a scan report: where it was and its fingerprint; never the key."""

    fingerprint: str
    hint: str | None
    path: str | None
    line: int | None
    commit: str | None

    @property
    def where(self) -> str:
        place = f"{self.path or '?'}:{self.line or '?'}"
        return f"{place} in commit {self.commit[:12]}" if self.commit else place


def load_scan(path: Path) -> list[ScanFinding]:
    """The findings of a ``keyguard scan --format json`` report (one per fingerprint+place)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the scan report {path}: {exc.strerror}") from None
    except (ValueError, RecursionError):
        raise UsageError(
            f"{path} is not JSON; write it with `keyguard scan --format json --output FILE`"
        ) from None
    findings = data.get("findings") if isinstance(data, dict) else None
    if not isinstance(findings, list):
        raise UsageError(
            f"{path} has no findings list: is it a `keyguard scan --format json` report?"
        )
    unique: dict[tuple[str, str | None, str | None], ScanFinding] = {}
    for item in findings:
        finding = _finding(item)
        if finding is not None:
            unique.setdefault((finding.fingerprint, finding.path, finding.commit), finding)
    if not unique:
        raise NotFoundError(f"the scan report {path} holds no findings: nothing to revoke")
    return list(unique.values())


def _finding(item: Any) -> ScanFinding | None:
    """One report entry as a finding; None when it has no fingerprint (or is not an object)."""
    if not isinstance(item, dict):
        return None
    fingerprint = item.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        return None

    def text(name: str) -> str | None:
        value = item.get(name)
        return value if isinstance(value, str) and value else None

    line = item.get("line")
    return ScanFinding(
        fingerprint,
        text("redacted"),
        text("path"),
        line if isinstance(line, int) and not isinstance(line, bool) else None,
        text("commit"),
    )


def reread(finding: ScanFinding, repo: Path) -> Secret | str:
    """The finding's full key, read again from where the scan found it, or why it cannot be.

    A plain file is read at its path (relative paths from ``repo``, the folder the scan ran
    in), a history finding from its commit's blob (``git show COMMIT:PATH`` in ``repo``), an
    archive member through the scanner's own archive reader. The key counts only when its
    fingerprint is the report's: text that changed since the scan is reported, never used.
    """
    label = finding.hint or finding.fingerprint[:12]
    if finding.path is None:
        return f"{label}: the report does not say where the scan found it; not acted on"
    file, _, _member = finding.path.partition("!")
    stream: IO[bytes]
    if finding.commit is not None:
        data = _git_blob(finding.commit, file, repo)
        if isinstance(data, str):
            return f"{label} at {finding.where}: {data}; not acted on"
        stream = io.BytesIO(data)
    else:
        where = Path(file) if Path(file).is_absolute() else repo / file
        try:
            if where.stat().st_size > REREAD_LIMIT:
                return f"{label} at {finding.where}: {where} is too large to read again"
            stream = where.open("rb")
        except OSError as exc:
            return (
                f"{label} at {finding.where}: cannot read {where} again ({exc.strerror}); "
                "not acted on (run revoke where the scan ran, or pass --repo)"
            )
    with stream:
        found = scan_stdin(stream, label=file).findings
    for candidate in found:
        if candidate.fingerprint == finding.fingerprint:
            return candidate.secret
    return (
        f"{label} at {finding.where}: the text there changed since the scan (no key with the "
        "report's fingerprint is there now); not acted on"
    )


def _git_blob(commit: str, file: str, repo: Path) -> bytes | str:
    if not _COMMIT_RE.fullmatch(commit):
        return f"{commit[:40]!r} is not a commit id"
    try:
        proc = subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{file}"],
            capture_output=True,
            cwd=repo,
            check=False,
        )
    except OSError:
        return f"git cannot run in {repo}"
    if proc.returncode != 0:
        return f"git cannot read {file} at commit {commit[:12]} in {repo} (pass --repo)"
    return proc.stdout


def first_commit_time(commits: Iterable[str], repo: Path | None = None) -> datetime | None:
    """The earliest committer date among ``commits`` (``git show -s --format=%cI``)."""
    times = []
    for commit in dict.fromkeys(commits):
        try:
            proc = subprocess.run(
                ["git", "show", "-s", "--format=%cI", commit, "--"],
                capture_output=True,
                text=True,
                cwd=repo,
                check=False,
            )
        except OSError:  # no git, or no such folder: the caller falls back to key creation
            return None
        if proc.returncode == 0 and proc.stdout.strip():
            try:
                times.append(datetime.fromisoformat(proc.stdout.strip().splitlines()[0]))
            except ValueError:
                continue
    return min(times) if times else None
