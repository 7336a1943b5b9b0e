"""What every rotation step shares: the run's environment, admin, stores, journal, clock,
notifier, and the outcome it reports. Steps import this module, never the engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from keyguard.admin.protocol import (
    FindsKey,
    GetsKey,
    ListsKeys,
    ReadsUsage,
    UpdatesKey,
    VerifiesKey,
)
from keyguard.config import Environment
from keyguard.errors import LeaseHeldError, UsageError
from keyguard.journal import RotationJournal
from keyguard.models import Say
from keyguard.rotation.state import RotationState, replay
from keyguard.stores.interface import SecretStore, StoreLease
from keyguard.stores.lease import new_owner

Clock = Callable[[], datetime]
#: The other configured environments and their stores, opened when first asked for.
Peers = Callable[[], Sequence[tuple[str, Sequence[SecretStore]]]]

#: How far the local clock may be from the API's before keyguard refuses to revoke.
CLOCK_SKEW_LIMIT = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Admin(GetsKey, ListsKeys, UpdatesKey, ReadsUsage, VerifiesKey, FindsKey, Protocol):
    """The part of ``AdminClient`` the engine uses (a fake satisfies it in unit tests)."""


@dataclass(frozen=True)
class Outcome:
    """What one run did for one environment."""

    environment: str
    finished: bool
    message: str
    waiting_for: str | None = None  # key, grace, report, drain, shared

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


class RotationRun:
    """One run over one environment: what it acts on, how it tells time, and where it reports."""

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
        self.say: Say = say or (lambda _message: None)
        self.lease_ttl = lease_ttl
        self.recover = recover
        self.peers: Peers = peers or (lambda: ())
        self.owner = new_owner()
        self.leases: list[StoreLease] = []  # held while ``recover.hold_leases`` runs

    # ----------------------------------------------------------------- the leases
    def renew_leases(self, before: str) -> None:
        """Prove this run still holds every store's lease before ``before`` (a write, or the
        next step), extending them when due; else ``LeaseHeldError`` and nothing written."""
        for lease in self.leases:
            try:
                lease.renew()
            except LeaseHeldError as exc:
                raise LeaseHeldError(
                    f"{self.env.name}: stopped before {before}: {exc}. Nothing after the last "
                    "journaled step was done; run the command again once the other run has "
                    "ended: the journal resumes it from there"
                ) from None

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
            f"{api:%Y-%m-%d %H:%M:%S}Z ({format_span(gap)} apart, more than "
            f"{format_span(CLOCK_SKEW_LIMIT)}); fix the local clock (NTP)"
        )

    # ----------------------------------------------------------------- the journal
    def history(self) -> list[RotationState]:
        """Every rotation of this environment, replayed from the journal."""
        return replay(self.journal.entries())

    def latest(self) -> RotationState | None:
        """The newest rotation, if any."""
        states = self.history()
        return states[-1] if states else None

    def state_of(self, token: str) -> RotationState:
        """Rotation ``token`` as the journal shows it now."""
        for state in self.history():
            if state.token == token:
                return state
        raise AssertionError("rotation vanished from the journal")  # pragma: no cover

    def request_text(self) -> str:
        """What a person must create and how to hand it over."""
        where = f" in workspace {self.env.workspace}" if self.env.workspace else ""
        return (
            f"create an API key named {key_name(self.env, self.clock())!r}{where} in the "
            "Anthropic Console (Settings > API keys), then hand it over: "
            f"`keyguard deliver {self.env.name}` (hidden prompt) or pipe it into "
            f"`keyguard rotate {self.env.name}`"
        )


def format_span(delta: timedelta) -> str:
    """``1.5 hours``, ``3 minutes``: a time span for messages."""
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds // 60} minutes" if seconds >= 60 else f"{seconds} seconds"
