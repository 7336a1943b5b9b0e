"""``keyguard rollback ENV``: serve the previous key again, once, and safely on rerun."""

from __future__ import annotations

from keyguard.rotation.engine import Outcome, RotationEngine
from keyguard.rotation.manual import finish_manual, manual_done, start_manual
from keyguard.rotation.servable import RollbackRefused, make_servable
from keyguard.rotation.state import KeyRef, RotationState, last_manual_rollback, replay
from keyguard.stores.interface import SecretStore, Stage
from keyguard.words import plural


def rollback(engine: RotationEngine, *, reactivate: bool = True) -> Outcome:
    """Serve the previous key again everywhere, re-activating it first if it was inactive.

    Refuses (nothing changed) a key recorded as leaked, one whose verify failed, an archived
    key, or one ``GET /v1/models`` refuses. ``reactivate=False``: an inactive one too.
    A rerun after a crash finishes the same rollback; it never swaps back.
    """
    name = engine.env.name
    with engine.leased():
        entries = engine.journal.entries()
        states = replay(entries)
        st = states[-1] if states else None
        manual = last_manual_rollback(entries)
        if manual is not None:
            # A rollback of keys no rotation put there is the newest thing in the journal.
            if manual.closed is None:
                return finish_manual(engine, manual, reactivate=reactivate)
            done = manual_done(engine, manual)
            if done is not None:
                return done
            return start_manual(engine, reactivate=reactivate)
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
        if live is None:
            return start_manual(engine, reactivate=reactivate)
        return _rollback_rotation(engine, live, reactivate=reactivate)


def _rollback_rotation(engine: RotationEngine, live: RotationState, *, reactivate: bool) -> Outcome:
    """Undo journaled rotation ``live``: every store serving its new key goes back."""
    name = engine.env.name
    todo = [s for s in engine.stores if _needs_rollback(s, live)]
    if not todo and live.rollback_started:
        now = engine.clock()
        engine.journal.append(live.token, "rollback", "closed", now, reason="rolled back")
        return Outcome(name, True, f"{name}: rollback of {live.token} finished")
    if not todo:
        raise RollbackRefused(
            f"{name}: nothing to roll back: no store serves a key with a previous one to go back to"
        )
    make_servable(engine, todo, live, reactivate=reactivate)  # before any store changes
    engine.journal.append(live.token, "rollback", "before", engine.clock())
    for index, store in enumerate(engine.stores):
        if store in todo:
            store.rollback()
            engine.journal.append(
                live.token, "rollback", "after", engine.clock(), store_index=index, store=store.uri
            )
        else:
            store.discard_pending(live.token)
    engine.journal.append(live.token, "rollback", "closed", engine.clock(), reason="rolled back")
    served = todo[0].get(Stage.CURRENT)
    hint = served.hint if served else "?"
    return Outcome(
        name,
        True,
        f"{name}: {plural(len(todo), 'store')} serve{'s' if len(todo) == 1 else ''} {hint} "
        f"again. The newer key {live.new.label()} is "
        "still active; deactivate it in the Console if it should not be used.",
    )


def _serves(engine: RotationEngine, key: KeyRef) -> bool:
    return any(
        (v := s.get(Stage.CURRENT)) is not None and v.fingerprint == key.fingerprint
        for s in engine.stores
    )


def _needs_rollback(store: SecretStore, live: RotationState) -> bool:
    current = store.get(Stage.CURRENT)
    return current is not None and current.fingerprint == live.new.fingerprint and bool(live.olds)
