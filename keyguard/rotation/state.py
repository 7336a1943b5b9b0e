"""What a rotation has done so far, replayed from the journal (fingerprints and hints only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keyguard.journal import Entry


@dataclass(frozen=True)
class KeyRef:
    """A key as the journal knows it: never its value."""

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
    olds: list[KeyRef]
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
        return [k for k in self.olds if k.id and k.fingerprint != self.new.fingerprint]

    def archive_pending(self) -> list[KeyRef]:
        if self.closed:
            return []
        return [k for k in self.revocable() if k.id in self.revoked and k.id not in self.archived]


def replay(entries: list[Entry]) -> list[RotationState]:
    """Every rotation in journal order, each folded from its entries."""
    states: dict[str, RotationState] = {}
    for e in entries:
        st = states.get(e.rotation)
        if e.step == "create" and e.phase == "before" and st is None:
            st = RotationState(
                token=e.rotation,
                new=KeyRef.from_json(e.data["key"]),
                olds=[KeyRef.from_json(o) for o in e.data.get("olds", [])],
                started_at=e.ts,
            )
            states[e.rotation] = st
            continue
        if st is None:
            continue
        _apply(st, e)
    return list(states.values())


def _apply(st: RotationState, e: Entry) -> None:
    index = e.data.get("store_index")
    point = (e.step, e.phase)
    if point == ("create", "after") and index is not None:
        st.stored.add(int(index))
    elif point == ("create", "after"):
        st.created = True
    elif e.step == "promote":
        st.promote_started = True
        if e.phase == "after" and index is not None:
            st.promoted.add(int(index))
        elif e.phase == "after":
            st.updated_at = e.ts
    elif point == ("verify", "after") and index is None:
        st.verified_at = e.ts
    elif point == ("revoke", "after") and e.data.get("key_id"):
        st.revoked[str(e.data["key_id"])] = e.ts
    elif point == ("revoke", "done"):
        st.revoke_done = True
    elif point == ("archive", "after") and e.data.get("key_id"):
        st.archived.add(str(e.data["key_id"]))
    elif point == ("rollback", "before"):
        st.rollback_started = True
    elif e.phase == "closed":
        st.closed = str(e.data.get("reason") or e.step)
        st.closed_at = e.ts


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
    rotations = {e.rotation for e in entries if (e.step, e.phase) == ("create", "before")}
    found: dict[str, ManualRollback] = {}
    for position, e in enumerate(entries):
        if e.step != "rollback" or e.rotation in rotations:
            continue
        rb = found.setdefault(e.rotation, ManualRollback(e.rotation, position))
        index = e.data.get("store_index")
        if e.phase == "before" and index is None:
            key, replaced = e.data.get("key"), e.data.get("replaced")
            rb.target = KeyRef.from_json(key) if isinstance(key, dict) else None
            rb.replaced = KeyRef.from_json(replaced) if isinstance(replaced, dict) else None
        elif e.phase == "after" and index is not None:
            rb.done.add(int(index))
        elif e.phase == "closed":
            rb.closed = str(e.data.get("reason") or "closed")
            rb.closed_at = e.ts
    return list(found.values())


def last_manual_rollback(entries: list[Entry]) -> ManualRollback | None:
    """The newest rollback without a rotation, if nothing in the journal came after it."""
    manual = replay_manual_rollbacks(entries)
    if not manual:
        return None
    rotations = [
        i
        for i, e in enumerate(entries)
        if (e.step, e.phase) == ("create", "before") and "store_index" not in e.data
    ]
    last = manual[-1]
    return last if not rotations or rotations[-1] < last.position else None
