"""What the ``gcp-sm`` store does beyond the shared contract: aliases, ``latest``, etags, crc32c."""

from __future__ import annotations

import subprocess
import sys
import uuid

import grpc
import pytest
from google.api_core import exceptions as gexc

from keyguard.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    ExitCode,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from keyguard.keys import Secret, generate_key
from keyguard.stores import Stage, open_store
from keyguard.stores.gcp import GcpSecretManagerStore
from keyguard.stores.interface import VersionMeta
from keyguard.stores.lease import new_owner
from keyguard.urls import STORE_ENDPOINTS_ENV
from tests.stores.servers.gcp import GcpHarness
from tests.stores.servers.gcp_fake import FakeSecretManager


def meta(key: Secret, token: str) -> VersionMeta:
    return VersionMeta(key_id="apikey_01", hint=key.hint, token=token, environment="Prod EU")


def rotate(store: GcpSecretManagerStore, key: Secret) -> str:
    token = uuid.uuid4().hex
    store.put_pending(key, meta(key, token))
    store.promote(token)
    return token


def open_gcp(harness: GcpHarness) -> GcpSecretManagerStore:
    store = open_store(harness.new_uri())
    assert isinstance(store, GcpSecretManagerStore)
    store._call.backoff = 0.001  # keep retried faults fast
    return store


def test_latest_is_never_read(gcp: FakeSecretManager, gcp_server: GcpHarness) -> None:
    store = open_gcp(gcp_server)
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    rotate(store, k2)
    store.get()
    store.get(Stage.PREVIOUS)
    store.describe()
    store.retire_superseded()
    with store.lease(new_owner(), 60):
        store.rollback()
    assert gcp.calls, "the store must have talked to the fake"
    assert not [name for _, name in gcp.calls if name.endswith("/latest")]


def test_a_disabled_newest_version_does_not_break_current(
    gcp: FakeSecretManager, gcp_server: GcpHarness
) -> None:
    store = open_gcp(gcp_server)
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    version = store.put_pending(k2, meta(k2, "t2"))
    name = f"{store.name}/versions/{version}"
    gcp_server.native.disable_secret_version(name=name)
    # The trap the store avoids: `latest` is the disabled newest version.
    with pytest.raises(gexc.FailedPrecondition, match="DISABLED"):
        gcp_server.native.access_secret_version(name=f"{store.name}/versions/latest")
    assert store.get() == k1
    with pytest.raises(UnavailableError, match="enable it") as err:
        store.get(Stage.PENDING)
    assert k2.reveal() not in str(err.value)


def test_consumers_read_the_current_alias(gcp_server: GcpHarness) -> None:
    store = open_gcp(gcp_server)
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    store.put_pending(k2, meta(k2, "t2"))
    data = gcp_server.native.access_secret_version(name=f"{store.name}/versions/current")
    assert bytes(data.payload.data).decode() == k1.reveal()
    secret = gcp_server.native.get_secret(name=store.name)
    assert dict(secret.version_aliases) == {"current": 1, "pending": 2}
    assert secret.labels["managed-by"] == "keyguard"
    assert secret.labels["keyguard-env"] == "prod-eu"
    assert k2.reveal() not in str(dict(secret.annotations))


def test_retire_superseded_disables_only_unstaged_versions(
    gcp: FakeSecretManager, gcp_server: GcpHarness
) -> None:
    store = open_gcp(gcp_server)
    keys = [generate_key() for _ in range(3)]
    for key in keys:
        rotate(store, key)
    store.retire_superseded()
    store.retire_superseded()  # idempotent
    states = [gcp.version_state(f"{store.name}/versions/{n}") for n in (1, 2, 3)]
    assert states == ["DISABLED", "ENABLED", "ENABLED"]
    assert store.get() == keys[2]
    assert store.get(Stage.PREVIOUS) == keys[1]
    store.rollback()
    assert store.get() == keys[1]


def test_a_lost_race_is_retried(gcp: FakeSecretManager, gcp_server: GcpHarness) -> None:
    store = open_gcp(gcp_server)
    k1 = generate_key()
    token = uuid.uuid4().hex
    store.put_pending(k1, meta(k1, token))

    def racing_writer() -> None:
        secret = gcp_server.native.get_secret(name=store.name)
        secret.labels = {**secret.labels, "touched": "yes"}
        gcp_server.native.update_secret(secret=secret, update_mask={"paths": ["labels"]})

    gcp.before("UpdateSecret", racing_writer)
    store.promote(token)
    assert store.get() == k1
    assert ("UpdateSecret", store.name) in gcp.calls


def test_a_writer_that_always_wins_gives_a_conflict(
    gcp: FakeSecretManager, gcp_server: GcpHarness
) -> None:
    store = open_gcp(gcp_server)
    k1 = generate_key()
    token = uuid.uuid4().hex
    store.put_pending(k1, meta(k1, token))
    gcp.inject(grpc.StatusCode.ABORTED, count=50, methods={"UpdateSecret"})
    with pytest.raises(ConflictError, match="another writer") as err:
        store.promote(token)
    assert err.value.exit_code == ExitCode.USAGE
    gcp.clear_faults()
    assert store.get() is None and store.get(Stage.PENDING) == k1


