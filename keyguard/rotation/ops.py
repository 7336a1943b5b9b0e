"""Rollback, status and rotation requests: the operations around the state machine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from keyguard.errors import ConflictError, KeyguardError, NotFoundError, UsageError
from keyguard.journal import INCIDENT_LOG
from keyguard.keys import Secret
from keyguard.policy import format_duration
from keyguard.rotation.engine import Outcome, RotationEngine, key_name
from keyguard.rotation.state import KeyRef, RotationState
from keyguard.stores.interface import SecretStore, Stage, stage_map


class RollbackRefused(ConflictError):
    """No previous key to go back to, or it must not serve: leaked, failed, archived, dead."""


def rollback(engine: RotationEngine, *, reactivate: bool = True) -> Outcome:
    """Serve the previous key again everywhere, re-activating it first if it was inactive.

    Refuses (nothing changed) a key recorded as leaked, one whose verify failed, an archived
    key, or one ``GET /v1/models`` refuses. ``reactivate=False``: an inactive one too.
    """
    name = engine.env.name
    with engine.leased():
        st = engine.latest()
        if st is not None and st.phase in ("creating", "delivered"):
            engine._abandon(st, "rolled back before the update")
            return Outcome(
                name,
                True,
                f"{name}: pending key {st.new.hint} discarded; the "
                "stores serve what they served before",
            )
        if st is not None and st.closed == "rolled back" and not _serves(engine, st.new):
            # A rerun (e.g. after a crash at its end) must not undo the rollback.
            return Outcome(
                name,
                True,
                f"{name}: already rolled back at {st.closed_at:%Y-%m-%d %H:%M:%S}Z (rotation "
                f"{st.token}); nothing changed",
            )
        live = st if st is not None and not st.closed else None
        todo = [s for s in engine.stores if _needs_rollback(s, live)]
        if not todo and live is not None and live.rollback_started:
            engine.journal.append(
                live.token, "rollback", "closed", engine.clock(), reason="rolled back"
            )
            return Outcome(name, True, f"{name}: rollback of {live.token} finished")
        if not todo:
            raise RollbackRefused(
                f"{name}: nothing to roll back: no store serves a key with a "
                "previous one to go back to"
            )
        _make_servable(engine, todo, live, reactivate=reactivate)  # before any store changes
        token = live.token if live else f"{name}-rollback-{engine.clock():%Y%m%dT%H%M%SZ}"
        engine.journal.append(token, "rollback", "before", engine.clock())
        for index, store in enumerate(engine.stores):
            if store in todo:
                store.rollback()
                engine.journal.append(
                    token, "rollback", "after", engine.clock(), store_index=index, store=store.uri
                )
            elif live is not None:
                store.discard_pending(live.token)
        engine.journal.append(token, "rollback", "closed", engine.clock(), reason="rolled back")
        served = todo[0].get(Stage.CURRENT)
        hint = served.hint if served else "?"
        extra = (
            (
                f" The newer key {live.new.label()} is still active; deactivate it in the "
                "Console if it should not be used."
            )
            if live
            else ""
        )
        return Outcome(name, True, f"{name}: {len(todo)} store(s) serve {hint} again.{extra}")


def _serves(engine: RotationEngine, key: KeyRef) -> bool:
    return any(
        (v := s.get(Stage.CURRENT)) is not None and v.fingerprint == key.fingerprint
        for s in engine.stores
    )


def _needs_rollback(store: SecretStore, live: RotationState | None) -> bool:
    current = store.get(Stage.CURRENT)
    if live is not None:
        return (
            current is not None and current.fingerprint == live.new.fingerprint and bool(live.olds)
        )
    return current is not None and store.get(Stage.PREVIOUS) is not None


def _make_servable(
    engine: RotationEngine,
    todo: list[SecretStore],
    live: RotationState | None,
    *,
    reactivate: bool,
) -> None:
    """Check every previous key (reads only), then re-activate and verify each; else undo."""
    targets: dict[str, tuple[Secret, str | None, str | None]] = {}
    for store in todo:
        previous = store.get(Stage.PREVIOUS)
        if previous is None:
            raise ConflictError(f"{store.uri} has no previous key to serve again")
        if previous.fingerprint not in targets:
            key_id = _previous_id(engine, store, previous, live)
            targets[previous.fingerprint] = (
                previous,
                key_id,
                _refuse_unsafe(engine, previous, key_id),
            )
    reactivated: list[str] = []
    try:
        for previous, key_id, status in targets.values():
            if key_id is not None and status != "active":
                if not reactivate:
                    raise RollbackRefused(
                        f"{engine.env.name}: the previous key {previous.hint} ({key_id}) is "
                        f"{status}; nothing changed"
                    )
                engine.admin.update_key(key_id, status="active")
                reactivated.append(key_id)
                engine.say(f"{engine.env.name}: re-activated {previous.hint} ({key_id})")
            _check_works(engine, previous, key_id)
    except BaseException:
        for key_id in reactivated:  # it was inactive before this run: leave it that way
            engine.admin.update_key(key_id, status="inactive")
        raise


def _previous_id(
    engine: RotationEngine, store: SecretStore, previous: Secret, live: RotationState | None
) -> str | None:
    key_id = None
    if live is not None:
        key_id = next((o.id for o in live.olds if o.fingerprint == previous.fingerprint), None)
    if key_id is None:
        version = stage_map(store.describe()).get(Stage.PREVIOUS)
        key_id = version.meta.key_id if version else None
    if key_id is None:
        try:
            key_id = engine.admin.find_key(previous).id
        except (NotFoundError, UsageError):
            return None  # not in the organization's list: GET /v1/models decides
    return key_id


def _refuse_unsafe(engine: RotationEngine, previous: Secret, key_id: str | None) -> str | None:
    """RollbackRefused for a leaked, failed or archived key; else its status (None: unknown)."""
    name = engine.env.name
    label = f"{previous.hint} ({key_id})" if key_id else previous.hint
    then = f"; nothing changed. Deliver a new key instead: {engine.request_text()}"
    log = engine.journal.path.parent / INCIDENT_LOG
    for record in _incidents(log):
        key = record.get("key") if isinstance(record.get("key"), dict) else {}
        assert isinstance(key, dict)
        if (key_id is not None and key.get("id") == key_id) or (
            key.get("fingerprint") and key.get("fingerprint") == previous.fingerprint
        ):
            raise RollbackRefused(
                f"{name}: the previous key {label} leaked: it is recorded in the incident log "
                f"{log} ({record.get('started_at') or record.get('logged_at') or 'undated'}) and "
                f"must never serve again{then}"
            )
    for st in engine.history():
        if (
            st.closed
            and st.closed.startswith("failed")
            and st.new.fingerprint == previous.fingerprint
        ):
            raise RollbackRefused(
                f"{name}: the previous key {label} is the new key of rotation {st.token}, which "
                f"failed verification ({st.closed.removeprefix('failed: ')}){then}"
            )
    if key_id is None:
        return None
    status = engine.admin.get_key(key_id).status
    if status in ("archived", "expired"):
        raise RollbackRefused(
            f"{name}: the previous key {label} is {status} and cannot serve again{then}"
        )
    return status


def _check_works(engine: RotationEngine, previous: Secret, key_id: str | None) -> None:
    """``GET /v1/models`` (free) with the key, and its workspace when one is configured."""
    label = f"{previous.hint} ({key_id})" if key_id else previous.hint
    result = engine.admin.verify_key(previous)
    problem = None
    if not result.usable:
        problem = f"GET /v1/models refused it (HTTP {result.status_code})"
    elif (
        engine.env.workspace and result.workspace_id and result.workspace_id != engine.env.workspace
    ):
        problem = f"it answers for workspace {result.workspace_id}, not {engine.env.workspace}"
    if problem is not None:
        raise RollbackRefused(
            f"{engine.env.name}: the previous key {label} does not work: {problem}; nothing "
            f"changed. Deliver a new key instead: {engine.request_text()}"
        )


def _incidents(path: Path) -> list[dict[str, Any]]:
    """The incident log's records; a missing file is no incident, a torn line is skipped."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConflictError(
            f"cannot read the incident log {path} ({exc.strerror}), so keyguard cannot tell "
            "whether the previous key leaked; fix its permissions and run again"
        ) from None
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


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
    try:
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
    return [f"{env.name}: would {s}" for s in steps]
