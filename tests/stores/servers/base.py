"""What the contract suite needs from each backend's test server: a ``Harness``."""

from __future__ import annotations

import os
import uuid

from keyguard.stores import SecretStore, open_store
from keyguard.stores.uri import STORE_CA_BUNDLES_ENV
from keyguard.urls import STORE_ENDPOINTS_ENV


def allow_store_endpoint(url: str) -> str:
    """Opt in to a store endpoint the documented way (``KEYGUARD_STORE_ENDPOINTS``), for this
    process and the ``keyguard`` commands it runs; returns ``url``. Test servers are ours."""
    listed = os.environ.get(STORE_ENDPOINTS_ENV, "").split()
    if url not in listed:
        os.environ[STORE_ENDPOINTS_ENV] = " ".join([*listed, url])
    return url


def allow_store_ca_bundle(path: str) -> str:
    """Opt in to a store CA bundle the documented way (``KEYGUARD_STORE_CA_BUNDLES``), for this
    process and the ``keyguard`` commands it runs; returns ``path``. Test CAs are ours."""
    listed = [
        entry for entry in os.environ.get(STORE_CA_BUNDLES_ENV, "").split(os.pathsep) if entry
    ]
    if path not in listed:
        os.environ[STORE_CA_BUNDLES_ENV] = os.pathsep.join([*listed, path])
    return path


class Harness:
    """Makes fresh stores on one backend's server and reaches them the way a person would.

    ``faults`` names the fault kinds this backend can show over its real client:
    ``throttle`` (the service keeps answering "slow down"), ``denied`` (permission denied),
    ``unreachable`` (a port with nothing listening).
    """

    name = "base"
    faults: frozenset[str] = frozenset()

    def new_uri(self, field: str | None = None) -> str:
        raise NotImplementedError

    def __call__(self, field: str | None = None) -> SecretStore:
        """A store on a secret no other test uses."""
        return self.open(self.new_uri(field))

    def open(self, uri: str) -> SecretStore:
        return open_store(uri)

    def put_by_hand(self, uri: str, raw: str) -> None:
        """Create the secret with one plain version through the native client, no metadata."""
        raise NotImplementedError

    def read_by_hand(self, uri: str) -> str | None:
        """The raw value a native consumer reads as current (whole JSON for ``#FIELD``)."""
        raise NotImplementedError

    def faulty(self, uri: str, kind: str) -> SecretStore:
        """The same secret reached through fault ``kind``."""
        raise NotImplementedError

    def cut_after(self, uri: str, writes: int) -> SecretStore:
        """The same secret, but every write after the first ``writes`` fails (a crash)."""
        raise NotImplementedError

    @staticmethod
    def unique(prefix: str = "kg") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"
