"""The clock every store lease is written and read with, moved by hand (a run that sat past
its lease: a slow store, a person at a prompt, a suspended laptop)."""

from __future__ import annotations

import time

import pytest

from keyguard.stores import lease


class LeaseClock:
    """The local clock plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def lease_clock(monkeypatch: pytest.MonkeyPatch) -> LeaseClock:
    clock = LeaseClock()
    monkeypatch.setattr(lease, "clock", clock)
    return clock
