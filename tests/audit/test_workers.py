"""`keyguard audit --workers N`: store reads overlap up to N and never beyond."""

from __future__ import annotations

import json
import threading

import pytest

import keyguard.stores
from keyguard.stores.interface import SecretStore
from tests.audit.conftest import Org

STORES = 9


class HoldingOpener:
    """Opens real stores, each read held until more than ``bound`` overlap (or briefly).

    If the bound were not applied, reads would pile up past it and ``peak`` would show it;
    if reads did not overlap at all, ``peak`` would stay 1.
    """

    def __init__(self, bound: int) -> None:
        self.bound, self.active, self.peak = bound, 0, 0
        self.cond = threading.Condition()
        self.real = keyguard.stores.open_store

    def __call__(self, uri: str) -> SecretStore:
        with self.cond:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.active > self.bound, timeout=0.3)
        try:
            return self.real(uri)
        finally:
            with self.cond:
                self.active -= 1


@pytest.mark.parametrize("workers", [1, 3])
def test_workers_bounds_concurrent_store_reads(
    org: Org, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    for i in range(STORES):
        org.env(f"env{i}", org.key(f"k{i}"))
    opener = HoldingOpener(workers)
    monkeypatch.setattr(keyguard.stores, "open_store", opener)
    code, out, err = org.cli("--format", "json", "--workers", str(workers))
    assert code == 0, err
    assert [e["verdict"] for e in json.loads(out)["environments"]] == ["ok"] * STORES
    assert opener.peak == workers


@pytest.mark.parametrize("bad", ["0", "65", "many"])
def test_workers_out_of_range_is_a_usage_error(org: Org, bad: str) -> None:
    org.env("prod", org.key("prod-1"))
    code, out, err = org.cli("--workers", bad)
    assert code == 2 and out == ""
    assert "--workers" in err
