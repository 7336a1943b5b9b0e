"""Faults at each step of an incident: the key still ends up inactive, with one write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.incident.conftest import Incident

STEPS = {
    "identify": "GET /v1/organizations/api_keys",
    "deactivate": "POST /v1/organizations/api_keys",
    "exposure": "GET /v1/organizations/usage_report",
}


@pytest.mark.parametrize("kind", ["429", "529", "drop"])
@pytest.mark.parametrize("step", sorted(STEPS))
def test_transient_faults_at_each_step_are_ridden_out(
    incident: Incident, step: str, kind: str
) -> None:
    key_id, key = incident.mint("prod-1")
    incident.serve("dev", key)
    incident.sandbox.record_usage(key_id, input_tokens=10, output_tokens=1)
    incident.sandbox.set_faults(rate=1.0, kinds=(kind,), count=2, only=STEPS[step])
    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=key)
    assert run.code == 5, run.err  # dev waits for a new key
    assert incident.sandbox.faults_injected == 2
    assert incident.status(key_id) == "inactive"
    assert len(incident.sandbox.writes()) == 1
    assert run.json()["exposure"]["tokens"] == 11


def test_a_429_storm_on_the_write_still_gets_through(incident: Incident) -> None:
    key_id, key = incident.mint("prod-1")
    incident.sandbox.set_faults(rate=1.0, kinds=("429",), retry_after=0, count=30, only="POST")
    run = incident.revoke("--leaked", "-", "--yes", key=key)
    assert run.code == 0, run.err
    assert incident.sandbox.faults_injected == 30
    assert incident.status(key_id) == "inactive"
    assert len(incident.sandbox.writes()) == 1


def test_api_down_past_the_deadline_is_exit_4_and_nothing_changed(incident: Incident) -> None:
    key_id, key = incident.mint("prod-1")
    incident.sandbox.set_faults(rate=1.0, kinds=("500",), only="POST")
    run = incident.revoke("--leaked", "-", "--yes", "--deadline", "1", key=key)
    assert run.code == 4
    assert "unavailable" in run.err
    incident.sandbox.clear_faults()
    assert incident.status(key_id) == "active"


def test_usage_report_down_still_deactivates_and_says_so(incident: Incident) -> None:
    key_id, key = incident.mint("prod-1")
    incident.sandbox.set_faults(rate=1.0, kinds=("500",), only="GET /v1/organizations/usage")
    run = incident.revoke("--leaked", "-", "--yes", "--deadline", "2", key=key)
    assert run.code == 4, run.err
    assert "Exposure report not available" in run.out
    incident.sandbox.clear_faults()
    assert incident.status(key_id) == "inactive"
    assert incident.audit()[0]["exposure"] is None


def test_an_unreadable_store_is_reported_and_the_rest_still_handled(incident: Incident) -> None:
    key_id, key = incident.mint("prod-1")
    incident.serve("staging", key)
    Path(incident.stores("dev")[0].removeprefix("file:")).mkdir(parents=True)  # not a file
    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=key)
    assert run.code == 5, run.err  # staging waits; the unreadable store is warned about
    assert "could not read" in run.err and "dev.json" in run.err
    record = run.json()
    assert [e["environment"] for e in record["environments"]] == ["staging"]
    assert list(record["store_errors"]) == incident.stores("dev")
    assert incident.status(key_id) == "inactive"


def test_faults_during_the_rotation_are_ridden_out(incident: Incident) -> None:
    key_id, key = incident.mint("prod-old")
    new_id, new = incident.mint("prod-new")
    incident.serve("prod", key)
    incident.deliver("prod", new)
    # The rotation's verify step reads GET /v1/models with the new key: a 529 storm there.
    incident.sandbox.set_faults(rate=1.0, kinds=("529",), count=3, only="GET /v1/models")
    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=key)
    assert run.code == 0, run.err
    assert incident.sandbox.faults_injected == 3
    assert [e["action"] for e in run.json()["environments"]] == ["rotated"]
    assert [s.fingerprint if s else None for s in incident.served("prod")] == [new.fingerprint] * 2
    assert incident.status(key_id) == "inactive" and incident.status(new_id) == "active"


def test_a_rotation_that_cannot_finish_still_leaves_the_key_inactive(incident: Incident) -> None:
    key_id, key = incident.mint("prod-old")
    new_id, new = incident.mint("prod-new")
    incident.serve("prod", key)
    incident.deliver("prod", new)
    # The waiting new key stops working before the incident: prod's rotation cannot verify it.
    # (A fault on GET /v1/models would also stop the proof that the leaked key is live.)
    with incident.sandbox.client() as admin:
        admin.update_key(new_id, status="inactive")
    run = incident.revoke("--leaked", "-", "--yes", "--deadline", "1", "--format", "json", key=key)
    assert run.code == 2, run.err  # deactivated, but prod's rotation could not finish
    assert "wait for a new key" not in run.err  # prod has its new key: it needs a rerun
    assert incident.status(key_id) == "inactive"
    (env,) = run.json()["environments"]
    assert env["environment"] == "prod" and env["action"] != "rotated"
    assert env["action"] == "error"
    assert "keyguard rotate prod --grace 0 --force" in env["message"]
    assert "FAILED: environment (environment prod)" in run.err
    assert incident.audit()[0]["action"] == "deactivated"


def test_a_webhook_that_is_down_is_warned_about(incident: Incident) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = incident.root / "keyguard.toml"
    cfg.write_text(cfg.read_text() + f'\n[notify]\nwebhook = "http://127.0.0.1:{port}/h"\n')
    key_id, key = incident.mint("staging-1")
    incident.serve("staging", key)
    run = incident.revoke("--leaked", "-", "--yes", key=key)
    assert run.code == 5, run.err
    assert "warning" in run.err and "webhook" in run.err
    assert "keyguard deliver staging" in run.out  # the request is still printed
    assert incident.status(key_id) == "inactive"
    assert len(incident.audit()) == 1
