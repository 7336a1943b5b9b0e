"""The create step: check a delivered key, record what it replaces, store it as pending."""

from __future__ import annotations

import secrets

from keyguard.errors import NotFoundError, UsageError
from keyguard.keys import Secret, is_admin_key, is_api_key, is_leak_marked
from keyguard.models import ApiKey
from keyguard.rotation.context import RotationRun, key_name
from keyguard.rotation.state import KeyRef, RotationState
from keyguard.rotation.verify import identify_served_key, key_workspace_problem
from keyguard.stores.interface import Stage, VersionMeta, stage_map


def create(run: RotationRun, key: Secret) -> RotationState:
    """Start a rotation to ``key`` (or finish storing it) and store it as pending everywhere."""
    value = key.reveal()
    if is_admin_key(value):
        raise UsageError(
            "that is an admin key (sk-ant-admin01-...); deliver the new API key "
            "(sk-ant-api03-...) instead"
        )
    if not is_api_key(value):
        raise UsageError(
            f"the delivered value {key.redacted} is not an Anthropic API key "
            "(sk-ant-api03- + 93 characters + AA); copy the whole key from the Console"
        )
    state = run.latest()
    if state is not None and state.in_flight:
        if state.new.fingerprint == key.fingerprint:
            if state.phase == "creating":
                _store_pending(run, state, key)
                return run.state_of(state.token)
            run.say(f"{run.env.name}: key {state.new.hint} was already delivered")
            return state
        if state.phase != "creating":
            raise UsageError(
                f"{run.env.name} is in the middle of rotation {state.token} (new key "
                f"{state.new.hint}, {state.phase}); finish it with `keyguard rotate "
                f"{run.env.name}` or undo it with `keyguard rollback {run.env.name}` "
                "before delivering another key"
            )
        abandon(run, state, f"replaced by key {key.hint}")
    for store in run.stores:
        current = store.get(Stage.CURRENT)
        if current is not None and current.fingerprint == key.fingerprint:
            raise UsageError(
                f"key {key.hint} is already the current key in {store.uri}; "
                "create a new key in the Console"
            )
    api = _identify_new(run, key)
    old_keys = _current_keys(run)
    now = run.clock()
    token = f"{run.env.name}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    new = KeyRef(key.fingerprint, key.hint, api.id, api.name, api.workspace_id)
    run.journal.append(
        token,
        "create",
        "before",
        now,
        key=new.to_json(),
        olds=[old.to_json() for old in old_keys],
        expected_name=key_name(run.env, now),
    )
    _store_pending(run, run.state_of(token), key)
    return run.state_of(token)


def resume_create(run: RotationRun, state: RotationState) -> RotationState | None:
    """Finish storing a delivered key after a crash, reading it back from any store."""
    for store in run.stores:
        pending = store.get(Stage.PENDING)
        if pending is not None and pending.fingerprint == state.new.fingerprint:
            _store_pending(run, state, pending)
            return run.state_of(state.token)
    return None


def abandon(run: RotationRun, state: RotationState, reason: str) -> None:
    """Close a rotation before its update: its pending key leaves every store."""
    for store in run.stores:
        store.discard_pending(state.token)
    run.journal.append(state.token, "create", "closed", run.clock(), reason=reason)


def _identify_new(run: RotationRun, key: Secret) -> ApiKey:
    try:
        api = run.admin.find_key(key)
    except NotFoundError:
        raise NotFoundError(
            f"no API key with hint {key.hint} exists in the organization of the admin key; "
            "create it in that organization's Console and deliver it again"
        ) from None
    if api.status != "active":
        raise UsageError(f"key {key.hint} ({api.id}) is {api.status}, not active; create a new key")
    if is_leak_marked(api.name):
        raise UsageError(
            f"key {key.hint} ({api.id}) is named {api.name!r}: keyguard marked it as leaked, "
            "so it never serves again; create a new key"
        )
    problem = key_workspace_problem(run.env.workspace, api)
    if problem is not None:
        raise UsageError(f"{run.env.name}: {problem}; create the key there ({key.hint})")
    expected = key_name(run.env, run.clock())
    if api.name != expected:
        run.say(f"{run.env.name}: note: key is named {api.name!r}, expected {expected!r}")
    return api


def _current_keys(run: RotationRun) -> list[KeyRef]:
    """The keys the stores serve now (adopted when keyguard never saw them)."""
    found: dict[str, KeyRef] = {}
    for store in run.stores:
        current = store.get(Stage.CURRENT)
        if current is None or current.fingerprint in found:
            continue
        version = stage_map(store.describe()).get(Stage.CURRENT)
        recorded_id = version.meta.key_id if version else None
        api = identify_served_key(run.admin, current, recorded_id)
        if isinstance(api, str):
            run.say(
                f"{run.env.name}: current key {current.hint} in {store.uri} is not identified "
                f"({api}); keyguard will not revoke it"
            )
            found[current.fingerprint] = KeyRef(current.fingerprint, current.hint)
            continue
        if recorded_id is None:
            run.say(f"{run.env.name}: adopting current key {current.hint} ({api.id})")
        found[current.fingerprint] = KeyRef(
            current.fingerprint, current.hint, api.id, api.name, api.workspace_id
        )
    return list(found.values())


def _store_pending(run: RotationRun, state: RotationState, key: Secret) -> None:
    meta = VersionMeta(
        key_id=state.new.id,
        hint=state.new.hint,
        fingerprint=state.new.fingerprint,
        stored_at=run.clock(),
        token=state.token,
        environment=run.env.name,
    )
    for index, store in enumerate(run.stores):
        if index in state.stored:
            continue
        run.journal.append(
            state.token, "create", "before", run.clock(), store_index=index, store=store.uri
        )
        store.put_pending(key, meta)
        run.journal.append(
            state.token, "create", "after", run.clock(), store_index=index, store=store.uri
        )
    run.journal.append(state.token, "create", "after", run.clock())
    run.say(f"{run.env.name}: new key {state.new.label()} stored as pending in every store")
