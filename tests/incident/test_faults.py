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
