"""The sandbox speaks the 2026 API: members leaving, the compliance feed, cost, faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from keyguard.admin.sandbox import Sandbox


def admin_get(sandbox: Sandbox, path: str, **params: object) -> httpx.Response:
    headers = {"x-api-key": sandbox.admin_key.reveal(), "anthropic-version": "2023-06-01"}
    return httpx.get(sandbox.url + path, headers=headers, params=params)  # type: ignore[arg-type]


def test_a_person_leaving_archives_their_personal_keys_only(sandbox: Sandbox) -> None:
    bob = sandbox.add_user("bob@example.invalid")
    personal, secret = sandbox.mint_key("bob-dev", key_type="personal", principal_id=bob)
    legacy, _ = sandbox.mint_key("legacy", key_type="workspace")
    sandbox.remove_user(bob)
    client = sandbox.client()
    assert client.get_key(personal).status == "archived"
    assert client.get_key(legacy).status == "active"  # a workspace key survives its creator
    assert not client.verify_key(secret).usable


def test_the_compliance_feed_records_only_once_enabled(sandbox: Sandbox) -> None:
    before, _ = sandbox.mint_key("before")
    assert admin_get(sandbox, "/v1/compliance/activities").status_code == 403
    sandbox.enable_compliance()
    key_id, _ = sandbox.mint_key("after")
    sandbox.client().update_key(key_id, status="inactive")
    r = admin_get(sandbox, "/v1/compliance/activities", order="asc")
    assert r.status_code == 200
    events = r.json()["data"]
    assert [e["type"] for e in events] == ["platform_api_key_created", "platform_api_key_updated"]
    assert all(e["api_key_id"] == key_id for e in events) and before not in r.text
    created, updated = events
    assert created["actor"]["type"] == "user_actor" and created["actor"]["ip_address"]
    assert updated["actor"]["type"] == "admin_api_key_actor"
    assert updated["actor"]["ip_address"] == "127.0.0.1"
    assert updated["updates"] == [
        {"type": "status", "previous_value": "active", "current_value": "inactive"}
    ]


def test_cost_report_prices_tokens_in_cents(sandbox: Sandbox) -> None:
    key_id, _ = sandbox.mint_key("k")
    at = datetime.now(UTC) - timedelta(hours=1)
    sandbox.record_usage(key_id, at, "claude-opus-4-6", input_tokens=1_000_000, output_tokens=0)
    start = (at - timedelta(days=1)).isoformat()
    body = admin_get(sandbox, "/v1/organizations/cost_report", starting_at=start).json()
    amounts = [r for b in body["data"] for r in b["results"]]
    assert [(r["model"], r["token_type"], r["amount"]) for r in amounts] == [
        ("claude-opus-4-6", "uncached_input_tokens", "500.0000")  # $5 per MTok, in cents
    ]


def test_spend_cap_and_billing_faults_look_like_anthropics(sandbox: Sandbox) -> None:
    sandbox.set_faults(kinds=["spend_cap"], count=1)
    r = admin_get(sandbox, "/v1/organizations/me")
    assert r.status_code == 429 and "retry-after" not in r.headers
    assert r.json()["error"]["details"]["error_code"] == "enforced_spend_limit_reached"
    sandbox.set_faults(kinds=["402"], count=1, should_retry=False)
    r = admin_get(sandbox, "/v1/organizations/me")
    assert r.status_code == 402 and r.json()["error"]["type"] == "billing_error"
    assert r.headers["x-should-retry"] == "false"
    assert admin_get(sandbox, "/v1/organizations/me").status_code == 200


def test_a_partial_last_bucket_is_read_at_one_minute_and_counted_once(sandbox: Sandbox) -> None:
    key_id, _ = sandbox.mint_key("k")
    # Half past an hour that has ended: the last hour is unfinished at any wall-clock time
    # (at HH:00, "now" would leave no unfinished minute to read).
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)
    sandbox.record_usage(key_id, now - timedelta(minutes=1), input_tokens=7, output_tokens=0)
    sandbox.record_usage(key_id, now - timedelta(hours=5), input_tokens=100, output_tokens=0)
    rows = sandbox.client().usage([key_id], now - timedelta(hours=6), now, bucket_width="1h")
    assert sum(r.total_tokens for r in rows) == 107
    widths = {r.ending_at - r.starting_at for r in rows}
    assert timedelta(minutes=1) in widths  # the unfinished hour, read minute by minute


def test_minute_buckets_are_paged_the_apis_way(sandbox: Sandbox) -> None:
    key_id, _ = sandbox.mint_key("k")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(hours=25)  # 1500 one-minute buckets: more than one page of 1440
    sandbox.record_usage(key_id, start + timedelta(seconds=5), input_tokens=3, output_tokens=0)
    sandbox.record_usage(key_id, now - timedelta(seconds=30), input_tokens=4, output_tokens=0)
    rows = sandbox.client().usage([key_id], start, now, bucket_width="1m")
    assert sum(r.total_tokens for r in rows) == 7
    calls = [p for _, p, _ in sandbox.request_log() if p.endswith("usage_report/messages")]
    assert len(calls) == 2
