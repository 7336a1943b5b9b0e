"""The revoke step: grace, the drain check on the usage report, revoking, archiving later."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from keyguard.errors import ConflictError, KeyguardError, NotFoundError, UsageError
from keyguard.policy import format_duration
from keyguard.rotation.context import Outcome, RotationRun
from keyguard.rotation.state import KeyRef, RotationState
from keyguard.stores.interface import Stage, stage_map


class ClockSkewError(UsageError):
    """The local clock and the API's differ by more than ``CLOCK_SKEW_LIMIT``: no revoke."""


def revoke_step(run: RotationRun, state: RotationState) -> Outcome:
    """Revoke the old keys once grace and drain allow; finished, or what it waits for."""
    assert state.updated_at is not None
    old_keys = [key for key in state.revocable() if key.id not in state.revoked]
    skipped = [key for key in state.old_keys if not key.id]
    note = "".join(
        f" Key {key.hint} was never identified, so keyguard did not revoke it: if it still "
        "authenticates, revoke it in the Console yourself."
        for key in skipped
    )
    # A key another environment still serves is never revoked: it waits until none does.
    # A key already deactivated (a leak) has nothing left to hold back: only active ones count.
    active = [
        key
        for key in old_keys
        if key.id is not None and run.admin.get_key(key.id).status == "active"
    ]
    elsewhere = served_elsewhere(run, active)
    old_keys = [key for key in old_keys if key.fingerprint not in elsewhere]
    if old_keys:
        refuse_skewed_clock(run, old_keys)
    if old_keys and run.grace > timedelta(0):
        waiting = drain_wait(run, state, old_keys)
        if waiting is not None:
            return waiting
    if old_keys:
        check_not_served(run, old_keys)
    for old in old_keys:
        assert old.id is not None
        run.renew_leases(f"deactivating the old key {old.label()}")
        run.journal.append(
            state.token, "revoke", "before", run.clock(), key_id=old.id, hint=old.hint
        )
        status = run.admin.get_key(old.id).status
        if status == "active":
            run.admin.update_key(old.id, status="inactive")
        run.journal.append(
            state.token, "revoke", "after", run.clock(), key_id=old.id, hint=old.hint
        )
        run.say(f"{run.env.name}: old key {old.label()} is now inactive")
    if elsewhere:
        return _shared_outcome(run, state, elsewhere)
    run.renew_leases("disabling superseded versions")
    for store in run.stores:
        try:
            store.retire_superseded()
        except KeyguardError as exc:
            run.say(f"{run.env.name}: note: could not tidy {store.uri}: {exc}")
    run.journal.append(state.token, "revoke", "done", run.clock())
    return Outcome(
        run.env.name,
        True,
        f"{run.env.name}: rotation finished; {state.new.label()} serves"
        + (f", {', '.join(key.hint for key in old_keys)} revoked" if old_keys else "")
        + "."
        + note,
    )


def served_elsewhere(run: RotationRun, old_keys: list[KeyRef]) -> dict[str, tuple[KeyRef, str]]:
    """The old keys another environment serves (current or pending), by fingerprint or key id:
    fingerprint -> (key, "ENV (STORE)"). A store that cannot be read stops the revoke."""
    if not old_keys:
        return {}
    found: dict[str, tuple[KeyRef, str]] = {}
    for name, stores in run.peers():
        for store in stores:
            try:
                versions = stage_map(store.describe())
                values = {stage: store.get(stage) for stage in (Stage.CURRENT, Stage.PENDING)}
            except KeyguardError as exc:
                labels = ", ".join(key.label() for key in old_keys)
                said = (
                    f"{run.env.name}: not revoking {labels}: cannot tell whether environment "
                    f"{name} still serves it ({exc}); fix that store, or remove it from the "
                    f"configuration, and run `keyguard rotate {run.env.name}` again"
                )
                try:
                    again = type(exc)(said)
                except TypeError:  # an error class that wants more than a message
                    again = ConflictError(said)
                raise again from None
            for stage, value in values.items():
                version = versions.get(stage)
                key_id = version.meta.key_id if version else None
                for old in old_keys:
                    same = value is not None and value.fingerprint == old.fingerprint
                    if same or (old.id is not None and key_id == old.id):
                        found.setdefault(old.fingerprint, (old, f"{name} ({store.uri}, {stage})"))
    return found


def _shared_outcome(
    run: RotationRun, state: RotationState, elsewhere: dict[str, tuple[KeyRef, str]]
) -> Outcome:
    held = "; ".join(
        f"{old.label()} is still served by {where}" for old, where in elsewhere.values()
    )
    return Outcome(
        run.env.name,
        False,
        f"{run.env.name}: {state.new.label()} serves here, but not revoking the old key: {held}. "
        "Rotate that environment too (one key per environment); this rotation revokes the old "
        "key once no environment serves it: run it again then",
        "shared",
    )


def refresh_api_time(run: RotationRun, key_id: str | None) -> None:
    """One read, so that the API's ``Date`` (its time) is fresh for the decisions after it."""
    if key_id is not None:
        with contextlib.suppress(NotFoundError):  # a 404 tells the time as well
            run.admin.get_key(key_id)


