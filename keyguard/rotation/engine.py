"""The rotation state machine: create -> update -> verify -> revoke, resumable at every step."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from keyguard.admin.protocol import FindsKey, GetsKey, ReadsUsage, UpdatesKey, VerifiesKey
from keyguard.config import Environment
from keyguard.errors import (
    ConflictError,
    KeyguardError,
    LeaseHeldError,
    NotFoundError,
    UsageError,
)
from keyguard.journal import RotationJournal
from keyguard.keys import Secret, is_admin_key, is_api_key, is_leak_marked
from keyguard.models import ApiKey, Say
from keyguard.rotation.state import KeyRef, RotationState, replay
from keyguard.rotation.verify import key_workspace_problem, run_check, verify_problem
from keyguard.stores.interface import SecretStore, Stage, VersionMeta, stage_map
from keyguard.stores.lease import new_owner
from keyguard.words import plural

Clock = Callable[[], datetime]
#: The other configured environments and their stores, opened when first asked for.
Peers = Callable[[], Sequence[tuple[str, Sequence[SecretStore]]]]

#: How far the local clock may be from the API's before keyguard refuses to revoke.
CLOCK_SKEW_LIMIT = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Admin(GetsKey, UpdatesKey, ReadsUsage, VerifiesKey, FindsKey, Protocol):
    """The part of ``AdminClient`` the engine uses (a fake satisfies it in unit tests)."""


class VerificationError(KeyguardError):
    """The new key failed verification; the stores serve the old key again."""


class ClockSkewError(UsageError):
    """The local clock and the API's differ by more than ``CLOCK_SKEW_LIMIT``: no revoke."""


@dataclass(frozen=True)
class Outcome:
    """What one run did for one environment."""

    environment: str
    finished: bool
    message: str
    waiting_for: str | None = None  # key, grace, report, drain

    @property
    def exit_code(self) -> int:
        return 0 if self.finished else 5


