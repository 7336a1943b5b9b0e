"""``azure-kv`` specifics the contract suite cannot see, over the real SDK and the HTTPS fake."""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from keyguard.errors import AuthError, ConfigError, ConflictError, LeaseHeldError, UnavailableError
from keyguard.keys import Secret, generate_key
from keyguard.stores import Stage, open_store
from keyguard.stores.azure import AzureKeyVaultStore
from keyguard.stores.azure._sdk import Vault
from keyguard.stores.interface import VersionMeta
from keyguard.stores.lease import new_owner
from tests.stores.lease_clock import LeaseClock
from tests.stores.servers.azure import AzureHarness, AzureKeyVaultServer, closed_port_url
from tests.stores.servers.base import allow_store_endpoint

FIELD = "ANTHROPIC_API_KEY"


def rotate(store: AzureKeyVaultStore, key: Secret) -> str:
    tok = str(uuid.uuid4())
    meta = VersionMeta(key_id="apikey_" + tok[:8], hint=key.hint, token=tok, environment="prod")
    store.put_pending(key, meta)
    store.promote(tok)
    return tok


def fresh(server: AzureKeyVaultServer, fieldname: str | None = None) -> AzureKeyVaultStore:
    store = AzureKeyVaultStore.from_uri(
        server.uri(f"kg-{uuid.uuid4().hex[:12]}", fieldname=fieldname), poll_interval=0
    )
    return store


def versions(server: AzureKeyVaultServer, name: str) -> list[Any]:
    return server.vault.secrets.get(name, [])


def test_pending_key_is_invisible_to_consumers_until_promoted(
    azure_kv: AzureKeyVaultServer,
) -> None:
    store = fresh(azure_kv)
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    tok = str(uuid.uuid4())
    store.put_pending(k2, VersionMeta(token=tok))
    consumer = azure_kv.client()
    assert consumer.get_secret(store.name).value == k1.reveal()
    assert len(versions(azure_kv, store.name)) == 1, "no new version of NAME before promote"
    store.promote(tok)
    assert consumer.get_secret(store.name).value == k2.reveal()


def test_versions_carry_stage_and_metadata_tags(azure_kv: AzureKeyVaultServer) -> None:
    store = fresh(azure_kv)
    k1, k2 = generate_key(), generate_key()
    tok1, tok2 = rotate(store, k1), rotate(store, k2)
    first, second = versions(azure_kv, store.name)
    assert second.tags["keyguard-stage"] == "current"
    assert second.tags["keyguard-previous"] == first.id
    assert second.tags["keyguard-token"] == tok2
    assert second.tags["keyguard-hint"] == k2.hint
    assert first.tags["keyguard-stage"] == "previous"
    assert first.tags["keyguard-token"] == tok1
    assert [p.tags["keyguard-stage"] for p in versions(azure_kv, store.pending_name)] == [
        "promoted",
        "promoted",
    ]
    for v in (first, second):
        assert k1.reveal() not in json.dumps(v.tags) and k2.reveal() not in json.dumps(v.tags)


def test_rollback_writes_the_previous_value_again_and_keeps_history(
    azure_kv: AzureKeyVaultServer,
) -> None:
    store = fresh(azure_kv, FIELD)
    k1, k2 = generate_key(), generate_key()
    azure_kv.client().set_secret(store.name, json.dumps({"DB": "x", FIELD: "placeholder"}))
    rotate(store, k1)
    rotate(store, k2)
    store.rollback()
    history = versions(azure_kv, store.name)
    assert len(history) == 4, "rollback adds a version, it deletes none"
    newest = history[-1]
    assert newest.tags["keyguard-rollback-of"] == history[1].id
    assert newest.tags["keyguard-previous"] == history[2].id
    assert json.loads(azure_kv.client().get_secret(store.name).value) == {
        "DB": "x",
        FIELD: k1.reveal(),
    }
    assert store.get(Stage.PREVIOUS) == k2


def test_deleted_companion_is_recovered_not_fought(azure_kv: AzureKeyVaultServer) -> None:
    store = fresh(azure_kv)
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    azure_kv.client().begin_delete_secret(store.pending_name, _polling_interval=0).wait()
    assert store.pending_name in azure_kv.vault.deleted
    rotate(store, k2)
    assert store.pending_name not in azure_kv.vault.deleted
    assert store.get() == k2 and store.get(Stage.PREVIOUS) == k1


def test_deleted_main_secret_is_recovered_on_promote(azure_kv: AzureKeyVaultServer) -> None:
    store = fresh(azure_kv)
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    azure_kv.client().begin_delete_secret(store.name, _polling_interval=0).wait()
    assert store.get() is None
    rotate(store, k2)
    assert store.get() == k2
    assert store.get(Stage.PREVIOUS) == k1


