"""What a rotation has done so far, replayed from the journal (fingerprints and hints only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keyguard.journal import Entry


@dataclass(frozen=True)
class KeyRef:
    """One key as a rotation records it (fingerprint, hint, Admin API id): never its value."""

    fingerprint: str
    hint: str
    id: str | None = None  # None: adopted but not identified in the Admin API
    name: str | None = None
    workspace_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "hint": self.hint,
            "id": self.id,
            "name": self.name,
            "workspace_id": self.workspace_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyRef:
        return cls(
            fingerprint=str(data["fingerprint"]),
            hint=str(data.get("hint") or "?"),
            id=data.get("id"),
            name=data.get("name"),
            workspace_id=data.get("workspace_id"),
        )

    def label(self) -> str:
        """``sk-ant-api03-R2D...igAA (apikey_01...)`` for messages."""
        return f"{self.hint} ({self.id})" if self.id else f"{self.hint} (id unknown)"


@dataclass
class RotationState:
    """One rotation of one environment, as far as the journal shows it."""

    token: str
    new: KeyRef
    old_keys: list[KeyRef]
    started_at: datetime
    stored: set[int] = field(default_factory=set)
    created: bool = False
    promoted: set[int] = field(default_factory=set)
    promote_started: bool = False
    updated_at: datetime | None = None
    verified_at: datetime | None = None
    revoked: dict[str, datetime] = field(default_factory=dict)  # key id -> when
    revoke_done: bool = False
    archived: set[str] = field(default_factory=set)
    rollback_started: bool = False
    closed: str | None = None  # "rolled back", "abandoned", "failed: ..."
    closed_at: datetime | None = None

    @property
    def phase(self) -> str:
        """creating, delivered, updating, updated, verified, revoked, done or closed."""
        if self.closed:
            return "closed"
        if not self.created:
            return "creating"
        if self.updated_at is None:
            return "updating" if self.promote_started else "delivered"
        if self.verified_at is None:
            return "updated"
        if not self.revoke_done:
            return "verified"
        return "done" if self.archive_pending() == [] else "revoked"

    @property
    def in_flight(self) -> bool:
        """True until the old key is revoked (or the rotation was closed)."""
        return self.phase in ("creating", "delivered", "updating", "updated", "verified")

    def revocable(self) -> list[KeyRef]:
        """Old keys keyguard identified and may revoke once the new key is verified."""
        return [key for key in self.old_keys if key.id and key.fingerprint != self.new.fingerprint]

    def archive_pending(self) -> list[KeyRef]:
        if self.closed:
            return []
        return [
            key
            for key in self.revocable()
            if key.id in self.revoked and key.id not in self.archived
        ]


def replay(entries: list[Entry]) -> list[RotationState]:
    """Every rotation in journal order, each folded from its entries."""
    states: dict[str, RotationState] = {}
    for entry in entries:
        state = states.get(entry.rotation)
        if entry.step == "create" and entry.phase == "before" and state is None:
            states[entry.rotation] = RotationState(
                token=entry.rotation,
                new=KeyRef.from_json(entry.data["key"]),
                old_keys=[KeyRef.from_json(old) for old in entry.data.get("olds", [])],
                started_at=entry.ts,
            )
        elif state is not None:
            _apply(state, entry)
    return list(states.values())


def _apply(state: RotationState, entry: Entry) -> None:
    index = entry.data.get("store_index")
    point = (entry.step, entry.phase)
    if point == ("create", "after") and index is not None:
        state.stored.add(int(index))
    elif point == ("create", "after"):
        state.created = True
    elif entry.step == "promote":
        state.promote_started = True
        if entry.phase == "after" and index is not None:
            state.promoted.add(int(index))
        elif entry.phase == "after":
            state.updated_at = entry.ts
    elif point == ("verify", "after") and index is None:
        state.verified_at = entry.ts
    elif point == ("revoke", "after") and entry.data.get("key_id"):
        state.revoked[str(entry.data["key_id"])] = entry.ts
    elif point == ("revoke", "done"):
        state.revoke_done = True
    elif point == ("archive", "after") and entry.data.get("key_id"):
        state.archived.add(str(entry.data["key_id"]))
    elif point == ("rollback", "before"):
        state.rollback_started = True
    elif entry.phase == "closed":
        state.closed = str(entry.data.get("reason") or entry.step)
        state.closed_at = entry.ts


@dataclass
class ManualRollback:
    """A rollback of stores no journaled rotation had changed (keys put there by hand)."""

    token: str
    position: int  # index of its first journal entry
    target: KeyRef | None = None  # the key it serves again; None: an older keyguard's entry
    replaced: KeyRef | None = None  # the key it takes out of service
    done: set[int] = field(default_factory=set)  # store indexes journaled as rolled back
    closed: str | None = None
    closed_at: datetime | None = None


def replay_manual_rollbacks(entries: list[Entry]) -> list[ManualRollback]:
    """Every rollback that belongs to no rotation, in journal order."""
    rotations = {
        entry.rotation for entry in entries if (entry.step, entry.phase) == ("create", "before")
    }
    found: dict[str, ManualRollback] = {}
    for position, entry in enumerate(entries):
        if entry.step != "rollback" or entry.rotation in rotations:
            continue
        record = found.setdefault(entry.rotation, ManualRollback(entry.rotation, position))
        index = entry.data.get("store_index")
        if entry.phase == "before" and index is None:
            key, replaced = entry.data.get("key"), entry.data.get("replaced")
            record.target = KeyRef.from_json(key) if isinstance(key, dict) else None
            record.replaced = KeyRef.from_json(replaced) if isinstance(replaced, dict) else None
        elif entry.phase == "after" and index is not None:
            record.done.add(int(index))
        elif entry.phase == "closed":
            record.closed = str(entry.data.get("reason") or "closed")
            record.closed_at = entry.ts
    return list(found.values())


def last_manual_rollback(entries: list[Entry]) -> ManualRollback | None:
    """The newest rollback without a rotation, if nothing in the journal came after it."""
    manual = replay_manual_rollbacks(entries)
    if not manual:
        return None
    rotations = [
        position
        for position, entry in enumerate(entries)
        if (entry.step, entry.phase) == ("create", "before") and "store_index" not in entry.data
    ]
    last = manual[-1]
    return last if not rotations or rotations[-1] < last.position else None
