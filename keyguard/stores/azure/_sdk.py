"""Azure Key Vault plumbing for the ``azure-kv`` store: the client, its calls, error mapping.

The one module of :mod:`keyguard.stores.azure` that imports the Azure SDK; the package itself
is imported only when an ``azure-kv://`` store is opened, so the SDK never loads otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.secrets import KeyVaultSecret as KeyVaultSecret
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets import SecretProperties as SecretProperties

from keyguard.errors import (
    AuthError,
    ConflictError,
    KeyguardError,
    NotFoundError,
    UnavailableError,
    UsageError,
)

T = TypeVar("T")


class StaticCredential:
    """A dummy bearer token for emulators and test servers (``?credential=static``)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("keyguard-static-emulator-token", int(time.time()) + 3600)


def make_client(
    vault_url: str,
    *,
    static: bool,
    custom_url: bool,
    ca_bundle: str | None,
    max_attempts: int,
    backoff: float,
    transport: Any = None,
) -> SecretClient:
    """A ``SecretClient`` with keyguard's retry, TLS and credential settings."""
    credential: Any
    if static:
        credential = StaticCredential()
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    kwargs: dict[str, Any] = {
        # A private endpoint or emulator answers the challenge with vault.azure.net, which
        # does not match its own host name.
        "verify_challenge_resource": not custom_url,
        "retry_total": max(0, max_attempts - 1),
        "retry_backoff_factor": backoff,
        "retry_backoff_max": 30,
        "connection_timeout": 10,
        "read_timeout": 30,
    }
    if ca_bundle:
        kwargs["connection_verify"] = ca_bundle
    if transport is not None:
        kwargs["transport"] = transport
    return SecretClient(vault_url, credential, **kwargs)


def error_code(exc: HttpResponseError) -> tuple[str, str]:
    """``(code, innererror code)`` of a Key Vault error answer, '' where absent."""
    err = getattr(exc, "error", None)
    code = str(getattr(err, "code", "") or "")
    inner = getattr(err, "innererror", None)
    inner_code = str(inner.get("code", "")) if isinstance(inner, dict) else ""
    return code, inner_code


def is_disabled(exc: AzureError) -> bool:
    return isinstance(exc, HttpResponseError) and error_code(exc)[1] == "SecretDisabled"


def is_deleted_conflict(exc: AzureError) -> bool:
    return (
        isinstance(exc, HttpResponseError)
        and exc.status_code == 409
        and error_code(exc)[1] == "ObjectIsDeletedButRecoverable"
    )


def map_error(exc: AzureError, where: str, vault_url: str, doing: str) -> KeyguardError:
    """The keyguard error for an Azure SDK error (messages never hold a secret value)."""
    first = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).splitlines()[0]
    first = first[:200]
    if isinstance(exc, ClientAuthenticationError):
        return AuthError(
            f"store {where}: Azure rejected the credential while {doing} ({first}); sign in "
            "with `az login`, or set a managed identity or AZURE_CLIENT_ID/AZURE_TENANT_ID/"
            "AZURE_CLIENT_SECRET for DefaultAzureCredential"
        )
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        status = exc.status_code
        code, inner = error_code(exc)
        label = "/".join(c for c in (code, inner) if c) or str(status)
        if status in (401, 403):
            return AuthError(
                f"store {where}: permission denied ({status} {label}) while {doing}; grant this "
                "identity secret get/set/list/delete/recover rights on the vault (e.g. the "
                "'Key Vault Secrets Officer' role)"
            )
        if status == 429 or status >= 500:
            return UnavailableError(
                f"store {where}: Key Vault answered {status} {label} while {doing}, still after "
                "retries; wait a little and run again"
            )
        if status == 409:
            return ConflictError(f"store {where}: conflict while {doing} ({label}): {first}")
        if status == 404:
            return NotFoundError(f"store {where}: not found while {doing} ({label})")
        return UsageError(f"store {where}: Key Vault refused {doing} ({status} {label}): {first}")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return UnavailableError(
            f"store {where}: cannot reach {vault_url} while {doing} ({type(exc).__name__}), "
            "still after retries; check the network and the vault URL, then run again"
        )
    return UnavailableError(f"store {where}: Azure SDK error while {doing}: {first}")


def call(where: str, vault_url: str, doing: str, fn: Callable[[], T]) -> T:
    """Run one SDK call, turning its errors into keyguard errors."""
    try:
        return fn()
    except AzureError as exc:
        raise map_error(exc, where, vault_url, doing) from None


class Vault:
    """One vault's secrets through the SDK, every error turned into keyguard's.

    ``where`` (the store URI) names the store in every message; a secret that does not exist
    reads as None or no versions, and a write to a soft-deleted one recovers it first.
    """

    def __init__(
        self, client: SecretClient, where: str, vault_url: str, poll_interval: float
    ) -> None:
        self.client = client
        self.where = where
        self.vault_url = vault_url
        self.poll_interval = poll_interval

    def _call(self, doing: str, fn: Callable[[], T]) -> T:
        return call(self.where, self.vault_url, doing, fn)

    def read(self, name: str, version: str | None = None) -> KeyVaultSecret | None:
        """One version (the newest when ``version`` is empty); None if absent or disabled."""
        try:
            secret: KeyVaultSecret = self.client.get_secret(name, version)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            if is_disabled(exc):
                return None
            raise map_error(exc, self.where, self.vault_url, f"reading {name}") from None
        return secret

    def versions(self, name: str) -> list[SecretProperties]:
        """Every version of ``name`` in the server's order; none when it does not exist."""

        def fetch() -> list[SecretProperties]:
            try:
                return list(self.client.list_properties_of_secret_versions(name))
            except ResourceNotFoundError:
                return []

        return self._call(f"listing versions of {name}", fetch)

    def write(
        self, name: str, value: str, tags: dict[str, str], content_type: str | None = None
    ) -> SecretProperties:
        """A new version of ``name``; a soft-deleted secret is recovered first, not fought."""
        for attempt in range(2):
            try:
                secret = self.client.set_secret(name, value, tags=tags, content_type=content_type)
                properties: SecretProperties = secret.properties
                return properties
            except AzureError as exc:
                if attempt == 0 and is_deleted_conflict(exc):
                    self.recover(name)
                    continue
                raise map_error(exc, self.where, self.vault_url, f"writing {name}") from None
        raise AssertionError("unreachable")

    def recover(self, name: str) -> None:
        def run() -> None:
            try:
                poller = self.client.begin_recover_deleted_secret(
                    name, _polling_interval=self.poll_interval
                )
                poller.wait()
            except ResourceNotFoundError:
                pass  # purged meanwhile: the name is free again

        self._call(f"recovering the soft-deleted secret {name}", run)

    def is_deleted(self, name: str) -> bool:
        """True when ``name`` sits soft-deleted (recoverable) in the vault."""

        def deleted() -> bool:
            try:
                self.client.get_deleted_secret(name)
            except ResourceNotFoundError:
                return False
            return True

        return self._call(f"looking for a soft-deleted {name}", deleted)

    def set_tags(self, name: str, properties: SecretProperties, tags: dict[str, str]) -> None:
        self._call(
            f"tagging {name}/{properties.version}",
            lambda: self.client.update_secret_properties(name, properties.version, tags=tags),
        )

    def disable(self, name: str, properties: SecretProperties) -> None:
        self._call(
            f"disabling {name}/{properties.version}",
            lambda: self.client.update_secret_properties(name, properties.version, enabled=False),
        )


__all__ = [
    "KeyVaultSecret",
    "SecretProperties",
    "StaticCredential",
    "Vault",
    "make_client",
    "map_error",
]