def key_name(env: Environment, now: datetime) -> str:
    """The Console name the template asks for (``{env}``, ``{service}``, ``{date:%Y%m%d}``)."""
    try:
        return env.key_name_template().format(
            env=env.name, service=env.service or env.name, date=now
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(
            f"key_name template {env.key_name_template()!r} of {env.name} is invalid ({exc}); "
            "use {env}, {service} and {date:%Y%m%d}"
        ) from None


class RotationEngine:
    """Rotates the key of one environment across all its stores, journaling every step."""

    def __init__(
        self,
        env: Environment,
        *,
        admin: Admin,
        stores: Sequence[SecretStore],
        journal: RotationJournal,
        clock: Clock = utcnow,
        grace: timedelta | None = None,
        force: bool = False,
        say: Say | None = None,
        lease_ttl: float = 900.0,
        recover: bool = False,
        peers: Peers | None = None,
    ) -> None:
        self.env = env
        self.admin = admin
        self.stores = list(stores)
        self.journal = journal
        self.local_clock = clock
        # Every stamp and every grace, drain and archive decision is in the API's time.
        self.clock: Clock = self.api_now
        self.grace = env.policy.grace if grace is None else grace
        self.force = force
        self.say: Say = say or (lambda _msg: None)
        self.lease_ttl = lease_ttl
        self.recover = recover
        self.peers: Peers = peers or (lambda: ())
        self.owner = new_owner()

    # ----------------------------------------------------------------- time
    def api_now(self) -> datetime:
        """Now by the Anthropic API's clock (its last ``Date`` header, moved on since); the
        local clock only before the API has answered, or for an admin that tells no time."""
        told = getattr(self.admin, "server_time", None)
        when = told() if callable(told) else None
        return when if isinstance(when, datetime) else self.local_clock()

    def clock_problem(self) -> str | None:
        """Why nothing time-based may be decided now (None: the clocks agree)."""
        told = getattr(self.admin, "server_time", None)
        if not callable(told):
            return None  # an in-memory stand-in: the local clock is all there is
        api, local = told(), self.local_clock()
        if not isinstance(api, datetime):
            return (
                "the Anthropic API's answers carry no Date header, so the local clock "
                f"({local:%Y-%m-%d %H:%M:%S}Z) cannot be checked against the API's"
            )
        gap = abs(local - api)
        if gap <= CLOCK_SKEW_LIMIT:
            return None
        return (
            f"the local clock says {local:%Y-%m-%d %H:%M:%S}Z but the Anthropic API's says "
            f"{api:%Y-%m-%d %H:%M:%S}Z ({_span(gap)} apart, more than "
            f"{_span(CLOCK_SKEW_LIMIT)}); fix the local clock (NTP)"
        )

    # ----------------------------------------------------------------- state
    def history(self) -> list[RotationState]:
        return replay(self.journal.entries())

    def latest(self) -> RotationState | None:
        states = self.history()
        return states[-1] if states else None

    def request_text(self) -> str:
        """What a person must create and how to hand it over."""
        where = f" in workspace {self.env.workspace}" if self.env.workspace else ""
        return (
            f"create an API key named {key_name(self.env, self.clock())!r}{where} in the "
            "Anthropic Console (Settings > API keys), then hand it over: "
            f"`keyguard deliver {self.env.name}` (hidden prompt) or pipe it into "
            f"`keyguard rotate {self.env.name}`"
        )

    # ----------------------------------------------------------------- entry points
    @contextmanager
    def leased(self, delivered: Secret | None = None) -> Iterator[None]:
        """Hold every store's lease, in store order, for the whole run."""
        with ExitStack() as stack:
            for store in self.stores:
                try:
                    stack.enter_context(store.lease(self.owner, self.lease_ttl))
                except LeaseHeldError as exc:
                    raise LeaseHeldError(
                        f"{self.env.name}: another keyguard run is rotating this environment "
                        f"({exc}); this run changed nothing, run it again once that one ends"
                    ) from None
            from keyguard.rotation.recover import check_journal

            # Stores changed by a rotation the journal does not know: never guess from them.
            check_journal(self, recover=self.recover, delivered=delivered)
            yield

    def deliver(self, key: Secret) -> Outcome:
        """The create step alone: check the key and store it as pending everywhere."""
        with self.leased(key):
            st = self._create(key)
        return Outcome(
            self.env.name,
            True,
            f"{self.env.name}: new key {st.new.label()} stored as pending in "
            f"{plural(len(self.stores), 'store')}; "
            f"`keyguard rotate {self.env.name}` puts it in service",
        )

    def rotate(self, key: Secret | None = None) -> Outcome:
        """Create (if a key is given), then continue as far as the clock and traffic allow."""
        with self.leased(key):
            self._archive_due()
            st = self.latest()
            if key is not None:
                st = self._create(key)
            elif st is not None and st.phase == "creating":
                st = self._resume_create(st)
                if st is None:
                    latest = self.latest()
                    assert latest is not None
                    return Outcome(
                        self.env.name,
                        False,
                        f"{self.env.name}: the delivered key {latest.new.hint} is not stored "
                        f"anywhere yet; deliver it again with `keyguard deliver {self.env.name}`",
                        "key",
                    )
            if st is None or not st.in_flight:
                return Outcome(
                    self.env.name,
                    False,
                    f"{self.env.name}: waiting for a new key: " + self.request_text(),
                    "key",
                )
            return self._continue(st)

    def _continue(self, st: RotationState) -> Outcome:
        key = self._new_key(st)
        if st.updated_at is None:
            self._promote(st, key)
            st = self._reload(st)
        if st.verified_at is None:
            self._verify(st, key)
            st = self._reload(st)
        return self._revoke(st)

    def _reload(self, st: RotationState) -> RotationState:
        for s in self.history():
            if s.token == st.token:
                return s
        raise AssertionError("rotation vanished from the journal")  # pragma: no cover

    # ----------------------------------------------------------------- create
    def _create(self, key: Secret) -> RotationState:
        value = key.reveal()
        if is_admin_key(value):
            raise UsageError(
                "that is an admin key (sk-ant-admin01-...); deliver the new API key "
                "(sk-ant-api03-...) instead"
            )
        if not is_api_key(value):
            raise UsageError(
                f"the delivered value {key.redacted} is not an Anthropic API key "
                "(sk-ant-api03- + 93 characters + AA); copy the whole key from the Console"
            )
        st = self.latest()
        if st is not None and st.in_flight:
            if st.new.fingerprint == key.fingerprint:
                if st.phase == "creating":
                    self._store_pending(st, key)
                    return self._reload(st)
                self.say(f"{self.env.name}: key {st.new.hint} was already delivered")
                return st
            if st.phase != "creating":
                raise UsageError(
                    f"{self.env.name} is in the middle of rotation {st.token} (new key "
                    f"{st.new.hint}, {st.phase}); finish it with `keyguard rotate "
                    f"{self.env.name}` or undo it with `keyguard rollback {self.env.name}` "
                    "before delivering another key"
                )
            self._abandon(st, f"replaced by key {key.hint}")
        for store in self.stores:
            current = store.get(Stage.CURRENT)
            if current is not None and current.fingerprint == key.fingerprint:
                raise UsageError(
                    f"key {key.hint} is already the current key in {store.uri}; "
                    "create a new key in the Console"
                )
        api = self._identify_new(key)
        olds = self._current_keys()
        now = self.clock()
        token = f"{self.env.name}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        new = KeyRef(key.fingerprint, key.hint, api.id, api.name, api.workspace_id)
        self.journal.append(
            token,
            "create",
            "before",
            now,
            key=new.to_json(),
            olds=[o.to_json() for o in olds],
            expected_name=key_name(self.env, now),
        )
        st = self._reload_token(token)
        self._store_pending(st, key)
        return self._reload(st)

    def _reload_token(self, token: str) -> RotationState:
        for s in self.history():
            if s.token == token:
                return s
        raise AssertionError("rotation vanished from the journal")  # pragma: no cover

    def _identify_new(self, key: Secret) -> ApiKey:
        try:
            api = self.admin.find_key(key)
        except NotFoundError:
            raise NotFoundError(
                f"no API key with hint {key.hint} exists in the organization of the admin key; "
                "create it in that organization's Console and deliver it again"
            ) from None
        if api.status != "active":
            raise UsageError(
                f"key {key.hint} ({api.id}) is {api.status}, not active; create a new key"
            )
        if is_leak_marked(api.name):
            raise UsageError(
                f"key {key.hint} ({api.id}) is named {api.name!r}: keyguard marked it as leaked, "
                "so it never serves again; create a new key"
            )
        problem = key_workspace_problem(self.env.workspace, api)
        if problem is not None:
            raise UsageError(f"{self.env.name}: {problem}; create the key there ({key.hint})")
        expected = key_name(self.env, self.clock())
        if api.name != expected:
            self.say(f"{self.env.name}: note: key is named {api.name!r}, expected {expected!r}")
        return api

    def _current_keys(self) -> list[KeyRef]:
        """The keys the stores serve now (adopted when keyguard never saw them)."""
        found: dict[str, KeyRef] = {}
        for store in self.stores:
            current = store.get(Stage.CURRENT)
            if current is None or current.fingerprint in found:
                continue
            meta = stage_map(store.describe()).get(Stage.CURRENT)
            key_id = meta.meta.key_id if meta else None
            name = workspace = None
            if key_id is None:
                try:
                    api = self.admin.find_key(current)
                    key_id, name, workspace = api.id, api.name, api.workspace_id
                    self.say(f"{self.env.name}: adopting current key {current.hint} ({api.id})")
                except (NotFoundError, UsageError):
                    self.say(
                        f"{self.env.name}: current key {current.hint} in {store.uri} is not in "
                        "the organization's key list; keyguard will not revoke it"
                    )
            found[current.fingerprint] = KeyRef(
                current.fingerprint, current.hint, key_id, name, workspace
            )
        return list(found.values())

    def _store_pending(self, st: RotationState, key: Secret) -> None:
        meta = VersionMeta(
            key_id=st.new.id,
            hint=st.new.hint,
            fingerprint=st.new.fingerprint,
            stored_at=self.clock(),
            token=st.token,
            environment=self.env.name,
        )
        for index, store in enumerate(self.stores):
            if index in st.stored:
                continue
            self.journal.append(
                st.token, "create", "before", self.clock(), store_index=index, store=store.uri
            )
            store.put_pending(key, meta)
            self.journal.append(
                st.token, "create", "after", self.clock(), store_index=index, store=store.uri
            )
        self.journal.append(st.token, "create", "after", self.clock())
        self.say(f"{self.env.name}: new key {st.new.label()} stored as pending in every store")

    def _resume_create(self, st: RotationState) -> RotationState | None:
        """Finish storing a delivered key after a crash, reading it back from any store."""
        for store in self.stores:
            pending = store.get(Stage.PENDING)
            if pending is not None and pending.fingerprint == st.new.fingerprint:
                self._store_pending(st, pending)
                return self._reload(st)
        return None

    def _abandon(self, st: RotationState, reason: str) -> None:
        for store in self.stores:
            store.discard_pending(st.token)
        self.journal.append(st.token, "create", "closed", self.clock(), reason=reason)

    # ----------------------------------------------------------------- update
    def _new_key(self, st: RotationState) -> Secret:
        """The new key's value, read back from the first store that has it."""
        for store in self.stores:
            for stage in (Stage.PENDING, Stage.CURRENT):
                value = store.get(stage)
                if value is not None and value.fingerprint == st.new.fingerprint:
                    return value
        raise ConflictError(
            f"{self.env.name}: no store holds the key {st.new.hint} of rotation {st.token} any "
            f"more; deliver a new key with `keyguard deliver {self.env.name}`"
        )

    def _promote(self, st: RotationState, key: Secret) -> None:
        """Promote in store order; a failure stops here and the next run goes on from it.

        Both keys stay active until verify has seen the new key in every store, so a store
        that still serves the old key during the stop is safe.
        """
        del key
        if not st.promote_started:
            self.journal.append(st.token, "promote", "before", self.clock())
        for index, store in enumerate(self.stores):
            if index in st.promoted:
                continue
            self.journal.append(
                st.token, "promote", "before", self.clock(), store_index=index, store=store.uri
            )
            store.promote(st.token)
            self.journal.append(
                st.token, "promote", "after", self.clock(), store_index=index, store=store.uri
            )
        self.journal.append(st.token, "promote", "after", self.clock())
        self.say(f"{self.env.name}: every store now serves the new key {st.new.hint}")

    # ----------------------------------------------------------------- verify
    def _verify(self, st: RotationState, key: Secret) -> None:
        self.journal.append(st.token, "verify", "before", self.clock())
        problem = self._verify_problem(st, key)
        if problem is None:
            self.journal.append(st.token, "verify", "after", self.clock())
            self.say(f"{self.env.name}: verified {st.new.hint} in every store and with the API")
            return
        self.journal.append(st.token, "verify", "failed", self.clock(), reason=problem)
        served_again = self._restore_old(st)
        self.journal.append(st.token, "verify", "closed", self.clock(), reason=f"failed: {problem}")
        raise VerificationError(
            f"{self.env.name}: the new key {st.new.hint} failed verification: {problem}. "
            f"{served_again} Nothing was revoked; deliver another key when fixed."
        )

    def _verify_problem(self, st: RotationState, key: Secret) -> str | None:
        for store in self.stores:
            value = store.get(Stage.CURRENT)
            if value is None or value.fingerprint != st.new.fingerprint:
                got = value.hint if value else "nothing"
                return f"{store.uri} serves {got} instead"
        problem = verify_problem(self.env.workspace, self.admin.verify_key(key, self.env.workspace))
        if problem is not None:
            return problem
        if self.env.check:
            return run_check(self.env.check, self.env.name, st.new)
        return None

    def _restore_old(self, st: RotationState) -> str:
        """Put the previous key back where the new one was promoted (old key is still active)."""
        if not st.olds:
            # Nothing was served before: serve nothing again, so the next run starts clean.
            for store in self.stores:
                store.withdraw(st.token)
            return "The stores had no key before, and hold none again."
        for store in self.stores:
            value = store.get(Stage.CURRENT)
            if value is not None and value.fingerprint == st.new.fingerprint:
                store.rollback()
        return "Every store serves the previous key again."

    # ----------------------------------------------------------------- revoke
    def _revoke(self, st: RotationState) -> Outcome:
        from keyguard.rotation.revoke import revoke_step

        return revoke_step(self, st)

    def _drain_wait(self, st: RotationState, olds: list[KeyRef]) -> Outcome | None:
        from keyguard.rotation.revoke import drain_wait

        return drain_wait(self, st, olds)

    def _archive_due(self) -> None:
        from keyguard.rotation.revoke import archive_due

        archive_due(self)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds // 60} minutes" if seconds >= 60 else f"{seconds} seconds"
