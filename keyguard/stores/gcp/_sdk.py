"""GCP Secret Manager plumbing for the ``gcp-sm`` store: client factory, retries, error mapping.

The one module of :mod:`keyguard.stores.gcp` that imports the Google SDK; the package itself is
imported only when a ``gcp-sm:`` store is opened, so the SDK never loads for other commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError as GoogleAuthError
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

from keyguard.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    UnavailableError,
    UsageError,
)

T = TypeVar("T")

#: Transient: retried with backoff, then ``UnavailableError`` (exit 4).
TRANSIENT: tuple[type[Exception], ...] = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.ResourceExhausted,
)
#: A lost compare-and-set. AIP-154 says ABORTED for an etag mismatch; that is not verified
#: against the real service, so FAILED_PRECONDITION counts as a conflict too.
CONFLICT: tuple[type[Exception], ...] = (gexc.Aborted, gexc.FailedPrecondition)
NotFound = gexc.NotFound
AlreadyExists = gexc.AlreadyExists
FailedPrecondition = gexc.FailedPrecondition


class Corrupted(Exception):
    """A payload whose crc32c did not match: retried like a transient error."""


RETRIED: tuple[type[Exception], ...] = (*TRANSIENT, Corrupted)
#: A version that vanished or changed under a write: skipped, the next run sees it again.
GONE_OR_CONFLICT: tuple[type[Exception], ...] = (gexc.NotFound, *CONFLICT)


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as Secret Manager's ``data_crc32c`` expects."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def make_client(endpoint: str | None, insecure: bool) -> SecretManagerServiceClient:
    """A client: default credentials and TLS, or (``insecure``) plaintext + anonymous for emulators.

    Both paths build the transport through a callable factory, so production and the tests'
    fake go through the same client code; only the channel differs.
    """
    options: dict[str, Any] = {}
    if endpoint:
        options["api_endpoint"] = endpoint

    def transport(**kw: Any) -> SecretManagerServiceGrpcTransport:
        if insecure:
            channel = grpc.insecure_channel(kw["host"])
            return SecretManagerServiceGrpcTransport(channel=channel)
        return SecretManagerServiceGrpcTransport(**kw)

    credentials = AnonymousCredentials() if insecure else None  # type: ignore[no-untyped-call]
    return SecretManagerServiceClient(
        credentials=credentials, transport=transport, client_options=options or None
    )


class Caller:
    """Runs one RPC with bounded retries and turns Google errors into keyguard's."""

    def __init__(self, where: str, attempts: int, timeout: float, backoff: float) -> None:
        self.where = where
        self.attempts = max(1, attempts)
        self.timeout = timeout
        self.backoff = backoff

    def __call__(
        self, fn: Callable[..., T], *, expect: tuple[type[Exception], ...] = (), **kwargs: Any
    ) -> T:
        """``fn(**kwargs)``; errors in ``expect`` reach the caller as they are, others mapped."""
        last: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(2.0, self.backoff * 2 ** (attempt - 1)))
            try:
                # retry=None: the SDK's own retry on AccessSecretVersion would wait up to 60 s.
                return fn(**kwargs, retry=None, timeout=self.timeout)
            except RETRIED as exc:
                last = exc
            except (gexc.PermissionDenied, gexc.Unauthenticated) as exc:
                raise AuthError(
                    f"store {self.where}: GCP Secret Manager refused access ({_reason(exc)}); "
                    "grant the caller roles/secretmanager.admin on the secret (or project), or "
                    "check which account `gcloud auth application-default login` uses"
                ) from None
            except GoogleAuthError as exc:
                raise credentials_error(self.where, exc) from None
            except gexc.GoogleAPICallError as exc:
                if isinstance(exc, expect):
                    raise
                raise self._unexpected(exc) from None
        raise UnavailableError(
            f"store {self.where}: GCP Secret Manager unavailable after {self.attempts} attempts "
            f"({_reason(last)}); check the network or the endpoint, then run again"
        )

    def _unexpected(self, exc: gexc.GoogleAPICallError) -> Exception:
        what = f"store {self.where}: GCP Secret Manager answered {_reason(exc)}"
        if isinstance(exc, gexc.NotFound):
            return NotFoundError(f"{what}: it was deleted meanwhile; check it and run again")
        if isinstance(exc, CONFLICT):
            return ConflictError(f"{what}: another writer changed it; run again")
        if isinstance(exc, (gexc.InvalidArgument, gexc.OutOfRange)):
            return UsageError(f"{what}; check the store URI and the secret's settings")
        return UnavailableError(f"{what}; try again later")

    def checked(
        self, fn: Callable[..., Any], *, expect: tuple[type[Exception], ...] = (), **kwargs: Any
    ) -> bytes:
        """Access a version's payload, verifying its crc32c (retried when it does not match)."""

        def access(**kw: Any) -> bytes:
            payload = fn(**kw).payload
            data = bytes(payload.data)
            if "data_crc32c" in payload and payload.data_crc32c != crc32c(data):
                raise Corrupted("payload crc32c mismatch")
            return data

        return self(access, expect=expect, **kwargs)


def credentials_error(where: str, exc: Exception) -> AuthError:
    """The error for missing or unusable Application Default Credentials."""
    return AuthError(
        f"store {where}: no usable Google credentials ({exc}); run `gcloud auth "
        "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
    )


def _reason(exc: Exception | None) -> str:
    if isinstance(exc, gexc.GoogleAPICallError):
        code = exc.grpc_status_code.name if exc.grpc_status_code else str(exc.code)
        return f"{code}: {exc.message}"
    return str(exc) if exc else "no answer"
