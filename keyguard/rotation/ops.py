"""Status, plans and rotation requests: the read-only operations around the state machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from keyguard.errors import KeyguardError, NotFoundError, UsageError
from keyguard.policy import format_duration
from keyguard.rotation.engine import RotationEngine, key_name
from keyguard.rotation.servable import RollbackRefused as RollbackRefused
from keyguard.rotation.state import KeyRef, RotationState
from keyguard.rotation.undo import rollback as rollback
from keyguard.stores.interface import Stage, stage_map


@dataclass(frozen=True)
class EnvStatus:
    """One environment at a glance."""

    environment: str
    phase: str
    current: str | None  # hint (and id) of the served key
    age: timedelta | None
    due: bool
    waiting_for: str

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "phase": self.phase,
            "current": self.current,
            "age_days": round(self.age.total_seconds() / 86400, 1) if self.age else None,
            "due": self.due,
            "waiting_for": self.waiting_for,
        }


def status(engine: RotationEngine) -> EnvStatus:
    """Where the environment's rotation stands and what it waits for (reads only)."""
    from keyguard.rotation.recover import describe, find_orphan

    env = engine.env
    st = engine.latest()
    current, created = _served(engine)
    now = engine.clock()
    age0 = now - created if created else None
    try:
        orphan = find_orphan(engine)
    except KeyguardError as exc:
        return EnvStatus(env.name, "journal lost", current, age0, False, str(exc))
    if orphan is not None:
        lost = describe(engine, orphan).split(": ", 1)[1]
        return EnvStatus(env.name, "journal lost", current, age0, False, lost)
    age = now - created if created else None
    if (retired := _retired(engine)) and not (st is not None and st.in_flight):
        return EnvStatus(env.name, "federated", current, age, False, retired)
    due = current is None or (age is not None and age >= env.policy.due_after)
    phase = st.phase if st is not None else "idle"
    if st is not None and st.in_flight:
        waiting = _in_flight_wait(engine, st)
    elif current is None:
        waiting = "a first key: " + engine.request_text()
    elif due:
        waiting = (
            f"a new key (current is {_days(age)} old, due after "
            f"{format_duration(env.policy.due_after)}): " + engine.request_text()
        )
    elif created is not None:
        waiting = f"nothing; next rotation due {created + env.policy.due_after:%Y-%m-%d}"
    else:
        waiting = "nothing (the current key's age is unknown)"
    if st is not None and st.phase == "revoked":
        waiting += (
            f"; archives {', '.join(k.hint for k in st.archive_pending())} after "
            f"{format_duration(env.policy.archive_after)}"
        )
    return EnvStatus(env.name, phase, current, age, due and not (st and st.in_flight), waiting)


def _retired(engine: RotationEngine) -> str | None:
    """What waits when `keyguard wif retire-key` retired the static key: nothing to rotate."""
    if engine.env.federation is None:
        return None
    from keyguard.wif.record import load_record

    record = load_record(engine.journal.path.parent, engine.env.name)
    if not record.retired:
        return None
    from keyguard.keys import scrub_text

    hint = record.retired.get("hint") if isinstance(record.retired, dict) else None
    return (
        f"nothing: static key {scrub_text(str(hint or '(none)'))} was retired by "
        "`keyguard wif retire-key`; the environment is federated"
    )


def _days(age: timedelta | None) -> str:
    return f"{age.days}d" if age is not None else "?"


