"""The state machine on in-memory fakes: every branch of create/update/verify/revoke/rollback."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from keyguard.errors import (
    ConflictError,
    LeaseHeldError,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from keyguard.keys import generate_key
from keyguard.rotation import VerificationError, rollback, status
from keyguard.stores.interface import Stage
from tests.rotation.conftest import FakeWorld, MintedKey


def test_adopt_rotate_then_wait_for_grace_then_revoke(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    admin, stores, clock = fake_world.admin, fake_world.stores, fake_world.clock
    old, new = serving_old_key.value, new_key.value
    out = fake_world.engine().rotate(new)
    assert (out.exit_code, out.waiting_for) == (5, "grace")
    assert all(store.get() == new and store.get(Stage.PREVIOUS) == old for store in stores)
    assert admin.keys[serving_old_key.id].status == "active"
    clock.advance(hours=24, minutes=1)
    assert fake_world.engine().rotate().waiting_for == "report"
    clock.advance(minutes=5)
    out = fake_world.engine().rotate()
    assert out.exit_code == 0, out.message
    assert admin.keys[serving_old_key.id].status == "inactive"
    assert admin.keys[new_key.id].status == "active"
    clock.advance(days=7, minutes=1)
    fake_world.engine().rotate()
    assert admin.keys[serving_old_key.id].status == "archived"


def test_traffic_on_old_key_holds_back_revoke(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    admin, clock = fake_world.admin, fake_world.clock
    fake_world.engine().rotate(new_key.value)
    clock.advance(hours=20)
    admin.use(serving_old_key.id, clock.now, tokens=1234)
    clock.advance(hours=4, minutes=10)
    out = fake_world.engine().rotate()
    assert (out.exit_code, out.waiting_for) == (5, "drain")
    assert serving_old_key.value.hint in out.message and "1234 tokens" in out.message
    assert admin.keys[serving_old_key.id].status == "active"
    # --force skips the drain check (an incident).
    assert fake_world.engine(force=True).rotate().exit_code == 0
    assert admin.keys[serving_old_key.id].status == "inactive"


def test_idle_for_a_whole_grace_after_late_traffic_revokes(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    clock = fake_world.clock
    hour = timedelta(hours=1)
    fake_world.engine(grace=hour).rotate(new_key.value)
    clock.advance(minutes=30)
    fake_world.admin.use(serving_old_key.id, clock.now)
    clock.advance(minutes=40)
    assert fake_world.engine(grace=hour).rotate().waiting_for == "drain"
    clock.advance(hours=1)
    assert fake_world.engine(grace=hour).rotate().exit_code == 0


def test_grace_zero_revokes_right_after_verify(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    fake_world.admin.use(serving_old_key.id, fake_world.clock.now)
    assert fake_world.engine(grace=timedelta(0)).rotate(new_key.value).exit_code == 0
    assert fake_world.admin.keys[serving_old_key.id].status == "inactive"


def test_empty_stores_take_the_key_as_current(fake_world: FakeWorld, new_key: MintedKey) -> None:
    out = fake_world.engine().rotate(new_key.value)
    assert out.exit_code == 0
    assert all(store.get() == new_key.value for store in fake_world.stores)


def test_refuses_unknown_inactive_and_wrong_workspace(fake_world: FakeWorld) -> None:
    admin = fake_world.admin
    with pytest.raises(NotFoundError, match="no API key with hint"):
        fake_world.engine().deliver(generate_key())
    inactive_id, inactive = admin.mint("x", "wrkspc_p")
    admin.update_key(inactive_id, status="inactive")
    with pytest.raises(UsageError, match="inactive, not active"):
        fake_world.engine().deliver(inactive)
    _, elsewhere = admin.mint("x", "wrkspc_other")
    with pytest.raises(UsageError, match="belongs to workspace wrkspc_other"):
        fake_world.engine().deliver(elsewhere)
    with pytest.raises(UsageError, match="admin key"):
        fake_world.engine().deliver(generate_key("admin"))
    assert all(store.versions == [] for store in fake_world.stores)


def test_unidentified_adopted_key_is_never_revoked(
    fake_world: FakeWorld, new_key: MintedKey
) -> None:
    stranger = generate_key()
    for store in fake_world.stores:
        store.seed(stranger)
    out = fake_world.engine(grace=timedelta(0)).rotate(new_key.value)
    assert out.exit_code == 0 and "never identified" in out.message


def test_no_key_and_nothing_to_continue_waits_with_instructions(fake_world: FakeWorld) -> None:
    out = fake_world.engine().rotate()
    assert out.exit_code == 5 and "named 'prod-20261125' in workspace wrkspc_p" in out.message


def test_store_failure_during_update_resumes_without_revoking(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    admin, stores = fake_world.admin, fake_world.stores
    old, new = serving_old_key.value, new_key.value
    stores[1].fail["promote"] = 1
    with pytest.raises(UnavailableError):
        fake_world.engine(grace=timedelta(0)).rotate(new)
    assert stores[0].get() == new and stores[1].get() == old
    assert admin.keys[serving_old_key.id].status == "active"
    state = status(fake_world.engine())
    assert state.phase == "updating" and "1 of 2" in state.waiting_for
    assert fake_world.engine(grace=timedelta(0)).rotate().exit_code == 0
    assert all(store.get() == new for store in stores)
    assert admin.keys[serving_old_key.id].status == "inactive"


def test_failed_verify_serves_the_old_key_again(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    with pytest.raises(VerificationError, match="check command"):
        fake_world.engine(check='test "$KEYGUARD_KEY_HINT" = nope').rotate(new_key.value)
    assert all(store.get() == serving_old_key.value for store in fake_world.stores)
    assert fake_world.admin.keys[serving_old_key.id].status == "active"


def test_check_command_gets_the_hint(
    fake_world: FakeWorld, new_key: MintedKey, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    fake_world.engine(check=f'echo "$KEYGUARD_KEY_HINT" > {seen}').rotate(new_key.value)
    assert seen.read_text().strip() == new_key.value.hint


def test_rollback_reactivates_and_serves_previous(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    admin = fake_world.admin
    fake_world.engine(grace=timedelta(0)).rotate(new_key.value)
    assert admin.keys[serving_old_key.id].status == "inactive"
    out = rollback(fake_world.engine())
    assert out.exit_code == 0
    assert all(store.get() == serving_old_key.value for store in fake_world.stores)
    assert admin.keys[serving_old_key.id].status == "active"


def test_lease_held_refuses_second_run(fake_world: FakeWorld) -> None:
    first, second = fake_world.engine(), fake_world.engine()
    with first.leased(), pytest.raises(LeaseHeldError, match="another keyguard run"):
        second.rotate()


def test_journal_has_no_key(fake_world: FakeWorld) -> None:
    admin, stores, state_dir = fake_world.admin, fake_world.stores, fake_world.state_dir
    _, old = admin.mint("o", "wrkspc_p")
    stores[0].seed(old)
    _, new = admin.mint("n", "wrkspc_p")
    fake_world.engine(grace=timedelta(0)).rotate(new)
    text = (state_dir / "prod.journal.jsonl").read_text()
    assert new.reveal() not in text and old.reveal() not in text and new.hint in text
    assert oct((state_dir / "prod.journal.jsonl").stat().st_mode & 0o777) == "0o600"


def test_rollback_mid_update_restores_only_promoted_stores(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    stores = fake_world.stores
    old, new = serving_old_key.value, new_key.value
    stores[1].fail["promote"] = 1
    with pytest.raises(UnavailableError):
        fake_world.engine().rotate(new)
    assert [store.get() for store in stores] == [new, old]
    assert rollback(fake_world.engine()).exit_code == 0
    assert [store.get() for store in stores] == [old, old]
    assert stores[1].get(Stage.PENDING) is None
    assert fake_world.admin.keys[serving_old_key.id].status == "active"
    assert fake_world.engine().rotate().waiting_for == "key"  # the rotation is closed


def test_rollback_refuses_an_archived_previous_key(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    fake_world.engine(grace=timedelta(0)).rotate(new_key.value)
    fake_world.clock.advance(days=8)
    fake_world.engine().rotate()
    assert fake_world.admin.keys[serving_old_key.id].status == "archived"
    with pytest.raises(ConflictError, match="archived and cannot serve again"):
        rollback(fake_world.engine())
    assert all(store.get() == new_key.value for store in fake_world.stores)


def test_status_says_due_and_what_to_create(fake_world: FakeWorld) -> None:
    clock = fake_world.clock
    _, old = fake_world.admin.mint(
        "prod-old", "wrkspc_p", created_at=clock.now - timedelta(days=81)
    )
    fake_world.stores[0].seed(old)
    state = status(fake_world.engine())
    assert state.due and state.age is not None and state.age.days == 81
    assert "named 'prod-20261125' in workspace wrkspc_p" in state.waiting_for


def test_rollback_matches_the_incident_log_by_fingerprint_alone(
    fake_world: FakeWorld, serving_old_key: MintedKey, new_key: MintedKey
) -> None:
    old = serving_old_key.value
    fake_world.engine().rotate(new_key.value)  # inside the grace: old is previous and still active
    record = {"key": {"id": None, "hint": old.hint, "fingerprint": old.fingerprint}}
    (fake_world.state_dir / "incidents.jsonl").write_text("not json\n" + json.dumps(record) + "\n")
    with pytest.raises(ConflictError, match="leaked: it is recorded in the incident log"):
        rollback(fake_world.engine())
    assert all(store.get() == new_key.value for store in fake_world.stores)
    assert fake_world.admin.keys[serving_old_key.id].status == "active"
