"""Thousands of keys, dozens of environments: one paged listing, bounded concurrent reads."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import httpx

from keyguard.admin import AdminClient
from keyguard.audit import Verdict, run_audit
from keyguard.config import load_config
from keyguard.stores import open_store
from keyguard.stores.interface import SecretStore
from tests.audit.conftest import Org

KEYS, ENVS, WORKERS = 2000, 30, 4


class CountingTransport(httpx.HTTPTransport):
    """A real HTTP transport that also counts requests by path."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: Counter[str] = Counter()
        self.cursors: list[str | None] = []  # after_id of each key listing request

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        if request.url.path == "/v1/organizations/api_keys":
            self.cursors.append(request.url.params.get("after_id"))
        return super().handle_request(request)


class BoundedOpener:
    """Opens real stores; proves reads overlap and never exceed the bound."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.peak = self.calls = 0
        self.together = threading.Barrier(2, timeout=10)

    def __call__(self, uri: str) -> SecretStore:
        with self.lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
            first_two = self.calls <= 2
        try:
            if first_two:
                self.together.wait()  # breaks (and fails the read) unless two run at once
            return open_store(uri)
        finally:
            with self.lock:
                self.active -= 1


def test_two_thousand_keys_thirty_environments(org: Org) -> None:
    keys = [org.key(f"bulk-{i:04d}", age_days=1 + (i * 7) % 130) for i in range(KEYS)]
    served = [keys[e * 61] for e in range(ENVS)]
    for e, key in enumerate(served):
        org.env(f"env{e:02d}", key)
    org.sandbox.record_usage(
        served[0].id, at=org.now - timedelta(hours=3), input_tokens=50, output_tokens=5
    )

    transport, opener = CountingTransport(), BoundedOpener()
    progress: dict[str, tuple[int, int | None]] = {}
    client = AdminClient(org.sandbox.admin_key, org.sandbox.url, transport=transport)
    with client:
        report = run_audit(
            load_config(org.config_path()),
            client,
            opener=opener,
            clock=lambda: org.now,
            max_workers=WORKERS,
            progress=lambda task, done, total: progress.__setitem__(task, (done, total)),
        )

    assert len(report.environments) == ENVS
    assert len(report.unmanaged) == KEYS - ENVS and report.keys_listed == KEYS
    for env, key in zip(report.environments, served, strict=True):
        age = 1 + (keys.index(key) * 7) % 130
        expected = Verdict.OK if age < 80 else Verdict.DUE if age < 90 else Verdict.VIOLATION
        assert (env.key_id, env.verdict) == (key.id, expected), env.reasons
    assert report.environments[0].tokens_24h == 55
    assert 2 <= opener.peak <= WORKERS and opener.calls == ENVS
    assert progress["stores"] == (ENVS, ENVS) and progress["keys"] == (KEYS, KEYS)

    listing = "/v1/organizations/api_keys"
    per_key = [p for p in transport.paths if p.startswith(listing + "/")]
    assert per_key == []  # listed once and indexed, never fetched key by key
    # Page by page: the first page without a cursor, each next one after the last id seen.
    assert 2 <= transport.paths[listing] <= KEYS // 100 + 1
    assert transport.cursors[0] is None and all(transport.cursors[1:])
    assert len(set(transport.cursors)) == len(transport.cursors)
    usage_calls = transport.paths["/v1/organizations/usage_report/messages"]
    assert 1 <= usage_calls <= 10
