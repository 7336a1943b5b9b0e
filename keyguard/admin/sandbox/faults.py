"""Faults the sandbox injects into ``/v1/`` answers, at a rate, the way the API fails."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = (
    "429",  # rate limit, with retry-after
    "spend_cap",  # the usage tier's monthly cap: 429, no retry-after, never worth a retry
    "402",  # billing_error
    "408",
    "409",
    "500",
    "502",
    "503",
    "529",
    "latency",
    "drop",
)

#: kind -> (status, error type, message) of the answer Anthropic gives.
FAULT_ANSWERS = {
    "429": (429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
    "spend_cap": (
        429,
        "rate_limit_error",
        "You have reached your usage tier's monthly spend limit. Your access will be restored "
        "on the 1st of next month at 00:00 UTC, or raise the limit by moving up a tier.",
    ),
    "402": (402, "billing_error", "Your credit balance is too low to access the Anthropic API."),
    "408": (408, "timeout_error", "Request timeout"),
    "409": (409, "conflict_error", "The resource was modified concurrently"),
    "500": (500, "api_error", "Internal server error"),
    "502": (502, "api_error", "Bad gateway"),
    "503": (503, "api_error", "Service unavailable"),
    "529": (529, "overloaded_error", "Overloaded"),
}


@dataclass
class Faults:
    """Faults injected into ``/v1/`` answers at a rate; ``count`` bounds how many."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ()
    retry_after: float = 0
    latency: float = 0.0
    count: int | None = None
    injected: int = 0
    rng: random.Random = field(default_factory=random.Random)
    only: str | None = None  # "POST" or "GET /v1/organizations/usage_report": faults hit these
    should_retry: str | None = None  # "true"/"false": sent as ``x-should-retry`` with faults

    def applies(self, method: str, path: str) -> bool:
        """True when a request with ``method`` and ``path`` may draw a fault."""
        if not self.only:
            return True
        verb, _, prefix = self.only.partition(" ")
        return method == verb and path.startswith(prefix)

    def draw(self) -> str | None:
        if self.rate <= 0 or not self.kinds or (self.count is not None and self.count <= 0):
            return None
        if self.rng.random() >= self.rate:
            return None
        if self.count is not None:
            self.count -= 1
        self.injected += 1
        return self.rng.choice(self.kinds)

    def describe(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "kinds": list(self.kinds),
            "retry_after": self.retry_after,
            "latency": self.latency,
            "count": self.count,
            "injected": self.injected,
            "only": self.only,
            "should_retry": self.should_retry,
        }