def _in_flight_wait(engine: RotationEngine, st: RotationState) -> str:
    run = f"run `keyguard rotate {engine.env.name}`"
    if st.phase == "creating":
        return (
            f"the delivered key {st.new.hint} to be stored in every store "
            f"({len(st.stored)} of {len(engine.stores)}); {run}"
        )
    if st.phase == "delivered":
        return f"the update: {st.new.hint} is pending in every store; {run}"
    if st.phase == "updating":
        return f"the update to finish ({len(st.promoted)} of {len(engine.stores)} stores); {run}"
    if st.phase == "updated":
        return f"verification of {st.new.hint}; {run}"
    olds = [k for k in st.revocable() if k.id not in st.revoked]
    if not olds:
        return f"the revoke step to close the rotation; {run}"
    from keyguard.rotation.revoke import served_elsewhere

    try:
        elsewhere = served_elsewhere(engine, olds)
        if elsewhere:
            return "; ".join(
                f"no environment to serve {old.label()} any more ({at} still does)"
                for old, at in elsewhere.values()
            )
        outcome = engine._drain_wait(st, olds)
    except KeyguardError as exc:
        return f"the drain check (usage report unavailable: {exc})"
    if outcome is None:
        return f"nothing: the old key can be revoked now; {run}"
    return outcome.message.split(": ", 1)[1]


def _served(engine: RotationEngine) -> tuple[str | None, datetime | None]:
    """The served key's label and creation time (Admin API, else when it was stored)."""
    for store in engine.stores:
        value = store.get(Stage.CURRENT)
        if value is None:
            continue
        version = stage_map(store.describe()).get(Stage.CURRENT)
        meta = version.meta if version else None
        key_id = meta.key_id if meta else None
        created = None
        try:
            api = engine.admin.get_key(key_id) if key_id else engine.admin.find_key(value)
            key_id, created = api.id, api.created_at
        except (NotFoundError, UsageError):
            pass
        if created is None and meta is not None:
            created = meta.stored_at
        return (f"{value.hint} ({key_id})" if key_id else value.hint), created
    return None, None


def rotation_request(engine: RotationEngine, why: str) -> dict[str, Any]:
    """A request for a person: what to create, where, and how to hand it over (Slack ``text``)."""
    env = engine.env
    name = key_name(env, engine.clock())
    text = (
        f"keyguard: environment *{env.name}* needs a new Anthropic API key ({why}). "
        + engine.request_text()[0].upper()
        + engine.request_text()[1:]
        + ". The next scheduled run finishes the rotation."
    )
    return {
        "text": text,
        "environment": env.name,
        "key_name": name,
        "workspace": env.workspace,
        "deliver": f"keyguard deliver {env.name}",
    }


def plan(engine: RotationEngine, key_given: str | None) -> list[str]:
    """What ``rotate`` would do now, step by step; reads only (``key_given``: its hint)."""
    from keyguard.rotation.recover import describe, find_orphan

    orphan = find_orphan(engine)
    if orphan is not None:
        return [describe(engine, orphan)]
    env = engine.env
    st = engine.latest()
    stores = ", ".join(s.uri for s in engine.stores)
    steps: list[str] = []
    if st is not None and st.in_flight:
        steps.append(f"continue rotation {st.token} ({st.phase}) of new key {st.new.label()}")
        phase_index = ["creating", "delivered", "updating", "updated", "verified"].index(st.phase)
        olds = st.revocable()
    elif key_given is None:
        return [f"{env.name}: nothing to do without a new key: " + engine.request_text()]
    else:
        steps.append(f"store the new key {key_given} as pending in: {stores}")
        phase_index = 1
        olds = []
        for store in engine.stores:
            value = store.get(Stage.CURRENT)
            if value is not None and value.hint not in [o.hint for o in olds]:
                olds.append(KeyRef(value.fingerprint, value.hint))
    if phase_index <= 2:
        steps.append(f"promote pending -> current, in this order: {stores}")
    if phase_index <= 3:
        check = f", run the check {env.check!r}" if env.check else ""
        steps.append(f"verify: read the key back from every store, GET /v1/models{check}")
    if olds:
        names = ", ".join(o.hint for o in olds)
        if engine.grace <= timedelta(0):
            steps.append(f"revoke {names} right after verify (--grace 0: no drain check)")
        else:
            steps.append(
                f"revoke {names} after the {format_duration(engine.grace)} grace period, "
                "once the usage report shows it idle"
                + (" (--force: without the drain check)" if engine.force else "")
            )
    else:
        steps.append("nothing to revoke (the stores held no key keyguard can identify)")
    return [f"{env.name}: {s if s.startswith('nothing') else 'would ' + s}" for s in steps]
