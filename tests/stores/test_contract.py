"""The store contract, run against every backend in ``conftest.BACKENDS`` over its real client."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import traceback
import uuid
from datetime import UTC, datetime

import pytest

from keyguard.errors import (
    AuthError,
    ConflictError,
    ExitCode,
    KeyguardError,
    LeaseHeldError,
    UnavailableError,
)
from keyguard.keys import Secret, generate_key
from keyguard.stores import SecretStore, Stage
from keyguard.stores.interface import VersionMeta, stage_map
from keyguard.stores.lease import new_owner
from tests.stores.lease_clock import LeaseClock
from tests.stores.servers.base import Harness

FIELD = "ANTHROPIC_API_KEY"


def token() -> str:
    return str(uuid.uuid4())


def meta_for(key: Secret, tok: str, env: str = "prod") -> VersionMeta:
    return VersionMeta(
        key_id=f"apikey_{uuid.uuid4().hex[:20]}",
        hint=key.hint,
        fingerprint=key.fingerprint,
        stored_at=datetime.now(UTC).replace(microsecond=0),
        token=tok,
        environment=env,
    )


def rotate(store: SecretStore, key: Secret) -> str:
    tok = token()
    store.put_pending(key, meta_for(key, tok))
    store.promote(tok)
    return tok


def assert_consistent(store: SecretStore) -> None:
    """Each stage on at most one version; a current version exists whenever any does."""
    versions = store.describe()
    for stage in Stage:
        holders = [v.version_id for v in versions if stage in v.stages]
        assert len(holders) <= 1, f"{stage} on {holders}"


# -- basics ----------------------------------------------------------------------------------


def test_empty_store_has_no_stage(store_factory: Harness) -> None:
    store = store_factory()
    assert store.get() is None
    assert store.get(Stage.PENDING) is None
    assert store.describe() == []


def test_put_pending_then_promote_moves_stages(store_factory: Harness) -> None:
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    tok = token()
    store.put_pending(k2, meta_for(k2, tok))
    assert store.get(Stage.PENDING) == k2
    assert store.get(Stage.CURRENT) == k1, "pending must not be served before promote"
    store.promote(tok)
    assert store.get(Stage.CURRENT) == k2
    assert store.get(Stage.PREVIOUS) == k1
    assert store.get(Stage.PENDING) is None
    assert_consistent(store)


def test_put_pending_is_idempotent_per_token(store_factory: Harness) -> None:
    store = store_factory()
    key, tok = generate_key(), token()
    first = store.put_pending(key, meta_for(key, tok))
    again = store.put_pending(key, meta_for(key, tok))
    assert first == again
    assert len(store.describe()) == 1
    with pytest.raises(ConflictError) as err:
        store.put_pending(generate_key(), meta_for(key, tok))
    assert tok in str(err.value)
    assert store.get(Stage.PENDING) == key


def test_promote_is_compare_and_set(store_factory: Harness) -> None:
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    tok1 = rotate(store, k1)
    store.promote(tok1)  # already current: a no-op
    assert store.get() == k1
    assert store.get(Stage.PREVIOUS) is None
    with pytest.raises(ConflictError):
        store.promote(token())  # never stored
    tok2 = token()
    store.put_pending(k2, meta_for(k2, tok2))
    store.promote(tok2)
    store.promote(tok2)
    assert store.get() == k2
    assert store.get(Stage.PREVIOUS) == k1


def test_rollback_swaps_current_and_previous(store_factory: Harness) -> None:
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    rotate(store, k2)
    store.rollback()
    assert store.get() == k1
    assert store.get(Stage.PREVIOUS) == k2
    assert_consistent(store)


def test_a_second_rollback_swaps_back(store_factory: Harness) -> None:
    """Documented in the Protocol: rollback is the one method that is not idempotent."""
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    rotate(store, k2)
    store.rollback()
    store.rollback()
    assert store.get() == k2
    assert store.get(Stage.PREVIOUS) == k1
    assert_consistent(store)


def test_rollback_without_previous_is_refused(store_factory: Harness) -> None:
    store = store_factory()
    k1 = generate_key()
    rotate(store, k1)
    with pytest.raises(ConflictError):
        store.rollback()
    assert store.get() == k1


def test_withdraw_leaves_a_store_that_had_no_key_as_it_was(store_factory: Harness) -> None:
    """A first key that failed verification is withdrawn: nothing is served, as before."""
    store = store_factory()
    with store.lease(new_owner(), 600):  # as the engine does: the lease comes first
        failed = generate_key()
        tok = rotate(store, failed)
        store.withdraw(tok)
        store.withdraw(tok)  # a rerun after a crash: a no-op
    fresh = store_factory.open(store.uri)
    assert fresh.get() is None and fresh.get(Stage.PREVIOUS) is None
    assert all(Stage.CURRENT not in v.stages for v in fresh.describe())
    assert_consistent(fresh)
    good = generate_key()
    rotate(fresh, good)  # the next run goes on from there
    assert fresh.get() == good and fresh.get(Stage.PREVIOUS) is None


def test_withdraw_of_a_key_that_is_not_current_changes_nothing(store_factory: Harness) -> None:
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    tok = token()
    store.put_pending(k2, meta_for(k2, tok))
    store.withdraw(tok)
    assert store.get() == k1


def test_discard_pending_keeps_current(store_factory: Harness) -> None:
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    tok = token()
    store.put_pending(k2, meta_for(k2, tok))
    store.discard_pending(tok)
    store.discard_pending(tok)
    assert store.get(Stage.PENDING) is None
    assert store.get() == k1
    with pytest.raises(ConflictError):
        store.promote(tok)
    assert store.get() == k1


def test_describe_round_trips_metadata_and_never_values(store_factory: Harness) -> None:
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    tok1 = token()
    m1 = meta_for(k1, tok1, env="staging")
    store.put_pending(k1, m1)
    store.promote(tok1)
    tok2 = token()
    m2 = meta_for(k2, tok2, env="staging")
    store.put_pending(k2, m2)
    versions = store.describe()
    by_stage = stage_map(versions)
    assert by_stage[Stage.CURRENT].meta == m1
    assert by_stage[Stage.PENDING].meta == m2
    assert versions[0].meta.token == tok2, "newest first"
    text = repr(versions)
    assert k1.reveal() not in text and k2.reveal() not in text


# -- the lease -------------------------------------------------------------------------------


def test_lease_refuses_a_second_holder(store_factory: Harness) -> None:
    store = store_factory()
    other = store_factory.open(store.uri)
    with store.lease(new_owner(), 600):
        with pytest.raises(LeaseHeldError) as err, other.lease(new_owner(), 600):
            pass
        assert err.value.exit_code == ExitCode.PENDING
    with other.lease(new_owner(), 600):  # released: free again
        pass


def test_expired_lease_is_taken_over(store_factory: Harness) -> None:
    store = store_factory()
    stale = store.lease(new_owner(), 0.0)
    stale.__enter__()  # the holder "hangs": never releases
    with store_factory.open(store.uri).lease(new_owner(), 600):
        pass


def test_lease_of_a_dead_holder_is_taken_over(store_factory: Harness) -> None:
    store = store_factory()
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = new_owner(int(child.stdout))  # same host, boot and PID namespace: provably gone
    held = store.lease(dead, 3600)
    held.__enter__()  # killed before it could release
    with store_factory.open(store.uri).lease(new_owner(), 600):
        pass


def test_renewal_keeps_a_long_run_s_lease(store_factory: Harness, lease_clock: LeaseClock) -> None:
    store = store_factory()
    other = store_factory.open(store.uri)
    with store.lease(new_owner(), 600) as held:
        lease_clock.advance(500)  # a slow step: most of the lease is gone
        held.renew()
        lease_clock.advance(200)  # past the expiry the run started with
        with pytest.raises(LeaseHeldError, match="is leased"), other.lease(new_owner(), 600):
            pass
        held.renew()  # the refused run took nothing
    with other.lease(new_owner(), 600):  # released: free again
        pass


def test_a_lease_taken_over_after_it_lapsed_is_never_renewed(
    store_factory: Harness, lease_clock: LeaseClock
) -> None:
    store = store_factory()
    other = store_factory.open(store.uri)
    with store.lease(new_owner(), 600) as held:
        held.renew()  # nothing happened: still ours, nothing to extend yet
        lease_clock.advance(700)  # the run sat past its lease (a suspended laptop)
        with other.lease(new_owner(), 600):
            with pytest.raises(LeaseHeldError, match="no longer holds its lease") as err:
                held.renew()
            assert err.value.exit_code == ExitCode.PENDING
            with pytest.raises(LeaseHeldError):  # the taker keeps it: nothing was written
                store_factory.open(store.uri).lease(new_owner(), 600).__enter__()
        # The other run finished and released: a free lease is still not this run's again.
        with pytest.raises(LeaseHeldError, match="no longer holds its lease"):
            held.renew()
    with other.lease(new_owner(), 600):  # the stale holder's exit released nothing it lost
        pass


# -- secrets made by people ------------------------------------------------------------------


def test_secret_put_by_hand_is_adopted_as_current(store_factory: Harness) -> None:
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    store_factory.put_by_hand(store.uri, k1.reveal())
    assert store.get() == k1
    [only] = store.describe()
    assert only.stages == frozenset({Stage.CURRENT})
    rotate(store, k2)
    assert store.get() == k2
    assert store.get(Stage.PREVIOUS) == k1
    assert store_factory.read_by_hand(store.uri) == k2.reveal()


def test_json_field_keeps_other_fields(store_factory: Harness) -> None:
    store = store_factory(field=FIELD)
    k1, k2 = generate_key(), generate_key()
    store_factory.put_by_hand(
        store.uri, json.dumps({"DB_URL": "postgres://db", FIELD: k1.reveal()})
    )
    assert store.get() == k1
    rotate(store, k2)
    assert store.get() == k2
    raw = store_factory.read_by_hand(store.uri)
    assert raw is not None
    assert json.loads(raw) == {"DB_URL": "postgres://db", FIELD: k2.reveal()}


def test_withdraw_of_a_field_gives_the_other_fields_back(store_factory: Harness) -> None:
    """A first key that failed verification is withdrawn from a JSON secret other consumers
    read too: they still read their fields, and the key's field is as it was before."""
    store = store_factory(field=FIELD)
    before = {"DB_URL": "postgres://db", "FEATURE": "on"}
    store_factory.put_by_hand(store.uri, json.dumps(before))
    with store.lease(new_owner(), 600):
        tok = rotate(store, generate_key())
        store.withdraw(tok)
        store.withdraw(tok)  # a rerun after a crash: a no-op
    raw = store_factory.read_by_hand(store.uri)
    assert raw is not None and json.loads(raw) == before
    fresh = store_factory.open(store.uri)
    assert fresh.get() is None and fresh.get(Stage.PREVIOUS) is None
    assert_consistent(fresh)
    good = generate_key()
    rotate(fresh, good)  # the next run goes on from there, keeping the other fields
    assert fresh.get() == good and fresh.get(Stage.PREVIOUS) is None
    raw = store_factory.read_by_hand(store.uri)
    assert raw is not None and json.loads(raw) == {**before, FIELD: good.reveal()}


