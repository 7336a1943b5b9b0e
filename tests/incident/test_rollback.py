"""The served key leaked and no new key waits: back to the previous key if it is still active."""

from __future__ import annotations

import json
from datetime import timedelta

from keyguard.rotation import open_engine
from keyguard.stores import open_store
from keyguard.stores.interface import Stage
from tests.incident.conftest import Incident


def _rotate_within_grace(incident: Incident, env: str, grace: timedelta | None = None) -> None:
    with incident.sandbox.client() as admin:
        open_engine(incident.config, env, admin, grace=grace).rotate()


def test_leaked_current_key_rolls_back_to_the_active_previous_key(incident: Incident) -> None:
    old_id, old = incident.mint("prod-old")
    leaked_id, leaked = incident.mint("prod-new")
    incident.serve("prod", old)
    incident.deliver("prod", leaked)
    _rotate_within_grace(incident, "prod")  # policy grace: old is previous and still active
    assert incident.served("prod") == [leaked, leaked]
    writes = len(incident.sandbox.writes())
    start = len(incident.sandbox.request_log())

    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=leaked)

    assert run.code == 5, run.err  # still waits for a new key
    assert incident.served("prod") == [old, old]  # no longer serving the dead key
    assert incident.status(leaked_id) == "inactive" and incident.status(old_id) == "active"
    assert len(incident.sandbox.writes()) == writes + 1  # the single deactivation
    log = [(m, p) for m, p, _ in incident.sandbox.request_log()[start:]]
    write = log.index(("POST", f"/v1/organizations/api_keys/{leaked_id}"))
    assert ("GET", "/v1/models") in log[write:]  # the previous key verified before serving
    (env,) = run.json()["environments"]
    assert env["action"] == "waiting"
    assert "serve the previous key" in env["message"] and old.hint in env["message"]
    assert "keyguard deliver prod" in env["message"]
    journal = incident.root / ".keyguard" / "prod.journal.jsonl"
    last = json.loads(journal.read_text().splitlines()[-1])
    assert (last["step"], last["phase"], last["reason"]) == ("rollback", "closed", "rolled back")
    # The leaked key, now previous, can never be rolled back to; a new key goes in normally.
    with incident.sandbox.client() as admin:
        engine = open_engine(incident.config, "prod", admin, grace=timedelta(0))
        assert engine.rotate().waiting_for == "key"
        _, fresh = incident.mint("prod-fresh")
        assert engine.rotate(fresh).finished
    assert incident.served("prod") == [fresh, fresh]
    assert incident.status(old_id) == "inactive" and incident.status(leaked_id) == "inactive"


def test_leaked_current_key_with_an_inactive_previous_key_waits_as_before(
    incident: Incident,
) -> None:
    old_id, old = incident.mint("dev-old")
    leaked_id, leaked = incident.mint("dev-new")
    incident.serve("dev", old)
    incident.deliver("dev", leaked)
    _rotate_within_grace(incident, "dev", grace=timedelta(0))  # old revoked already
    writes = len(incident.sandbox.writes())

    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=leaked)

    assert run.code == 5, run.err
    assert incident.served("dev") == [leaked]  # no re-activation: an incident writes once
    assert incident.status(old_id) == "inactive" and incident.status(leaked_id) == "inactive"
    assert len(incident.sandbox.writes()) == writes + 1
    assert "not rolling back to the previous key" in run.err
    (env,) = run.json()["environments"]
    assert env["action"] == "waiting" and "keyguard deliver dev" in env["message"]
    assert open_store(incident.stores("dev")[0]).get(Stage.PREVIOUS) == old
