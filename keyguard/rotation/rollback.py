"""Rollback: serve the previous key again, once, and safely on rerun.

Three cases, one module. A journaled rotation is undone store by store (``rollback``), or put
back by a failed verify (``restore_previous``). Keys no journaled rotation put in the stores (by
hand, or the journal was lost) are rolled back as a *manual* rollback: the journal records the
key it serves again and the key it replaces before any store changes, so a rerun after a crash
reads each store and finishes the same rollback. A store that already serves that key is left
alone, one that still serves the replaced key is rolled back, anything else is refused: never a
second swap, which would serve the replaced key again.

Before any store changes, every previous key must be fit to serve (``make_servable``): never a
leaked, failed, archived or dead key, and re-activated only when keyguard's journal proves
which key it is (by fingerprint) and the Admin API shows that key with its hint.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from keyguard.admin.hints import key_matches_hint
from keyguard.errors import ConflictError, KeyguardError, NotFoundError, UsageError
from keyguard.journal import INCIDENT_LOG, read_incidents
from keyguard.keys import Secret, is_leak_marked
from keyguard.models import ApiKey
from keyguard.rotation.context import Outcome, RotationRun
from keyguard.rotation.create import abandon
from keyguard.rotation.recover import hold_leases
from keyguard.rotation.state import (
    KeyRef,
    ManualRollback,
    RotationState,
    last_manual_rollback,
    replay,
)
from keyguard.rotation.verify import verify_problem
from keyguard.stores.interface import SecretStore, Stage, stage_map
from keyguard.words import plural


class RollbackRefused(ConflictError):
    """No previous key to go back to, or it must not serve: leaked, failed, archived, dead."""


def rollback(run: RotationRun, *, reactivate: bool = True) -> Outcome:
    """Serve the previous key again everywhere, re-activating it first if it was inactive.

    Refuses (nothing changed) a key recorded as leaked, one whose verify failed, an archived
    key, or one ``GET /v1/models`` refuses; an inactive one unless the journal proves its id
    (``reactivate=False``: any inactive one).
    A rerun after a crash finishes the same rollback; it never swaps back.
    """
    name = run.env.name
    with hold_leases(run):
        entries = run.journal.entries()
        states = replay(entries)
        state = states[-1] if states else None
        manual = last_manual_rollback(entries)
        if manual is not None:
            # A rollback of keys no rotation put there is the newest thing in the journal.
            if manual.closed is None:
                return _finish_manual(run, manual, reactivate=reactivate)
            done = _manual_done(run, manual)
            if done is not None:
                return done
            return _start_manual(run, reactivate=reactivate)
        if state is not None and state.phase in ("creating", "delivered"):
            abandon(run, state, "rolled back before the update")
            return Outcome(
                name,
                True,
                f"{name}: pending key {state.new.hint} discarded; the "
                "stores serve what they served before",
            )
        if state is not None and state.closed == "rolled back" and not _serves(run, state.new):
            # A rerun (e.g. after a crash at its end) must not undo the rollback.
            return Outcome(
                name,
                True,
                f"{name}: already rolled back at {state.closed_at:%Y-%m-%d %H:%M:%S}Z (rotation "
                f"{state.token}); nothing changed",
            )
        if state is None or state.closed:
            return _start_manual(run, reactivate=reactivate)
        return _rollback_rotation(run, state, reactivate=reactivate)


def restore_previous(run: RotationRun, state: RotationState) -> str:
    """After a failed verify: put the previous key back where the new one was promoted (the
    old key is still active). Says what the stores serve now."""
    if not state.old_keys:
        # Nothing was served before: serve nothing again, so the next run starts clean.
        for store in run.stores:
            store.withdraw(state.token)
        return "The stores had no key before, and hold none again."
    for store in run.stores:
        value = store.get(Stage.CURRENT)
        if value is not None and value.fingerprint == state.new.fingerprint:
            store.rollback()
    return "Every store serves the previous key again."


# --------------------------------------------------------------------- a journaled rotation
def _rollback_rotation(run: RotationRun, live: RotationState, *, reactivate: bool) -> Outcome:
    """Undo journaled rotation ``live``: every store serving its new key goes back."""
    name = run.env.name
    todo = [store for store in run.stores if _needs_rollback(store, live)]
    if not todo and live.rollback_started:
        run.journal.append(live.token, "rollback", "closed", run.clock(), reason="rolled back")
        return Outcome(name, True, f"{name}: rollback of {live.token} finished")
    if not todo:
        raise RollbackRefused(
            f"{name}: nothing to roll back: no store serves a key with a previous one to go back to"
        )
    with make_servable(run, todo, live, reactivate=reactivate) as (_, undo):
        run.journal.append(live.token, "rollback", "before", run.clock())
        for index, store in enumerate(run.stores):
            run.renew_leases(f"rolling back {store.uri}")
            if store in todo:
                undo.clear()  # the store may serve the re-activated key from here on
                store.rollback()
                run.journal.append(
                    live.token, "rollback", "after", run.clock(), store_index=index, store=store.uri
                )
            else:
                store.discard_pending(live.token)
    run.journal.append(live.token, "rollback", "closed", run.clock(), reason="rolled back")
    served = todo[0].get(Stage.CURRENT)
    hint = served.hint if served else "?"
    return Outcome(
        name,
        True,
        f"{name}: {plural(len(todo), 'store')} serve{'s' if len(todo) == 1 else ''} {hint} "
        f"again. The newer key {live.new.label()} is "
        "still active; deactivate it in the Console if it should not be used.",
    )


def _serves(run: RotationRun, key: KeyRef) -> bool:
    return any(_fingerprint(store.get(Stage.CURRENT)) == key.fingerprint for store in run.stores)


def _needs_rollback(store: SecretStore, live: RotationState) -> bool:
    current = store.get(Stage.CURRENT)
    return (
        current is not None and current.fingerprint == live.new.fingerprint and bool(live.old_keys)
    )


# --------------------------------------------------------------------- keys put there by hand
def _start_manual(run: RotationRun, *, reactivate: bool) -> Outcome:
    """Every store serves the same key with the same previous one: serve that previous again."""
    name = run.env.name
    pairs = [_pair(run, index) for index in range(len(run.stores))]
    if not any(current is not None and previous is not None for current, previous in pairs):
        raise RollbackRefused(
            f"{name}: nothing to roll back: no store serves a key with a previous one to go back to"
        )
    first = run.stores[0]
    current, previous = first.get(Stage.CURRENT), first.get(Stage.PREVIOUS)
    if current is None or previous is None or any(pair != pairs[0] for pair in pairs):
        raise RollbackRefused(
            f"{name}: the stores do not hold the same current and previous key, so one "
            f"rollback cannot serve one key everywhere: {_where(run)}; nothing changed. "
            f"Make them agree by hand, or put a new key in service: `keyguard deliver {name}` "
            f"then `keyguard rotate {name}`"
        )
    with make_servable(run, list(run.stores), None, reactivate=reactivate) as (ids, undo):
        replaced_version = stage_map(first.describe()).get(Stage.CURRENT)
        target = KeyRef(previous.fingerprint, previous.hint, ids.get(previous.fingerprint))
        replaced_id = replaced_version.meta.key_id if replaced_version else None
        replaced = KeyRef(current.fingerprint, current.hint, replaced_id)
        now = run.clock()
        token = f"{name}-rollback-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        # Recorded before any store changes: a rerun knows which way every store must end.
        run.journal.append(
            token, "rollback", "before", now, key=target.to_json(), replaced=replaced.to_json()
        )
        return _apply_manual(run, token, list(range(len(run.stores))), target, undo)


def _finish_manual(run: RotationRun, record: ManualRollback, *, reactivate: bool) -> Outcome:
    """Finish rollback ``record`` that a crash interrupted, writing only stores it did not reach."""
    name = run.env.name
    if record.target is None or record.replaced is None:
        inferred = _legacy_keys(run, record)
        if inferred is None:
            return _close_legacy(run, record, reactivate=reactivate)
        record.target, record.replaced = inferred
    target, replaced = record.target, record.replaced
    todo, changed = [], []
    for index in range(len(run.stores)):
        current, previous = _pair(run, index)
        if current == target.fingerprint:
            continue  # rolled back before the crash (journaled or not)
        if current == replaced.fingerprint and previous == target.fingerprint:
            todo.append(index)
        else:
            changed.append(index)
    stopped = (
        f"{name}: rollback {record.token} (to {target.hint}, replacing {replaced.hint}) stopped "
        f"part way: {_where(run)}"
    )
    if changed:
        raise ConflictError(
            f"{stopped}. {', '.join(run.stores[i].uri for i in changed)} changed since, so "
            f"keyguard will not guess and changed nothing. Make every store serve "
            f"{target.hint} by hand, then run `keyguard rollback {name}` again to close it; or "
            f"put a new key in service: `keyguard deliver {name}` then `keyguard rotate {name}`"
        )
    stores = [run.stores[i] for i in todo]
    try:
        with make_servable(run, stores, None, reactivate=reactivate) as (_, undo):
            return _apply_manual(run, record.token, todo, target, undo)
    except RollbackRefused as exc:
        raise RollbackRefused(
            f"{stopped}. Not finishing it: {exc}. Put a new key in service: "
            f"`keyguard deliver {name}` then `keyguard rotate {name}`"
        ) from None


def _manual_done(run: RotationRun, record: ManualRollback) -> Outcome | None:
    """The "already rolled back" outcome while every store serves what closed ``record`` served."""
    if record.target is None or record.closed_at is None:
        return None
    if any(_pair(run, i)[0] != record.target.fingerprint for i in range(len(run.stores))):
        return None
    return Outcome(
        run.env.name,
        True,
        f"{run.env.name}: already rolled back at {record.closed_at:%Y-%m-%d %H:%M:%S}Z "
        f"(rollback {record.token}): every store serves {record.target.hint}; nothing changed",
    )


def _apply_manual(
    run: RotationRun, token: str, todo: list[int], target: KeyRef, undo: list[str]
) -> Outcome:
    for index in todo:
        store = run.stores[index]
        run.renew_leases(f"rolling back {store.uri}")
        undo.clear()  # the store may serve the re-activated key from here on
        store.rollback()
        run.journal.append(
            token, "rollback", "after", run.clock(), store_index=index, store=store.uri
        )
    run.journal.append(token, "rollback", "closed", run.clock(), reason="rolled back")
    return Outcome(
        run.env.name,
        True,
        f"{run.env.name}: every store serves {target.hint} again "
        f"({len(todo)} of {len(run.stores)} changed by this run)",
    )


def _pair(run: RotationRun, index: int) -> tuple[str | None, str | None]:
    """Fingerprints of what store ``index`` serves and keeps as previous."""
    store = run.stores[index]
    return _fingerprint(store.get(Stage.CURRENT)), _fingerprint(store.get(Stage.PREVIOUS))


def _fingerprint(value: Secret | None) -> str | None:
    return value.fingerprint if value is not None else None


def _where(run: RotationRun) -> str:
    parts = []
    for store in run.stores:
        current, previous = store.get(Stage.CURRENT), store.get(Stage.PREVIOUS)
        parts.append(
            f"{store.uri} serves {current.hint if current else 'nothing'} (previous "
            f"{previous.hint if previous else 'none'})"
        )
    return "; ".join(parts)


def _legacy_keys(run: RotationRun, record: ManualRollback) -> tuple[KeyRef, KeyRef] | None:
    """An older keyguard did not record the keys: read them off a store it rolled back."""
    stores = run.stores
    if record.done:
        reference = min(record.done)
    elif len(stores) > 1 and _pair(run, 0) != _pair(run, 1):
        reference = 0  # stores are rolled back in order: the first one went, its entry did not
    else:
        return None
    current = stores[reference].get(Stage.CURRENT)
    previous = stores[reference].get(Stage.PREVIOUS)
    if current is None or previous is None:
        return None
    return KeyRef(current.fingerprint, current.hint), KeyRef(previous.fingerprint, previous.hint)


def _close_legacy(run: RotationRun, record: ManualRollback, *, reactivate: bool) -> Outcome:
    """No store shows the older rollback's mark: close it, and start afresh only when safe."""
    name = run.env.name
    run.journal.append(
        record.token, "rollback", "closed", run.clock(), reason="abandoned: outcome not recorded"
    )
    if len(run.stores) > 1:
        # Every store agrees, so not even the first was rolled back: nothing happened yet.
        return _start_manual(run, reactivate=reactivate)
    raise RollbackRefused(
        f"{name}: rollback {record.token}, started by an older keyguard, stopped before recording "
        f"whether it changed the store: {_where(run)}. It is now closed and nothing "
        f"changed. If that current key is the one to serve, nothing is left to do; if not, "
        f"run `keyguard rollback {name}` again"
    )


