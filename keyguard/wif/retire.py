"""``wif retire-key``: deactivate the environment's static key once federation carries it.

Two facts first, both from the usage report: the environment's service account carries
traffic, and the static key has been idle for a whole grace period since then (the rotation's
own drain check, `keyguard.rotation.revoke.drain_wait`, with the first federated traffic as
the moment of the switch). Only then is the key set ``inactive`` (reversible) and the
environment's stores recorded as retired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from keyguard.admin.client import AdminClient
from keyguard.config import Config
from keyguard.errors import PendingError, UsageError
from keyguard.rotation import KeyRef, RotationState, open_engine
from keyguard.rotation.context import utcnow
from keyguard.rotation.revoke import drain_wait
from keyguard.stores.interface import Stage
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
    if record.retired:
        return Retired(
            env_name, f"{env_name}: static key {record.retired.get('hint')} already retired"
        )
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
    engine = open_engine(config, env_name, admin, clock=clock)
    served = [v for s in engine.stores if (v := s.get(Stage.CURRENT)) is not None]
    hints = ", ".join(sorted({v.hint for v in served}))
    olds: list[KeyRef] = []
    for value in {v.fingerprint: v for v in served}.values():
        key = admin.find_key(value, workspace_id=env.workspace)
        olds.append(KeyRef(value.fingerprint, value.hint, key.id, key.name, key.workspace_id))
    state = RotationState(
        token="wif-retire",  # noqa: S106 - a journal label, not a secret
        new=KeyRef("", "federation"),
        old_keys=olds,
        started_at=switched,
        updated_at=switched,
    )
    if olds and engine.grace > timedelta(0):  # as the rotation's revoke step: 0 = at once
        waiting = drain_wait(engine, state, olds)
        if waiting is not None:
            raise PendingError(waiting.message)
    live = [k for k in olds if k.id and admin.get_key(k.id).status == "active"]
    if live:
        confirm(
            f"{env_name}: deactivate the static key(s) {', '.join(k.label() for k in live)}; "
            f"service account {record.service_account_id} has carried traffic since "
            f"{switched:%Y-%m-%d %H:%M}Z"
        )
    for k in live:
        assert k.id is not None
        admin.update_key(k.id, status="inactive")
    record.retired = {
        "key_ids": [k.id for k in olds],
        "hint": hints or None,
        "at": datetime.now(UTC).isoformat(),
        "stores": list(env.stores),
    }
    save_record(config.state_dir, record)
    done = ", ".join(k.label() for k in live) or "no active static key"
    return Retired(
        env_name,
        f"{env_name}: retired {done}; the stores ({', '.join(env.stores)}) are marked retired "
        f"and the environment is federated through {record.rule_id}",
    )
