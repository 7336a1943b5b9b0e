"""Retries for Anthropic's API: 429 after ``retry-after``; 408, 409, 5xx, 529 and network
failures with exponential backoff and full jitter; bounded by attempts and by a total deadline.

``x-should-retry`` wins over the status (``true`` forces a retry, ``false`` forbids one), as in
the official SDKs; except that a spend-cap 429 (``error.details.error_code``) is never retried:
the cap holds until the month ends or someone raises it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx

from keyguard.admin.errors import ApiUnavailableError, error_body, is_spend_cap
from keyguard.keys import scrub_text as scrub

log = logging.getLogger("keyguard.admin")

#: Answers worth another try; every other 4xx is final.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def worth_retrying(response: httpx.Response) -> bool:
    """True for an answer another try may fix (``x-should-retry`` first; never a spend cap)."""
    if response.is_success or is_spend_cap(response):
        return False
    said = str(response.headers.get("x-should-retry", "")).strip().lower()
    if said in ("true", "false"):
        return said == "true"
    return response.status_code in RETRY_STATUSES


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``retry-after`` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@dataclass
class RetryPolicy:
    """How often and how long to retry; ``sleep``/``clock``/``rng`` are injectable for tests."""

    max_attempts: int = 5
    deadline_seconds: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: Callable[[], float] = field(default=random.random)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**(attempt-1))]."""
        ceiling = min(self.max_delay, self.base_delay * (2.0 ** (attempt - 1)))
        return float(self.rng()) * ceiling


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    return scrub(f"{type(exc).__name__}: {text}")


def send_with_retries(
    send: Callable[[], httpx.Response], policy: RetryPolicy, what: str, where: str
) -> httpx.Response:
    """``send()`` until it answers something final; raise ``ApiUnavailableError`` when out of
    attempts or time. ``what`` names the call ("GET /v1/models"), ``where`` the base URL."""
    start = policy.clock()
    attempt = 0
    while True:
        attempt += 1
        failure: str
        status: int | None = None
        error_type: str | None = None
        request_id: str | None = None
        delay: float | None = None
        try:
            response = send()
        except httpx.TransportError as exc:
            failure = _describe(exc)
        else:
            if not worth_retrying(response):
                return response
            if response.status_code == 409 and attempt >= 2:
                return response  # a conflict is re-read and retried once, then reported
            status = response.status_code
            error_type, _, request_id = error_body(response)
            failure = f"{status} {error_type or 'error'}"
            delay = parse_retry_after(response.headers.get("retry-after"))
        if delay is None:
            delay = policy.backoff(attempt)
        elapsed = policy.clock() - start
        rid = f", last request-id {request_id}" if request_id else ""
        if attempt >= policy.max_attempts or elapsed + delay > policy.deadline_seconds:
            why = (
                f"after {attempt} attempt{'s' if attempt > 1 else ''}"
                if attempt >= policy.max_attempts
                else f"and the next try (in {delay:.1f}s) would pass the "
                f"{policy.deadline_seconds:g}s deadline"
            )
            raise ApiUnavailableError(
                f"Anthropic API at {where} unavailable for {what}: {failure} {why} "
                f"({elapsed:.1f}s{rid}); try again later, or check the network and "
                "ANTHROPIC_BASE_URL",
                status=status,
                error_type=error_type,
                request_id=request_id,
            ) from None
        log.debug("retrying %s after %s in %.2fs (attempt %d)", what, failure, delay, attempt)
        policy.sleep(delay)
