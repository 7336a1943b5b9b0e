"""``wif retire-key``: deactivate the environment's static key once federation carries it.

Two facts first, both from the usage report: the environment's service account carries
traffic, and the static key has been idle for a whole grace period since then (the rotation's
own drain check, `keyguard.rotation.revoke.drain_wait`, with the first federated traffic as
the moment of the switch). And the facts the rotation's revoke step proves: which key each
store serves (`keyguard.rotation.verify.identify_served_key`: it authenticates, and its
recorded id or else exactly one key shows its hint), that no other environment serves it
(`served_elsewhere`, exit 5) and that the local clock agrees with the API's (exit 2). Only
then is the key set ``inactive`` (reversible) and the environment's stores recorded as retired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from keyguard.admin.client import AdminClient
from keyguard.config import Config
from keyguard.errors import ConflictError, PendingError, UsageError
from keyguard.rotation import KeyRef, RotationEngine, RotationState, open_engine
from keyguard.rotation.context import utcnow
from keyguard.rotation.revoke import (
    ClockSkewError,
    drain_wait,
    refuse_skewed_clock,
    served_elsewhere,
)
from keyguard.rotation.status import retirement
from keyguard.rotation.verify import identify_served_key
from keyguard.stores.interface import Stage, stage_map
from keyguard.wif.api import WifClient
from keyguard.wif.record import load_record, save_record

Confirm = Callable[[str], None]
#: How far back to look for the service account's first traffic when apply's time is unknown.
LOOKBACK = timedelta(days=7)


@dataclass
class Retired:
    environment: str
    message: str


def first_traffic(client: WifClient, sa_id: str, since: datetime, now: datetime) -> datetime | None:
    """When the usage report first shows the service account's tokens (a bucket's end)."""
    rows = [end for end, tokens in client.service_account_tokens(sa_id, since, now) if tokens]
    return min(rows) if rows else None


def served_keys(engine: RotationEngine) -> tuple[list[KeyRef], list[str]]:
    """The keys the stores serve, each proven (``identify_served_key``), and notes on the
    values that do not authenticate (nothing to deactivate). ``ConflictError`` (exit 2) for a
    live key that cannot be proven: it is never guessed, and the environment not retired."""
    env = engine.env.name
    found: dict[str, KeyRef] = {}
    dead: list[str] = []
    for store in engine.stores:
        value = store.get(Stage.CURRENT)
        if value is None or value.fingerprint in found:
            continue
        version = stage_map(store.describe()).get(Stage.CURRENT)
        api = identify_served_key(engine.admin, value, version.meta.key_id if version else None)
        if isinstance(api, str):
            result = engine.admin.verify_key(value)
            if not result.usable and result.problem is None:
                dead.append(
                    f"{store.uri} serves {value.hint}: {api}; keyguard deactivated nothing for it"
                )
                continue
            raise ConflictError(
                f"{env}: not retiring: {store.uri} serves the live key {value.hint}, but {api}. "
                "keyguard deactivated nothing; find the key in the Console, put the store's "
                f"value right, and run `keyguard wif retire-key {env}` again"
            )
        found[value.fingerprint] = KeyRef(
            value.fingerprint, value.hint, api.id, api.name, api.workspace_id
        )
    return list(found.values()), dead


def refuse_shared(engine: RotationEngine, keys: list[KeyRef]) -> None:
    """``PendingError`` (exit 5, as rotate) while another environment serves one of ``keys``."""
    elsewhere = served_elsewhere(engine, keys)
    if elsewhere:
        env = engine.env.name
        held = "; ".join(f"{key.label()} is still served by {at}" for key, at in elsewhere.values())
        raise PendingError(
            f"{env}: not deactivating the static key: {held}. Rotate that environment to its "
            f"own key (one key per environment), then run `keyguard wif retire-key {env}` again"
        )


def retire_key(
    config: Config,
    env_name: str,
    admin: AdminClient,
    client: WifClient,
    confirm: Confirm,
    clock: Callable[[], datetime] = utcnow,
) -> Retired:
    """Deactivate the static key when it may go; PendingError (exit 5) says what it waits for."""
    env = config.environment(env_name)
    if env.federation is None:
        raise UsageError(f"{env_name} has no [environments.{env_name}.federation] table")
    record = load_record(config.state_dir, env_name)
    engine = open_engine(config, env_name, admin, clock=clock)
    earlier = retirement(engine)  # the record's word is checked, never taken
    if earlier is not None and earlier.proven:
        return Retired(env_name, f"{env_name}: already retired: {earlier.message}")
    if not record.applied or not record.service_account_id:
        raise PendingError(
            f"{env_name}: waiting for `keyguard wif apply {env_name}` (nothing applied)"
        )
    now = clock()
    applied = datetime.fromisoformat(record.applied_at or now.isoformat())
    since = min(applied, now - timedelta(minutes=1)) - timedelta(hours=1)
    switched = first_traffic(client, record.service_account_id, max(since, now - LOOKBACK), now)
    if switched is None:
        raise PendingError(
            f"{env_name}: waiting for traffic from service account {record.service_account_id} "
            f"in the usage report (it lags up to {env.policy.usage_lag}); deploy the workload "
            f"with `keyguard wif env {env_name}` and run this again"
        )
    olds, dead = served_keys(engine)
    live = [k for k in olds if k.id is not None and admin.get_key(k.id).status == "active"]
    refuse_shared(engine, live)
    if live:
        try:
            refuse_skewed_clock(engine, live)
        except ClockSkewError:
            raise ClockSkewError(
                f"{env_name}: not deactivating {', '.join(k.label() for k in live)}: "
                f"{engine.clock_problem() or 'the local clock and the API disagree'}, then run "
                f"`keyguard wif retire-key {env_name}` again; the key stays active"
            ) from None
    state = RotationState(
        token="wif-retire",  # noqa: S106 - a journal label, not a secret
        new=KeyRef("", "federation"),
        old_keys=olds,
        started_at=switched,
        updated_at=switched,
    )
    if live and engine.grace > timedelta(0):  # as the rotation's revoke step: 0 = at once
        waiting = drain_wait(engine, state, live)
        if waiting is not None:
            raise PendingError(waiting.message)
    if live:
        confirm(
            f"{env_name}: deactivate the static key(s) {', '.join(k.label() for k in live)}; "
            f"service account {record.service_account_id} has carried traffic since "
            f"{switched:%Y-%m-%d %H:%M}Z"
        )
        # A last look right before the write (the rotation's check_not_served looks at the
        # environment's own stores, which here keep the retired key by design): the peers.
        refuse_shared(engine, live)
    for k in live:
        assert k.id is not None
        admin.update_key(k.id, status="inactive")
    hints = sorted({k.hint for k in olds})
    record.retired = {
        "key_ids": [k.id for k in olds],
        "hint": ", ".join(hints) or None,
        "at": datetime.now(UTC).isoformat(),
        "stores": list(env.stores),
    }
    save_record(config.state_dir, record)
    done = ", ".join(k.label() for k in live) or "no active static key"
    notes = "".join(f" Note: {note}." for note in dead)
    if earlier is not None:
        notes += f" (Before this run, {earlier.message}.)"
    return Retired(
        env_name,
        f"{env_name}: retired {done}; the stores ({', '.join(env.stores)}) are marked retired "
        f"and the environment is federated through {record.rule_id}." + notes,
    )
