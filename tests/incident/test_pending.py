"""Pending keys during an incident: a waiting new key is rotated in, a leaked one is discarded."""

from __future__ import annotations

from datetime import UTC, datetime

from keyguard.keys import Secret
from keyguard.rotation import open_engine
from keyguard.stores import open_store
from keyguard.stores.interface import Stage, VersionMeta
from tests.incident.conftest import Incident


def _put_pending_by_hand(incident: Incident, env: str, key: Secret, token: str) -> None:
    """A pending version no keyguard rotation journaled (another host's run, a lost journal)."""
    for uri in incident.stores(env):
        open_store(uri).put_pending(
            key,
            VersionMeta(
                hint=key.hint,
                fingerprint=key.fingerprint,
                stored_at=datetime.now(UTC),
                token=token,
                environment=env,
            ),
        )


def _pending(incident: Incident, env: str) -> list[Secret | None]:
    return [open_store(uri).get(Stage.PENDING) for uri in incident.stores(env)]


def test_a_pending_key_with_no_rotation_in_progress_is_rotated_in(incident: Incident) -> None:
    leaked_id, leaked = incident.mint("prod-old")
    new_id, new = incident.mint("prod-new")
    incident.serve("prod", leaked)
    _put_pending_by_hand(incident, "prod", new, "by-hand-1")
    assert not (incident.root / ".keyguard" / "prod.journal.jsonl").exists()

    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=leaked)

    assert run.code == 0, run.err
    assert incident.status(leaked_id) == "inactive"
    assert incident.status(new_id) == "active"
    assert [s.fingerprint if s else None for s in incident.served("prod")] == [new.fingerprint] * 2
    assert [e["action"] for e in run.json()["environments"]] == ["rotated"]
    assert len(incident.sandbox.writes()) == 1


def test_a_leaked_pending_key_of_a_rotation_is_discarded_and_a_key_requested(
    incident: Incident,
) -> None:
    old_id, old = incident.mint("prod-old")
    leaked_id, leaked = incident.mint("prod-new")
    incident.serve("prod", old)
    incident.deliver("prod", leaked)  # journaled rotation, the leaked key waits as pending
    assert _pending(incident, "prod") == [leaked, leaked]

    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=leaked)

    assert run.code == 5, run.err  # prod needs another new key
    assert incident.status(leaked_id) == "inactive"
    assert incident.status(old_id) == "active"
    assert incident.served("prod") == [old, old]  # never promoted
    assert _pending(incident, "prod") == [None, None]  # discarded
    (env,) = run.json()["environments"]
    assert env["environment"] == "prod" and env["action"] == "waiting"
    assert {h["stage"] for h in env["stages"]} == {"pending"}
    assert "discarded" in env["message"] and "keyguard deliver prod" in env["message"]
    assert len(incident.sandbox.writes()) == 1
    # A scheduled run afterwards asks for a key; it does not promote the leaked one.
    with incident.sandbox.client() as admin:
        outcome = open_engine(incident.config, "prod", admin).rotate()
    assert not outcome.finished and "waiting for a new key" in outcome.message
    assert incident.served("prod") == [old, old]


def test_a_leaked_pending_key_put_by_hand_is_discarded_and_a_key_requested(
    incident: Incident,
) -> None:
    _, old = incident.mint("staging-old")
    leaked_id, leaked = incident.mint("staging-new")
    incident.serve("staging", old)
    _put_pending_by_hand(incident, "staging", leaked, "by-hand-2")

    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=leaked)

    assert run.code == 5, run.err
    assert incident.status(leaked_id) == "inactive"
    assert incident.served("staging") == [old]
    assert _pending(incident, "staging") == [None]
    (env,) = run.json()["environments"]
    assert env["action"] == "waiting" and "keyguard deliver staging" in env["message"]


def test_a_key_kept_only_as_previous_is_listed_not_rotated(incident: Incident) -> None:
    leaked_id, leaked = incident.mint("dev-old")
    new_id, new = incident.mint("dev-new")
    incident.serve("dev", leaked)
    incident.deliver("dev", new)
    with incident.sandbox.client() as admin:  # the policy's grace: the old key stays active
        open_engine(incident.config, "dev", admin).rotate()
    assert incident.served("dev") == [new]
    assert open_store(incident.stores("dev")[0]).get(Stage.PREVIOUS) == leaked
    writes = len(incident.sandbox.writes())

    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=leaked)

    assert run.code == 0, run.err
    (env,) = run.json()["environments"]
    assert env["environment"] == "dev" and env["action"] == "not served"
    assert [h["stage"] for h in env["stages"]] == ["previous"]
    assert "Do not roll back" in env["message"]
    assert incident.served("dev") == [new]
    assert incident.status(leaked_id) == "inactive" and incident.status(new_id) == "active"
    assert len(incident.sandbox.writes()) == writes + 1
