"""The incident log: one record per leaked key, read by rollback to refuse that key forever.

A damaged line is said (file and line), never skipped in silence, and never hides the records
after it; a line a crash left unfinished does not swallow the next record.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from keyguard.journal import INCIDENT_LOG, append_incident, read_incidents
from keyguard.rotation import open_engine
from tests.incident.conftest import Incident


def test_rollback_names_a_damaged_incident_log_line_and_still_refuses_the_leaked_key(
    incident: Incident,
) -> None:
    old_id, old = incident.mint("prod-old")
    _, new = incident.mint("prod-new")
    incident.serve("prod", old)
    incident.deliver("prod", new)
    with incident.sandbox.client() as admin:  # inside the grace: old is previous, still active
        open_engine(incident.config, "prod", admin).rotate()
    log = incident.root / ".keyguard" / INCIDENT_LOG
    record = {"key": {"id": old_id, "hint": old.hint, "fingerprint": old.fingerprint}}
    log.write_text('{"key": {"id": "apikey_torn\n' + json.dumps(record) + "\n")

    run = incident.run("rollback", "prod", "--yes")

    assert run.code == 2, run.err
    assert f"{log}:1: damaged incident log line" in run.err
    assert "leaked: it is recorded in the incident log" in run.err
    assert incident.served("prod") == [new, new]
    assert incident.status(old_id) == "active"


def test_rollback_over_a_damaged_log_without_a_record_of_the_key_says_so_and_goes_on(
    incident: Incident,
) -> None:
    _, old = incident.mint("prod-old")
    _, new = incident.mint("prod-new")
    incident.serve("prod", old)
    incident.deliver("prod", new)
    with incident.sandbox.client() as admin:
        open_engine(incident.config, "prod", admin, grace=timedelta(hours=1)).rotate()
    log = incident.root / ".keyguard" / INCIDENT_LOG
    log.write_text("[]\nnot json at all\n")

    run = incident.run("rollback", "prod", "--yes")

    assert run.code == 0, run.err
    assert f"{log}:1: damaged" in run.err and f"{log}:2: damaged" in run.err
    assert incident.served("prod") == [old, old]


def test_a_record_appended_after_a_torn_line_stays_readable(tmp_path: Path) -> None:
    log = tmp_path / INCIDENT_LOG
    log.write_text('{"key": {"id": "apikey_1"}}\n{"key": {"id": "apik')  # a crash mid-append
    append_incident(tmp_path, {"key": {"id": "apikey_2"}})
    said: list[str] = []

    records = read_incidents(log, said.append)

    assert [record["key"]["id"] for record in records] == ["apikey_1", "apikey_2"]
    assert len(said) == 1 and f"{log}:2:" in said[0]


def test_rollback_names_an_incident_record_whose_key_is_damaged(incident: Incident) -> None:
    """A record that is JSON but whose key is of another shape can never match: said with its
    line like a damaged one, never passed over in silence."""
    _, old = incident.mint("prod-old")
    _, new = incident.mint("prod-new")
    incident.serve("prod", old)
    incident.deliver("prod", new)
    with incident.sandbox.client() as admin:
        open_engine(incident.config, "prod", admin, grace=timedelta(hours=1)).rotate()
    log = incident.root / ".keyguard" / INCIDENT_LOG
    damaged = [{"key": ["apikey_1"]}, {"key": {"id": 5}}, {"key": {}}, {"started_at": "today"}]
    log.write_text("".join(json.dumps(record) + "\n" for record in damaged))

    run = incident.run("rollback", "prod", "--yes")

    assert run.code == 0, run.err
    for number in (1, 2, 3, 4):
        assert f"{log}:{number}: damaged incident log record" in run.err
    assert incident.served("prod") == [old, old]


def test_a_record_with_one_damaged_part_still_matches_by_the_other(tmp_path: Path) -> None:
    log = tmp_path / INCIDENT_LOG
    log.write_text(json.dumps({"key": {"id": ["apikey_1"], "fingerprint": "f" * 64}}) + "\n")
    said: list[str] = []

    records = read_incidents(log, said.append)

    assert [record["key"]["fingerprint"] for record in records] == ["f" * 64]
    assert len(said) == 1 and f"{log}:1: damaged incident log record" in said[0]
