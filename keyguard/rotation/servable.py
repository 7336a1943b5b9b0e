"""May the previous key serve again? Leaked, failed, archived or dead keys never do."""

from __future__ import annotations

from keyguard.errors import ConflictError, NotFoundError, UsageError
from keyguard.journal import INCIDENT_LOG, read_incidents
from keyguard.keys import Secret, is_leak_marked
from keyguard.rotation.engine import RotationEngine
from keyguard.rotation.state import RotationState
from keyguard.rotation.verify import verify_problem
from keyguard.stores.interface import SecretStore, Stage, stage_map


class RollbackRefused(ConflictError):
    """No previous key to go back to, or it must not serve: leaked, failed, archived, dead."""


def make_servable(
    engine: RotationEngine,
    todo: list[SecretStore],
    live: RotationState | None,
    *,
    reactivate: bool,
) -> dict[str, str | None]:
    """Check every previous key (reads only), then re-activate and verify each; else undo.

    Returns each previous key's ``apikey_`` id by fingerprint (None: not identified).
    """
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
                if engine.admin.verify_key(previous, engine.env.workspace).usable:
                    # The key already works, so it is not the inactive key_id: that id is wrong.
                    raise RollbackRefused(
                        f"{engine.env.name}: the previous key {previous.hint} already works, so "
                        f"it is not the {status} key {key_id} its record names; nothing changed"
                    )
                engine.admin.update_key(key_id, status="active")
                reactivated.append(key_id)
                engine.say(f"{engine.env.name}: re-activated {previous.hint} ({key_id})")
            _check_works(engine, previous, key_id)
    except BaseException:
        for key_id in reactivated:  # it was inactive before this run: leave it that way
            engine.admin.update_key(key_id, status="inactive")
        raise
    return {fingerprint: key_id for fingerprint, (_, key_id, _) in targets.items()}


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
    for record in read_incidents(log, engine.say):
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
    api = engine.admin.get_key(key_id)
    if api.partial_key_hint != previous.hint:
        # The id came from a journal or a store's metadata, which anyone who can write the store
        # can forge: the key it names must at least show the previous key's hint.
        raise RollbackRefused(
            f"{name}: the previous key {previous.hint} is recorded as {key_id}, but {key_id} "
            f"shows the hint {api.partial_key_hint}: the record does not prove which key to "
            f"re-activate{then}"
        )
    if is_leak_marked(api.name):  # the organization's own record of a leak: any machine sees it
        raise RollbackRefused(
            f"{name}: the previous key {label} leaked: its name {api.name!r} carries keyguard's "
            f"leak mark, and it must never serve again{then}"
        )
    status = api.status
    if status in ("archived", "expired"):
        raise RollbackRefused(
            f"{name}: the previous key {label} is {status} and cannot serve again{then}"
        )
    return status


def _check_works(engine: RotationEngine, previous: Secret, key_id: str | None) -> None:
    """``GET /v1/models`` (free) with the key, and its workspace when one is configured."""
    label = f"{previous.hint} ({key_id})" if key_id else previous.hint
    workspace = engine.env.workspace
    problem = verify_problem(workspace, engine.admin.verify_key(previous, workspace))
    if problem is not None:
        raise RollbackRefused(
            f"{engine.env.name}: the previous key {label} does not work: {problem}; nothing "
            f"changed. Deliver a new key instead: {engine.request_text()}"
        )
