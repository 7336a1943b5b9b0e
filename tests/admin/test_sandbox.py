"""The sandbox over real HTTP, through the real client: shapes, rules, paging, usage, state."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from keyguard.admin.errors import ApiAuthError, ApiError, ApiNotFoundError
from keyguard.admin.sandbox import Sandbox
from keyguard.errors import ExitCode, UsageError
from keyguard.keys import Secret, generate_key


def raw(sandbox: Sandbox, method: str, path: str, **kwargs: object) -> httpx.Response:
    headers = {"x-api-key": sandbox.admin_key.reveal(), "anthropic-version": "2023-06-01"}
    return httpx.request(method, sandbox.url + path, headers=headers, **kwargs)  # type: ignore[arg-type]


def test_documented_shapes_and_headers(sandbox: Sandbox) -> None:
    ws = sandbox.add_workspace("prod", tags={"env": "prod"})
    _key_id, secret = sandbox.mint_key("prod-1", workspace_id=ws)
    r = raw(sandbox, "GET", "/v1/organizations/api_keys", params={"limit": 1})
    assert r.status_code == 200 and r.headers["request-id"].startswith("req_")
    body = r.json()
    assert set(body) == {"data", "has_more", "first_id", "last_id"}
    item = body["data"][0]
    assert item["type"] == "api_key" and item["id"].startswith("apikey_")
    assert item["partial_key_hint"] == secret.hint
    assert "secret" not in json.dumps(body) and secret.reveal() not in r.text
    assert item["workspace_id"] == ws and item["status"] == "active"
    workspaces = list(sandbox.client().list_workspaces())
    assert [(w.id, w.name, w.tags) for w in workspaces] == [(ws, "prod", {"env": "prod"})]


def test_errors_use_anthropic_error_body(sandbox: Sandbox) -> None:
    r = raw(sandbox, "GET", "/v1/organizations/api_keys/apikey_nope")
    assert r.status_code == 404
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert body["request_id"] == r.headers["request-id"]
    with pytest.raises(ApiNotFoundError) as info:
        sandbox.client().get_key("apikey_nope")
    assert info.value.exit_code == ExitCode.FOUND


def test_wrong_admin_key_is_401(sandbox: Sandbox) -> None:
    from keyguard.admin import AdminClient

    with AdminClient(generate_key("admin"), sandbox.url) as client, pytest.raises(ApiAuthError):
        client.me()
    r = httpx.get(sandbox.url + "/v1/organizations/me", headers={"anthropic-version": "x"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_there_is_no_create_and_no_delete(sandbox: Sandbox) -> None:
    key_id, _ = sandbox.mint_key("k")
    assert raw(sandbox, "POST", "/v1/organizations/api_keys", json={"name": "x"}).status_code == 405
    assert raw(sandbox, "DELETE", f"/v1/organizations/api_keys/{key_id}").status_code == 405
    assert sandbox.client().get_key(key_id).status == "active"


def test_inactive_is_reversible_and_archived_is_final(sandbox: Sandbox) -> None:
    key_id, secret = sandbox.mint_key("k")
    client = sandbox.client()
    assert client.update_key(key_id, status="inactive").status == "inactive"
    assert not client.verify_key(secret).usable
    assert client.update_key(key_id, status="active").status == "active"
    assert client.verify_key(secret).usable
    assert client.update_key(key_id, name="renamed", status="archived").name == "renamed"
    with pytest.raises(ApiError) as info:
        client.update_key(key_id, status="active")
    assert info.value.status == 400 and info.value.error_type == "invalid_request_error"
    with pytest.raises(ApiError):
        client.update_key(key_id, name="again")
    assert not client.verify_key(secret).usable


def test_update_validates_its_body(sandbox: Sandbox) -> None:
    key_id, _ = sandbox.mint_key("k")
    for body in ({"status": "expired"}, {"name": ""}, {"name": "x" * 501}, {"color": "red"}):
        r = raw(sandbox, "POST", f"/v1/organizations/api_keys/{key_id}", json=body)
        assert r.status_code == 400, body
    r = raw(sandbox, "POST", f"/v1/organizations/api_keys/{key_id}", content=b"{nope")
    assert r.status_code == 400


def test_expired_keys_are_rejected_and_listed_as_expired(sandbox: Sandbox) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    key_id, secret = sandbox.mint_key("old", expires_at=past, age=timedelta(days=90))
    client = sandbox.client()
    key = client.get_key(key_id)
    assert key.status == "expired" and key.expires_at is not None
    assert key.created_at is not None and key.created_at < past - timedelta(days=80)
    result = client.verify_key(secret)
    assert not result.usable and result.status_code == 401
    assert [k.id for k in client.list_keys(status="expired")] == [key_id]
    with pytest.raises(ApiError):
        client.update_key(key_id, status="active")


def test_verify_names_the_workspace_and_counts_the_request(sandbox: Sandbox) -> None:
    ws = sandbox.add_workspace("prod")
    key_id, secret = sandbox.mint_key("prod-1", workspace_id=ws)
    _default_id, default_secret = sandbox.mint_key("dev-1")
    client = sandbox.client()
    assert client.verify_key(secret).workspace_id == ws
    # The Default Workspace has a real id: the response header names it.
    assert client.verify_key(default_secret).workspace_id == sandbox.default_workspace_id
    assert not client.verify_key(generate_key()).usable
    assert not client.verify_key(sandbox.admin_key).usable
    assert sandbox.requests(key_id) == 1
    # /v1/models is free: a request, but no tokens in the usage report.
    assert client.usage([key_id], datetime.now(UTC) - timedelta(hours=1)) == []


def test_filters(sandbox: Sandbox) -> None:
    ws = sandbox.add_workspace("prod")
    a, _ = sandbox.mint_key("a", workspace_id=ws)
    b, _ = sandbox.mint_key("b")
    client = sandbox.client()
    client.update_key(b, status="inactive")
    assert [k.id for k in client.list_keys(workspace_id=ws)] == [a]
    assert [k.id for k in client.list_keys(status="inactive")] == [b]
    assert raw(sandbox, "GET", "/v1/organizations/api_keys?status=bogus").status_code == 400
    assert raw(sandbox, "GET", "/v1/organizations/api_keys?limit=1001").status_code == 400


def test_paging_through_2500_keys(sandbox: Sandbox) -> None:
    minted = {sandbox.mint_key(f"key-{i}")[0] for i in range(2500)}
    with sandbox.client() as client:
        listed = [k.id for k in client.list_keys()]
    assert len(listed) == 2500 and set(listed) == minted
    # before_id pages backwards through the same order
    r = raw(sandbox, "GET", "/v1/organizations/api_keys", params={"before_id": listed[1500]})
    assert [k["id"] for k in r.json()["data"]] == listed[1480:1500]
    assert r.json()["has_more"] is True


def test_usage_report_from_traffic(sandbox: Sandbox) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    a, secret = sandbox.mint_key("a")
    b, _ = sandbox.mint_key("b")
    sandbox.record_usage(a, at=start + timedelta(minutes=10), input_tokens=100, output_tokens=10)
    sandbox.record_usage(a, at=start + timedelta(hours=2), model="claude-haiku-4-5")
    sandbox.record_usage(b, at=start + timedelta(minutes=20), input_tokens=7, output_tokens=1)
    r = httpx.post(
        sandbox.url + "/v1/messages",
        headers={"x-api-key": secret.reveal(), "anthropic-version": "2023-06-01"},
        json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user"}]},
    )
    assert r.status_code == 200 and r.json()["usage"]["output_tokens"] == 5
    client = sandbox.client()
    rows = client.usage([a], start, bucket_width="1h")
    assert {r.api_key_id for r in rows} == {a}
    assert sum(r.output_tokens for r in rows) == 10 + 20 + 5
    assert rows[0].starting_at == start and rows[0].uncached_input_tokens == 100
    by_model = client.usage([a], start, group_by_model=True)
    assert {r.model for r in by_model} == {"claude-sonnet-4-5", "claude-haiku-4-5"}
    both = client.usage([a, b], start, start + timedelta(hours=1))
    assert sorted((r.api_key_id, r.total_tokens) for r in both) == sorted([(a, 110), (b, 8)])


def test_usage_report_pages_by_bucket_limit(sandbox: Sandbox) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    a, _ = sandbox.mint_key("a")
    for day in range(0, 40, 3):
        sandbox.record_usage(a, at=start + timedelta(days=day, hours=1), output_tokens=1)
    params = {"starting_at": "2026-01-01T00:00:00Z", "ending_at": "2026-02-10T00:00:00Z"}
    first = raw(sandbox, "GET", "/v1/organizations/usage_report/messages", params=params).json()
    assert len(first["data"]) == 7 and first["has_more"] and first["next_page"]
    rows = sandbox.client().usage([a], start, start + timedelta(days=40), bucket_width="1d")
    assert len(rows) == 14  # 0, 3, ..., 39: spans two pages of 31 buckets
    bad = raw(sandbox, "GET", "/v1/organizations/usage_report/messages")
    assert bad.status_code == 400


def test_console_routes_over_http(sandbox: Sandbox) -> None:
    ws = raw(sandbox, "POST", "/_sandbox/workspaces", json={"name": "prod"}).json()["id"]
    minted = raw(
        sandbox, "POST", "/_sandbox/keys", json={"name": "p", "workspace_id": ws, "age": "30d"}
    ).json()
    client = sandbox.client()
    key = client.find_key(Secret(minted["secret"]))
    assert key.id == minted["id"] and key.workspace_id == ws
    assert key.created_at is not None
    assert key.created_at < datetime.now(UTC) - timedelta(days=29)
    r = raw(sandbox, "POST", "/_sandbox/usage", json={"api_key_id": key.id, "output_tokens": 3})
    assert r.status_code == 201
    listed = raw(sandbox, "GET", "/_sandbox/keys").json()["data"]
    assert listed[0]["requests"] == 0 and "secret" not in listed[0]
    assert httpx.get(sandbox.url + "/_sandbox/keys").status_code == 401


def test_state_file_survives_a_restart_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    with Sandbox(state_file=path) as sb:
        key_id, secret = sb.mint_key("kept")
        admin = sb.admin_key
        sb.client().update_key(key_id, status="inactive")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secret.reveal() not in path.read_text()  # only a fingerprint of API keys is kept
    with Sandbox(state_file=path) as sb:
        assert sb.admin_key == admin
        assert sb.client().get_key(key_id).status == "inactive"
        sb.client().update_key(key_id, status="active")
        assert sb.client().verify_key(secret).usable
    assert not list(tmp_path.glob(".sandbox.json.*"))  # no temp files left behind


def test_sandbox_refuses_non_loopback() -> None:
    from keyguard.errors import UsageError

    with pytest.raises(UsageError):
        Sandbox(host="0.0.0.0")


def _same_hint(secret: Secret) -> Secret:
    """Another key with the same hint (prefix, first 3 and last 4 characters)."""
    value = secret.reveal()
    head, middle, tail = value[:16], value[16:-4], value[-4:]
    flipped = "".join("b" if c != "b" else "c" for c in middle)
    return Secret(head + flipped + tail)


def test_find_key_breaks_hint_ties_by_verifying(sandbox: Sandbox) -> None:
    prod, staging = sandbox.add_workspace("prod"), sandbox.add_workspace("staging")
    a_id, a = sandbox.mint_key("svc", workspace_id=prod)
    b_id, b = sandbox.mint_key("svc", workspace_id=staging, secret=_same_hint(a))
    assert a.hint == b.hint and a != b
    client = sandbox.client()
    assert client.find_key(a).id == a_id
    assert client.find_key(b).id == b_id
    # Same workspace, different names: only the name tells them apart.
    c_id, c = sandbox.mint_key("svc-1", workspace_id=prod)
    d_id, _ = sandbox.mint_key("svc-2", workspace_id=prod, secret=_same_hint(c))
    assert client.find_key(c, name="svc-1").id == c_id
    with pytest.raises(UsageError) as info:
        client.find_key(c)
    assert c_id in str(info.value) and d_id in str(info.value)
