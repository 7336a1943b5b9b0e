"""The update and verify steps: promote the pending key in store order, then prove it serves."""

from __future__ import annotations

from keyguard.errors import ConflictError, KeyguardError
from keyguard.keys import Secret
from keyguard.rotation.context import RotationRun
from keyguard.rotation.rollback import restore_previous
from keyguard.rotation.state import RotationState
from keyguard.rotation.verify import run_check, verify_problem
from keyguard.stores.interface import Stage


class VerificationError(KeyguardError):
    """The new key failed verification; the stores serve the old key again."""


def new_key_value(run: RotationRun, state: RotationState) -> Secret:
    """The new key's value, read back from the first store that has it."""
    for store in run.stores:
        for stage in (Stage.PENDING, Stage.CURRENT):
            value = store.get(stage)
            if value is not None and value.fingerprint == state.new.fingerprint:
                return value
    raise ConflictError(
        f"{run.env.name}: no store holds the key {state.new.hint} of rotation {state.token} any "
        f"more; deliver a new key with `keyguard deliver {run.env.name}`"
    )


def promote(run: RotationRun, state: RotationState) -> None:
    """Promote in store order; a failure stops here and the next run goes on from it.

    Both keys stay active until verify has seen the new key in every store, so a store
    that still serves the old key during the stop is safe.
    """
    if not state.promote_started:
        run.journal.append(state.token, "promote", "before", run.clock())
    for index, store in enumerate(run.stores):
        if index in state.promoted:
            continue
        run.renew_leases(f"promoting the new key in {store.uri}")
        run.journal.append(
            state.token, "promote", "before", run.clock(), store_index=index, store=store.uri
        )
        store.promote(state.token)
        run.journal.append(
            state.token, "promote", "after", run.clock(), store_index=index, store=store.uri
        )
    run.journal.append(state.token, "promote", "after", run.clock())
    run.say(f"{run.env.name}: every store now serves the new key {state.new.hint}")


def verify(run: RotationRun, state: RotationState, key: Secret) -> None:
    """Every store serves ``key`` and the API accepts it; else serve the old key again."""
    run.journal.append(state.token, "verify", "before", run.clock())
    problem = _verify_problem(run, state, key)
    if problem is None:
        run.journal.append(state.token, "verify", "after", run.clock())
        run.say(f"{run.env.name}: verified {state.new.hint} in every store and with the API")
        return
    run.renew_leases("serving the previous key again after the failed verify")
    run.journal.append(state.token, "verify", "failed", run.clock(), reason=problem)
    served_again = restore_previous(run, state)
    run.journal.append(state.token, "verify", "closed", run.clock(), reason=f"failed: {problem}")
    raise VerificationError(
        f"{run.env.name}: the new key {state.new.hint} failed verification: {problem}. "
        f"{served_again} Nothing was revoked; deliver another key when fixed."
    )


def _verify_problem(run: RotationRun, state: RotationState, key: Secret) -> str | None:
    for store in run.stores:
        value = store.get(Stage.CURRENT)
        if value is None or value.fingerprint != state.new.fingerprint:
            served = value.hint if value else "nothing"
            return f"{store.uri} serves {served} instead"
    problem = verify_problem(run.env.workspace, run.admin.verify_key(key, run.env.workspace))
    if problem is not None:
        return problem
    if run.env.check:
        return run_check(run.env.check, run.env.name, state.new)
    return None