def refuse_skewed_clock(run: RotationRun, old_keys: list[KeyRef]) -> None:
    """``ClockSkewError`` (exit 2) when the local clock and the API's differ too much."""
    refresh_api_time(run, old_keys[0].id)
    problem = run.clock_problem()
    if problem is not None:
        labels = ", ".join(key.label() for key in old_keys)
        raise ClockSkewError(
            f"{run.env.name}: not revoking {labels}: {problem}, "
            f"then run `keyguard rotate {run.env.name}` again. Everything before the "
            "revoke is done; both keys stay active"
        )


def drain_wait(run: RotationRun, state: RotationState, old_keys: list[KeyRef]) -> Outcome | None:
    """None when the old keys may go now; else what the revoke waits for (grace, report, drain)."""
    assert state.updated_at is not None
    now = run.clock()
    lag = run.env.policy.usage_lag
    grace_end = state.updated_at + run.grace
    names = ", ".join(key.label() for key in old_keys)
    if now < grace_end:
        return Outcome(
            run.env.name,
            False,
            f"{run.env.name}: grace period: old key {names} stays active until "
            f"{grace_end:%Y-%m-%d %H:%M:%S}Z ({format_duration(run.grace)} after the "
            "update); run again then",
            "grace",
        )
    if run.force:
        run.say(f"{run.env.name}: --force: skipping the drain check for {names}")
        return None
    window_end = now - lag
    if window_end < grace_end:
        return Outcome(
            run.env.name,
            False,
            f"{run.env.name}: the usage report lags {format_duration(lag)}; the drain check "
            f"for {names} can run from {grace_end + lag:%Y-%m-%d %H:%M:%S}Z; run again then",
            "report",
        )
    # The old key must have been idle for a whole grace period, read where the report
    # is complete: traffic right after the update (consumers reloading) may have stopped.
    start = max(state.updated_at, window_end - run.grace)
    width = "1m" if window_end - start <= timedelta(hours=24) else "1h"
    rows = run.admin.usage(
        [key.id for key in old_keys if key.id], start, window_end, bucket_width=width
    )
    traffic: dict[str, int] = {}
    last: dict[str, datetime] = {}
    for row in rows:
        if row.api_key_id and row.total_tokens > 0:
            traffic[row.api_key_id] = traffic.get(row.api_key_id, 0) + row.total_tokens
            last[row.api_key_id] = max(last.get(row.api_key_id, row.ending_at), row.ending_at)
    busy = [key for key in old_keys if key.id in traffic]
    if not busy:
        return None
    detail = "; ".join(
        f"{key.label()}: {traffic[key.id or '']} tokens between {start:%Y-%m-%d %H:%M}Z and "
        f"{window_end:%Y-%m-%d %H:%M}Z (last in the bucket ending "
        f"{last[key.id or '']:%Y-%m-%d %H:%M}Z)"
        for key in busy
    )
    return Outcome(
        run.env.name,
        False,
        f"{run.env.name}: not revoking, the old key still carries traffic: {detail}. "
        "Some consumer still uses it: point it at the store's current key; run again later "
        "(or --force in an incident)",
        "drain",
    )


def check_not_served(run: RotationRun, old_keys: list[KeyRef]) -> None:
    """Refuse to revoke a key some store serves again (rolled back by hand meanwhile)."""
    by_fingerprint = {key.fingerprint: key for key in old_keys}
    for store in run.stores:
        value = store.get(Stage.CURRENT)
        if value is not None and value.fingerprint in by_fingerprint:
            raise ConflictError(
                f"{run.env.name}: {store.uri} serves the old key "
                f"{by_fingerprint[value.fingerprint].hint} again; not revoking it. Run "
                f"`keyguard status {run.env.name}` and rotate again"
            )


def archive_due(run: RotationRun) -> None:
    """Archive revoked keys whose ``archive_after`` has passed, if no store serves them."""
    due = [(state, old) for state in run.history() for old in state.archive_pending()]
    if not due:
        return
    refresh_api_time(run, due[0][1].id)
    problem = run.clock_problem()
    if problem is not None:
        names = ", ".join(old.label() for _, old in due)
        run.say(f"{run.env.name}: not archiving {names} yet: {problem}")
        return
    now = run.clock()
    for state, old in due:
        assert old.id is not None
        if now < state.revoked[old.id] + run.env.policy.archive_after:
            continue
        if any(
            (value := store.get(Stage.CURRENT)) is not None and value.fingerprint == old.fingerprint
            for store in run.stores
        ):
            continue  # served again (rolled back by hand): never archive it
        run.renew_leases(f"archiving {old.label()}")
        run.journal.append(state.token, "archive", "before", now, key_id=old.id)
        if run.admin.get_key(old.id).status == "inactive":
            run.admin.update_key(old.id, status="archived")
        run.journal.append(state.token, "archive", "after", now, key_id=old.id)
        run.say(f"{run.env.name}: archived {old.label()}")
