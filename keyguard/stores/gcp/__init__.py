"""``gcp-sm://PROJECT/SECRET``: a GCP Secret Manager secret as a keyguard store.

Stages are the secret's ``version_aliases`` (``current``, ``previous``, ``pending``), moved
with etag-guarded ``UpdateSecret`` calls. ``latest`` is never read: it names the newest version
whatever its state, so a new pending version or a disabled one would break readers of it.
Per-version metadata lives in secret annotations keyed by version number; the lease is one
more annotation. A secret put there by hand, with no aliases, is adopted: its newest enabled
version is ``current``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from keyguard.errors import ConfigError, ConflictError, UnavailableError, UsageError
from keyguard.keys import Secret
from keyguard.stores.gcp import _sdk as sdk
from keyguard.stores.gcp.metadata import (
    ALIASES,
    LEASE,
    aliases_of,
    encode_meta,
    meta_key,
    meta_of,
    metas_of,
    pruned,
    token_version,
)
from keyguard.stores.interface import Stage, StoreVersion, VersionMeta
from keyguard.stores.lease import HeldLease, LeaseRecord, hold_lease
from keyguard.stores.uri import extract_field, merge_field, parse_store_uri

_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9.:-]{0,62}$")
OPTIONS = ("endpoint", "insecure", "attempts", "timeout")


class GcpSecretManagerStore:
    """One Secret Manager secret; stages are version aliases, metadata are annotations."""

    def __init__(
        self,
        project: str,
        secret_id: str,
        *,
        endpoint: str | None = None,
        insecure: bool = False,
        field: str | None = None,
        attempts: int = 4,
        timeout: float = 30.0,
        backoff: float = 0.2,
        cas_attempts: int = 5,
        uri: str | None = None,
    ) -> None:
        if not _PROJECT.match(project):
            raise ConfigError(f"gcp-sm store: {project!r} is not a GCP project id or number")
        if not _SECRET_ID.match(secret_id):
            raise ConfigError(
                f"gcp-sm store: secret id {secret_id!r} may hold only letters, digits, '-' "
                "and '_' (at most 255)"
            )
        self.uri = uri or f"gcp-sm://{project}/{secret_id}"
        self.name = f"projects/{project}/secrets/{secret_id}"
        self.parent = f"projects/{project}"
        self.secret_id = secret_id
        self.field = field
        self._endpoint, self._insecure = endpoint, insecure
        self._call = sdk.Caller(self.uri, attempts, timeout, backoff)
        self._cas_attempts = cas_attempts
        self._client_obj: Any = None

    @classmethod
    def from_uri(cls, uri: str) -> GcpSecretManagerStore:
        """Open ``gcp-sm://PROJECT/SECRET[?endpoint=HOST:PORT&insecure=true][#FIELD]``."""
        parsed = parse_store_uri(uri)
        parsed.check_options(OPTIONS)
        project, secret_id = parsed.require_authority("PROJECT/SECRET", "gcp-sm://my-proj/prod")
        insecure = parsed.opt_bool("insecure")
        if insecure and not parsed.opt("endpoint"):
            raise ConfigError(f"store {uri!r}: insecure=true needs endpoint=HOST:PORT (emulators)")
        return cls(
            project,
            secret_id,
            endpoint=parsed.opt_endpoint("endpoint", host_port=True, insecure=insecure),
            insecure=insecure,
            field=parsed.field,
            attempts=parsed.opt_int("attempts", 4),
            timeout=parsed.opt_float("timeout", 30.0),
            uri=uri,
        )

    # ----- reading -----
    def get(self, stage: Stage = Stage.CURRENT) -> Secret | None:
        """The key at ``stage`` (an alias, never ``latest``), or None."""
        secret = self._secret()
        if secret is None:
            return None
        number = self._stages(secret).get(stage)
        if number is None:
            return None
        raw = self._access(number, stage)
        if raw is None:
            return None
        value = extract_field(raw, self.field, self.uri)
        return Secret(value) if value is not None else None

    def describe(self) -> list[StoreVersion]:
        """Versions (not destroyed), newest first, with stages and metadata."""
        secret = self._secret()
        if secret is None:
            return []
        stages = self._stages(secret)
        by_number: dict[int, set[Stage]] = {}
        for stage, number in stages.items():
            by_number.setdefault(number, set()).add(stage)
        metas = metas_of(secret)
        return [
            StoreVersion(str(n), frozenset(by_number.get(n, ())), meta_of(metas.get(n)))
            for n, version in self._versions("")
            if version.state.name != "DESTROYED"
        ]

    # ----- writing -----
    def put_pending(self, value: Secret, meta: VersionMeta) -> str:
        """Add a version holding ``value`` and alias it ``pending`` (idempotent per token)."""
        if not meta.token:
            raise UsageError(f"store {self.uri}: put_pending needs a rotation token in meta.token")
        secret = self._secret() or self._create(meta)
        found = self._by_token(secret, meta.token, value)
        if found is None and self._stages(secret) and not aliases_of(secret):
            # Adopt the hand-made version first, so a crash after AddSecretVersion below can
            # never let the new (pending) version be taken for the adopted current one.
            secret = self._update(self._adopt)
        if found is None:
            found = self._add_version(secret, value)
        number = found
        metas_entry = encode_meta(meta, value)

        def mark(secret: Any) -> list[str] | None:
            holder = self._by_token(secret, meta.token or "", value)
            target = holder if holder is not None else number
            aliases, annotations = aliases_of(secret), dict(secret.annotations)
            if target in aliases.values() and meta_key(target) in annotations:
                return None  # already pending, or promoted since: nothing to do
            aliases["pending"] = target
            annotations[meta_key(target)] = annotations.get(meta_key(target), metas_entry)
            secret.version_aliases = aliases
            secret.annotations = pruned(annotations, aliases)
            return ["version_aliases", "annotations"]

        final = self._update(mark)
        holder = self._by_token(final, meta.token, value)
        return str(holder if holder is not None else number)

    def promote(self, token: str) -> None:
        """``pending`` (for ``token``) -> ``current``, old ``current`` -> ``previous``."""

        def move(secret: Any) -> list[str] | None:
            number = token_version(secret, token)
            aliases = aliases_of(secret)
            if number is not None and aliases.get("current") == number:
                return None
            if number is None or aliases.get("pending") != number:
                raise ConflictError(
                    f"store {self.uri}: rotation {token} has no pending version to promote "
                    "(another run replaced or discarded it); run `keyguard status` to see why"
                )
            old = aliases.get("current")
            if old is None:
                old = self._adoptable(secret)
            if old is not None:
                aliases["previous"] = old
            aliases["current"] = number
            del aliases["pending"]
            secret.version_aliases = aliases
            return ["version_aliases"]

        self._update(move)

    def rollback(self) -> None:
        """Swap ``current`` and ``previous``."""

        def swap(secret: Any) -> list[str] | None:
            aliases = aliases_of(secret)
            if "previous" not in aliases:
                raise ConflictError(f"store {self.uri}: no previous version to roll back to")
            current = aliases.get("current")
            aliases["current"] = aliases.pop("previous")
            if current is not None:
                aliases["previous"] = current
            secret.version_aliases = aliases
            return ["version_aliases"]

        if self._secret() is None:
            raise ConflictError(f"store {self.uri}: no previous version to roll back to")
        self._update(swap)

    def withdraw(self, token: str) -> None:
        """Drop ``current`` (and ``previous``) from ``token``'s version, then disable it, so
        that a hand-made secret does not adopt it again as its newest enabled version.

        With ``#FIELD`` the secret is a JSON document other consumers read too: ``current``
        goes back to the document the promote replaced (the ``previous`` alias), if any."""
        withdrawn: list[int] = []

        def drop(secret: Any) -> list[str] | None:
            aliases = aliases_of(secret)
            number = token_version(secret, token)
            if number is None or aliases.get("current") != number:
                return None
            withdrawn[:] = [number]
            aliases.pop("current")
            before = aliases.pop("previous", None)
            if self.field and before is not None:
                aliases["current"] = before
            secret.version_aliases = aliases
            return ["version_aliases"]

        if self._secret() is None:
            return
        self._update(drop)
        for number in withdrawn:
            name = f"{self.name}/versions/{number}"
            with contextlib.suppress(*sdk.GONE_OR_CONFLICT):
                self._call(
                    self._client().disable_secret_version,
                    expect=sdk.GONE_OR_CONFLICT,
                    request={"name": name},
                )

    def discard_pending(self, token: str) -> None:
        """Drop the ``pending`` alias if it still points at ``token``'s version."""

        def drop(secret: Any) -> list[str] | None:
            aliases = aliases_of(secret)
            number = token_version(secret, token)
            if number is None or aliases.get("pending") != number:
                return None
            del aliases["pending"]
            secret.version_aliases = aliases
            return ["version_aliases"]

        if self._secret() is not None:
            self._update(drop)

    def retire_superseded(self) -> None:
        """Disable enabled versions no stage points at (call only once the old key is revoked)."""
        secret = self._secret()
        if secret is None:
            return
        staged = set(self._stages(secret).values())
        if not staged:
            return
        newest_staged = max(staged)
        client = self._client()
        for number, version in self._versions("state:ENABLED"):
            # A version newer than every stage may be a put_pending still in flight.
            if number in staged or number > newest_staged:
                continue
            try:
                self._call(
                    client.disable_secret_version,
                    expect=sdk.GONE_OR_CONFLICT,
                    request={"name": version.name, "etag": version.etag},
                )
            except sdk.GONE_OR_CONFLICT:
                continue  # changed under us (destroyed, re-enabled): leave it to the next run

    def lease(self, owner: str, ttl_seconds: float) -> AbstractContextManager[HeldLease]:
        """An annotation holding owner + expiry, written with the secret's etag."""

        def read() -> tuple[LeaseRecord | None, str]:
            secret = self._secret() or self._create(VersionMeta())
            raw = str(secret.annotations.get(LEASE, ""))
            return LeaseRecord.decode(raw), raw

        def write_if(seen: str, record: LeaseRecord | None) -> bool:
            def put(secret: Any) -> list[str] | None:
                if secret.annotations.get(LEASE, "") != seen:
                    raise _LeaseMoved
                annotations = dict(secret.annotations)
                annotations.pop(LEASE, None)
                if record is not None:
                    annotations[LEASE] = record.encode()
                secret.annotations = annotations
                return ["annotations"]

            # The compare is on the lease annotation; the etag only guards the write, so an
            # unrelated write (a promote) in between costs a retry, not the lease.
            try:
                self._update(put)
            except (_LeaseMoved, ConflictError):
                return False
            return True

        return hold_lease(read, write_if, owner, ttl_seconds, self.uri)

    # ----- helpers -----
    def _client(self) -> Any:
        if self._client_obj is None:
            try:
                self._client_obj = sdk.make_client(self._endpoint, self._insecure)
            except sdk.GoogleAuthError as exc:
                raise sdk.credentials_error(self.uri, exc) from None
        return self._client_obj

    def _secret(self) -> Any:
        try:
            return self._call(self._client().get_secret, expect=(sdk.NotFound,), name=self.name)
        except sdk.NotFound:
            return None

    def _create(self, meta: VersionMeta) -> Any:
        labels = {"managed-by": "keyguard"}
        if meta.environment:
            labels["keyguard-env"] = re.sub(r"[^a-z0-9_-]", "-", meta.environment.lower())[:63]
        secret = {"replication": {"automatic": {}}, "labels": labels}
        with contextlib.suppress(sdk.AlreadyExists):  # a concurrent run created it: use theirs
            self._call(
                self._client().create_secret,
                expect=(sdk.AlreadyExists,),
                request={"parent": self.parent, "secret_id": self.secret_id, "secret": secret},
            )
        created = self._secret()
        if created is None:
            raise UnavailableError(
                f"store {self.uri}: the secret vanished right after it was created; run again"
            )
        return created

    def _update(self, mutate: Callable[[Any], list[str] | None]) -> Any:
        """Read, mutate, write with the etag; retried on a lost race, then ``ConflictError``."""
        for _ in range(self._cas_attempts):
            secret = self._secret()
            if secret is None:
                raise ConflictError(
                    f"store {self.uri}: the secret does not exist (or was deleted meanwhile): "
                    "nothing to change"
                )
            paths = mutate(secret)
            if not paths:
                return secret
            try:
                return self._call(
                    self._client().update_secret,
                    expect=sdk.CONFLICT,
                    request={"secret": secret, "update_mask": {"paths": paths}},
                )
            except sdk.CONFLICT:
                continue
        raise ConflictError(
            f"store {self.uri}: the secret kept changing under keyguard ({self._cas_attempts} "
            "compare-and-set attempts lost): another writer is active; run again when it is done"
        )

    def _adopt(self, secret: Any) -> list[str] | None:
        number = self._adoptable(secret)
        if number is None or aliases_of(secret):
            return None
        secret.version_aliases = {"current": number}
        return ["version_aliases"]

    def _adoptable(self, secret: Any) -> int | None:
        """The newest enabled version of a secret made by hand (not by keyguard, no aliases)."""
        # A secret keyguard created is never adopted: an unaliased version there is a
        # put_pending that crashed before its alias was written, not a current key.
        if aliases_of(secret) or secret.labels.get("managed-by") == "keyguard":
            return None
        for number, _ in self._versions("state:ENABLED", page_size=1, first_only=True):
            return number
        return None

    def _stages(self, secret: Any) -> dict[Stage, int]:
        aliases = aliases_of(secret)
        stages = {stage: aliases[a] for stage, a in ALIASES.items() if a in aliases}
        if not aliases:
            adopted = self._adoptable(secret)
            if adopted is not None:
                stages[Stage.CURRENT] = adopted
        return stages

    def _versions(
        self, state_filter: str, page_size: int = 100, first_only: bool = False
    ) -> Iterator[tuple[int, Any]]:
        request = {"parent": self.name, "filter": state_filter, "page_size": page_size}
        token = ""
        while True:
            try:
                page = self._call(
                    self._client().list_secret_versions,
                    expect=(sdk.NotFound,),
                    request={**request, "page_token": token},
                )
            except sdk.NotFound:
                return
            for version in page.versions:
                yield int(version.name.rsplit("/", 1)[1]), version
                if first_only:
                    return
            token = page.next_page_token
            if not token:
                return

    def _access(self, number: int, stage: Stage) -> str | None:
        name = f"{self.name}/versions/{number}"
        try:
            data = self._call.checked(
                self._client().access_secret_version,
                expect=(sdk.NotFound, sdk.FailedPrecondition),
                name=name,
            )
        except sdk.NotFound:
            return None
        except sdk.FailedPrecondition as exc:
            raise UnavailableError(
                f"store {self.uri}: version {number}, which holds {stage.value!r}, cannot be read "
                f"({exc.message}); enable it (`gcloud secrets versions enable {number} "
                f"--secret {self.secret_id}`) or run `keyguard rollback`"
            ) from None
        return data.decode("utf-8")

    def _add_version(self, secret: Any, value: Secret) -> int:
        current = self._stages(secret).get(Stage.CURRENT)
        base = self._access(current, Stage.CURRENT) if (self.field and current) else None
        payload = merge_field(base, self.field, value.reveal(), self.uri).encode("utf-8")
        version = self._call(
            self._client().add_secret_version,
            request={
                "parent": self.name,
                "payload": {"data": payload, "data_crc32c": sdk.crc32c(payload)},
            },
        )
        return int(version.name.rsplit("/", 1)[1])

    def _by_token(self, secret: Any, token: str, value: Secret) -> int | None:
        """The version stored for ``token``; ``ConflictError`` if it holds another key."""
        metas = metas_of(secret)
        for number, data in metas.items():
            if data.get("token") == token:
                if data.get("fp") != value.fingerprint:
                    raise ConflictError(
                        f"store {self.uri}: rotation token {token} already stored a different key "
                        f"(version {number}); start a new rotation (a new token) instead of "
                        "reusing this one"
                    )
                return number
        return None


class _LeaseMoved(Exception):
    """Another run wrote the lease annotation since we read it."""