# --------------------------------------------------------------------- may the previous key serve?
@contextmanager
def make_servable(
    run: RotationRun, todo: list[SecretStore], live: RotationState | None, *, reactivate: bool
) -> Iterator[tuple[dict[str, str | None], list[str]]]:
    """Check every previous key (reads only), then re-activate (leases just renewed) and verify
    each. Yields each one's ``apikey_`` id by fingerprint (None: not identified) and the ids it
    re-activated, which any stop (a lost lease too) makes inactive again until the body clears
    that list, just before a store may serve them."""
    targets: dict[str, tuple[Secret, str | None, bool]] = {}  # (key, id, re-activate it)
    for store in todo:
        previous = store.get(Stage.PREVIOUS)
        if previous is None:
            raise ConflictError(f"{store.uri} has no previous key to serve again")
        if previous.fingerprint not in targets:
            key_id, unproven = _previous_id(run, store, previous, live)
            api = _refuse_unsafe(run, previous, key_id, proven=unproven is None)
            inactive = False
            if key_id is not None and api is not None and api.status != "active":
                _may_reactivate(run, previous, key_id, api, unproven, reactivate=reactivate)
                inactive = True
            targets[previous.fingerprint] = (previous, key_id, inactive)
    undo: list[str] = []  # inactive before this run: leave them that way if it stops
    try:
        for previous, key_id, inactive in targets.values():
            if inactive and key_id is not None:
                run.renew_leases(f"re-activating {previous.hint} ({key_id})")
                undo.append(key_id)  # before the call: it may take effect and still fail
                run.admin.update_key(key_id, status="active")
                run.say(f"{run.env.name}: re-activated {previous.hint} ({key_id})")
            _check_works(run, previous, key_id)
        yield {fingerprint: key_id for fingerprint, (_, key_id, _) in targets.items()}, undo
    except BaseException as exc:
        left = []
        for key_id in undo:
            try:
                run.admin.update_key(key_id, status="inactive")
            except Exception:
                left.append(key_id)
        if left and isinstance(exc, KeyguardError):  # the message must not claim nothing changed
            raise type(exc)(
                f"{exc}. But {', '.join(left)}, re-activated by this run, could not be made "
                "inactive again: deactivate it in the Anthropic Console"
            ) from exc
        raise


