"""Azure Key Vault plumbing for the ``azure-kv`` store: the client, error mapping, tag codecs.

Imported only by :mod:`keyguard.stores.azure`, so the Azure SDK loads only when an
``azure-kv://`` store is opened.
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
from azure.keyvault.secrets import SecretClient

from keyguard.errors import (
    AuthError,
    ConflictError,
    KeyguardError,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from keyguard.stores.interface import VersionMeta

T = TypeVar("T")

#: Per-version tags. Azure allows 15 per version, each value at most 256 characters.
STAGE = "keyguard-stage"
PREVIOUS = "keyguard-previous"
ROLLBACK_OF = "keyguard-rollback-of"
LEASE_OWNER = "keyguard-lease-owner"
LEASE_EXPIRES = "keyguard-lease-expires"
META_TAGS = {
    "key_id": "keyguard-key-id",
    "hint": "keyguard-hint",
    "fingerprint": "keyguard-fingerprint",
    "stored_at": "keyguard-stored-at",
    "token": "keyguard-token",
    "environment": "keyguard-environment",
}
TOKEN = META_TAGS["token"]


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


def meta_tags(meta: VersionMeta) -> dict[str, str]:
    """``VersionMeta`` as Key Vault tags (empty fields left out; a tag holds 256 characters)."""
    return {k: v[:256] for k, v in meta.to_fields(META_TAGS).items()}


def meta_from_tags(tags: dict[str, str] | None) -> VersionMeta:
    return VersionMeta.from_fields(tags, META_TAGS)


__all__ = [
    "ResourceNotFoundError",
    "call",
    "is_deleted_conflict",
    "is_disabled",
    "make_client",
    "map_error",
    "meta_from_tags",
    "meta_tags",
]