@pytest.mark.parametrize("shape", ["plain", "broken-json"])
def test_json_field_on_a_plain_secret_is_a_config_error(store_factory: Harness, shape: str) -> None:
    plain = store_factory()
    key = generate_key()
    raw = key.reveal() if shape == "plain" else f'{{"{FIELD}": "{key.reveal()}",'
    store_factory.put_by_hand(plain.uri, raw)
    with pytest.raises(KeyguardError) as err:
        store_factory.open(f"{plain.uri}#{FIELD}").get()
    assert err.value.exit_code == ExitCode.USAGE
    assert FIELD in str(err.value)
    shown = "".join(traceback.format_exception(err.value)) + repr(err.value)
    assert key.reveal()[20:60] not in shown, "a parse error must not quote the secret"


# -- faults ----------------------------------------------------------------------------------

EXPECTED = {
    "throttle": (UnavailableError, 4),
    "denied": (AuthError, 3),
    "unreachable": (UnavailableError, 4),
}


def test_fault_gives_a_clear_error_and_leaves_state(store_factory: Harness, fault: str) -> None:
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    bad = store_factory.faulty(store.uri, fault)
    cls, code = EXPECTED[fault]
    tok = token()
    # A read and a write: each retries with backoff first, so keep the list short.
    for action in (lambda: bad.get(), lambda: bad.put_pending(k2, meta_for(k2, tok))):
        with pytest.raises(cls) as err:
            action()
        assert int(err.value.exit_code) == code
        assert k1.reveal() not in str(err.value) and k2.reveal() not in str(err.value)
    assert store.get() == k1
    assert store.get(Stage.PENDING) is None


