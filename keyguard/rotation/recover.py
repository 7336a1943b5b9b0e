"""A rotation the stores show but the journal does not know (journal lost): refuse, or rebuild."""

from __future__ import annotations

from dataclasses import dataclass

from keyguard.errors import ConflictError, NotFoundError, UsageError
from keyguard.keys import Secret
from keyguard.rotation.engine import RotationEngine
from keyguard.rotation.state import KeyRef, replay, replay_manual_rollbacks
from keyguard.stores.interface import SecretStore, Stage, StoreVersion, stage_map


@dataclass(frozen=True)
class Orphan:
    """Rotation ``token``'s key sits in the stores; the journal has no entry for it."""

    token: str
    new: KeyRef
    pending: list[int]  # store indexes holding it as pending
    current: list[int]  # store indexes serving it
    olds: list[KeyRef]  # what the other stores serve, or what it replaced


def find_orphan(engine: RotationEngine) -> Orphan | None:
    """The unfinished rotation the stores show and the journal lacks, if any."""
    entries = engine.journal.entries()
    known = {s.token for s in replay(entries)}
    # The key an unfinished rollback is taking out of service is the journal's, not lost.
    rolling_back = {
        rb.replaced.fingerprint
        for rb in replay_manual_rollbacks(entries)
        if rb.closed is None and rb.replaced is not None
    }
    found: dict[str, tuple[StoreVersion, list[int], list[int]]] = {}
    for index, store in enumerate(engine.stores):
        for version in store.describe():
            meta = version.meta
            if not meta.token or meta.token in known or meta.fingerprint in rolling_back:
                continue
            if meta.environment not in (None, engine.env.name):
                continue
            if not version.stages & {Stage.PENDING, Stage.CURRENT}:
                continue
            _, pending, current = found.setdefault(meta.token, (version, [], []))
            (current if Stage.CURRENT in version.stages else pending).append(index)
    if not found:
        return None
    if len(found) > 1:
        raise ConflictError(
            f"{engine.env.name}: the stores hold keys of {len(found)} rotations the journal "
            f"{engine.journal.path} does not know ({', '.join(sorted(found))}); put the journal "
            "back, or make every store serve one key by hand, then run again"
        )
    token, (version, pending, current) = next(iter(found.items()))
    new_value = _value_of(engine.stores, token)
    new = KeyRef(new_value.fingerprint, new_value.hint, version.meta.key_id, None, None)
    olds = _olds(engine, new)
    orphan = Orphan(token, new, pending, current, olds)
    if pending or len(current) < len(engine.stores):
        return orphan
    # Every store serves the new key: unfinished only while a key it replaced is still active.
    for old in olds:
        if old.id and engine.admin.get_key(old.id).status == "active":
            return orphan
    return None


def _value_of(stores: list[SecretStore], token: str) -> Secret:
    for store in stores:
        versions = stage_map(store.describe())
        for stage in (Stage.PENDING, Stage.CURRENT):
            v = versions.get(stage)
            if v is not None and v.meta.token == token:
                value = store.get(stage)
                if value is not None:
                    return value
    raise ConflictError(f"the key of rotation {token} could not be read back from any store")


def _olds(engine: RotationEngine, new: KeyRef) -> list[KeyRef]:
    """Per store: what it serves, or (where the new key serves) what it served before."""
    found: dict[str, KeyRef] = {}
    for store in engine.stores:
        current = store.get(Stage.CURRENT)
        stage = Stage.CURRENT
        if current is not None and current.fingerprint == new.fingerprint:
            stage = Stage.PREVIOUS
        value = store.get(stage) if stage is Stage.PREVIOUS else current
        if value is None or value.fingerprint in found or value.fingerprint == new.fingerprint:
            continue
        version = stage_map(store.describe()).get(stage)
        key_id = version.meta.key_id if version else None
        if key_id is None:
            try:
                key_id = engine.admin.find_key(value).id
            except (NotFoundError, UsageError):
                key_id = None  # never identified: never revoked
        found[value.fingerprint] = KeyRef(value.fingerprint, value.hint, key_id)
    return list(found.values())


def describe(engine: RotationEngine, orphan: Orphan) -> str:
    """What happened and exactly what to do next."""
    where = []
    if orphan.pending:
        where.append("pending in " + ", ".join(engine.stores[i].uri for i in orphan.pending))
    if orphan.current:
        where.append("served by " + ", ".join(engine.stores[i].uri for i in orphan.current))
    olds = ", ".join(k.label() for k in orphan.olds) or "none"
    name = engine.env.name
    return (
        f"{name}: rotation {orphan.token} is unfinished but the journal {engine.journal.path} "
        f"has no record of it (lost or moved?): its new key {orphan.new.hint} is "
        f"{'; '.join(where)}; old key(s) {olds} not revoked. keyguard will not guess. "
        f"Put the journal back at that path and run again, or run `keyguard rotate {name} "
        "--recover` to rebuild it from the stores (the update is completed, verify runs again "
        "and a fresh grace period starts before any old key is revoked)"
    )


def check_journal(engine: RotationEngine, *, recover: bool, delivered: Secret | None) -> None:
    """Refuse to act on stores the journal does not describe; with ``recover``, rebuild it.

    Handing over the very key the stores hold for that rotation is consent enough.
    """
    orphan = find_orphan(engine)
    if orphan is None:
        return
    same = delivered is not None and delivered.fingerprint == orphan.new.fingerprint
    if not (recover or same):
        raise ConflictError(describe(engine, orphan))
    rebuild(engine, orphan)


def rebuild(engine: RotationEngine, orphan: Orphan) -> None:
    """Journal what the stores show: stored where pending/current, promoted where current."""
    now = engine.clock()
    token = orphan.token
    log = engine.journal.append
    log(
        token,
        "create",
        "before",
        now,
        key=orphan.new.to_json(),
        olds=[o.to_json() for o in orphan.olds],
        recovered=True,
    )
    holding = sorted(orphan.pending + orphan.current)
    for index in holding:
        log(token, "create", "after", now, store_index=index, store=engine.stores[index].uri)
    if len(holding) == len(engine.stores):
        log(token, "create", "after", now)
    if orphan.current:
        log(token, "promote", "before", now)
        for index in orphan.current:
            uri = engine.stores[index].uri
            log(token, "promote", "after", now, store_index=index, store=uri)
    engine.say(
        f"{engine.env.name}: rebuilt rotation {token} from the stores "
        f"({len(orphan.current)} of {len(engine.stores)} serve {orphan.new.hint}); continuing"
    )
