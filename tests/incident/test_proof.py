"""Attacks on incident response: a look-alike never deactivates a real key, a leak is marked in
the organization itself, and an incident never stops half-way (issue 11, points 1, 5, 6, 7)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from keyguard.errors import NotFoundError
from keyguard.keys import Secret, find_api_keys, generate_key, is_leak_marked, leak_mark
from tests.incident.conftest import ROOT, Incident, Run


def _look_alike(key: Secret) -> Secret:
    """A different string with the same ``partial_key_hint``: anyone who saw the hint can."""
    raw = key.reveal()
    twin = Secret(raw[:20] + ("x" if raw[20] != "x" else "y") + raw[21:])
    assert twin.hint == key.hint and twin != key
    return twin


def _name(incident: Incident, key_id: str) -> str:
    with incident.sandbox.client() as admin:
        return admin.get_key(key_id).name


def _keyguard(incident: Incident, *args: str, stdin: str = "") -> Run:
    """Any ``keyguard`` command against the incident project (same environment as revoke)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        KEYGUARD_CONFIG=str(incident.root / "keyguard.toml"),
        ANTHROPIC_ADMIN_KEY=incident.sandbox.admin_key.reveal(),
    )
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=incident.root,
        timeout=120,
        check=False,
    )
    run = Run(done.returncode, done.stdout, done.stderr)
    incident.assert_no_leak(run.text)
    return run


# -- 1. a forged look-alike never deactivates a real key --------------------------------------


def test_a_look_alike_on_stdin_leaves_the_real_production_key_active(incident: Incident) -> None:
    prod_id, prod = incident.mint("prod-api")
    incident.serve("prod", prod)
    forged = _look_alike(prod)
    incident.secrets.append(forged)

    run = incident.revoke("--leaked", "-", "--yes", key=forged)

    assert run.code == 1, run.err
    assert "not a live key of this organization" in run.err
    assert "look-alike" in run.err and prod_id in run.err
    assert incident.sandbox.writes() == []
    assert incident.status(prod_id) == "active"
    assert _name(incident, prod_id) == "prod-api"
    assert incident.served("prod") == [prod, prod]


def test_a_real_leaked_key_is_deactivated_and_marked(incident: Incident) -> None:
    key_id, key = incident.mint("prod-api")
    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=key)
    assert run.code == 0, run.err
    assert incident.status(key_id) == "inactive"
    today = datetime.now(UTC).date()
    assert _name(incident, key_id) == f"leaked-{today:%Y-%m-%d} prod-api"
    assert len(incident.sandbox.writes()) == 1  # status and mark in one write
    assert run.json()["key"]["name"] == f"leaked-{today:%Y-%m-%d} prod-api"


def test_a_key_shared_by_two_hints_is_not_guessed(incident: Incident) -> None:
    first = generate_key()
    twin = _look_alike(first)
    a_id, _ = incident.mint("a", secret=first)
    b_id, _ = incident.mint("b", secret=twin)
    run = incident.revoke("--leaked", "-", "--yes", key=first)
    assert run.code == 1, run.err
    assert "2 keys of this organization share its hint" in run.err
    assert a_id in run.err and b_id in run.err and "--key-id" in run.err
    assert incident.sandbox.writes() == []
    assert incident.status(a_id) == "active" and incident.status(b_id) == "active"


