"""Retries: what is retried, how long it waits, and when it gives up (no real sleeping)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from keyguard.admin.errors import (
    ApiConflictError,
    ApiError,
    ApiUnavailableError,
    BillingError,
    SpendLimitError,
)
from keyguard.admin.retry import RetryPolicy, parse_retry_after
from keyguard.errors import ExitCode
from keyguard.keys import Secret

from .fakes import Recorder, answer, error


def scripted(*responses: httpx.Response | Exception) -> Recorder:
    it: Iterator[httpx.Response | Exception] = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = next(it)
        if isinstance(item, Exception):
            raise item
        return item

    return Recorder(handler)


ORG = {"id": "org", "name": "Acme", "type": "organization"}


def test_429_waits_as_long_as_retry_after_says(admin_key: Secret) -> None:
    rec = scripted(error(429, "rate_limit_error", retry_after="7"), answer(200, ORG))
    assert rec.client(admin_key).me()["name"] == "Acme"
    assert rec.sleeps == [7.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
def test_server_errors_back_off_with_jitter(admin_key: Secret, status: int) -> None:
    rec = scripted(error(status, "api_error"), error(status, "api_error"), answer(200, ORG))
    assert rec.client(admin_key).me()["id"] == "org"
    assert len(rec.requests) == 3
    assert 0 <= rec.sleeps[0] <= 0.5 and 0 <= rec.sleeps[1] <= 1.0


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_network_failures_are_retried(admin_key: Secret, exc: Exception) -> None:
    rec = scripted(exc, answer(200, ORG))
    assert rec.client(admin_key).me()["id"] == "org"
    assert len(rec.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_other_4xx_are_never_retried(admin_key: Secret, status: int) -> None:
    rec = scripted(error(status, "x"), answer(200, ORG))
    with pytest.raises(ApiError):
        rec.client(admin_key).me()
    assert len(rec.requests) == 1 and rec.sleeps == []


def test_attempts_are_bounded(admin_key: Secret) -> None:
    rec = scripted(*[error(529, "overloaded_error") for _ in range(10)])
    with pytest.raises(ApiUnavailableError) as info:
        rec.client(admin_key, max_attempts=4).me()
    assert len(rec.requests) == 4 and len(rec.sleeps) == 3
    err = info.value
    assert err.exit_code == ExitCode.UNAVAILABLE
    assert (err.status, err.error_type, err.request_id) == (529, "overloaded_error", "req_test")
    assert "4 attempts" in str(err)


def test_a_retry_after_past_the_deadline_gives_up_at_once(admin_key: Secret) -> None:
    rec = scripted(error(429, "rate_limit_error", retry_after="120"), answer(200, ORG))
    with pytest.raises(ApiUnavailableError) as info:
        rec.client(admin_key, deadline_seconds=60).me()
    assert rec.sleeps == [] and len(rec.requests) == 1
    assert "deadline" in str(info.value)


def test_total_deadline_counts_the_time_slept(admin_key: Secret) -> None:
    clock = [0.0]
    rec = scripted(*[error(429, "rate_limit_error", retry_after="20") for _ in range(10)])
    client = rec.client(admin_key, deadline_seconds=50, max_attempts=10)

    def sleep(seconds: float) -> None:
        rec.sleeps.append(seconds)
        clock[0] += seconds

    client._policy.sleep = sleep
    client._policy.clock = lambda: clock[0]
    with pytest.raises(ApiUnavailableError):
        client.me()
    assert rec.sleeps == [20.0, 20.0]  # a third wait would end at 60s > 50s


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, rng=lambda: 1.0)
    assert [policy.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert RetryPolicy(rng=lambda: 0.0).backoff(5) == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-4", 0.0), (None, None), ("soon", None), ("nan", None)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_as_http_date() -> None:
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now=1767225600.0) == 10.0


def spend_cap() -> httpx.Response:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "You have reached your usage tier's monthly spend limit.",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
        "request_id": "req_spendcap",
    }
    return httpx.Response(429, json=body, headers={"request-id": "req_spendcap"})


def test_a_spend_cap_429_is_never_retried_and_exits_4_naming_the_limit(
    admin_key: Secret,
) -> None:
    rec = scripted(spend_cap(), answer(200, ORG))
    with pytest.raises(SpendLimitError) as info:
        rec.client(admin_key).me()
    assert len(rec.requests) == 1 and rec.sleeps == []
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert "spend cap" in str(info.value) and "req_spendcap" in str(info.value)


def test_a_402_is_a_billing_error_exit_4(admin_key: Secret) -> None:
    rec = scripted(error(402, "billing_error"), answer(200, ORG))
    with pytest.raises(BillingError) as info:
        rec.client(admin_key).me()
    assert len(rec.requests) == 1 and info.value.exit_code == ExitCode.UNAVAILABLE
    assert "billing" in str(info.value).lower()


def test_an_org_spend_limit_400_exits_4(admin_key: Secret) -> None:
    limit = error(400, "invalid_request_error")
    body = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "You have reached your specified workspace API usage limits.",
        },
    }
    limit = httpx.Response(400, json=body)
    rec = scripted(limit)
    with pytest.raises(SpendLimitError) as info:
        rec.client(admin_key).me()
    assert "workspace" in str(info.value) and info.value.exit_code == ExitCode.UNAVAILABLE


@pytest.mark.parametrize("status", [408, 409])
def test_408_and_409_are_retried(admin_key: Secret, status: int) -> None:
    rec = scripted(error(status, "x"), answer(200, ORG))
    assert rec.client(admin_key).me()["id"] == "org"
    assert len(rec.requests) == 2


def test_a_409_is_retried_once_then_reported_as_a_conflict(admin_key: Secret) -> None:
    rec = scripted(*[error(409, "conflict_error") for _ in range(5)])
    with pytest.raises(ApiConflictError):
        rec.client(admin_key).me()
    assert len(rec.requests) == 2


def test_x_should_retry_overrides_the_status(admin_key: Secret) -> None:
    no = httpx.Response(
        503,
        json={"error": {"type": "api_error"}},
        headers={"x-should-retry": "false", "request-id": "req_no"},
    )
    rec = scripted(no, answer(200, ORG))
    with pytest.raises(ApiUnavailableError) as info:
        rec.client(admin_key).me()
    assert len(rec.requests) == 1 and "req_no" in str(info.value)
    yes = httpx.Response(400, json={"error": {"type": "x"}}, headers={"x-should-retry": "true"})
    rec = scripted(yes, answer(200, ORG))
    assert rec.client(admin_key).me()["id"] == "org" and len(rec.requests) == 2


def test_every_api_error_names_the_request_id(admin_key: Secret) -> None:
    for status in (400, 401, 403, 404, 413):
        rec = scripted(
            httpx.Response(status, json={"error": {"type": "x"}, "request_id": "req_body"})
        )
        with pytest.raises(ApiError) as info:
            rec.client(admin_key).me()
        assert "req_body" in str(info.value)