def _may_reactivate(
    run: RotationRun,
    previous: Secret,
    key_id: str,
    api: ApiKey,
    unproven: str | None,
    *,
    reactivate: bool,
) -> None:
    """RollbackRefused unless re-activating ``key_id`` (a write) rests on proven facts: the
    journal names it by ``previous``'s fingerprint, and the API shows it with that hint."""
    name, status = run.env.name, api.status
    if not reactivate:
        raise RollbackRefused(
            f"{name}: the previous key {previous.hint} ({key_id}) is {status}; nothing changed"
        )
    if unproven is None and api.partial_key_hint is None:
        unproven = f"{key_id} shows {_shown_hint(api)}, so the API cannot confirm it"
    if unproven is not None:
        raise RollbackRefused(
            f"{name}: not re-activating {key_id} ({status}) to serve the previous key "
            f"{previous.hint}: keyguard re-activates only a key its journal proves, but "
            f"{unproven}; nothing changed. If you know which key {previous.hint} is, re-activate "
            f"it in the Anthropic Console yourself, then run `keyguard rollback {name}` again"
        )
    if run.admin.verify_key(previous, run.env.workspace).usable:
        # The key already works, so it is not the inactive key_id: that id is wrong.
        raise RollbackRefused(
            f"{name}: the previous key {previous.hint} already works, so it is not the "
            f"{status} key {key_id} its record names; nothing changed"
        )