def test_failed_precondition_counts_as_a_lost_race(
    gcp: FakeSecretManager, gcp_server: GcpHarness
) -> None:
    store = open_gcp(gcp_server)
    k1 = generate_key()
    token = uuid.uuid4().hex
    store.put_pending(k1, meta(k1, token))
    gcp.inject(grpc.StatusCode.FAILED_PRECONDITION, count=2, methods={"UpdateSecret"})
    store.promote(token)
    assert store.get() == k1


def test_transient_errors_are_retried(gcp: FakeSecretManager, gcp_server: GcpHarness) -> None:
    store = open_gcp(gcp_server)
    k1 = generate_key()
    rotate(store, k1)
    gcp.inject(grpc.StatusCode.UNAVAILABLE, count=1)
    gcp.inject(grpc.StatusCode.RESOURCE_EXHAUSTED, count=1)
    gcp.inject(grpc.StatusCode.DEADLINE_EXCEEDED, count=1)
    assert store.get() == k1


def test_payloads_carry_crc32c_both_ways(gcp: FakeSecretManager, gcp_server: GcpHarness) -> None:
    store = open_gcp(gcp_server)
    k1 = generate_key()
    rotate(store, k1)
    version = gcp_server.native.get_secret_version(name=f"{store.name}/versions/1")
    assert version.client_specified_payload_checksum
    gcp.corrupt(1)
    assert store.get() == k1, "one damaged answer is retried"
    gcp.corrupt(10)
    with pytest.raises(UnavailableError) as err:
        store.get()
    assert k1.reveal() not in str(err.value)


def test_permission_denied_is_an_auth_error(gcp: FakeSecretManager, gcp_server: GcpHarness) -> None:
    store = open_gcp(gcp_server)
    gcp.inject(grpc.StatusCode.PERMISSION_DENIED, count=1)
    with pytest.raises(AuthError, match="roles/secretmanager") as err:
        store.get()
    assert err.value.exit_code == ExitCode.AUTH


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, UsageError),
        (grpc.StatusCode.INTERNAL, UnavailableError),
        (grpc.StatusCode.NOT_FOUND, NotFoundError),
    ],
)
def test_other_service_errors_become_keyguard_errors(
    gcp: FakeSecretManager, gcp_server: GcpHarness, code: grpc.StatusCode, error: type
) -> None:
    store = open_gcp(gcp_server)
    k1 = generate_key()
    rotate(store, k1)
    gcp.inject(code, count=1, methods={"AddSecretVersion"})
    with pytest.raises(error, match=code.name):
        store.put_pending(generate_key(), meta(k1, "t-err"))
    assert store.get() == k1 and store.get(Stage.PENDING) is None


def test_missing_default_credentials_are_an_auth_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # A missing credentials file fails at once, before any metadata-server probe.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/keyguard-test.json")
    monkeypatch.setenv(STORE_ENDPOINTS_ENV, "https://127.0.0.1:9")
    store = open_store("gcp-sm://kg-test/prod?endpoint=127.0.0.1:9")
    with pytest.raises(AuthError, match="application-default") as err:
        store.get()
    assert err.value.exit_code == ExitCode.AUTH


def test_lease_lives_in_an_annotation_and_survives_other_writes(
    gcp_server: GcpHarness,
) -> None:
    store = open_gcp(gcp_server)
    k1 = generate_key()
    owner = new_owner()
    with store.lease(owner, 60):
        rotate(store, k1)  # writes the same secret while the lease is held
        secret = gcp_server.native.get_secret(name=store.name)
        assert owner in secret.annotations["keyguard-lease"]
    secret = gcp_server.native.get_secret(name=store.name)
    assert "keyguard-lease" not in secret.annotations
    assert store.get() == k1


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("gcp-sm://kg-test/anthropic/prod", "secret id"),
        ("gcp-sm://kg-test/prod?insecure=true", "needs endpoint"),
        ("gcp-sm://kg-test/prod?region=eu", "unknown option"),
        ("gcp-sm://kg-test", "PROJECT/SECRET"),
        ("gcp-sm://Bad_Project/prod", "project"),
    ],
)
def test_bad_uris_are_config_errors(uri: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as err:
        open_store(uri)
    assert err.value.exit_code == ExitCode.USAGE


def test_the_sdk_loads_only_when_a_gcp_store_opens() -> None:
    code = (
        "import sys, keyguard.stores, keyguard.config\n"
        "assert not [m for m in sys.modules if m.startswith(('google', 'grpc'))]\n"
        "keyguard.stores.open_store('gcp-sm://p/s')\n"
        "assert 'google.cloud.secretmanager_v1' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("by_hand", [False, True])
def test_a_crash_after_adding_a_version_never_serves_it(
    gcp_server: GcpHarness, by_hand: bool
) -> None:
    uri = gcp_server.new_uri()
    hand_key = generate_key()
    if by_hand:
        gcp_server.put_by_hand(uri, hand_key.reveal())
    new = generate_key()
    # Writes before the crash: CreateSecret (keyguard's own secret) or the adopting alias
    # update (a hand-made one), then AddSecretVersion; the pending alias is never written.
    with pytest.raises(UnavailableError):
        gcp_server.cut_after(uri, 2).put_pending(new, meta(new, "t-crash"))
    store = open_store(uri)
    assert store.get() == (hand_key if by_hand else None)
    assert store.get(Stage.PENDING) is None
    store.put_pending(new, meta(new, "t-crash"))
    assert store.get(Stage.PENDING) == new
    assert store.get() == (hand_key if by_hand else None)
