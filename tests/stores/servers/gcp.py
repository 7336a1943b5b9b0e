"""The ``gcp-sm`` harness of the contract suite: the gRPC fake, reached through the real client."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import grpc
import pytest
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

from keyguard.stores import SecretStore
from keyguard.stores.gcp import GcpSecretManagerStore
from keyguard.stores.uri import parse_store_uri
from tests.stores.servers.base import Harness, allow_store_endpoint
from tests.stores.servers.gcp_fake import WRITES, FakeSecretManager


class GcpHarness(Harness):
    """``gcp-sm://`` stores on the fake, reached through the real client over gRPC."""

    name = "gcp"
    faults = frozenset({"throttle", "denied", "unreachable", "gone"})
    project = "kg-test"

    def __init__(self, fake: FakeSecretManager) -> None:
        self.fake = fake
        self._native: SecretManagerServiceClient | None = None

    def new_uri(self, field: str | None = None) -> str:
        return self.uri_for(self.unique(), field)

    def uri_for(self, secret_id: str, field: str | None = None, address: str = "") -> str:
        endpoint = address or self.fake.address
        allow_store_endpoint(f"http://{endpoint}")
        uri = f"gcp-sm://{self.project}/{secret_id}?endpoint={endpoint}&insecure=true"
        return uri + (f"#{field}" if field else "")

    @property
    def native(self) -> SecretManagerServiceClient:
        """A plain SDK client, as a person or another consumer would use it."""
        if self._native is None:
            address = self.fake.address
            self._native = SecretManagerServiceClient(
                transport=SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(address)),
            )
        return self._native

    def secret_name(self, uri: str) -> str:
        parsed = parse_store_uri(uri)
        return f"projects/{parsed.authority}/secrets/{parsed.path}"

    def put_by_hand(self, uri: str, raw: str) -> None:
        name = self.secret_name(uri)
        parent, _, secret_id = name.rpartition("/secrets/")
        self.native.create_secret(
            parent=parent, secret_id=secret_id, secret={"replication": {"automatic": {}}}
        )
        self.native.add_secret_version(parent=name, payload={"data": raw.encode()})

    def read_by_hand(self, uri: str) -> str | None:
        name = self.secret_name(uri)
        secret = self.native.get_secret(name=name)
        alias = "current" if "current" in secret.version_aliases else "latest"
        data = self.native.access_secret_version(name=f"{name}/versions/{alias}").payload.data
        return bytes(data).decode()

    def faulty(self, uri: str, kind: str) -> SecretStore:
        if kind == "unreachable":
            with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
                sock.bind(("127.0.0.1", 0))
                address = f"127.0.0.1:{sock.getsockname()[1]}"
        elif kind == "gone":  # the secret is deleted right after each read
            address = self.fake.view(
                lambda method: grpc.StatusCode.NOT_FOUND if method in WRITES else None
            )
        else:
            code = {
                "throttle": grpc.StatusCode.RESOURCE_EXHAUSTED,
                "denied": grpc.StatusCode.PERMISSION_DENIED,
            }[kind]
            address = self.fake.view(lambda method: code)
        return self._quick(self._moved(uri, address), attempts=3)

    def cut_after(self, uri: str, writes: int) -> SecretStore:
        done = [0]

        def gate(method: str) -> grpc.StatusCode | None:
            if method not in WRITES:
                return None
            if done[0] >= writes:
                return grpc.StatusCode.UNAVAILABLE
            done[0] += 1
            return None

        return self._quick(self._moved(uri, self.fake.view(gate)), attempts=1)

    def _moved(self, uri: str, address: str) -> str:
        allow_store_endpoint(f"http://{address}")
        return uri.replace(f"endpoint={self.fake.address}", f"endpoint={address}")

    @staticmethod
    def _quick(uri: str, attempts: int) -> GcpSecretManagerStore:
        store = GcpSecretManagerStore.from_uri(uri)
        store._call.attempts, store._call.backoff = attempts, 0.001  # fast faults in tests
        return store


@pytest.fixture(scope="session")
def gcp_fake() -> Iterator[FakeSecretManager]:
    """The fake, started once per session; tests use unique secret names."""
    fake = FakeSecretManager().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gcp_server(gcp_fake: FakeSecretManager) -> GcpHarness:
    """The contract suite's harness for ``gcp-sm``."""
    return GcpHarness(gcp_fake)


@pytest.fixture
def gcp(gcp_fake: FakeSecretManager) -> Iterator[FakeSecretManager]:
    """The session's fake with no faults or hooks left over (state is kept: names are unique)."""
    gcp_fake.clear_faults()
    yield gcp_fake
    gcp_fake.clear_faults()


__all__ = ["FakeSecretManager", "GcpHarness", "gcp", "gcp_fake", "gcp_server"]
