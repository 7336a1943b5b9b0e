"""The revoke step: grace, the drain check on the usage report, revoking, archiving later."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from keyguard.errors import ConflictError, KeyguardError, NotFoundError
from keyguard.policy import format_duration
from keyguard.rotation.engine import ClockSkewError, Outcome, RotationEngine
from keyguard.rotation.state import KeyRef, RotationState
from keyguard.stores.interface import Stage, stage_map


def revoke_step(engine: RotationEngine, st: RotationState) -> Outcome:
    """Revoke the old keys once grace and drain allow; finished, or what it waits for."""
    assert st.updated_at is not None
    olds = [k for k in st.revocable() if k.id not in st.revoked]
    skipped = [k for k in st.olds if not k.id]
    note = "".join(
        f" Key {k.hint} was never identified: revoke it in the Console yourself." for k in skipped
    )
    # A key another environment still serves is never revoked: it waits until none does.
    # A key already deactivated (a leak) has nothing left to hold back: only active ones count.
    active = [k for k in olds if k.id is not None and engine.admin.get_key(k.id).status == "active"]
    elsewhere = served_elsewhere(engine, active)
    olds = [k for k in olds if k.fingerprint not in elsewhere]
    if olds:
        refuse_skewed_clock(engine, olds)
    if olds and engine.grace > timedelta(0):
        waiting = drain_wait(engine, st, olds)
        if waiting is not None:
            return waiting
    if olds:
        check_not_served(engine, olds)
    for old in olds:
        assert old.id is not None
        engine.journal.append(
            st.token, "revoke", "before", engine.clock(), key_id=old.id, hint=old.hint
        )
        status = engine.admin.get_key(old.id).status
        if status == "active":
            engine.admin.update_key(old.id, status="inactive")
        engine.journal.append(
            st.token, "revoke", "after", engine.clock(), key_id=old.id, hint=old.hint
        )
        engine.say(f"{engine.env.name}: old key {old.label()} is now inactive")
    if elsewhere:
        return _shared_outcome(engine, st, elsewhere)
    for store in engine.stores:
        try:
            store.retire_superseded()
        except KeyguardError as exc:
            engine.say(f"{engine.env.name}: note: could not tidy {store.uri}: {exc}")
    engine.journal.append(st.token, "revoke", "done", engine.clock())
    return Outcome(
        engine.env.name,
        True,
        f"{engine.env.name}: rotation finished; {st.new.label()} serves"
        + (f", {', '.join(k.hint for k in olds)} revoked" if olds else "")
        + "."
        + note,
    )


def served_elsewhere(engine: RotationEngine, olds: list[KeyRef]) -> dict[str, tuple[KeyRef, str]]:
    """The old keys another environment serves (current or pending), by fingerprint or key id:
    fingerprint -> (key, "ENV (STORE)"). A store that cannot be read stops the revoke."""
    if not olds:
        return {}
    found: dict[str, tuple[KeyRef, str]] = {}
    for name, stores in engine.peers():
        for store in stores:
            try:
                versions = stage_map(store.describe())
                values = {stage: store.get(stage) for stage in (Stage.CURRENT, Stage.PENDING)}
            except KeyguardError as exc:
                labels = ", ".join(k.label() for k in olds)
                said = (
                    f"{engine.env.name}: not revoking {labels}: cannot tell whether environment "
                    f"{name} still serves it ({exc}); fix that store, or remove it from the "
                    f"configuration, and run `keyguard rotate {engine.env.name}` again"
                )
                try:
                    again = type(exc)(said)
                except TypeError:  # an error class that wants more than a message
                    again = ConflictError(said)
                raise again from None
            for stage, value in values.items():
                version = versions.get(stage)
                key_id = version.meta.key_id if version else None
                for old in olds:
                    same = value is not None and value.fingerprint == old.fingerprint
                    if same or (old.id is not None and key_id == old.id):
                        found.setdefault(old.fingerprint, (old, f"{name} ({store.uri}, {stage})"))
    return found


def _shared_outcome(
    engine: RotationEngine, st: RotationState, elsewhere: dict[str, tuple[KeyRef, str]]
) -> Outcome:
    held = "; ".join(
        f"{old.label()} is still served by {where}" for old, where in elsewhere.values()
    )
    return Outcome(
        engine.env.name,
        False,
        f"{engine.env.name}: {st.new.label()} serves here, but not revoking the old key: {held}. "
        "Rotate that environment too (one key per environment); this rotation revokes the old "
        "key once no environment serves it: run it again then",
        "shared",
    )


def refresh_api_time(engine: RotationEngine, key_id: str | None) -> None:
    """One read, so that the API's ``Date`` (its time) is fresh for the decisions after it."""
    if key_id is not None:
        with contextlib.suppress(NotFoundError):  # a 404 tells the time as well
            engine.admin.get_key(key_id)


