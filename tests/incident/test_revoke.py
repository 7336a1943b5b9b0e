"""``keyguard revoke`` end to end: the real CLI, the sandbox over HTTP, real file stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyguard.keys import generate_key
from tests.incident.conftest import Incident

KEYS_PATH = "/v1/organizations/api_keys"


def test_crowded_org_key_in_two_environments_one_write_then_rotation(incident: Incident) -> None:
    sb = incident.sandbox
    for i in range(1100):  # more than one page of 1000
        sb.state.mint_key(f"other-{i}")
    leaked_id, leaked = incident.mint("shared-20261101", age=timedelta(days=20))
    incident.serve("prod", leaked)
    incident.serve("staging", leaked)
    incident.serve("dev", incident.mint("dev-1")[1])
    new_id, new = incident.mint("prod-20261125")
    incident.deliver("prod", new)
    before = len(sb.request_log())

    run = incident.revoke(
        "--leaked", "-", "--yes", "--format", "json", "--report", "r.md", key=leaked
    )

    assert run.code == 5, run.err  # staging still waits for a key
    assert incident.status(leaked_id) == "inactive"
    assert incident.status(new_id) == "active"
    log = sb.request_log()[before:]
    assert [r for r in log if r[0] == "GET" and r[1] == KEYS_PATH and r[2] == 200][1:]  # paged
    assert sb.writes() == [("POST", f"{KEYS_PATH}/{leaked_id}", 200)]  # the single write
    assert "deactivated" in run.err and "s from start, 1 Admin API write" in run.err
    # prod: rotated at once onto the delivered key; staging: asked for one; dev untouched.
    assert [s.fingerprint if s else None for s in incident.served("prod")] == [new.fingerprint] * 2
    assert incident.served("staging")[0] == leaked
    record = run.json()
    envs = {e["environment"]: e for e in record["environments"]}
    assert set(envs) == {"prod", "staging"}
    assert envs["prod"]["action"] == "rotated"
    assert {h["stage"] for h in envs["prod"]["stages"]} == {"current"}
    assert len(envs["prod"]["stages"]) == 2
    assert envs["staging"]["action"] == "waiting"
    assert "keyguard deliver staging" in envs["staging"]["message"]
    assert record["key"]["fingerprint"] == leaked.fingerprint
    report = (incident.root / "r.md").read_text()
    incident.assert_no_leak(report)
    assert leaked_id in report and "staging" in report
    assert (incident.root / "r.md").stat().st_mode & 0o777 == 0o600
    (entry,) = incident.audit()
    assert entry["key"]["id"] == leaked_id and entry["action"] == "deactivated"
    for path in (incident.root / ".keyguard").iterdir():  # journals, incidents: no key
        incident.assert_no_leak(path.read_text("utf-8"))


def test_key_in_no_environment(incident: Incident) -> None:
    key_id, key = incident.mint("ci-20261101")
    incident.serve("prod", incident.mint("prod-1")[1])
    run = incident.revoke("--leaked", "-", "--yes", key=key)
    assert run.code == 0, run.err
    assert "No configured store holds this key" in run.out
    assert incident.status(key_id) == "inactive"
    assert incident.audit()[0]["environments"] == []


def test_already_inactive_key_is_said_and_not_written(incident: Incident) -> None:
    key_id, key = incident.mint("old-1")
    with incident.sandbox.client() as admin:
        admin.update_key(key_id, status="inactive")
    before = len(incident.sandbox.writes())
    run = incident.revoke("--leaked", "-", "--yes", key=key)
    # It no longer authenticates, so nothing proves the string is that key: nothing changes.
    assert run.code == 1, run.err
    assert "not a live key of this organization" in run.err
    assert "already inactive" in run.err and f"keyguard revoke --key-id {key_id}" in run.err
    assert len(incident.sandbox.writes()) == before
    assert not (incident.root / ".keyguard" / "incidents.jsonl").exists()


def test_key_id_on_an_inactive_key_marks_it_and_finishes_the_incident(
    incident: Incident,
) -> None:
    key_id, key = incident.mint("old-1")
    incident.deliver("staging", key)
    with incident.sandbox.client() as admin:
        admin.update_key(key_id, status="inactive")
    run = incident.revoke("--key-id", key_id, "--yes", "--format", "json")
    assert run.code == 5, run.err  # staging had it waiting: discarded, asks for another
    with incident.sandbox.client() as admin:
        after = admin.get_key(key_id)
    assert after.status == "inactive" and after.name.startswith("leaked-")
    assert run.json()["action"] == "already inactive" and run.json()["writes"] == 1


def test_archived_key_is_said_and_not_written(incident: Incident) -> None:
    key_id, _ = incident.mint("old-2")
    with incident.sandbox.client() as admin:
        admin.update_key(key_id, status="archived")
    before = len(incident.sandbox.writes())
    run = incident.revoke("--key-id", key_id, "--yes")
    assert run.code == 0, run.err
    assert "already archived" in run.err
    assert len(incident.sandbox.writes()) == before


def test_archive_flag_archives_in_one_write(incident: Incident) -> None:
    key_id, key = incident.mint("prod-1")
    run = incident.revoke("--leaked", "-", "--yes", "--archive", key=key)
    assert run.code == 0, run.err
    assert incident.status(key_id) == "archived"
    assert len(incident.sandbox.writes()) == 1


def test_unknown_key_exits_1_without_writing(incident: Incident) -> None:
    incident.mint("prod-1")
    stranger = generate_key()
    incident.secrets.append(stranger)
    run = incident.revoke("--leaked", "-", "--yes", key=stranger)
    assert run.code == 1
    assert "not a live key of this organization" in run.err
    assert incident.sandbox.writes() == []


@pytest.mark.parametrize(
    "args",
    [
        ["--leaked", "KEY"],
        ["KEY"],
        ["--key-id", "KEY"],
        ["--leaked", "-", "--since", "KEY"],
        ["--leaked", "-", "--format", "KEY"],
    ],
)
def test_a_key_on_the_command_line_is_refused_without_echo(
    incident: Incident, args: list[str]
) -> None:
    key_id, key = incident.mint("prod-1")
    run = incident.revoke(*[key.reveal() if a == "KEY" else a for a in args], "--yes")
    assert run.code == 2
    if "--format" not in args:  # click's own choice error: the key is redacted in it
        assert "shell history" in run.err and "process list" in run.err
        assert "--leaked -" in run.err
    assert incident.status(key_id) == "active"
    assert incident.sandbox.writes() == []


def test_no_terminal_and_no_yes_refuses_before_any_call(incident: Incident) -> None:
    _, key = incident.mint("prod-1")
    run = incident.revoke("--leaked", "-", key=key)
    assert run.code == 2
    assert "add --yes" in run.err
    assert incident.sandbox.request_log() == []


def test_exposure_numbers_and_cost(incident: Incident) -> None:
    sb = incident.sandbox
    key_id, key = incident.mint("prod-1", age=timedelta(days=3))
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    sb.record_usage(
        key_id,
        at=hour + timedelta(minutes=1),
        model="claude-sonnet-4-5",
        input_tokens=1_000_000,
        output_tokens=100_000,
    )
    sb.record_usage(
        key_id,
        at=hour + timedelta(minutes=30),
        model="claude-sonnet-4-5",
        input_tokens=0,
        output_tokens=0,
        cache_read_input_tokens=1_000_000,
        cache_creation_input_tokens=1_000_000,
    )
    sb.record_usage(
        key_id,
        at=hour + timedelta(hours=2),
        model="claude-haiku-4-5",
        input_tokens=2_000_000,
        output_tokens=0,
    )
    other_id, _ = incident.mint("other")
    sb.record_usage(other_id, model="claude-opus-4-1", input_tokens=9_000_000)
    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=key)
    assert run.code == 0, run.err
    exp = run.json()["exposure"]
    assert exp["since_reason"] == "key creation"
    # sonnet: 1M in x $3 + 0.1M out x $15 + 1M cache read x $0.30 + 1M cache write x $3.75
    # haiku: 2M in x $1
    assert exp["tokens"] == 5_100_000
    assert exp["estimated_cost_usd"] == pytest.approx(3 + 1.5 + 0.3 + 3.75 + 2)
    rows = {(r["hour"][:13], r["model"]): r for r in exp["by_hour_and_model"]}
    assert len(rows) == 2
    sonnet = rows[(hour.isoformat()[:13], "claude-sonnet-4-5")]
    assert sonnet["cache_read_input_tokens"] == 1_000_000
    assert sonnet["estimated_cost_usd"] == pytest.approx(8.55)
    assert incident.audit()[0]["exposure"]["tokens"] == 5_100_000
    again = incident.revoke("--key-id", key_id, "--yes", "--report", "r.md")
    assert again.code == 0, again.err
    report = (incident.root / "r.md").read_text()
    assert "| hour (UTC) | model |" in report
    assert f"| {hour:%Y-%m-%d %H:00} | claude-sonnet-4-5 | 1000000 |" in report
    assert "**5100000 tokens**" in report
    assert "**$10.5500**" in report


def test_since_narrows_the_window(incident: Incident) -> None:
    sb = incident.sandbox
    key_id, key = incident.mint("prod-1", age=timedelta(days=10))
    now = datetime.now(UTC)
    sb.record_usage(key_id, at=now - timedelta(days=5), input_tokens=500, output_tokens=0)
    sb.record_usage(key_id, at=now - timedelta(hours=3), input_tokens=70, output_tokens=0)
    run = incident.revoke("--leaked", "-", "--yes", "--since", "24h", "--format", "json", key=key)
    assert run.code == 0, run.err
    assert run.json()["exposure"]["tokens"] == 70


def test_rotation_request_goes_to_the_webhook(incident: Incident, tmp_path: Path) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    got: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = incident.root / "keyguard.toml"
        cfg.write_text(
            cfg.read_text() + f'\n[notify]\nwebhook = "http://127.0.0.1:{server.server_port}/h"\n'
        )
        _, key = incident.mint("staging-1")
        incident.serve("staging", key)
        run = incident.revoke("--leaked", "-", "--yes", key=key)
    finally:
        server.shutdown()
    assert run.code == 5, run.err
    assert [g["environment"] for g in got] == ["staging"]
    incident.assert_no_leak(json.dumps(got))
    assert "leaked" in str(got[0]["text"])


def test_key_id_deactivates_before_reading_stores_or_usage(incident: Incident) -> None:
    key_id, key = incident.mint("prod-1")
    incident.deliver("prod", key)  # the stores' metadata names its key id
    incident.serve("staging", key)  # by hand: no key id, only a value with its hint
    before = len(incident.sandbox.request_log())
    run = incident.revoke("--key-id", key_id, "--yes", "--format", "json")
    assert run.code == 5, run.err  # prod had it waiting and asks for another key
    assert incident.status(key_id) == "inactive"
    log = [(m, p) for m, p, _ in incident.sandbox.request_log()[before:]]
    write = log.index(("POST", f"{KEYS_PATH}/{key_id}"))
    assert log[:write] == [("GET", f"{KEYS_PATH}/{key_id}")]  # the id alone: one read, no list
    assert [p for _, p in log[write:]].count("/v1/organizations/usage_report/messages") >= 1
    record = run.json()
    # Without the key itself, the stores are matched through the key id in their metadata;
    # a store that holds only a value with the same hint is named, never matched by hint.
    assert [e["environment"] for e in record["environments"]] == ["prod"]
    assert record["key"]["fingerprint"] is None
    assert "staging" in run.err and "check it by hand" in run.err


def test_unknown_key_id_exits_1_with_a_next_step(incident: Incident) -> None:
    run = incident.revoke("--key-id", "apikey_01NoSuchKeyHere0000000000", "--yes")
    assert run.code == 1, run.err
    assert "apikey_01NoSuchKeyHere0000000000" in run.err and "keyguard keys list" in run.err
    assert incident.sandbox.writes() == []


def test_prices_come_from_the_policy(incident: Incident) -> None:
    (incident.root / "policy.toml").write_text(
        '[prices]\n"claude-sonnet-4" = { input = 10.0, output = 100.0 }\n'
        '"default" = { input = 1.0, output = 1.0 }\n'
    )
    cfg = incident.root / "keyguard.toml"
    cfg.write_text('[policy]\nfile = "policy.toml"\n' + cfg.read_text())
    key_id, key = incident.mint("prod-1", age=timedelta(days=1))
    incident.sandbox.record_usage(
        key_id, model="claude-sonnet-4-5", input_tokens=1_000_000, output_tokens=1_000_000
    )
    incident.sandbox.record_usage(
        key_id, model="claude-mystery-9", input_tokens=1_000_000, output_tokens=0
    )
    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=key)
    assert run.code == 0, run.err
    exp = run.json()["exposure"]
    assert exp["estimated_cost_usd"] == pytest.approx(10 + 100 + 1)
