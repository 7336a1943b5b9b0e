"""``azure-kv://VAULT/NAME``: one key in Azure Key Vault, rotated from the client side.

Key Vault has no labels: a plain ``GET /secrets/NAME`` returns the newest version, so the
newest version of NAME *is* ``current``. Everything else follows from that:

- ``pending`` lives in a companion secret ``NAME-pending`` that consumers never read, one
  version per rotation token, so a delivered key is never served before it is promoted.
- ``previous`` is named by the current version itself (tag ``keyguard-previous``): promote and
  rollback each make one new version of NAME whose tags say which version came before, so the
  stages move in a single write. Rollback therefore writes the previous value again as a new
  newest version (tagged ``keyguard-rollback-of``); old versions stay for the record.
- ``keyguard-stage`` tags on each version say what it was last; they are informational and
  fixed up after each move (a crash can leave one stale; the structure above is the truth).
- A secret put there by hand (no keyguard tags) is adopted: its newest version is current and
  the one before it previous.
- Soft-delete is always on: writing to a deleted companion (or main) secret fails with 409
  ``ObjectIsDeletedButRecoverable``; the store recovers it and writes again.

``?vault_url=https://HOST:PORT`` points at a private endpoint or emulator (the challenge
resource is then not checked; its origin must be listed in ``KEYGUARD_STORE_ENDPOINTS``),
``?ca_bundle=PATH`` trusts its certificate (only a path listed in
``KEYGUARD_STORE_CA_BUNDLES``: the operator chooses which CA a key is sent under), and
``?credential=static`` sends a dummy token (emulators only). Otherwise the credential is
``azure.identity.DefaultAzureCredential``. ``?max_attempts=N`` (default 4) bounds the SDK's
retries of throttling (429, honouring Retry-After), 5xx answers and connection errors.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from keyguard.errors import ConfigError, ConflictError, UsageError
from keyguard.keys import Secret
from keyguard.stores.azure import tags as tag
from keyguard.stores.azure._sdk import SecretProperties, Vault, make_client
from keyguard.stores.azure.claims import hold_claim
from keyguard.stores.azure.tags import tags_of
from keyguard.stores.interface import Stage, StoreVersion, VersionMeta
from keyguard.stores.lease import HeldLease
from keyguard.stores.uri import drop_field, extract_field, merge_field, parse_store_uri

_VAULT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
# Room for the longest companion suffix within Key Vault's 127 characters.
_NAME_RE = re.compile(r"^[0-9A-Za-z-]{1,119}$")
_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass
class _State:
    """What one look at the vault shows: NAME's versions and the companion's."""

    versions: list[SecretProperties] = field(default_factory=list)  # newest first
    current: SecretProperties | None = None
    current_raw: str | None = None
    current_disabled: bool = False
    previous: SecretProperties | None = None
    companion: list[SecretProperties] = field(default_factory=list)  # newest first
    pending: SecretProperties | None = None

    def current_token(self) -> str | None:
        return tags_of(self.current).get(tag.TOKEN) if self.current else None


def _newest_first(items: list[SecretProperties]) -> list[SecretProperties]:
    # Creation times have one-second resolution; the server's order breaks ties.
    order = {id(version): position for position, version in enumerate(items)}
    return sorted(
        items, key=lambda version: (version.created_on or _NEVER, order[id(version)]), reverse=True
    )


class AzureKeyVaultStore:
    """One key in one Key Vault secret plus its companions (see the module docstring)."""

    def __init__(
        self,
        uri: str,
        vault_url: str,
        name: str,
        *,
        field: str | None = None,
        static_credential: bool = False,
        ca_bundle: str | None = None,
        max_attempts: int = 4,
        backoff: float = 0.5,
        poll_interval: float = 2.0,
        transport: Any = None,
    ) -> None:
        self.uri = uri
        self.vault_url = vault_url.rstrip("/")
        self.name = name
        self.pending_name = f"{name}-pending"
        self.lease_name = f"{name}-lease"
        self.field = field
        client = make_client(
            self.vault_url,
            static=static_credential,
            custom_url=not self.vault_url.endswith(".vault.azure.net"),
            ca_bundle=ca_bundle,
            max_attempts=max_attempts,
            backoff=backoff,
            transport=transport,
        )
        self.vault = Vault(client, uri, self.vault_url, poll_interval)

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> AzureKeyVaultStore:
        parsed = parse_store_uri(uri)
        parsed.check_options({"vault_url", "ca_bundle", "credential", "max_attempts"})
        vault, name = parsed.require_authority("VAULT/NAME", "azure-kv://my-vault/anthropic-prod")
        if not _VAULT_RE.match(vault):
            raise ConfigError(f"store {uri!r}: {vault!r} is not a Key Vault name (3-24 a-z0-9-)")
        if not _NAME_RE.match(name):
            raise ConfigError(
                f"store {uri!r}: secret name {name!r} must be 1-119 letters, digits or '-' "
                "(keyguard adds -pending and -lease companions within Azure's 127)"
            )
        given = parsed.opt("vault_url")
        if given and not given.startswith("https://"):
            raise ConfigError(f"store {uri!r}: vault_url must be https:// (Key Vault needs TLS)")
        vault_url = parsed.opt_endpoint("vault_url") or f"https://{vault}.vault.azure.net"
        credential = parsed.opt("credential", "default")
        if credential not in ("default", "static"):
            raise ConfigError(f"store {uri!r}: credential must be 'default' or 'static'")
        ca_bundle = parsed.opt_ca_bundle()
        if "max_attempts" in parsed.options:
            kwargs.setdefault("max_attempts", max(1, parsed.opt_int("max_attempts", 4)))
        return cls(
            uri,
            vault_url,
            name,
            field=parsed.field,
            static_credential=credential == "static",
            ca_bundle=ca_bundle,
            **kwargs,
        )

    # -- writes that keep the tags straight -------------------------------------------------

    def _list(self, name: str) -> list[SecretProperties]:
        return _newest_first(self.vault.versions(name))

    def _retag(self, name: str, properties: SecretProperties, **changes: str | None) -> None:
        tags = tags_of(properties)
        for key, value in changes.items():
            tag_name = {"stage": tag.STAGE}.get(key, key)
            if value is None:
                tags.pop(tag_name, None)
            else:
                tags[tag_name] = value
        if tags != tags_of(properties):
            self.vault.set_tags(name, properties, tags)

    # -- state ----------------------------------------------------------------------------------

    def _state(self) -> _State:
        state = _State(versions=self._list(self.name))
        if state.versions:
            latest = self.vault.read(self.name)
            if latest is None and tags_of(state.versions[0]).get(tag.STAGE) == "withdrawn":
                # Withdrawn (a first key that failed verification): nothing is served.
                return self._companion_state(state)
            if latest is None:  # the newest version is disabled: consumers get 403
                state.current, state.current_disabled = state.versions[0], True
            else:
                state.current = next(
                    (
                        version
                        for version in state.versions
                        if version.version == latest.properties.version
                    ),
                    latest.properties,
                )
                state.current_raw = latest.value
            state.versions.sort(key=lambda version: version is not state.current)
            state.previous = self._previous_of(state)
        return self._companion_state(state)

    def _companion_state(self, state: _State) -> _State:
        state.companion = self._list(self.pending_name)
        if state.companion:
            newest = self.vault.read(self.pending_name)
            tags = tags_of(newest.properties) if newest else {}
            if (
                newest
                and tags.get(tag.STAGE) == "pending"
                and tags.get(tag.TOKEN)
                not in (
                    None,
                    state.current_token(),
                )
            ):
                state.pending = next(
                    (
                        version
                        for version in state.companion
                        if version.version == newest.properties.version
                    ),
                    newest.properties,
                )
        return state

    @staticmethod
    def _previous_of(state: _State) -> SecretProperties | None:
        tags = tags_of(state.current)
        if tag.WITHDRAWAL_OF in tags:  # the document as it was before a withdrawn promote
            return None
        if tag.TOKEN in tags:  # written by keyguard: it names its previous
            wanted = tags.get(tag.PREVIOUS)
            return next((version for version in state.versions if version.version == wanted), None)
        # Adopted (written by hand): the version before it.
        older = [
            version
            for version in state.versions
            if version is not state.current and version.enabled
        ]
        return older[0] if older else None

    def _key(self, raw: str | None) -> Secret | None:
        value = extract_field(raw, self.field, self.uri)
        return Secret(value) if value else None

    def _current_or_refuse(self, state: _State) -> None:
        if state.current_disabled:
            raise ConflictError(
                f"store {self.uri}: the newest version of {self.name} is disabled, so consumers "
                "cannot read it; enable it (or write a new version) before rotating"
            )

    # -- SecretStore ------------------------------------------------------------------------------

    def get(self, stage: Stage = Stage.CURRENT) -> Secret | None:
        state = self._state()
        if stage is Stage.PENDING:
            if state.pending is None:
                return None
            found = self.vault.read(self.pending_name, state.pending.version)
            return Secret(found.value) if found and found.value else None
        if stage is Stage.CURRENT:
            self._current_or_refuse(state)
            return self._key(state.current_raw)
        if state.previous is None:
            return None
        found = self.vault.read(self.name, state.previous.version)
        return self._key(found.value) if found else None

    def put_pending(self, value: Secret, meta: VersionMeta) -> str:
        token = meta.token
        if not token:
            raise UsageError(f"store {self.uri}: put_pending needs a rotation token in meta.token")
        if meta.stored_at is None:
            meta = replace(meta, stored_at=datetime.now(UTC).replace(microsecond=0))
        state = self._state()
        for version in state.companion:
            if tags_of(version).get(tag.TOKEN) == token:
                found = self.vault.read(self.pending_name, version.version)
                self._same_or_conflict(token, found.value if found else None, value)
                if version is state.companion[0] and tags_of(version).get(tag.STAGE) == "discarded":
                    self._retag(self.pending_name, version, stage="pending")
                return str(version.version)
        for version in state.versions:
            if tags_of(version).get(tag.TOKEN) == token:  # promoted already (companion gone)
                found = self.vault.read(self.name, version.version)
                raw = extract_field(found.value, self.field, self.uri) if found else None
                self._same_or_conflict(token, raw, value)
                return str(version.version)
        # The key is merged into NAME's value only at promote: refuse a value it cannot merge
        # into (a #FIELD over a plain secret) now, before it is stored, as the other stores do.
        merge_field(state.current_raw, self.field, value.reveal(), self.uri)
        tags = {**tag.meta_tags(meta), tag.STAGE: "pending"}
        written = self.vault.write(self.pending_name, value.reveal(), tags)
        if state.pending is not None:
            self._retag(self.pending_name, state.pending, stage="superseded")
        return str(written.version)

    def _same_or_conflict(self, token: str, stored: str | None, value: Secret) -> None:
        if stored != value.reveal():
            raise ConflictError(
                f"store {self.uri}: rotation token {token} already stored a different key; "
                "start a new rotation (a new token) instead of reusing this one"
            )

    def promote(self, token: str) -> None:
        state = self._state()
        if state.current is None and self._recover_if_deleted(self.name):
            state = self._state()
        if state.current is not None and state.current_token() == token:
            self._tidy_after_move(state)  # a crash may have stopped the last promote here
            return
        if state.pending is None or tags_of(state.pending).get(tag.TOKEN) != token:
            raise ConflictError(
                f"store {self.uri}: rotation {token} has no pending version to promote "
                "(another run replaced or discarded it); run `keyguard status` to see why"
            )
        self._current_or_refuse(state)
        found = self.vault.read(self.pending_name, state.pending.version)
        if found is None or not found.value:
            raise ConflictError(f"store {self.uri}: the pending version of {token} is unreadable")
        raw = merge_field(state.current_raw, self.field, found.value, self.uri)
        tags = {
            name: value
            for name, value in tags_of(state.pending).items()
            if name in tag.META_TAGS.values()
        }
        tags[tag.STAGE] = "current"
        if state.current is not None:
            tags[tag.PREVIOUS] = str(state.current.version)
        self.vault.write(self.name, raw, tags, self._content_type())
        self._tidy_after_move(self._state())

    def _tidy_after_move(self, state: _State) -> None:
        """Make the informational stage tags match the structure after a promote or rollback."""
        for version in state.versions:
            stage = tags_of(version).get(tag.STAGE)
            want = (
                "current"
                if version is state.current
                else "previous"
                if version is state.previous
                else "superseded"
                if stage in ("current", "previous")
                else stage
            )
            if want != stage and tags_of(version).get(tag.TOKEN):
                self._retag(self.name, version, stage=want)
        token = state.current_token()
        for version in state.companion:
            if (
                token
                and tags_of(version).get(tag.TOKEN) == token
                and tags_of(version).get(tag.STAGE) == "pending"
            ):
                self._retag(self.pending_name, version, stage="promoted")

    def _recover_if_deleted(self, name: str) -> bool:
        if self.vault.is_deleted(name):
            self.vault.recover(name)
            return True
        return False

    def rollback(self) -> None:
        state = self._state()
        self._current_or_refuse(state)
        if state.previous is None:
            raise ConflictError(f"store {self.uri}: no previous version to roll back to")
        found = self.vault.read(self.name, state.previous.version)
        key = extract_field(found.value, self.field, self.uri) if found else None
        if not key:
            raise ConflictError(
                f"store {self.uri}: the previous version {state.previous.version} is disabled or "
                "empty; enable it in the vault to roll back to it"
            )
        raw = merge_field(state.current_raw, self.field, key, self.uri)
        tags = {
            name: value
            for name, value in tags_of(state.previous).items()
            if name in tag.META_TAGS.values()
        }
        tags.update(
            {
                tag.STAGE: "current",
                tag.ROLLBACK_OF: str(state.previous.version),
            }
        )
        if state.current is not None:
            tags[tag.PREVIOUS] = str(state.current.version)
        self.vault.write(self.name, raw, tags, self._content_type())
        self._tidy_after_move(self._state())

    def withdraw(self, token: str) -> None:
        """The newest version of NAME is current, so disable it and tag it ``withdrawn``:
        readers then see no current key (and no previous), as before it was promoted. With
        ``#FIELD`` (a JSON document other consumers read too) the document the promote replaced
        is first written again as the newest version, tagged ``keyguard-withdrawal-of``."""
        state = self._state()
        restored = tags_of(state.current).get(tag.WITHDRAWAL_OF)
        if restored is not None:  # a rerun after a crash before the disable below
            self._disable_version(state, restored)
            return
        if state.current is None or state.current_disabled or state.current_token() != token:
            return
        withdrawn = state.current
        self._retag(self.name, withdrawn, stage="withdrawn")
        before = self._before_promote(state)
        if before is not None:
            tags = {tag.WITHDRAWAL_OF: str(withdrawn.version)}
            self.vault.write(self.name, before, tags, self._content_type())
        self.vault.disable(self.name, withdrawn)

    def _before_promote(self, state: _State) -> str | None:
        """With ``#FIELD``: the document the promote replaced (None: there was none)."""
        if not self.field or state.previous is None:
            return None
        found = self.vault.read(self.name, state.previous.version)
        if found is not None and found.value is not None:
            return found.value
        # Disabled by hand since: keep the other fields of what is served now.
        return drop_field(state.current_raw, self.field, self.uri)

    def _disable_version(self, state: _State, version_id: str) -> None:
        for version in state.versions:
            if str(version.version) == version_id and version.enabled:
                self.vault.disable(self.name, version)

    def discard_pending(self, token: str) -> None:
        for version in self._list(self.pending_name):
            tags = tags_of(version)
            if tags.get(tag.TOKEN) == token and tags.get(tag.STAGE) == "pending":
                self._retag(self.pending_name, version, stage="discarded")

    def describe(self) -> list[StoreVersion]:
        state = self._state()
        promoted = {tags_of(version).get(tag.TOKEN) for version in state.versions} - {None}
        rows: list[tuple[Any, int, StoreVersion]] = []
        for version in state.versions:
            stages = frozenset(
                s
                for s, holder in ((Stage.CURRENT, state.current), (Stage.PREVIOUS, state.previous))
                if version is holder
            )
            rank = 2 if Stage.CURRENT in stages else 1 if stages else 0
            rows.append((version.created_on or _NEVER, rank, self._version(version, stages)))
        for version in state.companion:
            if tags_of(version).get(tag.TOKEN) in promoted:
                continue  # the same key is listed as a version of NAME
            stages = frozenset({Stage.PENDING}) if version is state.pending else frozenset()
            rows.append(
                (version.created_on or _NEVER, 3 if stages else 0, self._version(version, stages))
            )
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return [row[2] for row in rows]

    @staticmethod
    def _version(version: SecretProperties, stages: frozenset[Stage]) -> StoreVersion:
        return StoreVersion(str(version.version), stages, tag.meta_from_tags(version.tags))

    def retire_superseded(self) -> None:
        """Disable versions holding no stage (their keys are revoked); never current/previous."""
        state = self._state()
        for version in state.versions:
            if version.enabled and version is not state.current and version is not state.previous:
                self.vault.disable(self.name, version)
        for version in state.companion:
            if version.enabled and version is not state.pending:
                self.vault.disable(self.pending_name, version)

    def _content_type(self) -> str | None:
        return "application/json" if self.field else None

    # -- the lease ------------------------------------------------------------------------------

    def lease(self, owner: str, ttl_seconds: float) -> AbstractContextManager[HeldLease]:
        """Hold the store by a claim version in ``NAME-lease`` (see :mod:`.claims`)."""
        return hold_claim(self.vault, self.lease_name, self.uri, owner, ttl_seconds)