def _previous_id(
    run: RotationRun, store: SecretStore, previous: Secret, live: RotationState | None
) -> tuple[str | None, str | None]:
    """The previous key's id, and None when keyguard's journal proves it, else why not.

    The journal records ids keyguard proved, beside the key's fingerprint; a store's metadata
    is whoever writes the store's word, and a hint is seven characters anyone can copy: their
    ids serve the read-only checks, never a re-activation.
    """
    key_id = _journaled_id(run, previous, live)
    if key_id is not None:
        return key_id, None
    version = stage_map(store.describe()).get(Stage.PREVIOUS)
    key_id = version.meta.key_id if version else None
    if key_id is not None:
        return key_id, "that id comes from the store's metadata, which whoever writes it can forge"
    try:
        key_id = run.admin.find_key(previous).id
    except (NotFoundError, UsageError):
        return None, "not identified"  # not in the organization's list: GET /v1/models decides
    return key_id, "that id was found by its hint alone, which a different string can show"


def _journaled_id(run: RotationRun, previous: Secret, live: RotationState | None) -> str | None:
    """The one id keyguard's journal records for ``previous``'s fingerprint, if exactly one."""
    entries = run.journal.entries()
    # A new key's id is proven once its value authenticated (verify); a journal rebuilt by
    # --recover took it from the stores' metadata instead. Old keys' ids were proven on adoption.
    rebuilt = {e.rotation for e in entries if e.step == "create" and e.data.get("recovered")}
    ids = {
        key.id
        for state in ([live] if live is not None else []) + replay(entries)
        for key in state.old_keys
        + ([state.new] if state.verified_at and state.token not in rebuilt else [])
        if key.id and key.fingerprint == previous.fingerprint
    }
    return ids.pop() if len(ids) == 1 else None