def test_concurrent_writer_loses_compare_and_set(store_factory: Harness) -> None:
    first = store_factory()
    second = store_factory.open(first.uri)
    k0, k1, k2 = generate_key(), generate_key(), generate_key()
    rotate(first, k0)
    tok1, tok2 = token(), token()
    first.put_pending(k1, meta_for(k1, tok1))
    second.put_pending(k2, meta_for(k2, tok2))  # replaces the pending stage, keeps k1 stored
    with pytest.raises(ConflictError):
        first.promote(tok1)
    assert first.get() == k0
    second.promote(tok2)
    assert first.get() == k2
    assert first.get(Stage.PREVIOUS) == k0
    assert any(v.meta.token == tok1 for v in first.describe()), "k1 must not be lost"
    assert_consistent(first)


@pytest.mark.parametrize("writes", [0, 1, 2, 3])
def test_crash_during_promote_leaves_a_whole_state(store_factory: Harness, writes: int) -> None:
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    tok = token()
    store.put_pending(k2, meta_for(k2, tok))
    try:
        store_factory.cut_after(store.uri, writes).promote(tok)
    except KeyguardError as exc:
        assert k2.reveal() not in str(exc)
    fresh = store_factory.open(store.uri)
    assert fresh.get() in (k1, k2), "consumers must always find a key"
    assert_consistent(fresh)
    fresh.promote(tok)  # the resumed run finishes the job
    assert fresh.get() == k2
    assert fresh.get(Stage.PREVIOUS) == k1
    assert fresh.get(Stage.PENDING) is None
    assert_consistent(fresh)


@pytest.mark.parametrize("writes", [0, 1, 2])
def test_crash_during_put_pending_is_resumable(store_factory: Harness, writes: int) -> None:
    store = store_factory()
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    tok = token()
    meta = meta_for(k2, tok)
    with contextlib.suppress(KeyguardError):
        store_factory.cut_after(store.uri, writes).put_pending(k2, meta)
    fresh = store_factory.open(store.uri)
    assert fresh.get() == k1
    assert fresh.get(Stage.PENDING) in (None, k2)
    fresh.put_pending(k2, meta)
    assert fresh.get(Stage.PENDING) == k2
    assert stage_map(fresh.describe())[Stage.PENDING].meta == meta


def test_retire_superseded_keeps_staged_versions(store_factory: Harness) -> None:
    store = store_factory()
    keys = [generate_key() for _ in range(3)]
    for key in keys:
        rotate(store, key)
    store.retire_superseded()
    store.retire_superseded()
    assert store.get() == keys[2]
    assert store.get(Stage.PREVIOUS) == keys[1]
    store.rollback()
    assert store.get() == keys[1]