def refuse_skewed_clock(engine: RotationEngine, olds: list[KeyRef]) -> None:
    """``ClockSkewError`` (exit 2) when the local clock and the API's differ too much."""
    refresh_api_time(engine, olds[0].id)
    problem = engine.clock_problem()
    if problem is not None:
        raise ClockSkewError(
            f"{engine.env.name}: not revoking {', '.join(k.label() for k in olds)}: {problem}, "
            f"then run `keyguard rotate {engine.env.name}` again. Everything before the "
            "revoke is done; both keys stay active"
        )


def drain_wait(engine: RotationEngine, st: RotationState, olds: list[KeyRef]) -> Outcome | None:
    """None when the old keys may go now; else what the revoke waits for (grace, report, drain)."""
    assert st.updated_at is not None
    now = engine.clock()
    lag = engine.env.policy.usage_lag
    grace_end = st.updated_at + engine.grace
    names = ", ".join(k.label() for k in olds)
    if now < grace_end:
        return Outcome(
            engine.env.name,
            False,
            f"{engine.env.name}: grace period: old key {names} stays active until "
            f"{grace_end:%Y-%m-%d %H:%M:%S}Z ({format_duration(engine.grace)} after the "
            "update); run again then",
            "grace",
        )
    if engine.force:
        engine.say(f"{engine.env.name}: --force: skipping the drain check for {names}")
        return None
    window_end = now - lag
    if window_end < grace_end:
        return Outcome(
            engine.env.name,
            False,
            f"{engine.env.name}: the usage report lags {format_duration(lag)}; the drain check "
            f"for {names} can run from {grace_end + lag:%Y-%m-%d %H:%M:%S}Z; run again then",
            "report",
        )
    # The old key must have been idle for a whole grace period, read where the report
    # is complete: traffic right after the update (consumers reloading) may have stopped.
    start = max(st.updated_at, window_end - engine.grace)
    width = "1m" if window_end - start <= timedelta(hours=24) else "1h"
    rows = engine.admin.usage([k.id for k in olds if k.id], start, window_end, bucket_width=width)
    traffic: dict[str, int] = {}
    last: dict[str, datetime] = {}
    for row in rows:
        if row.api_key_id and row.total_tokens > 0:
            traffic[row.api_key_id] = traffic.get(row.api_key_id, 0) + row.total_tokens
            last[row.api_key_id] = max(last.get(row.api_key_id, row.ending_at), row.ending_at)
    busy = [k for k in olds if k.id in traffic]
    if not busy:
        return None
    detail = "; ".join(
        f"{k.label()}: {traffic[k.id or '']} tokens between {start:%Y-%m-%d %H:%M}Z and "
        f"{window_end:%Y-%m-%d %H:%M}Z (last in the bucket ending "
        f"{last[k.id or '']:%Y-%m-%d %H:%M}Z)"
        for k in busy
    )
    return Outcome(
        engine.env.name,
        False,
        f"{engine.env.name}: not revoking, the old key still carries traffic: {detail}. "
        "Some consumer still uses it: point it at the store's current key; run again later "
        "(or --force in an incident)",
        "drain",
    )


def check_not_served(engine: RotationEngine, olds: list[KeyRef]) -> None:
    """Refuse to revoke a key some store serves again (rolled back by hand meanwhile)."""
    prints = {k.fingerprint: k for k in olds}
    for store in engine.stores:
        value = store.get(Stage.CURRENT)
        if value is not None and value.fingerprint in prints:
            raise ConflictError(
                f"{engine.env.name}: {store.uri} serves the old key "
                f"{prints[value.fingerprint].hint} again; not revoking it. Run "
                f"`keyguard status {engine.env.name}` and rotate again"
            )


def archive_due(engine: RotationEngine) -> None:
    """Archive revoked keys whose ``archive_after`` has passed, if no store serves them."""
    due = [(st, old) for st in engine.history() for old in st.archive_pending()]
    if not due:
        return
    refresh_api_time(engine, due[0][1].id)
    problem = engine.clock_problem()
    if problem is not None:
        names = ", ".join(old.label() for _, old in due)
        engine.say(f"{engine.env.name}: not archiving {names} yet: {problem}")
        return
    now = engine.clock()
    for st, old in due:
        assert old.id is not None
        if now < st.revoked[old.id] + engine.env.policy.archive_after:
            continue
        if any(
            (v := s.get(Stage.CURRENT)) is not None and v.fingerprint == old.fingerprint
            for s in engine.stores
        ):
            continue  # served again (rolled back by hand): never archive it
        engine.journal.append(st.token, "archive", "before", now, key_id=old.id)
        if engine.admin.get_key(old.id).status == "inactive":
            engine.admin.update_key(old.id, status="archived")
        engine.journal.append(st.token, "archive", "after", now, key_id=old.id)
        engine.say(f"{engine.env.name}: archived {old.label()}")