def _refuse_unsafe(
    run: RotationRun, previous: Secret, key_id: str | None, *, proven: bool
) -> ApiKey | None:
    """RollbackRefused for a leaked, failed or archived key; else the API's record of it (None:
    not identified). ``proven``: the journal names ``key_id`` by the key's fingerprint."""
    name = run.env.name
    label = f"{previous.hint} ({key_id})" if key_id else previous.hint
    then = f"; nothing changed. Deliver a new key instead: {run.request_text()}"
    log = run.journal.path.parent / INCIDENT_LOG
    for incident in read_incidents(log, run.say):
        key = incident.get("key") if isinstance(incident.get("key"), dict) else {}
        assert isinstance(key, dict)
        if (key_id is not None and key.get("id") == key_id) or (
            key.get("fingerprint") and key.get("fingerprint") == previous.fingerprint
        ):
            when = incident.get("started_at") or incident.get("logged_at") or "undated"
            raise RollbackRefused(
                f"{name}: the previous key {label} leaked: it is recorded in the incident log "
                f"{log} ({when}) and must never serve again{then}"
            )
    for state in run.history():
        if (
            state.closed
            and state.closed.startswith("failed")
            and state.new.fingerprint == previous.fingerprint
        ):
            raise RollbackRefused(
                f"{name}: the previous key {label} is the new key of rotation {state.token}, "
                f"which failed verification ({state.closed.removeprefix('failed: ')}){then}"
            )
    if key_id is None:
        return None
    api = run.admin.get_key(key_id)
    # An id from a store's metadata is forgeable: the key it names must at least show the
    # previous key's hint. A null hint proves nothing either way: only the journal's id passes
    # (and is never re-activated on it, see _may_reactivate).
    if (api.partial_key_hint is not None or not proven) and not key_matches_hint(
        previous, api.partial_key_hint
    ):
        raise RollbackRefused(
            f"{name}: the previous key {previous.hint} is recorded as {key_id}, but {key_id} "
            f"shows {_shown_hint(api)}: the record does not prove which key to re-activate{then}"
        )
    if is_leak_marked(api.name):  # the organization's own record of a leak: any machine sees it
        raise RollbackRefused(
            f"{name}: the previous key {label} leaked: its name {api.name!r} carries keyguard's "
            f"leak mark, and it must never serve again{then}"
        )
    if api.status in ("archived", "expired"):
        raise RollbackRefused(
            f"{name}: the previous key {label} is {api.status} and cannot serve again{then}"
        )
    return api


def _shown_hint(api: ApiKey) -> str:
    hint = api.partial_key_hint
    return f"the hint {hint}" if hint is not None else "no hint (its partial_key_hint is null)"


def _check_works(run: RotationRun, previous: Secret, key_id: str | None) -> None:
    """``GET /v1/models`` (free) with the key, and its workspace when one is configured."""
    label = f"{previous.hint} ({key_id})" if key_id else previous.hint
    workspace = run.env.workspace
    problem = verify_problem(workspace, run.admin.verify_key(previous, workspace))
    if problem is not None:
        raise RollbackRefused(
            f"{run.env.name}: the previous key {label} does not work: {problem}; nothing "
            f"changed. Deliver a new key instead: {run.request_text()}"
        )
