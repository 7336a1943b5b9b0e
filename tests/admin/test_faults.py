"""Every fault kind of the sandbox, met by the real client over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from keyguard.admin import AdminClient
from keyguard.admin.errors import ApiUnavailableError
from keyguard.admin.sandbox import Sandbox
from keyguard.errors import ExitCode, UsageError


def client(sandbox: Sandbox, sleeps: list[float], **kwargs: object) -> AdminClient:
    return sandbox.client(sleep=sleeps.append, **kwargs)


@pytest.mark.parametrize("kind", ["429", "500", "529", "drop"])
def test_transient_faults_are_survived(sandbox: Sandbox, kind: str) -> None:
    key_id, _ = sandbox.mint_key("k")
    sandbox.set_faults(rate=1.0, kinds=(kind,), retry_after=2, count=2)
    sleeps: list[float] = []
    with client(sandbox, sleeps) as c:
        assert c.get_key(key_id).id == key_id
    assert sandbox.faults_injected == 2 and len(sleeps) == 2
    if kind == "429":
        assert sleeps == [2.0, 2.0]  # retry-after honoured
    else:
        assert all(0 <= s <= 1.0 for s in sleeps)  # jittered backoff


@pytest.mark.parametrize("kind", ["429", "500", "529", "drop"])
def test_persistent_faults_exhaust_the_retries(sandbox: Sandbox, kind: str) -> None:
    sandbox.mint_key("k")
    sandbox.set_faults(rate=1.0, kinds=(kind,))
    sleeps: list[float] = []
    with client(sandbox, sleeps, max_attempts=3) as c, pytest.raises(ApiUnavailableError) as info:
        list(c.list_keys())
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert sandbox.faults_injected == 3
    if kind != "drop":
        assert info.value.status == int(kind)
        assert info.value.request_id and info.value.request_id.startswith("req_")


def test_latency_below_the_timeout_only_slows(sandbox: Sandbox) -> None:
    key_id, _ = sandbox.mint_key("k")
    sandbox.set_faults(rate=1.0, kinds=("latency",), latency=0.05)
    sleeps: list[float] = []
    with client(sandbox, sleeps) as c:
        assert c.get_key(key_id).id == key_id
    assert sleeps == []


def test_latency_past_the_timeout_is_retried(sandbox: Sandbox) -> None:
    key_id, _ = sandbox.mint_key("k")
    sandbox.set_faults(rate=1.0, kinds=("latency",), latency=0.5, count=1)
    sleeps: list[float] = []
    with client(sandbox, sleeps, timeout=0.1) as c:
        assert c.get_key(key_id).id == key_id
    assert len(sleeps) == 1


def test_verify_survives_faults_too(sandbox: Sandbox) -> None:
    _, secret = sandbox.mint_key("k")
    sandbox.set_faults(rate=1.0, kinds=("529", "429"), count=3)
    sleeps: list[float] = []
    assert client(sandbox, sleeps).verify_key(secret).usable


def test_fault_rate_is_a_rate(sandbox: Sandbox) -> None:
    key_id, _ = sandbox.mint_key("k")
    sandbox.set_faults(rate=0.3, kinds=("500",))
    sandbox.state.faults.rng.seed(7)
    sleeps: list[float] = []
    with client(sandbox, sleeps, max_attempts=20) as c:
        for _ in range(30):
            c.get_key(key_id)
    assert 0 < sandbox.faults_injected < 30


def test_console_routes_are_never_faulted(sandbox: Sandbox) -> None:
    sandbox.set_faults(rate=1.0, kinds=("500",))
    headers = {"x-api-key": sandbox.admin_key.reveal()}
    r = httpx.post(sandbox.url + "/_sandbox/keys", headers=headers, json={"name": "x"})
    assert r.status_code == 201


def test_faults_over_http(sandbox: Sandbox) -> None:
    headers = {"x-api-key": sandbox.admin_key.reveal()}
    body = {"rate": 1, "kinds": ["529"], "count": 1}
    assert httpx.post(sandbox.url + "/_sandbox/faults", headers=headers, json=body).is_success
    r = httpx.get(
        sandbox.url + "/v1/organizations/me",
        headers=headers | {"anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
    bad = {"kinds": ["teapot"]}
    r = httpx.post(sandbox.url + "/_sandbox/faults", headers=headers, json=bad)
    assert r.status_code == 400
    assert httpx.delete(sandbox.url + "/_sandbox/faults", headers=headers).is_success
    with pytest.raises(UsageError):
        sandbox.set_faults(kinds=("teapot",))


def test_a_sandbox_that_is_gone_is_unavailable() -> None:
    sb = Sandbox().start()
    url, admin = sb.url, sb.admin_key
    sb.stop()
    sleeps: list[float] = []
    c = AdminClient(admin, url, sleep=sleeps.append, max_attempts=2)
    with c, pytest.raises(ApiUnavailableError) as info:
        c.me()
    assert "ConnectError" in str(info.value) and len(sleeps) == 1
