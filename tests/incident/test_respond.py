"""``keyguard.incident.respond``: the whole response, called without click or a terminal."""

from __future__ import annotations

import pytest

from keyguard.incident import NotProvenError, Request, respond
from keyguard.journal import INCIDENT_LOG
from keyguard.keys import Secret, generate_key
from tests.incident.conftest import Incident


def test_respond_deactivates_rotates_and_logs_without_printing(
    incident: Incident, capsys: pytest.CaptureFixture[str]
) -> None:
    leaked_id, leaked = incident.mint("prod-leaked")
    _, new = incident.mint("prod-new")
    incident.serve("prod", leaked)
    said: list[str] = []

    with incident.sandbox.client() as admin:
        incident.deliver("prod", new)
        result = respond(incident.config, admin, Request(leaked=leaked), said.append)

    assert result.exit_code == 0 and not result.failures
    assert incident.status(leaked_id) == "inactive"
    assert incident.served("prod") == [new, new]
    (only,) = result.incidents
    assert only.record["key"]["id"] == leaked_id and only.record["action"] == "deactivated"
    assert any(leaked_id in line and "deactivated" in line for line in said)
    assert (incident.root / ".keyguard" / INCIDENT_LOG).exists()
    assert capsys.readouterr() == ("", "")  # the core says things through `say` only
    incident.assert_no_leak("\n".join(said))


def test_respond_waits_with_exit_5_when_no_new_key_is_there(incident: Incident) -> None:
    leaked_id, leaked = incident.mint("staging-leaked")
    incident.serve("staging", leaked)

    with incident.sandbox.client() as admin:
        result = respond(incident.config, admin, Request(leaked=leaked), lambda _: None)

    assert result.exit_code == 5 and result.waiting
    assert incident.status(leaked_id) == "inactive"


def test_respond_refuses_an_unproven_key_before_any_write(incident: Incident) -> None:
    writes = len(incident.sandbox.writes())
    stranger: Secret = generate_key()
    asked: list[object] = []
    request = Request(leaked=stranger)

    with incident.sandbox.client() as admin, pytest.raises(NotProvenError):
        respond(incident.config, admin, request, asked.append, confirm=asked.append)

    assert not asked  # nothing said, never asked to confirm what is not proven
    assert len(incident.sandbox.writes()) == writes
