"""The state machine on in-memory fakes: every branch of create/update/verify/revoke/rollback."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from keyguard.config import Environment
from keyguard.errors import (
    ConflictError,
    LeaseHeldError,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from keyguard.journal import RotationJournal
from keyguard.keys import generate_key
from keyguard.policy import Policy
from keyguard.rotation import RotationEngine, VerificationError, rollback, status
from keyguard.stores.interface import Stage
from tests.rotation.fakes import Clock, FakeAdmin, FakeStore


@pytest.fixture
def world(tmp_path: Path) -> tuple[FakeAdmin, list[FakeStore], Clock, Path]:
    return (
        FakeAdmin(),
        [FakeStore(f"fake:{tmp_path}/a"), FakeStore(f"fake:{tmp_path}/b")],
        Clock(),
        tmp_path,
    )


def engine(world: tuple[FakeAdmin, list[FakeStore], Clock, Path], **kw: object) -> RotationEngine:
    admin, stores, clock, tmp = world
    env = Environment(
        "prod",
        tuple(s.uri for s in stores),
        Policy(),
        workspace="wrkspc_p",
        check=kw.pop("check", None),
    )  # type: ignore[arg-type]
    return RotationEngine(
        env, admin=admin, stores=stores, journal=RotationJournal(tmp, "prod"), clock=clock, **kw
    )  # type: ignore[arg-type]


def test_adopt_rotate_then_wait_for_grace_then_revoke(world) -> None:
    admin, stores, clock, _ = world
    old_id, old = admin.mint("prod-old", "wrkspc_p")
    for s in stores:
        s.seed(old)
    new_id, new = admin.mint("prod-20261125", "wrkspc_p")
    out = engine(world).rotate(new)
    assert (out.exit_code, out.waiting_for) == (5, "grace")
    assert all(s.get() == new and s.get(Stage.PREVIOUS) == old for s in stores)
    assert admin.keys[old_id].status == "active"
    clock.advance(hours=24, minutes=1)
    assert engine(world).rotate().waiting_for == "report"
    clock.advance(minutes=5)
    out = engine(world).rotate()
    assert out.exit_code == 0, out.message
    assert admin.keys[old_id].status == "inactive"
    assert admin.keys[new_id].status == "active"
    clock.advance(days=7, minutes=1)
    engine(world).rotate()
    assert admin.keys[old_id].status == "archived"


def test_traffic_on_old_key_holds_back_revoke(world) -> None:
    admin, stores, clock, _ = world
    old_id, old = admin.mint("prod-old", "wrkspc_p")
    for s in stores:
        s.seed(old)
    _, new = admin.mint("prod-new", "wrkspc_p")
    engine(world).rotate(new)
    clock.advance(hours=20)
    admin.use(old_id, clock.now, tokens=1234)
    clock.advance(hours=4, minutes=10)
    out = engine(world).rotate()
    assert (out.exit_code, out.waiting_for) == (5, "drain")
    assert old.hint in out.message and "1234 tokens" in out.message
    assert admin.keys[old_id].status == "active"
    # --force skips the drain check (an incident).
    assert engine(world, force=True).rotate().exit_code == 0
    assert admin.keys[old_id].status == "inactive"


def test_idle_for_a_whole_grace_after_late_traffic_revokes(world) -> None:
    admin, stores, clock, _ = world
    old_id, old = admin.mint("prod-old", "wrkspc_p")
    stores[0].seed(old)
    stores[1].seed(old)
    _, new = admin.mint("prod-new", "wrkspc_p")
    engine(world, grace=timedelta(hours=1)).rotate(new)
    clock.advance(minutes=30)
    admin.use(old_id, clock.now)
    clock.advance(minutes=40)
    assert engine(world, grace=timedelta(hours=1)).rotate().waiting_for == "drain"
    clock.advance(hours=1)
    assert engine(world, grace=timedelta(hours=1)).rotate().exit_code == 0


def test_grace_zero_revokes_right_after_verify(world) -> None:
    admin, stores, _, _ = world
    old_id, old = admin.mint("prod-old", "wrkspc_p")
    for s in stores:
        s.seed(old)
    admin.use(old_id, world[2].now)
    _, new = admin.mint("prod-new", "wrkspc_p")
    assert engine(world, grace=timedelta(0)).rotate(new).exit_code == 0
    assert admin.keys[old_id].status == "inactive"


def test_empty_stores_take_the_key_as_current(world) -> None:
    admin, stores, _, _ = world
    _, new = admin.mint("prod-new", "wrkspc_p")
    out = engine(world).rotate(new)
    assert out.exit_code == 0
    assert all(s.get() == new for s in stores)


def test_refuses_unknown_inactive_and_wrong_workspace(world) -> None:
    admin, stores, _, _ = world
    with pytest.raises(NotFoundError, match="no API key with hint"):
        engine(world).deliver(generate_key())
    kid, k = admin.mint("x", "wrkspc_p")
    admin.update_key(kid, status="inactive")
    with pytest.raises(UsageError, match="inactive, not active"):
        engine(world).deliver(k)
    _, k2 = admin.mint("x", "wrkspc_other")
    with pytest.raises(UsageError, match="belongs to workspace wrkspc_other"):
        engine(world).deliver(k2)
    with pytest.raises(UsageError, match="admin key"):
        engine(world).deliver(generate_key("admin"))
    assert all(s.versions == [] for s in stores)


def test_unidentified_adopted_key_is_never_revoked(world) -> None:
    admin, stores, _, _ = world
    stranger = generate_key()
    for s in stores:
        s.seed(stranger)
    _, new = admin.mint("prod-new", "wrkspc_p")
    out = engine(world, grace=timedelta(0)).rotate(new)
    assert out.exit_code == 0 and "never identified" in out.message


def test_no_key_and_nothing_to_continue_waits_with_instructions(world) -> None:
    out = engine(world).rotate()
    assert out.exit_code == 5 and "named 'prod-20261125' in workspace wrkspc_p" in out.message


def test_store_failure_during_update_resumes_without_revoking(world) -> None:
    admin, stores, _, _ = world
    old_id, old = admin.mint("prod-old", "wrkspc_p")
    for s in stores:
        s.seed(old)
    _, new = admin.mint("prod-new", "wrkspc_p")
    stores[1].fail["promote"] = 1
    with pytest.raises(UnavailableError):
        engine(world, grace=timedelta(0)).rotate(new)
    assert stores[0].get() == new and stores[1].get() == old
    assert admin.keys[old_id].status == "active"
    st = status(engine(world))
    assert st.phase == "updating" and "1 of 2" in st.waiting_for
    assert engine(world, grace=timedelta(0)).rotate().exit_code == 0
    assert all(s.get() == new for s in stores) and admin.keys[old_id].status == "inactive"


def test_failed_verify_serves_the_old_key_again(world) -> None:
    admin, stores, _, _ = world
    old_id, old = admin.mint("prod-old", "wrkspc_p")
    for s in stores:
        s.seed(old)
    _, new = admin.mint("prod-new", "wrkspc_p")
    with pytest.raises(VerificationError, match="check command"):
        engine(world, check='test "$KEYGUARD_KEY_HINT" = nope').rotate(new)
    assert all(s.get() == old for s in stores) and admin.keys[old_id].status == "active"


def test_check_command_gets_the_hint(world, tmp_path: Path) -> None:
    admin, _, _, _ = world
    _, new = admin.mint("prod-new", "wrkspc_p")
    out = tmp_path / "seen"
    engine(world, check=f'echo "$KEYGUARD_KEY_HINT" > {out}').rotate(new)
    assert out.read_text().strip() == new.hint


def test_rollback_reactivates_and_serves_previous(world) -> None:
    admin, stores, _, _ = world
    old_id, old = admin.mint("prod-old", "wrkspc_p")
    for s in stores:
        s.seed(old)
    _, new = admin.mint("prod-new", "wrkspc_p")
    engine(world, grace=timedelta(0)).rotate(new)
    assert admin.keys[old_id].status == "inactive"
    out = rollback(engine(world))
    assert out.exit_code == 0
    assert all(s.get() == old for s in stores) and admin.keys[old_id].status == "active"


def test_lease_held_refuses_second_run(world) -> None:
    e1, e2 = engine(world), engine(world)
    with e1.leased(), pytest.raises(LeaseHeldError, match="another keyguard run"):
        e2.rotate()


def test_journal_has_no_key(world) -> None:
    admin, stores, _, tmp = world
    _, old = admin.mint("o", "wrkspc_p")
    stores[0].seed(old)
    _, new = admin.mint("n", "wrkspc_p")
    engine(world, grace=timedelta(0)).rotate(new)
    text = (tmp / "prod.journal.jsonl").read_text()
    assert new.reveal() not in text and old.reveal() not in text and new.hint in text
    assert oct((tmp / "prod.journal.jsonl").stat().st_mode & 0o777) == "0o600"


def test_rollback_mid_update_restores_only_promoted_stores(world) -> None:
    admin, stores, _, _ = world
    old_id, old = admin.mint("prod-old", "wrkspc_p")
    for s in stores:
        s.seed(old)
    _, new = admin.mint("prod-new", "wrkspc_p")
    stores[1].fail["promote"] = 1
    with pytest.raises(UnavailableError):
        engine(world).rotate(new)
    assert [s.get() for s in stores] == [new, old]
    assert rollback(engine(world)).exit_code == 0
    assert [s.get() for s in stores] == [old, old]
    assert stores[1].get(Stage.PENDING) is None
    assert admin.keys[old_id].status == "active"
    assert engine(world).rotate().waiting_for == "key"  # the rotation is closed


def test_rollback_refuses_an_archived_previous_key(world) -> None:
    admin, stores, clock, _ = world
    old_id, old = admin.mint("prod-old", "wrkspc_p")
    for s in stores:
        s.seed(old)
    _, new = admin.mint("prod-new", "wrkspc_p")
    engine(world, grace=timedelta(0)).rotate(new)
    clock.advance(days=8)
    engine(world).rotate()
    assert admin.keys[old_id].status == "archived"
    with pytest.raises(ConflictError, match="archived and cannot serve again"):
        rollback(engine(world))
    assert all(s.get() == new for s in stores)


def test_status_says_due_and_what_to_create(world) -> None:
    admin, stores, clock, _ = world
    _, old = admin.mint("prod-old", "wrkspc_p", created_at=clock.now - timedelta(days=81))
    stores[0].seed(old)
    st = status(engine(world))
    assert st.due and st.age is not None and st.age.days == 81
    assert "named 'prod-20261125' in workspace wrkspc_p" in st.waiting_for


def test_rollback_matches_the_incident_log_by_fingerprint_alone(world) -> None:
    admin, stores, _, tmp = world
    old_id, old = admin.mint("prod-old", "wrkspc_p")
    for s in stores:
        s.seed(old)
    _, new = admin.mint("prod-new", "wrkspc_p")
    engine(world).rotate(new)  # inside the grace: old is previous and still active
    record = {"key": {"id": None, "hint": old.hint, "fingerprint": old.fingerprint}}
    (tmp / "incidents.jsonl").write_text("not json\n" + json.dumps(record) + "\n")
    with pytest.raises(ConflictError, match="leaked: it is recorded in the incident log"):
        rollback(engine(world))
    assert all(s.get() == new for s in stores) and admin.keys[old_id].status == "active"
