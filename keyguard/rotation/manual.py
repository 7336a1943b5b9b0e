"""Rollback of keys no journaled rotation put in the stores (by hand, or the journal was lost).

The journal records the key the rollback serves again and the key it replaces before any store
changes, so a rerun after a crash reads each store and finishes the same rollback: a store that
already serves that key is left alone, one that still serves the replaced key is rolled back,
and anything else is refused. Never a second swap, which would serve the replaced key again.
"""

from __future__ import annotations

import secrets

from keyguard.errors import ConflictError
from keyguard.keys import Secret
from keyguard.rotation.engine import Outcome, RotationEngine
from keyguard.rotation.servable import RollbackRefused, make_servable
from keyguard.rotation.state import KeyRef, ManualRollback
from keyguard.stores.interface import Stage, stage_map


def start_manual(engine: RotationEngine, *, reactivate: bool) -> Outcome:
    """Every store serves the same key with the same previous one: serve that previous again."""
    name = engine.env.name
    pairs = [_pair(engine, i) for i in range(len(engine.stores))]
    if not any(c is not None and p is not None for c, p in pairs):
        raise RollbackRefused(
            f"{name}: nothing to roll back: no store serves a key with a previous one to go back to"
        )
    first = engine.stores[0]
    current, previous = first.get(Stage.CURRENT), first.get(Stage.PREVIOUS)
    if current is None or previous is None or any(pair != pairs[0] for pair in pairs):
        raise RollbackRefused(
            f"{name}: the stores do not hold the same current and previous key, so one "
            f"rollback cannot serve one key everywhere: {_where(engine)}; nothing changed. "
            f"Make them agree by hand, or put a new key in service: `keyguard deliver {name}` "
            f"then `keyguard rotate {name}`"
        )
    ids = make_servable(engine, list(engine.stores), None, reactivate=reactivate)
    replaced_meta = stage_map(first.describe()).get(Stage.CURRENT)
    target = KeyRef(previous.fingerprint, previous.hint, ids.get(previous.fingerprint))
    replaced = KeyRef(
        current.fingerprint, current.hint, replaced_meta.meta.key_id if replaced_meta else None
    )
    now = engine.clock()
    token = f"{name}-rollback-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    # Recorded before any store changes: a rerun knows which way every store must end.
    engine.journal.append(
        token, "rollback", "before", now, key=target.to_json(), replaced=replaced.to_json()
    )
    return _apply(engine, token, list(range(len(engine.stores))), target)


def finish_manual(engine: RotationEngine, rb: ManualRollback, *, reactivate: bool) -> Outcome:
    """Finish rollback ``rb`` that a crash interrupted, writing only stores it did not reach."""
    name = engine.env.name
    if rb.target is None or rb.replaced is None:
        inferred = _legacy_keys(engine, rb)
        if inferred is None:
            return _close_legacy(engine, rb, reactivate=reactivate)
        rb.target, rb.replaced = inferred
    target, replaced = rb.target, rb.replaced
    todo, odd = [], []
    for index in range(len(engine.stores)):
        current, previous = _pair(engine, index)
        if current == target.fingerprint:
            continue  # rolled back before the crash (journaled or not)
        if current == replaced.fingerprint and previous == target.fingerprint:
            todo.append(index)
        else:
            odd.append(index)
    stopped = (
        f"{name}: rollback {rb.token} (to {target.hint}, replacing {replaced.hint}) stopped "
        f"part way: {_where(engine)}"
    )
    if odd:
        raise ConflictError(
            f"{stopped}. {', '.join(engine.stores[i].uri for i in odd)} changed since, so "
            f"keyguard will not guess and changed nothing. Make every store serve "
            f"{target.hint} by hand, then run `keyguard rollback {name}` again to close it; or "
            f"put a new key in service: `keyguard deliver {name}` then `keyguard rotate {name}`"
        )
    if todo:
        try:
            make_servable(engine, [engine.stores[i] for i in todo], None, reactivate=reactivate)
        except RollbackRefused as exc:
            raise RollbackRefused(
                f"{stopped}. Not finishing it: {exc}. Put a new key in service: "
                f"`keyguard deliver {name}` then `keyguard rotate {name}`"
            ) from None
    return _apply(engine, rb.token, todo, target)


