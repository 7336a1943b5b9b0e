"""The environments that serve the leaked key, after its deactivation: rotated at once (no grace,
no drain) when a new key is waiting, else asked for one; meanwhile an environment goes back to
its previous key when that one is still active, works and never leaked (store operations only:
the deactivation stays the incident's single Admin API write). A leaked pending key is
discarded, never promoted."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from keyguard.admin.protocol import AdminApi
from keyguard.config import Config
from keyguard.errors import ExitCode, KeyguardError
from keyguard.incident.holdings import Holding, LeakedKey
from keyguard.keys import scrub_text as scrub
from keyguard.models import Say
from keyguard.rotation import (
    RollbackRefused,
    RotationEngine,
    open_engine,
    rollback,
    rotation_request,
)
from keyguard.stores.interface import Stage, stage_map


@dataclass
class EnvironmentOutcome:
    """What happened to one affected environment."""

    environment: str
    stages: list[Holding]
    action: str  # rotated, waiting, not served, error
    message: str
    request: dict[str, Any] | None = None
    exit_code: int = 0  # of the failure, for action "error"


#: (environment, leaked key, serves it as current) -> outcome
Rotator = Callable[[str, LeakedKey, bool], EnvironmentOutcome]


def _by_environment(holdings: Iterable[Holding]) -> dict[str, list[Holding]]:
    grouped: dict[str, list[Holding]] = {}
    for holding in holdings:
        grouped.setdefault(holding.environment, []).append(holding)
    return grouped


def handle_environments(
    holdings: list[Holding], leaked: LeakedKey, rotate: Rotator
) -> Iterator[EnvironmentOutcome]:
    """Rotate each environment that serves or would serve the key; note those that only keep it.

    A leaked pending key goes to the rotator too: it discards the key (never promotes it) and
    asks for another one.
    """
    for environment, stages in _by_environment(holdings).items():
        kinds = {holding.stage for holding in stages}
        if kinds & {Stage.CURRENT, Stage.PENDING}:
            outcome = rotate(environment, leaked, Stage.CURRENT in kinds)
            outcome.stages = stages
            yield outcome
        else:
            yield EnvironmentOutcome(
                environment,
                stages,
                "not served",
                f"{environment}: keeps the leaked key only as the previous version (rollback "
                "target); it is not served. Do not roll back to it (`keyguard rollback` refuses "
                "a key of the incident log)",
            )


def discard_leaked_pending(engine: RotationEngine, leaked: LeakedKey) -> bool:
    """Drop the leaked key from every store's pending stage and close its rotation, if any.

    A delivered key that leaked must never be promoted. No Admin API write happens here.
    """
    state = engine.latest()
    closed = False
    if state is not None and state.phase in ("creating", "delivered"):
        ours = state.new.fingerprint == leaked.fingerprint if leaked.fingerprint else None
        if ours or (ours is None and state.new.id == leaked.id):
            rollback(engine)  # before the update, a rollback discards the pending key everywhere
            closed = True
    dropped = False
    with engine.leased():
        for store in engine.stores:
            version = stage_map(store.describe()).get(Stage.PENDING)
            if version is None:
                continue
            if leaked.is_value(store.get(Stage.PENDING), version.meta.key_id):
                store.discard_pending(version.meta.token or version.version_id)
                dropped = True
    return closed or dropped


def serve_previous(engine: RotationEngine, leaked: LeakedKey, say: Say) -> str | None:
    """Roll the stores back to the previous key if it is active, works and never leaked.

    Store operations only: an inactive previous key is not re-activated (the incident makes a
    single Admin API write). Returns the hint now served, or None when nothing changed.
    """
    state = engine.latest()
    if state is not None and state.phase in ("creating", "delivered"):
        return None  # a rollback would only discard a pending key
    try:
        rollback(engine, reactivate=False)
    except RollbackRefused as exc:
        why = str(exc).removeprefix(f"{engine.env.name}: ")  # said once, not twice
        say(f"{engine.env.name}: not rolling back to the previous key: {why}")
        return None
    served = [store.get(Stage.CURRENT) for store in engine.stores]
    if any(value is None or leaked.is_value(value, None) for value in served):
        return None  # e.g. an earlier rollback: the leaked key is what it went back to
    return served[0].hint if served[0] is not None else None


def engine_rotator(config: Config, admin: AdminApi, say: Say) -> Rotator:
    """The seam to ``keyguard.rotation``: force semantics, no grace, no drain."""

    def rotate(environment: str, leaked: LeakedKey, serves: bool) -> EnvironmentOutcome:
        try:
            return _rotate(config, admin, say, environment, leaked, serves)
        except KeyguardError as exc:
            return EnvironmentOutcome(
                environment,
                [],
                "error",
                f"{environment}: rotation failed: {exc}. The leaked key stays inactive; once "
                f"the cause is fixed, finish with `keyguard rotate {environment} --grace 0 "
                "--force`",
                exit_code=int(exc.exit_code),
            )
        except Exception as exc:  # a malformed store document: this environment only
            return EnvironmentOutcome(
                environment,
                [],
                "error",
                f"{environment}: rotation failed: {scrub(f'{type(exc).__name__}: {exc}')}. The "
                f"leaked key stays inactive; fix the store, then `keyguard rotate {environment} "
                "--grace 0 --force`",
                exit_code=int(ExitCode.USAGE),
            )

    return rotate


def _rotate(
    config: Config, admin: AdminApi, say: Say, environment: str, leaked: LeakedKey, serves: bool
) -> EnvironmentOutcome:
    # An incident cannot wait for a lost journal to come back: rebuild it from the stores
    # (recover) and finish at once, with no grace and no drain.
    engine = open_engine(
        config, environment, admin, grace=timedelta(0), force=True, say=say, recover=True
    )
    discarded = discard_leaked_pending(engine, leaked)
    state = engine.latest()
    new = None
    if state is None or not state.in_flight:
        for store in engine.stores:
            value = store.get(Stage.PENDING)
            if value is not None and value.fingerprint != leaked.fingerprint:
                new = value
                break
    in_flight = (
        state is not None and state.in_flight and state.new.fingerprint != leaked.fingerprint
    )
    if serves and (in_flight or new is not None):
        outcome = engine.rotate(new)
        action = "rotated" if outcome.finished else "waiting"
        return EnvironmentOutcome(environment, [], action, outcome.message)
    why = f"its key {leaked.hint} ({leaked.id}) leaked and was deactivated"
    served_again = serve_previous(engine, leaked, say) if serves else None
    if served_again is not None:
        why += f"; meanwhile it serves the previous key {served_again} again"
    if discarded:
        why = (
            f"the new key {leaked.hint} ({leaked.id}) waiting as pending leaked and was "
            "deactivated; it was discarded, never put in service"
        )
    request = rotation_request(engine, why)
    text = str(request["text"])
    if served_again is not None:
        text = (
            f"{environment}: the leaked key {leaked.hint} no longer serves: the stores serve the "
            f"previous key {served_again} again (still active, checked with GET /v1/models). "
            f"{text}"
        )
    return EnvironmentOutcome(environment, [], "waiting", text, request)
