"""Status, plans and rotation requests: the read-only operations around the state machine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from keyguard.errors import KeyguardError, NotFoundError, UsageError
from keyguard.policy import format_duration
from keyguard.rotation.context import RotationRun, key_name
from keyguard.rotation.recover import describe, find_orphan
from keyguard.rotation.revoke import drain_wait, served_elsewhere
from keyguard.rotation.state import KeyRef, RotationState
from keyguard.stores.interface import Stage, stage_map
from keyguard.wif.record import load_record


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


def status(run: RotationRun) -> EnvStatus:
    """Where the environment's rotation stands and what it waits for (reads only)."""
    env = run.env
    state = run.latest()
    current, created = _served(run)
    now = run.clock()
    age = now - created if created else None
    try:
        orphan = find_orphan(run)
    except KeyguardError as exc:
        return EnvStatus(env.name, "journal lost", current, age, False, str(exc))
    if orphan is not None:
        lost = describe(run, orphan).split(": ", 1)[1]
        return EnvStatus(env.name, "journal lost", current, age, False, lost)
    retired = retirement(run)
    if retired is not None and retired.proven and not (state is not None and state.in_flight):
        return EnvStatus(env.name, "federated", current, age, False, "nothing: " + retired.message)
    due = current is None or (age is not None and age >= env.policy.due_after)
    phase = state.phase if state is not None else "idle"
    if state is not None and state.in_flight:
        waiting = _in_flight_wait(run, state)
    elif current is None:
        waiting = "a first key: " + run.request_text()
    elif due:
        waiting = (
            f"a new key (current is {_days(age)} old, due after "
            f"{format_duration(env.policy.due_after)}): " + run.request_text()
        )
    elif created is not None:
        waiting = f"nothing; next rotation due {created + env.policy.due_after:%Y-%m-%d}"
    else:
        waiting = "nothing (the current key's age is unknown)"
    if state is not None and state.phase == "revoked":
        waiting += (
            f"; archives {', '.join(key.hint for key in state.archive_pending())} after "
            f"{format_duration(env.policy.archive_after)}"
        )
    if retired is not None and not retired.proven:
        waiting += f"; note: {retired.message}, so it is rotated as any other environment"
    return EnvStatus(
        env.name, phase, current, age, due and not (state and state.in_flight), waiting
    )


@dataclass(frozen=True)
class Retirement:
    """What the WIF record says `keyguard wif retire-key` did, checked against the API and the
    stores: ``proven``, what was retired; else what is inconsistent."""

    proven: bool
    message: str


_KEY_ID_RE = re.compile(r"apikey_[A-Za-z0-9]{1,64}")


def retirement(run: RotationRun) -> Retirement | None:
    """None when the environment's WIF record claims no retirement; else whether it holds.

    The record is a local file: its word alone never stops rotation. It holds when it names
    key ids (a list, empty when the stores held no key), each a key of the organization that is
    not active, and no store of the environment serves a key that authenticates.
    """
    if run.env.federation is None:
        return None
    record = load_record(run.journal.path.parent, run.env.name)
    if not record.retired:
        return None
    said = "the WIF record says `keyguard wif retire-key` retired the static key, but"
    ids = record.retired.get("key_ids") if isinstance(record.retired, dict) else None
    if not isinstance(ids, list) or not all(
        isinstance(key_id, str) and _KEY_ID_RE.fullmatch(key_id) for key_id in ids
    ):
        return Retirement(False, f"{said} it names no list of apikey_ ids (key_ids)")
    labels = []
    for key_id in ids:
        try:
            api = run.admin.get_key(key_id)
        except NotFoundError:
            return Retirement(False, f"{said} its key id {key_id} is no key of the organization")
        if api.status == "active":
            return Retirement(False, f"{said} key {api.partial_key_hint} ({api.id}) is active")
        labels.append(f"{api.partial_key_hint} ({api.id}, {api.status})")
    seen: set[str] = set()
    for store in run.stores:
        for stage in (Stage.CURRENT, Stage.PENDING):
            value = store.get(stage)
            if value is None or value.fingerprint in seen:
                continue
            seen.add(value.fingerprint)
            result = run.admin.verify_key(value)
            if result.usable or result.problem is not None:  # live (a 401/403 is dead)
                return Retirement(
                    False, f"{said} {store.uri} still serves a live key {value.hint} ({stage})"
                )
    return Retirement(
        True,
        f"static key {', '.join(labels) or '(none)'} was retired by `keyguard wif retire-key`; "
        "the environment is federated",
    )


def _days(age: timedelta | None) -> str:
    return f"{age.days}d" if age is not None else "?"


