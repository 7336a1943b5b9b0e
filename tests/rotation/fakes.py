"""In-memory stand-ins for unit tests of the engine: a SecretStore and the Admin API subset.

Integration tests use the real sandbox and real stores; these only pin the state machine's
logic down quickly.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from keyguard.errors import ConflictError, LeaseHeldError, NotFoundError, UnavailableError
from keyguard.keys import Secret, generate_key
from keyguard.models import ApiKey, UsageRow, VerifyResult
from keyguard.stores.interface import Stage, StoreVersion, VersionMeta

_LEASES: dict[str, str] = {}


@dataclass(frozen=True)
class FakeLease:
    """A held lease of a ``FakeStore``: renewing it fails once another owner took the store."""

    uri: str
    owner: str

    def renew(self) -> None:
        if _LEASES.get(self.uri) != self.owner:
            raise LeaseHeldError(f"{self.uri}: this run no longer holds its lease")


@dataclass
class _Version:
    version_id: str
    value: Secret
    meta: VersionMeta
    stages: set[Stage] = field(default_factory=set)


class FakeStore:
    """Versions with stages in a dict; ``fail[method] = n`` makes the next n calls fail."""

    _ids = itertools.count(1)

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.versions: list[_Version] = []
        self.fail: dict[str, int] = {}
        self.calls: list[str] = []

    def _maybe_fail(self, method: str) -> None:
        self.calls.append(method)
        if self.fail.get(method, 0) > 0:
            self.fail[method] -= 1
            raise UnavailableError(f"{self.uri}: throttled ({method}); try again later")

    def _at(self, stage: Stage) -> _Version | None:
        return next((v for v in self.versions if stage in v.stages), None)

    def seed(self, value: Secret, meta: VersionMeta | None = None) -> None:
        """A key already current before keyguard ever ran (for adoption)."""
        old = self._at(Stage.CURRENT)
        if old:
            old.stages.discard(Stage.CURRENT)
            old.stages.add(Stage.PREVIOUS)
        self.versions.insert(
            0, _Version(f"v{next(self._ids)}", value, meta or VersionMeta(), {Stage.CURRENT})
        )

    def get(self, stage: Stage = Stage.CURRENT) -> Secret | None:
        self._maybe_fail("get")
        v = self._at(stage)
        return v.value if v else None

    def put_pending(self, value: Secret, meta: VersionMeta) -> str:
        self._maybe_fail("put_pending")
        for v in self.versions:
            if v.meta.token == meta.token and meta.token:
                if v.value != value:
                    raise ConflictError(f"{self.uri}: token {meta.token} holds another value")
                return v.version_id
        old = self._at(Stage.PENDING)
        if old:
            old.stages.discard(Stage.PENDING)
        v = _Version(f"v{next(self._ids)}", value, meta, {Stage.PENDING})
        self.versions.insert(0, v)
        return v.version_id

    def promote(self, token: str) -> None:
        self._maybe_fail("promote")
        target = next((v for v in self.versions if v.meta.token == token), None)
        if target is None:
            raise ConflictError(f"{self.uri}: no version for token {token}")
        if Stage.CURRENT in target.stages:
            return
        if Stage.PENDING not in target.stages:
            raise ConflictError(f"{self.uri}: {token} is not pending")
        prev = self._at(Stage.PREVIOUS)
        if prev:
            prev.stages.discard(Stage.PREVIOUS)
        cur = self._at(Stage.CURRENT)
        if cur:
            cur.stages.discard(Stage.CURRENT)
            cur.stages.add(Stage.PREVIOUS)
        target.stages.discard(Stage.PENDING)
        target.stages.add(Stage.CURRENT)

    def rollback(self) -> None:
        self._maybe_fail("rollback")
        cur, prev = self._at(Stage.CURRENT), self._at(Stage.PREVIOUS)
        if prev is None or cur is None:
            raise ConflictError(f"{self.uri}: no previous version")
        cur.stages.discard(Stage.CURRENT)
        cur.stages.add(Stage.PREVIOUS)
        prev.stages.discard(Stage.PREVIOUS)
        prev.stages.add(Stage.CURRENT)

    def withdraw(self, token: str) -> None:
        for v in self.versions:
            if v.meta.token == token and Stage.CURRENT in v.stages:
                v.stages.clear()
                for other in self.versions:
                    other.stages.discard(Stage.PREVIOUS)

    def discard_pending(self, token: str) -> None:
        for v in self.versions:
            if v.meta.token == token:
                v.stages.discard(Stage.PENDING)

    def describe(self) -> list[StoreVersion]:
        self._maybe_fail("describe")
        return [StoreVersion(v.version_id, frozenset(v.stages), v.meta) for v in self.versions]

    @contextmanager
    def lease(self, owner: str, ttl_seconds: float) -> Iterator[FakeLease]:
        holder = _LEASES.get(self.uri)
        if holder is not None and holder != owner:
            raise LeaseHeldError(f"{self.uri} is leased by {holder}")
        _LEASES[self.uri] = owner
        try:
            yield FakeLease(self.uri, owner)
        finally:
            if _LEASES.get(self.uri) == owner:
                _LEASES.pop(self.uri, None)

    def retire_superseded(self) -> None:
        pass


class FakeAdmin:
    """Keys, usage and verification in memory, keyed the way the Admin API keys them."""

    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.values: dict[str, str] = {}  # fingerprint -> key id
        self.rows: list[UsageRow] = []
        self._n = itertools.count(1)

    def mint(
        self, name: str, workspace_id: str | None = None, created_at: datetime | None = None
    ) -> tuple[str, Secret]:
        secret = generate_key()
        key_id = f"apikey_{next(self._n):04d}"
        self.keys[key_id] = ApiKey(
            key_id, name, "active", created_at or datetime.now(UTC), workspace_id, secret.hint
        )
        self.values[secret.fingerprint] = key_id
        return key_id, secret

    def get_key(self, key_id: str) -> ApiKey:
        if key_id not in self.keys:
            raise NotFoundError(key_id)
        return self.keys[key_id]

    def update_key(
        self, key_id: str, *, name: str | None = None, status: str | None = None
    ) -> ApiKey:
        key = self.get_key(key_id)
        if key.status == "archived":
            raise ConflictError("archived keys cannot be changed")
        self.keys[key_id] = replace(key, status=status or key.status, name=name or key.name)
        return self.keys[key_id]

    def use(self, key_id: str, at: datetime, tokens: int = 100) -> None:
        self.rows.append(UsageRow(at, at + timedelta(minutes=1), key_id, tokens, 0, 0, 0))

    def usage(
        self,
        key_ids: Sequence[str],
        starting_at: datetime,
        ending_at: datetime | None = None,
        *,
        bucket_width: str = "1h",
        group_by_model: bool = False,
    ) -> list[UsageRow]:
        end = ending_at or datetime.max.replace(tzinfo=UTC)
        return [
            r
            for r in self.rows
            if r.api_key_id in key_ids and r.starting_at >= starting_at and r.ending_at <= end
        ]

    def verify_key(self, key: Secret, workspace: str | None = None) -> VerifyResult:
        key_id = self.values.get(key.fingerprint)
        if key_id is None or self.keys[key_id].status != "active":
            return VerifyResult(False, status_code=401)
        return VerifyResult(True, self.keys[key_id].workspace_id, 200)

    def list_keys(
        self, *, status: str | None = None, workspace_id: str | None = None
    ) -> Iterator[ApiKey]:
        for key in list(self.keys.values()):
            if status in (None, key.status) and workspace_id in (None, key.workspace_id):
                yield key

    def find_key(
        self, key: Secret, *, name: str | None = None, workspace_id: str | None = None
    ) -> ApiKey:
        key_id = self.values.get(key.fingerprint)
        if key_id is None:
            raise NotFoundError(f"no key {key.hint}")
        return self.keys[key_id]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)
