"""The gRPC fake behaves as Secret Manager does where keyguard depends on it (real client)."""

from __future__ import annotations

import uuid

import pytest
from google.api_core import exceptions as gexc
from google.cloud.secretmanager_v1 import SecretManagerServiceClient

from tests.stores.servers.gcp import GcpHarness
from tests.stores.servers.gcp_fake import crc32c_bitwise

AUTO = {"replication": {"automatic": {}}}


@pytest.fixture
def client(gcp_server: GcpHarness) -> SecretManagerServiceClient:
    return gcp_server.native


@pytest.fixture
def parent() -> str:
    return f"projects/fake-{uuid.uuid4().hex[:8]}"


def test_crc32c_matches_the_published_check_value() -> None:
    assert crc32c_bitwise(b"123456789") == 0xE3069283


def test_create_needs_replication_and_a_free_name(
    client: SecretManagerServiceClient, parent: str
) -> None:
    with pytest.raises(gexc.InvalidArgument, match="replication"):
        client.create_secret(parent=parent, secret_id="s", secret={})
    client.create_secret(parent=parent, secret_id="s", secret=AUTO)
    with pytest.raises(gexc.AlreadyExists):
        client.create_secret(parent=parent, secret_id="s", secret=AUTO)
    with pytest.raises(gexc.NotFound):
        client.get_secret(name=f"{parent}/secrets/other")


def test_update_needs_a_mask_and_the_current_etag(
    client: SecretManagerServiceClient, parent: str
) -> None:
    secret = client.create_secret(parent=parent, secret_id="s", secret=AUTO)
    secret.labels = {"team": "a"}
    with pytest.raises(gexc.InvalidArgument, match="update_mask"):
        client.update_secret(secret=secret, update_mask={})
    updated = client.update_secret(secret=secret, update_mask={"paths": ["labels"]})
    assert updated.etag != secret.etag
    with pytest.raises(gexc.Aborted):
        client.update_secret(secret=secret, update_mask={"paths": ["labels"]})
    secret.etag = ""  # no etag: an unconditional write
    client.update_secret(secret=secret, update_mask={"paths": ["labels"]})
    with pytest.raises(gexc.Aborted):
        client.delete_secret(request={"name": secret.name, "etag": '"stale"'})


def test_latest_is_the_newest_version_whatever_its_state(
    client: SecretManagerServiceClient, parent: str
) -> None:
    secret = client.create_secret(parent=parent, secret_id="s", secret=AUTO)
    client.add_secret_version(parent=secret.name, payload={"data": b"one"})
    two = client.add_secret_version(parent=secret.name, payload={"data": b"two"})
    latest = f"{secret.name}/versions/latest"
    assert client.access_secret_version(name=latest).payload.data == b"two"
    client.disable_secret_version(request={"name": two.name, "etag": two.etag})
    with pytest.raises(gexc.FailedPrecondition, match="DISABLED state"):
        client.access_secret_version(name=latest, retry=None)
    assert client.access_secret_version(name=f"{secret.name}/versions/1").payload.data == b"one"


def test_destroyed_is_terminal_and_wipes_the_payload(
    client: SecretManagerServiceClient, parent: str
) -> None:
    secret = client.create_secret(parent=parent, secret_id="s", secret=AUTO)
    v = client.add_secret_version(parent=secret.name, payload={"data": b"x"})
    with pytest.raises(gexc.Aborted):
        client.destroy_secret_version(request={"name": v.name, "etag": '"stale"'})
    gone = client.destroy_secret_version(request={"name": v.name, "etag": v.etag})
    assert gone.state.name == "DESTROYED" and "destroy_time" in gone
    for call in (client.enable_secret_version, client.disable_secret_version):
        with pytest.raises(gexc.FailedPrecondition):
            call(name=v.name)
    with pytest.raises(gexc.FailedPrecondition):
        client.access_secret_version(name=v.name, retry=None)
    secret.version_aliases = {"current": 1}
    with pytest.raises(gexc.InvalidArgument):
        client.update_secret(secret=secret, update_mask={"paths": ["version_aliases"]})


def test_aliases_name_versions(client: SecretManagerServiceClient, parent: str) -> None:
    secret = client.create_secret(parent=parent, secret_id="s", secret=AUTO)
    client.add_secret_version(parent=secret.name, payload={"data": b"one"})
    client.add_secret_version(parent=secret.name, payload={"data": b"two"})
    secret.version_aliases = {"current": 1}
    client.update_secret(secret=secret, update_mask={"paths": ["version_aliases"]})
    got = client.access_secret_version(name=f"{secret.name}/versions/current")
    assert got.payload.data == b"one" and got.name.endswith("/versions/1")
    fresh = client.get_secret(name=secret.name)
    for bad in ({"latest": 2}, {"current": 9}):
        fresh.version_aliases = bad
        with pytest.raises(gexc.InvalidArgument):
            client.update_secret(secret=fresh, update_mask={"paths": ["version_aliases"]})


def test_checksums_are_checked_both_ways(client: SecretManagerServiceClient, parent: str) -> None:
    secret = client.create_secret(parent=parent, secret_id="s", secret=AUTO)
    with pytest.raises(gexc.InvalidArgument, match="Checksum"):
        client.add_secret_version(
            parent=secret.name, payload={"data": b"x", "data_crc32c": crc32c_bitwise(b"y")}
        )
    v = client.add_secret_version(
        parent=secret.name, payload={"data": b"x", "data_crc32c": crc32c_bitwise(b"x")}
    )
    assert v.client_specified_payload_checksum
    got = client.access_secret_version(name=v.name).payload
    assert got.data_crc32c == crc32c_bitwise(b"x")


def test_lists_page_and_filter(client: SecretManagerServiceClient, parent: str) -> None:
    for n in range(5):
        labels = {"owner": "keyguard" if n % 2 == 0 else "other"}
        client.create_secret(parent=parent, secret_id=f"s{n}", secret={**AUTO, "labels": labels})
    pager = client.list_secrets(
        request={"parent": parent, "filter": "labels.owner=keyguard", "page_size": 2}
    )
    pages = list(pager.pages)
    assert [len(p.secrets) for p in pages] == [2, 1]
    assert [s.name.rsplit("/", 1)[1] for p in pages for s in p.secrets] == ["s0", "s2", "s4"]
    with pytest.raises(gexc.InvalidArgument):
        list(client.list_secrets(request={"parent": parent, "filter": "name:s1"}))
    name = f"{parent}/secrets/s0"
    for data in (b"a", b"b", b"c"):
        client.add_secret_version(parent=name, payload={"data": data})
    client.disable_secret_version(name=f"{name}/versions/2")
    enabled = client.list_secret_versions(request={"parent": name, "filter": "state:ENABLED"})
    assert [v.name.rsplit("/", 1)[1] for v in enabled] == ["3", "1"], "newest first"
    disabled = client.list_secret_versions(request={"parent": name, "filter": "state:DISABLED"})
    assert [v.name.rsplit("/", 1)[1] for v in disabled] == ["2"]
