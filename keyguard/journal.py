"""The state folder's append-only logs, no keys in either: each environment's rotation journal
(one JSON line per step boundary, fsync'd) and the incident log.

The incident log lives here, below both its writer (``keyguard revoke``) and its reader
(rollback refuses a key it records), because rotation must not import the incident layer.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyguard.errors import ConfigError, ConflictError, UsageError
from keyguard.keys import API_KEY_RE
from keyguard.models import Say

#: Set in tests only: ``KEYGUARD_TEST_CRASH_AT=create:after`` kills the process right after
#: that entry is durable, the way a power cut or an OOM kill would.
CRASH_ENV = "KEYGUARD_TEST_CRASH_AT"

#: The incident log's file name in the state folder (``append_incident``, ``read_incidents``).
INCIDENT_LOG = "incidents.jsonl"


@dataclass(frozen=True)
class Entry:
    """One journal line."""

    ts: datetime
    rotation: str
    step: str
    phase: str
    data: dict[str, Any]

    @property
    def point(self) -> str:
        """``step:phase`` plus the store index when the entry is about one store."""
        store = self.data.get("store_index")
        return f"{self.step}:{self.phase}" if store is None else f"{self.step}:{store}:{self.phase}"


class RotationJournal:
    """Append-only JSON lines at ``<state_dir>/<env>.journal.jsonl`` (0600)."""

    def __init__(self, state_dir: Path, environment: str) -> None:
        self.environment = environment
        self.path = Path(state_dir) / f"{environment}.journal.jsonl"

    def append(self, rotation: str, step: str, phase: str, at: datetime, **data: Any) -> Entry:
        """Write one entry durably (fsync of file and folder) before returning."""
        entry = Entry(ts=at, rotation=rotation, step=step, phase=phase, data=data)
        line = json.dumps(
            {
                "ts": at.isoformat(),
                "env": self.environment,
                "rotation": rotation,
                "step": step,
                "phase": phase,
                **data,
            },
            sort_keys=True,
        )
        # A key must never reach the journal, whatever a caller passes in data.
        if API_KEY_RE.search(line):
            raise ValueError("refusing to write a key into the rotation journal")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _drop_torn_tail(fd)
            os.write(fd, (line + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)
        if os.environ.get(CRASH_ENV) == entry.point:
            os.kill(os.getpid(), signal.SIGKILL)
        return entry

    def entries(self) -> list[Entry]:
        """Every entry in order; a torn last line (crash mid-write) is ignored."""
        return list(self._read())

    def _read(self) -> Iterator[Entry]:
        try:
            raw_bytes = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(
                f"cannot read the rotation journal {self.path}: {exc.strerror}; "
                "check the [state] dir setting and its permissions"
            ) from None
        lines = raw_bytes.split(b"\n")
        if lines and not lines[-1].strip():
            lines.pop()
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                yield _entry(json.loads(raw.decode("utf-8")))
            except (ValueError, KeyError, TypeError, RecursionError):
                if number == len(lines):
                    return  # torn final write: the step it announced did not complete
                raise ConfigError(
                    f"{self.path}:{number}: the rotation journal line is damaged; "
                    "move the file aside to start over (the stores keep every key)"
                ) from None


#: Entry fields the replay reads, and the JSON types they must have (None: may be null).
_STRINGS = ("store", "key_id", "hint", "reason")
_KEY_REFS = ("key", "replaced")


def _entry(obj: Any) -> Entry:
    """One parsed line as an Entry; ValueError/TypeError when any field has the wrong shape."""
    if not isinstance(obj, dict):
        raise TypeError("not a JSON object")
    ts = datetime.fromisoformat(obj.pop("ts"))
    if ts.tzinfo is None:
        raise ValueError("a journal time without a time zone")
    obj.pop("env", None)
    rotation, step, phase = obj.pop("rotation"), obj.pop("step"), obj.pop("phase")
    if not all(isinstance(x, str) for x in (rotation, step, phase)):
        raise TypeError("rotation, step and phase must be strings")
    index = obj.get("store_index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise TypeError("store_index must be a whole number of 0 or more")
    for name in _STRINGS:
        if obj.get(name) is not None and not isinstance(obj[name], str):
            raise TypeError(f"{name} must be a string")
    refs = [obj[name] for name in _KEY_REFS if obj.get(name) is not None]
    olds = obj.get("olds", [])
    if not isinstance(olds, list):
        raise TypeError("olds must be a list")
    for ref in [*refs, *olds]:
        _check_key_ref(ref)
    if (step, phase) == ("create", "before") and index is None:
        _check_key_ref(obj.get("key"))  # the rotation's first entry names its new key
    return Entry(ts=ts, rotation=rotation, step=step, phase=phase, data=obj)


def _check_key_ref(ref: Any) -> None:
    if not isinstance(ref, dict) or not isinstance(ref.get("fingerprint"), str):
        raise TypeError("a key reference needs a fingerprint")
    for name in ("hint", "id", "name", "workspace_id"):
        if ref.get(name) is not None and not isinstance(ref[name], str):
            raise TypeError(f"a key reference's {name} must be a string")


def _drop_torn_tail(fd: int) -> None:
    """Cut a last line a crash left unfinished: that entry never completed."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    chunk = os.pread(fd, min(size, 1 << 16), max(0, size - (1 << 16)))
    cut = chunk.rfind(b"\n")
    os.ftruncate(fd, size - len(chunk) + cut + 1 if cut >= 0 else 0)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- the incident log ------------------------------------------------------------------------


def append_incident(state_dir: Path, record: dict[str, Any]) -> Path:
    """Append one incident record to ``<state_dir>/incidents.jsonl`` (0600, fsync'd)."""
    line = json.dumps({"logged_at": datetime.now(UTC).isoformat(), **record})
    if API_KEY_RE.search(line):  # never: but a record with a key in it must not be written
        raise UsageError("refusing to write an incident record that holds a key")
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / INCIDENT_LOG
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(fd).st_size
        # A line a crash left unfinished stays (it is evidence) but must not swallow this one.
        start = b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""
        os.write(fd, start + (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_incidents(path: Path, say: Say) -> list[dict[str, Any]]:
    """The incident log's records; a missing file holds none, a damaged line is said and skipped.

    Unreadable is ``ConflictError``: whoever asks cannot tell whether a key leaked.
    """
    try:
        text = path.read_bytes().decode("utf-8", "replace")  # bad bytes: no traceback
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConflictError(
            f"cannot read the incident log {path} ({exc.strerror}), so keyguard cannot tell "
            "whether the previous key leaked; fix its permissions and run again"
        ) from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            record = None
        if isinstance(record, dict):
            records.append(record)  # kept: a damaged id may sit beside a good fingerprint
            if not _names_a_key(record.get("key")):
                say(
                    f"warning: {path}:{number}: damaged incident log record (its 'key' needs an "
                    "'id' or a 'fingerprint', each a string); a leak it recorded may be unknown "
                    "to keyguard: repair or remove the line"
                )
        else:
            say(
                f"warning: {path}:{number}: damaged incident log line skipped (not a JSON "
                "object); a leak it recorded is unknown to keyguard: repair or remove the line"
            )
    return records


def _names_a_key(key: Any) -> bool:
    """An incident record's key as ``incident_record`` writes it: id and fingerprint strings or
    null, at least one of them a string."""
    if not isinstance(key, dict):
        return False
    parts = [key.get("id"), key.get("fingerprint")]
    return all(part is None or isinstance(part, str) for part in parts) and any(parts)