def test_throttling_is_retried_then_served(azure_kv: AzureKeyVaultServer) -> None:
    store = fresh(azure_kv)
    key = generate_key()
    rotate(store, key)
    azure_kv.set_faults("429", count=2, retry_after=0)
    assert store.get() == key
    assert azure_kv.faults.faults["count"] == 0, "both throttled answers were met and retried"


def test_dropped_connection_is_retried_then_unavailable(azure_kv: AzureKeyVaultServer) -> None:
    store = fresh(azure_kv)
    key = generate_key()
    rotate(store, key)
    azure_kv.set_faults("drop", count=1)
    assert store.get() == key
    dropping = AzureKeyVaultStore.from_uri(
        azure_kv.uri(store.name, vault_url=azure_kv.fault_url("drop")), max_attempts=2, backoff=0
    )
    with pytest.raises(UnavailableError) as err:
        dropping.get()
    assert err.value.exit_code == 4
    assert key.reveal() not in str(err.value)


def test_rejected_token_is_an_auth_error(azure_kv: AzureKeyVaultServer) -> None:
    store = AzureKeyVaultStore.from_uri(
        azure_kv.uri("kg-any", vault_url=azure_kv.fault_url("401")), max_attempts=1
    )
    with pytest.raises(AuthError) as err:
        store.get()
    assert err.value.exit_code == 3
    assert "az login" in str(err.value)


def test_disabled_newest_version_is_a_clear_error(azure_kv: AzureKeyVaultServer) -> None:
    store = fresh(azure_kv)
    k1, k2 = generate_key(), generate_key()
    rotate(store, k1)
    rotate(store, k2)
    newest = versions(azure_kv, store.name)[-1]
    azure_kv.client().update_secret_properties(store.name, newest.id, enabled=False)
    with pytest.raises(ConflictError, match="disabled"):
        store.get()
    with pytest.raises(ConflictError, match="disabled"):
        store.rollback()
    assert store.get(Stage.PREVIOUS) == k1


def test_retire_superseded_disables_only_unstaged_versions(azure_kv: AzureKeyVaultServer) -> None:
    store = fresh(azure_kv)
    k1, k2, k3 = generate_key(), generate_key(), generate_key()
    for key in (k1, k2, k3):
        rotate(store, key)
    store.retire_superseded()
    assert [v.enabled for v in versions(azure_kv, store.name)] == [False, True, True]
    assert azure_kv.client().get_secret(store.name).value == k3.reveal()
    assert store.get(Stage.PREVIOUS) == k2
    k4 = generate_key()
    rotate(store, k4)  # the disabled companion versions do not get in the way
    assert store.get() == k4


def test_lease_admits_one_holder_among_racing_runs(azure_kv: AzureKeyVaultServer) -> None:
    uri = fresh(azure_kv).uri
    holding, most = [0], [0]
    lock = threading.Lock()
    start = threading.Barrier(6)

    def run() -> None:
        store = open_store(uri)
        start.wait()
        try:
            with store.lease(new_owner(), 60):
                with lock:
                    holding[0] += 1
                    most[0] = max(most[0], holding[0])
                time.sleep(0.05)
                with lock:
                    holding[0] -= 1
        except LeaseHeldError:
            pass

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] <= 1, "two runs held the lease at once"
    name = uri.split("/")[3].split("?")[0] + "-lease"
    assert not any(v.enabled for v in versions(azure_kv, name)), "every claim was released"
    with open_store(uri).lease(new_owner(), 60):  # free again
        pass


