"""The secret-store contract: versions of one key with the stages pending, current, previous.

A store is one secret in one secret manager, named by a URI. It keeps versions the way AWS
Secrets Manager rotation does: ``pending`` (delivered, not yet served), ``current`` (what
consumers read) and ``previous`` (kept for rollback). A label sits on at most one version.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from keyguard.keys import Secret


class Stage(StrEnum):
    PENDING = "pending"
    CURRENT = "current"
    PREVIOUS = "previous"


@dataclass(frozen=True)
class VersionMeta:
    """What keyguard records beside a stored key. Never the key itself."""

    key_id: str | None = None  # Anthropic ``apikey_...`` id
    hint: str | None = None  # ``sk-ant-api03-R2D...igAA``
    fingerprint: str | None = None  # SHA-256 hex of the key
    stored_at: datetime | None = None
    token: str | None = None  # the rotation token that stored it
    environment: str | None = None

    def to_fields(self, names: Mapping[str, str] | None = None) -> dict[str, str]:
        """The non-empty fields as strings, each stored under ``names[field]`` (or its own name)."""
        names = names or {}
        out: dict[str, str] = {}
        for each in fields(self):
            value = getattr(self, each.name)
            if value:
                out[names.get(each.name, each.name)] = (
                    value.isoformat() if isinstance(value, datetime) else str(value)
                )
        return out

    @classmethod
    def from_fields(
        cls, data: Mapping[str, Any] | None, names: Mapping[str, str] | None = None
    ) -> VersionMeta:
        """The inverse of ``to_fields``; what is missing or unreadable becomes None."""
        data, names = data or {}, names or {}
        values: dict[str, Any] = {}
        for each in fields(cls):
            raw = data.get(names.get(each.name, each.name))
            if not isinstance(raw, str) or not raw:
                continue
            if each.name == "stored_at":
                try:
                    when = datetime.fromisoformat(raw)
                except ValueError:
                    continue
                # A time without a zone (edited by hand) is read as UTC, never compared naive.
                values[each.name] = when if when.tzinfo else when.replace(tzinfo=UTC)
            else:
                values[each.name] = raw
        return cls(**values)


@dataclass(frozen=True)
class StoreVersion:
    """One version as ``describe()`` shows it: stages and metadata, no value."""

    version_id: str
    stages: frozenset[Stage] = field(default_factory=frozenset)
    meta: VersionMeta = field(default_factory=VersionMeta)


class StoreLease(Protocol):
    """A store lease a run holds (see :class:`keyguard.stores.lease.HeldLease`)."""

    def renew(self) -> None:
        """``LeaseHeldError`` unless this run still holds the lease; extends it when due."""
        ...


@runtime_checkable
class SecretStore(Protocol):
    """One secret in one secret manager.

    Every method is idempotent and safe to retry, except ``rollback``: it swaps current and
    previous, so a second call swaps them back. A caller that retries a rollback (e.g. after a
    timeout) checks ``describe()`` first: if the version it meant to restore is already
    current, the rollback happened.
    """

    uri: str

    def get(self, stage: Stage = Stage.CURRENT) -> Secret | None:
        """The key at ``stage``, or None when no version holds it."""
        ...

    def put_pending(self, value: Secret, meta: VersionMeta) -> str:
        """Store ``value`` as pending under ``meta.token``; returns the version id.

        Same token and same value: a no-op. Same token, other value: ``ConflictError``.
        """
        ...

    def promote(self, token: str) -> None:
        """Pending version ``token`` becomes current; the old current becomes previous.

        Compare-and-set: ``ConflictError`` if ``token`` is not pending (nor already current).
        A version already current for ``token`` is left as it is.
        """
        ...

    def rollback(self) -> None:
        """Previous becomes current again (and current becomes previous). Not idempotent."""
        ...

    def withdraw(self, token: str) -> None:
        """Undo the promote of ``token`` in a store that served no key before it: afterwards
        no version is current (nor previous). With ``#FIELD``, the JSON document the promote
        replaced is current again instead (its other fields, the key's field as it was), so
        other consumers of the secret keep reading it. Idempotent; a no-op when ``token`` is
        not current.
        """
        ...

    def discard_pending(self, token: str) -> None:
        """Drop the pending stage of ``token`` (the key stays as a version for the record)."""
        ...

    def describe(self) -> list[StoreVersion]:
        """Versions with their stages and metadata, newest first, never values."""
        ...

    def lease(self, owner: str, ttl_seconds: float) -> AbstractContextManager[StoreLease]:
        """Hold the store for one rotation: ``LeaseHeldError`` if another live holder has it.

        The run calls ``renew()`` on what it yields before each write: it stops with
        ``LeaseHeldError`` once another run took the lease, and keeps a long run's lease.

        ``owner`` comes from :func:`keyguard.stores.lease.new_owner` (host, pid, a random token,
        boot id, PID namespace, process start time). A lease whose holder died expires after
        ``ttl_seconds``, or sooner when the holder is provably gone (same host, boot and PID
        namespace, and its process no longer runs); a holder in another container is not.
        """
        ...

    def retire_superseded(self) -> None:
        """After the old key was revoked: disable versions that hold no stage (where supported)."""
        ...


def stage_map(versions: list[StoreVersion]) -> dict[Stage, StoreVersion]:
    """Which version holds each stage."""
    out: dict[Stage, StoreVersion] = {}
    for version in versions:
        for stage in version.stages:
            out[stage] = version
    return out
