"""A rotation the stores show but the journal does not know (journal lost): refuse, or rebuild;
and the leases every run holds while it checks that and acts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from keyguard.errors import ConflictError, LeaseHeldError
from keyguard.keys import Secret
from keyguard.rotation.context import RotationRun
from keyguard.rotation.state import KeyRef, replay, replay_manual_rollbacks
from keyguard.rotation.verify import identify_served_key
from keyguard.stores.interface import SecretStore, Stage, StoreVersion, stage_map


@dataclass(frozen=True)
class Orphan:
    """Rotation ``token``'s key sits in the stores; the journal has no entry for it."""

    token: str
    new: KeyRef
    pending: list[int]  # store indexes holding it as pending
    current: list[int]  # store indexes serving it
    old_keys: list[KeyRef]  # what the other stores serve, or what it replaced


@contextmanager
def hold_leases(run: RotationRun, delivered: Secret | None = None) -> Iterator[None]:
    """Hold every store's lease, in store order, for the whole run; then refuse stores the
    journal does not describe (or rebuild it: see ``check_journal``)."""
    with ExitStack() as stack:
        held, run.leases = run.leases, []
        stack.callback(setattr, run, "leases", held)
        for store in run.stores:
            try:
                run.leases.append(stack.enter_context(store.lease(run.owner, run.lease_ttl)))
            except LeaseHeldError as exc:
                raise LeaseHeldError(
                    f"{run.env.name}: another keyguard run is rotating this environment "
                    f"({exc}); this run changed nothing, run it again once that one ends"
                ) from None
        # Stores changed by a rotation the journal does not know: never guess from them.
        check_journal(run, recover=run.recover, delivered=delivered)
        yield


def find_orphan(run: RotationRun) -> Orphan | None:
    """The unfinished rotation the stores show and the journal lacks, if any."""
    entries = run.journal.entries()
    known = {state.token for state in replay(entries)}
    # The key an unfinished rollback is taking out of service is the journal's, not lost.
    rolling_back = {
        record.replaced.fingerprint
        for record in replay_manual_rollbacks(entries)
        if record.closed is None and record.replaced is not None
    }
    found: dict[str, tuple[StoreVersion, list[int], list[int]]] = {}
    for index, store in enumerate(run.stores):
        for version in store.describe():
            meta = version.meta
            if not meta.token or meta.token in known or meta.fingerprint in rolling_back:
                continue
            if meta.environment not in (None, run.env.name):
                continue
            if not version.stages & {Stage.PENDING, Stage.CURRENT}:
                continue
            _, pending, current = found.setdefault(meta.token, (version, [], []))
            (current if Stage.CURRENT in version.stages else pending).append(index)
    if not found:
        return None
    if len(found) > 1:
        raise ConflictError(
            f"{run.env.name}: the stores hold keys of {len(found)} rotations the journal "
            f"{run.journal.path} does not know ({', '.join(sorted(found))}); put the journal "
            "back, or make every store serve one key by hand, then run again"
        )
    token, (version, pending, current) = next(iter(found.items()))
    new_value = _value_of(run.stores, token)
    new = KeyRef(new_value.fingerprint, new_value.hint, version.meta.key_id, None, None)
    old_keys = _old_keys(run, new)
    orphan = Orphan(token, new, pending, current, old_keys)
    if pending or len(current) < len(run.stores):
        return orphan
    # Every store serves the new key: unfinished only while a key it replaced is still active.
    for old in old_keys:
        if old.id and run.admin.get_key(old.id).status == "active":
            return orphan
    return None


def _value_of(stores: list[SecretStore], token: str) -> Secret:
    for store in stores:
        versions = stage_map(store.describe())
        for stage in (Stage.PENDING, Stage.CURRENT):
            version = versions.get(stage)
            if version is not None and version.meta.token == token:
                value = store.get(stage)
                if value is not None:
                    return value
    raise ConflictError(f"the key of rotation {token} could not be read back from any store")


def _old_keys(run: RotationRun, new: KeyRef) -> list[KeyRef]:
    """Per store: what it serves, or (where the new key serves) what it served before."""
    found: dict[str, KeyRef] = {}
    for store in run.stores:
        current = store.get(Stage.CURRENT)
        stage = Stage.CURRENT
        if current is not None and current.fingerprint == new.fingerprint:
            stage = Stage.PREVIOUS
        value = store.get(stage) if stage is Stage.PREVIOUS else current
        if value is None or value.fingerprint in found or value.fingerprint == new.fingerprint:
            continue
        version = stage_map(store.describe()).get(stage)
        api = identify_served_key(run.admin, value, version.meta.key_id if version else None)
        key_id = None if isinstance(api, str) else api.id  # never identified: never revoked
        found[value.fingerprint] = KeyRef(value.fingerprint, value.hint, key_id)
    return list(found.values())


def describe(run: RotationRun, orphan: Orphan) -> str:
    """What happened and exactly what to do next."""
    where = []
    if orphan.pending:
        where.append("pending in " + ", ".join(run.stores[i].uri for i in orphan.pending))
    if orphan.current:
        where.append("served by " + ", ".join(run.stores[i].uri for i in orphan.current))
    old_keys = ", ".join(key.label() for key in orphan.old_keys) or "none"
    name = run.env.name
    return (
        f"{name}: rotation {orphan.token} is unfinished but the journal {run.journal.path} "
        f"has no record of it (lost or moved?): its new key {orphan.new.hint} is "
        f"{'; '.join(where)}; old key(s) {old_keys} not revoked. keyguard will not guess. "
        f"Put the journal back at that path and run again, or run `keyguard rotate {name} "
        "--recover` to rebuild it from the stores (the update is completed, verify runs again "
        "and a fresh grace period starts before any old key is revoked)"
    )


def check_journal(run: RotationRun, *, recover: bool, delivered: Secret | None) -> None:
    """Refuse to act on stores the journal does not describe; with ``recover``, rebuild it.

    Handing over the very key the stores hold for that rotation is consent enough.
    """
    orphan = find_orphan(run)
    if orphan is None:
        return
    same = delivered is not None and delivered.fingerprint == orphan.new.fingerprint
    if not (recover or same):
        raise ConflictError(describe(run, orphan))
    rebuild(run, orphan)


def rebuild(run: RotationRun, orphan: Orphan) -> None:
    """Journal what the stores show: stored where pending/current, promoted where current."""
    now = run.clock()
    token = orphan.token
    append = run.journal.append
    append(
        token,
        "create",
        "before",
        now,
        key=orphan.new.to_json(),
        olds=[old.to_json() for old in orphan.old_keys],
        recovered=True,
    )
    holding = sorted(orphan.pending + orphan.current)
    for index in holding:
        append(token, "create", "after", now, store_index=index, store=run.stores[index].uri)
    if len(holding) == len(run.stores):
        append(token, "create", "after", now)
    if orphan.current:
        append(token, "promote", "before", now)
        for index in orphan.current:
            uri = run.stores[index].uri
            append(token, "promote", "after", now, store_index=index, store=uri)
    run.say(
        f"{run.env.name}: rebuilt rotation {token} from the stores "
        f"({len(orphan.current)} of {len(run.stores)} serve {orphan.new.hint}); continuing"
    )