def test_a_lapsed_holder_never_gets_its_lease_back(
    azure_server: AzureHarness, lease_clock: LeaseClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run sat past its lease (a suspended laptop). Another run takes over only by disabling
    the lapsed claim; when that disable fails, it does not take over (so the first may go on),
    and once another run has held the lease, the first never renews it again."""
    store = azure_server()
    other = azure_server.open(store.uri)
    real, failed = Vault.disable, []

    def disable_fails_once(self: Vault, name: str, claim: Any) -> None:
        if not failed:
            failed.append(name)
            raise UnavailableError("Key Vault answered 503 after retries")
        real(self, name, claim)

    monkeypatch.setattr(Vault, "disable", disable_fails_once)
    with store.lease(new_owner(), 600) as held:
        lease_clock.advance(700)
        with (
            pytest.raises(LeaseHeldError, match="could not be ended"),
            other.lease(new_owner(), 600),
        ):
            pytest.fail("took over while the lapsed claim stayed enabled")
        held.renew()  # no other run held it meanwhile: the first goes on
        lease_clock.advance(700)
        with other.lease(new_owner(), 600):
            pass  # the second run's whole rotation, while the first is suspended again
        with pytest.raises(LeaseHeldError, match="no longer holds its lease"):
            held.renew()


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("azure-kv://vault", "VAULT/NAME"),
        ("azure-kv://v/name", "Key Vault name"),
        ("azure-kv://my-vault/bad_name", "letters, digits"),
        ("azure-kv://my-vault/n?vault_url=http://127.0.0.1:1", "https"),
        ("azure-kv://my-vault/n?credential=secret", "credential"),
        ("azure-kv://my-vault/n?ca_bundle=/nonexistent/ca.pem", "ca_bundle"),
        ("azure-kv://my-vault/n?endpoint=x", "unknown option"),
    ],
)
def test_bad_uri_is_a_config_error(uri: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        open_store(uri)


def test_default_vault_url_and_options() -> None:
    store = AzureKeyVaultStore.from_uri("azure-kv://my-vault/anthropic-prod#KEY")
    assert store.vault_url == "https://my-vault.vault.azure.net"
    assert (store.name, store.pending_name, store.field) == (
        "anthropic-prod",
        "anthropic-prod-pending",
        "KEY",
    )


def test_unreachable_vault_is_unavailable() -> None:
    url = allow_store_endpoint(closed_port_url())
    store = open_store(f"azure-kv://fake/n?vault_url={url}&max_attempts=1")
    with pytest.raises(UnavailableError, match="cannot reach"):
        store.describe()


def test_sdk_loads_only_when_an_azure_store_opens(tmp_path: Any) -> None:
    code = (
        "import sys, keyguard.stores, keyguard.cli\n"
        f"keyguard.stores.open_store('file:{tmp_path}/x.json')\n"
        "print(any(m.startswith('azure') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the fake itself: what the SDK relies on -------------------------------------------------


def _raw(server: AzureKeyVaultServer, path: str, token: str | None = "t") -> tuple[int, Any, Any]:
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    req = urllib.request.Request(server.url + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx) as resp:
            return resp.status, resp.headers, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read() or b"null")


def test_fake_challenges_requires_api_version_and_pages(azure_kv: AzureKeyVaultServer) -> None:
    status, headers, body = _raw(azure_kv, "/secrets?api-version=7.5", token=None)
    assert status == 401
    assert 'resource="https://vault.azure.net"' in headers["WWW-Authenticate"]
    status, _, body = _raw(azure_kv, "/secrets/x")
    assert status == 400 and body["error"]["code"] == "BadParameter"
    name = f"kg-{uuid.uuid4().hex[:12]}"
    client = azure_kv.client()
    for i in range(7):
        client.set_secret(name, f"value-{i}")
    status, _, body = _raw(azure_kv, f"/secrets/{name}/versions?api-version=7.5")
    assert status == 200 and len(body["value"]) == 3 and body["nextLink"]
    assert len(list(client.list_properties_of_secret_versions(name))) == 7
    status, _, body = _raw(azure_kv, "/secrets/nope-missing?api-version=7.5")
    assert status == 404 and body["error"]["code"] == "SecretNotFound"


@pytest.mark.parametrize("writes", [0, 1, 2])
def test_withdraw_of_a_field_keeps_other_fields_readable_through_a_crash(
    azure_server: AzureHarness, writes: int
) -> None:
    """Disabling the newest version would hide the whole JSON document from its consumers:
    after a withdraw (and at every crash point in it) they still read their fields."""
    store = azure_server(field=FIELD)
    before = {"DB_URL": "postgres://db"}
    azure_server.put_by_hand(store.uri, json.dumps(before))
    failed = generate_key()
    tok = str(uuid.uuid4())
    store.put_pending(failed, VersionMeta(token=tok))
    store.promote(tok)
    with contextlib.suppress(UnavailableError):
        azure_server.cut_after(store.uri, writes).withdraw(tok)
    consumer = azure_server.read_by_hand(store.uri)
    assert consumer is not None and json.loads(consumer)["DB_URL"] == "postgres://db"
    fresh = azure_server.open(store.uri)
    assert fresh.get(Stage.PREVIOUS) is None, "never the failed key as previous"
    fresh.withdraw(tok)  # the rerun finishes the job
    assert json.loads(azure_server.read_by_hand(store.uri) or "") == before
    assert fresh.get() is None and fresh.get(Stage.PREVIOUS) is None
    history = versions(azure_server.server, store.name)
    withdrawn = next(v for v in history if v.tags.get("keyguard-token") == tok)
    assert not withdrawn.enabled, "the failed key is no longer readable"
    assert history[-1].tags["keyguard-withdrawal-of"] == withdrawn.id
