"""Secret stores, opened by URI through one lazy registry (cloud SDKs load on first use)."""

from __future__ import annotations

import importlib
from typing import Any

from keyguard.errors import ConfigError
from keyguard.stores.interface import SecretStore, Stage, StoreVersion, VersionMeta

#: URI scheme -> "module:Class". A class has ``from_uri(uri: str) -> SecretStore``.
BACKENDS: dict[str, str] = {
    "file": "keyguard.stores.file:FileStore",
    "aws-sm": "keyguard.stores.aws:AwsSecretsManagerStore",
    "gcp-sm": "keyguard.stores.gcp:GcpSecretManagerStore",
    "azure-kv": "keyguard.stores.azure:AzureKeyVaultStore",
}

__all__ = ["BACKENDS", "SecretStore", "Stage", "StoreVersion", "VersionMeta", "open_store"]


def scheme_of(uri: str) -> str:
    scheme, sep, _ = uri.partition(":")
    if not sep or scheme not in BACKENDS:
        known = ", ".join(f"{name}:" for name in BACKENDS)
        raise ConfigError(f"unknown store URI {uri!r}: it must start with one of {known}")
    return scheme


def open_store(uri: str) -> SecretStore:
    """Open the store named by ``uri``, importing its backend (and SDK) only now."""
    module_name, _, attr = BACKENDS[scheme_of(uri)].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = {"aws-sm": "aws", "gcp-sm": "gcp", "azure-kv": "azure"}.get(scheme_of(uri), "all")
        raise ConfigError(
            f"store {uri!r} needs an optional dependency that is not installed ({exc.name}): "
            f"pip install 'keyguard[{extra}]'"
        ) from exc
    cls: Any = getattr(module, attr)
    store: SecretStore = cls.from_uri(uri)
    return store