def manual_done(engine: RotationEngine, rb: ManualRollback) -> Outcome | None:
    """The "already rolled back" outcome while every store serves what closed ``rb`` served."""
    if rb.target is None or rb.closed_at is None:
        return None
    if any(_pair(engine, i)[0] != rb.target.fingerprint for i in range(len(engine.stores))):
        return None
    return Outcome(
        engine.env.name,
        True,
        f"{engine.env.name}: already rolled back at {rb.closed_at:%Y-%m-%d %H:%M:%S}Z "
        f"(rollback {rb.token}): every store serves {rb.target.hint}; nothing changed",
    )


def _apply(engine: RotationEngine, token: str, todo: list[int], target: KeyRef) -> Outcome:
    for index in todo:
        store = engine.stores[index]
        store.rollback()
        engine.journal.append(
            token, "rollback", "after", engine.clock(), store_index=index, store=store.uri
        )
    engine.journal.append(token, "rollback", "closed", engine.clock(), reason="rolled back")
    return Outcome(
        engine.env.name,
        True,
        f"{engine.env.name}: every store serves {target.hint} again "
        f"({len(todo)} of {len(engine.stores)} changed by this run)",
    )


def _pair(engine: RotationEngine, index: int) -> tuple[str | None, str | None]:
    """Fingerprints of what store ``index`` serves and keeps as previous."""
    store = engine.stores[index]
    return _fp(store.get(Stage.CURRENT)), _fp(store.get(Stage.PREVIOUS))


def _fp(value: Secret | None) -> str | None:
    return value.fingerprint if value is not None else None


def _where(engine: RotationEngine) -> str:
    parts = []
    for store in engine.stores:
        current, previous = store.get(Stage.CURRENT), store.get(Stage.PREVIOUS)
        parts.append(
            f"{store.uri} serves {current.hint if current else 'nothing'} (previous "
            f"{previous.hint if previous else 'none'})"
        )
    return "; ".join(parts)


def _legacy_keys(engine: RotationEngine, rb: ManualRollback) -> tuple[KeyRef, KeyRef] | None:
    """An older keyguard did not record the keys: read them off a store it rolled back."""
    stores = engine.stores
    if rb.done:
        ref = min(rb.done)
    elif len(stores) > 1 and _pair(engine, 0) != _pair(engine, 1):
        ref = 0  # stores are rolled back in order: the first one went, its after-entry did not
    else:
        return None
    current, previous = stores[ref].get(Stage.CURRENT), stores[ref].get(Stage.PREVIOUS)
    if current is None or previous is None:
        return None
    return (
        KeyRef(current.fingerprint, current.hint),
        KeyRef(previous.fingerprint, previous.hint),
    )


def _close_legacy(engine: RotationEngine, rb: ManualRollback, *, reactivate: bool) -> Outcome:
    """No store shows the older rollback's mark: close it, and start afresh only when safe."""
    name = engine.env.name
    engine.journal.append(
        rb.token, "rollback", "closed", engine.clock(), reason="abandoned: outcome not recorded"
    )
    if len(engine.stores) > 1:
        # Every store agrees, so not even the first was rolled back: nothing happened yet.
        return start_manual(engine, reactivate=reactivate)
    raise RollbackRefused(
        f"{name}: rollback {rb.token}, started by an older keyguard, stopped before recording "
        f"whether it changed the store: {_where(engine)}. It is now closed and nothing "
        f"changed. If that current key is the one to serve, nothing is left to do; if not, "
        f"run `keyguard rollback {name}` again"
    )
