"""The exposure report tells the whole story: today's prices, the org's cost report, the
compliance feed (or a plain statement that nothing was recorded), and no IP trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.incident.conftest import Incident


def test_opus_4_6_is_priced_at_todays_list_beside_the_orgs_cost_report(
    incident: Incident,
) -> None:
    sb = incident.sandbox
    key_id, key = incident.mint("prod-1", age=timedelta(days=2))
    at = datetime.now(UTC) - timedelta(hours=3)
    sb.record_usage(key_id, at, "claude-opus-4-6", input_tokens=1_000_000, output_tokens=100_000)
    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", key=key)
    assert run.code == 0, run.err
    exp = run.json()["exposure"]
    # Opus 4.6: $5 per million input, $25 per million output (not Opus 4.1's $15 / $75).
    assert exp["estimated_cost_usd"] == pytest.approx(5 + 2.5)
    assert exp["organization_cost_usd"] == pytest.approx(7.5)
    again = incident.revoke("--key-id", key_id, "--yes", "--report", "r.md")
    assert again.code == 0, again.err
    report = (incident.root / "r.md").read_text()
    assert "cost report" in report and "$7.50" in report
    assert "Inference calls leave no IP trail" in report


def test_without_the_compliance_feed_the_report_says_nothing_was_recorded(
    incident: Incident,
) -> None:
    _, key = incident.mint("prod-1", age=timedelta(days=2))
    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", "--report", "r.md", key=key)
    assert run.code == 0, run.err
    assert run.json()["exposure"]["compliance_enabled"] is False
    report = (incident.root / "r.md").read_text()
    assert "not enabled" in report and "Settings > Security > Compliance API" in report


def test_with_the_feed_the_report_names_who_created_and_changed_the_key_and_from_where(
    incident: Incident,
) -> None:
    sb = incident.sandbox
    sb.enable_compliance()
    key_id, key = incident.mint("prod-1")
    sb.client().update_key(key_id, name="prod-1-renamed")
    sb.record_activity(
        "platform_file_created",
        {"type": "api_actor", "api_key_id": key_id, "ip_address": "198.51.100.23"},
    )
    sb.record_activity(
        "platform_file_created",
        {"type": "api_actor", "api_key_id": "apikey_01other", "ip_address": "192.0.2.1"},
    )
    run = incident.revoke("--leaked", "-", "--yes", "--format", "json", "--report", "r.md", key=key)
    assert run.code == 0, run.err
    events = run.json()["exposure"]["activities"]
    kinds = [(e["type"], e["actor_type"], e["ip_address"]) for e in events]
    assert kinds[:3] == [
        ("platform_api_key_created", "user_actor", "203.0.113.7"),
        ("platform_api_key_updated", "admin_api_key_actor", "127.0.0.1"),
        ("platform_file_created", "api_actor", "198.51.100.23"),
    ]
    assert "192.0.2.1" not in run.out  # another key's activity is not this incident's
    assert any("status: active to inactive" in c for e in events for c in e["changes"])
    report = (incident.root / "r.md").read_text()
    assert "owner@sandbox.invalid" in report and "198.51.100.23" in report
    incident.assert_no_leak(report)