class _Verifying:
    """An admin client whose ``verify_key`` raises what the API said (unit test of one rule)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def verify_key(self, key: Secret) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("said", "live"),
    [
        (
            "anthropic-workspace-id is required when authenticating with an identity-linked "
            "API key",
            True,
        ),
        ("This API key is not scoped to a workspace", True),
        ("anthropic-workspace-id header must be a valid workspace ID.", False),
        ("messages: field required", False),
    ],
)
def test_a_400_demanding_the_workspace_header_proves_a_live_org_scoped_key(
    said: str, live: bool
) -> None:
    from keyguard.admin.errors import ApiError
    from keyguard.incident import authenticates

    error = ApiError("refused", status=400, error_type="invalid_request_error", api_message=said)
    admin: Any = _Verifying(error)
    if live:
        assert authenticates(admin, generate_key())[0] is True
    else:
        with pytest.raises(ApiError):
            authenticates(admin, generate_key())


# -- 7 (part). keys on stdin with text around them -------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        "{key}  # the one from the screenshot\n",
        "ANTHROPIC_API_KEY={key}\n",
        'export ANTHROPIC_API_KEY="{key}"\n',
        '{{"name": "ci", "api_key": "{key}", "note": "pasted from chat"}}\n',
    ],
)
def test_a_key_with_text_around_it_is_found_by_its_pattern(incident: Incident, shape: str) -> None:
    key_id, key = incident.mint("prod-api")
    run = incident.revoke("--leaked", "-", "--yes", stdin=shape.format(key=key.reveal()))
    assert run.code == 0, run.err
    assert incident.status(key_id) == "inactive"


def test_several_keys_on_stdin_are_each_handled(incident: Incident) -> None:
    a_id, a = incident.mint("a")
    b_id, b = incident.mint("b")
    text = f"ANTHROPIC_API_KEY={a.reveal()}\n# and the old one\nOLD={b.reveal()}\n{a.reveal()}\n"
    run = incident.revoke("--leaked", "-", "--yes", stdin=text)
    assert run.code == 0, run.err
    assert incident.status(a_id) == "inactive" and incident.status(b_id) == "inactive"
    assert len(incident.sandbox.writes()) == 2  # the repeated key once
    assert len(incident.audit()) == 2


def test_several_keys_with_one_look_alike_are_refused_together(incident: Incident) -> None:
    a_id, a = incident.mint("a")
    prod_id, prod = incident.mint("prod-api")
    forged = _look_alike(prod)
    incident.secrets.append(forged)
    run = incident.revoke("--leaked", "-", "--yes", stdin=f"{a.reveal()}\n{forged.reveal()}\n")
    assert run.code == 1, run.err
    assert "none of the 2 keys was acted on" in run.err
    assert incident.sandbox.writes() == []
    assert incident.status(a_id) == "active" and incident.status(prod_id) == "active"


def test_an_admin_key_beside_the_leaked_key_is_named_not_ignored(incident: Incident) -> None:
    key_id, key = incident.mint("prod-api")
    admin_key = generate_key("admin")
    incident.secrets.append(admin_key)
    text = f"ANTHROPIC_API_KEY={key.reveal()}\nANTHROPIC_ADMIN_KEY={admin_key.reveal()}\n"
    run = incident.revoke("--leaked", "-", "--yes", stdin=text)
    assert run.code == 0, run.err
    assert admin_key.hint in run.err and "Console" in run.err
    assert incident.status(key_id) == "inactive"


def test_stdin_without_a_key_is_a_usage_error(incident: Incident) -> None:
    run = incident.revoke("--leaked", "-", "--yes", stdin="sk-ant-api03-too-short\n")
    assert run.code == 2, run.err
    assert "no Anthropic API key" in run.err
    assert incident.sandbox.request_log() == []


def test_find_api_keys_needs_a_whole_key() -> None:
    key = generate_key()
    raw = key.reveal()
    assert find_api_keys(f"x={raw};y={raw}") == [key]
    assert find_api_keys(raw + "Z") == []  # glued to more key characters: not this key
    assert find_api_keys("Z" + raw) == []


# -- 5. a leak is recorded where every machine can see it ------------------------------------


def test_leak_mark_stays_within_the_name_limit_and_is_not_doubled() -> None:
    day = date(2026, 12, 3)
    assert leak_mark("prod-api", day) == "leaked-2026-12-03 prod-api"
    long = leak_mark("x" * 500, day)
    assert len(long) == 500 and is_leak_marked(long)
    assert leak_mark("leaked-2026-11-01 prod", day) == "leaked-2026-11-01 prod"
    assert not is_leak_marked("leaked-keys-dashboard") and not is_leak_marked("prod")


def _wipe_state(incident: Incident) -> None:
    """Another machine, or a lost state folder: no journal, no incident log."""
    shutil.rmtree(incident.root / ".keyguard")


def test_rollback_refuses_a_marked_key_without_the_incident_log(incident: Incident) -> None:
    old_id, old = incident.mint("prod-old")
    _, new = incident.mint("prod-new")
    incident.serve("prod", old)
    incident.deliver("prod", new)
    with incident.sandbox.client() as admin:
        from keyguard.rotation import open_engine

        open_engine(incident.config, "prod", admin).rotate()  # within grace: old is previous
    assert incident.served("prod") == [new, new]
    run = incident.revoke("--leaked", "-", "--yes", key=old)  # the previous key leaked
    assert run.code == 0, run.err
    assert incident.status(old_id) == "inactive"
    _wipe_state(incident)

    back = _keyguard(incident, "rollback", "prod", "--yes")

    assert back.code == 2, back.text
    assert "leak mark" in back.err
    assert incident.status(old_id) == "inactive"  # never re-activated
    assert incident.served("prod") == [new, new]


def test_deliver_refuses_a_marked_key_someone_reactivated(incident: Incident) -> None:
    key_id, key = incident.mint("staging-1")
    run = incident.revoke("--leaked", "-", "--yes", key=key)
    assert run.code == 0, run.err
    with incident.sandbox.client() as admin:
        admin.update_key(key_id, status="active")  # re-activated in the Console by mistake
    _wipe_state(incident)

    got = _keyguard(incident, "deliver", "staging", stdin=key.reveal() + "\n")

    assert got.code == 2, got.text
    assert "marked it as leaked" in got.err
    assert incident.served("staging") == [None]


# -- 6. incident response never stops half-way -----------------------------------------------


def test_a_malformed_store_in_another_environment_does_not_stop_the_incident(
    incident: Incident,
) -> None:
    key_id, key = incident.mint("prod-old")
    new_id, new = incident.mint("prod-new")
    incident.serve("prod", key)
    incident.deliver("prod", new)
    dev = Path(incident.stores("dev")[0].removeprefix("file:"))
    dev.parent.mkdir(parents=True, exist_ok=True)
    dev.write_text(json.dumps({"format": "keyguard-file-store", "version": 1}))  # no versions

    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", "--report", "r.md", key=key)

    assert run.code == 2, run.err  # done, except that the dev store could not be read
    assert "Traceback" not in run.err
    assert incident.status(key_id) == "inactive" and incident.status(new_id) == "active"
    assert [s.fingerprint if s else None for s in incident.served("prod")] == [new.fingerprint] * 2
    record = run.json()
    assert [e["action"] for e in record["environments"]] == ["rotated"]
    (failure,) = record["failures"]
    assert failure["environment"] == "dev" and failure["store"] == incident.stores("dev")[0]
    assert "FAILED: stores (environment dev store file:" in run.err
    assert (incident.root / "r.md").exists()
    assert incident.audit()[0]["failures"] == record["failures"]


def test_an_unwritable_report_is_a_failure_after_everything_else_ran(
    incident: Incident,
) -> None:
    key_id, key = incident.mint("staging-1")
    incident.serve("staging", key)
    run = incident.revoke("--leaked", "-", "--yes", "--report", "no/such/dir/r.md", key=key)
    assert run.code == 5, run.err  # staging waits; the report failure is named
    assert "FAILED: report" in run.err
    assert incident.status(key_id) == "inactive"
    assert len(incident.audit()) == 1
    assert "keyguard deliver staging" in run.out


def test_nothing_written_means_the_plain_error(incident: Incident) -> None:
    """Not proven: exit 1 and no incident log (NotFoundError's code, nothing changed)."""
    stranger = generate_key()
    incident.secrets.append(stranger)
    run = incident.revoke("--leaked", "-", "--yes", key=stranger)
    assert run.code == int(NotFoundError.exit_code)
    assert not (incident.root / ".keyguard" / "incidents.jsonl").exists()


def test_one_failed_deactivation_does_not_stop_the_other_key(incident: Incident) -> None:
    a_id, a = incident.mint("a")
    b_id, b = incident.mint("b")
    incident.sandbox.set_faults(
        rate=1.0, kinds=("500",), only=f"POST /v1/organizations/api_keys/{b_id}"
    )
    run = incident.revoke(
        "--leaked", "-", "--yes", "--deadline", "1", stdin=f"{a.reveal()}\n{b.reveal()}\n"
    )
    incident.sandbox.clear_faults()
    assert run.code == 4, run.err  # b is still active: its failure decides the exit code
    assert f"FAILED: deactivate: {b_id}" in run.err
    assert incident.status(a_id) == "inactive" and incident.status(b_id) == "active"
    assert [r["key"]["id"] for r in incident.audit()] == [a_id]
