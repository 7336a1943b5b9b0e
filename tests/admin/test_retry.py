"""Retries: what is retried, how long it waits, and when it gives up (no real sleeping)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from keyguard.admin.errors import ApiError, ApiUnavailableError
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


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413])
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