def _in_flight_wait(run: RotationRun, state: RotationState) -> str:
    again = f"run `keyguard rotate {run.env.name}`"
    if state.phase == "creating":
        return (
            f"the delivered key {state.new.hint} to be stored in every store "
            f"({len(state.stored)} of {len(run.stores)}); {again}"
        )
    if state.phase == "delivered":
        return f"the update: {state.new.hint} is pending in every store; {again}"
    if state.phase == "updating":
        return f"the update to finish ({len(state.promoted)} of {len(run.stores)} stores); {again}"
    if state.phase == "updated":
        return f"verification of {state.new.hint}; {again}"
    old_keys = [key for key in state.revocable() if key.id not in state.revoked]
    if not old_keys:
        return f"the revoke step to close the rotation; {again}"
    try:
        elsewhere = served_elsewhere(run, old_keys)
        if elsewhere:
            return "; ".join(
                f"no environment to serve {old.label()} any more ({at} still does)"
                for old, at in elsewhere.values()
            )
        outcome = drain_wait(run, state, old_keys)
    except KeyguardError as exc:
        return f"the drain check (usage report unavailable: {exc})"
    if outcome is None:
        return f"nothing: the old key can be revoked now; {again}"
    return outcome.message.split(": ", 1)[1]


def _served(run: RotationRun) -> tuple[str | None, datetime | None]:
    """The served key's label and creation time (Admin API, else when it was stored)."""
    for store in run.stores:
        value = store.get(Stage.CURRENT)
        if value is None:
            continue
        version = stage_map(store.describe()).get(Stage.CURRENT)
        meta = version.meta if version else None
        key_id = meta.key_id if meta else None
        created = None
        try:
            api = run.admin.get_key(key_id) if key_id else run.admin.find_key(value)
            key_id, created = api.id, api.created_at
        except (NotFoundError, UsageError):
            pass
        if created is None and meta is not None:
            created = meta.stored_at
        return (f"{value.hint} ({key_id})" if key_id else value.hint), created
    return None, None


def rotation_request(run: RotationRun, why: str) -> dict[str, Any]:
    """A request for a person: what to create, where, and how to hand it over (Slack ``text``)."""
    env = run.env
    name = key_name(env, run.clock())
    text = (
        f"keyguard: environment *{env.name}* needs a new Anthropic API key ({why}). "
        + run.request_text()[0].upper()
        + run.request_text()[1:]
        + ". The next scheduled run finishes the rotation."
    )
    return {
        "text": text,
        "environment": env.name,
        "key_name": name,
        "workspace": env.workspace,
        "deliver": f"keyguard deliver {env.name}",
    }


def plan(run: RotationRun, key_given: str | None) -> list[str]:
    """What ``rotate`` would do now, step by step; reads only (``key_given``: its hint)."""
    orphan = find_orphan(run)
    if orphan is not None:
        return [describe(run, orphan)]
    env = run.env
    state = run.latest()
    stores = ", ".join(store.uri for store in run.stores)
    steps: list[str] = []
    if state is not None and state.in_flight:
        steps.append(
            f"continue rotation {state.token} ({state.phase}) of new key {state.new.label()}"
        )
        phase_index = ["creating", "delivered", "updating", "updated", "verified"].index(
            state.phase
        )
        old_keys = state.revocable()
    elif key_given is None:
        return [f"{env.name}: nothing to do without a new key: " + run.request_text()]
    else:
        steps.append(f"store the new key {key_given} as pending in: {stores}")
        phase_index = 1
        old_keys = []
        for store in run.stores:
            value = store.get(Stage.CURRENT)
            if value is not None and value.hint not in [old.hint for old in old_keys]:
                old_keys.append(KeyRef(value.fingerprint, value.hint))
    if phase_index <= 2:
        steps.append(f"promote pending -> current, in this order: {stores}")
    if phase_index <= 3:
        check = f", run the check {env.check!r}" if env.check else ""
        steps.append(f"verify: read the key back from every store, GET /v1/models{check}")
    if old_keys:
        names = ", ".join(old.hint for old in old_keys)
        if run.grace <= timedelta(0):
            steps.append(f"revoke {names} right after verify (--grace 0: no drain check)")
        else:
            steps.append(
                f"revoke {names} after the {format_duration(run.grace)} grace period, "
                "once the usage report shows it idle"
                + (" (--force: without the drain check)" if run.force else "")
            )
    else:
        steps.append("nothing to revoke (the stores held no key keyguard can identify)")
    return [
        f"{env.name}: {step if step.startswith('nothing') else 'would ' + step}" for step in steps
    ]
