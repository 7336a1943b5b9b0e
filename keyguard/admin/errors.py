"""Errors from Anthropic's API, mapped onto keyguard's error tree and exit codes.

ApiError(KeyguardError)            2  any other answer (400, 409, 413, ...)
├── ApiAuthError(AuthError)        3  401 authentication_error, 403 permission_error
├── ApiNotFoundError(NotFoundError) 1  404 not_found_error
├── ApiConflictError(ConflictError) 2  409 conflict_error
└── ApiUnavailableError(UnavailableError) 4  retries exhausted, connection failures, timeouts

Every message is scrubbed: anything shaped like an ``sk-ant-`` key is redacted before it is
stored, so neither ``str()``, ``repr()`` nor a traceback can show a key.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from keyguard.errors import (
    AuthError,
    ConflictError,
    KeyguardError,
    NotFoundError,
    UnavailableError,
)
from keyguard.keys import redact

_KEYISH_RE = re.compile(r"sk-ant-[A-Za-z]+[0-9]*-[A-Za-z0-9_\-]{4,}")


def scrub(text: str, *secrets: str) -> str:
    """``text`` with every key-shaped string, and each of ``secrets``, redacted."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, redact(secret))
    return _KEYISH_RE.sub(lambda m: redact(m.group(0)), text)


class ApiError(KeyguardError):
    """An answer from Anthropic's API that is not a success."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        api_message: str | None = None,
    ) -> None:
        message = scrub(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.request_id = request_id
        self.api_message = scrub(api_message) if api_message else None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error_type={self.error_type!r}, "
            f"request_id={self.request_id!r}, message={self.message!r})"
        )


class ApiAuthError(ApiError, AuthError):
    """401/403: the key was rejected or lacks the rights for this call."""


class ApiNotFoundError(ApiError, NotFoundError):
    """404: no such key, workspace or route."""


class ApiConflictError(ApiError, ConflictError):
    """409: the request conflicts with the current state."""


class ApiUnavailableError(ApiError, UnavailableError):
    """The API could not be reached, or kept failing until the retries ran out."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: ApiAuthError,
    403: ApiAuthError,
    404: ApiNotFoundError,
    409: ApiConflictError,
}

_NEXT_STEP = {
    401: "check that ANTHROPIC_ADMIN_KEY (or [anthropic] admin_key) holds a current admin key",
    403: "use an admin key of an organization admin (Console > Settings > Admin keys)",
    404: "check the id (`keyguard keys list` shows the keys this admin key can see)",
    409: "re-read the object and try again",
}


def error_body(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    """``(error_type, message, request_id)`` from an error answer, tolerating any body."""
    error_type = message = None
    request_id = response.headers.get("request-id")
    try:
        data: Any = json.loads(response.content or b"null")
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            error_type = err.get("type") if isinstance(err.get("type"), str) else None
            message = err.get("message") if isinstance(err.get("message"), str) else None
        if request_id is None and isinstance(data.get("request_id"), str):
            request_id = data["request_id"]
    return error_type, message, request_id


def error_from_response(response: httpx.Response, what: str) -> ApiError:
    """The ``ApiError`` subclass for a non-2xx answer to ``what`` (e.g. "GET /v1/models")."""
    error_type, api_message, request_id = error_body(response)
    status = response.status_code
    cls = _BY_STATUS.get(status, ApiError)
    detail = f"{status} {error_type or 'error'}"
    if api_message:
        detail += f": {api_message}"
    rid = f" (request-id {request_id})" if request_id else ""
    step = _NEXT_STEP.get(status, "see the message above; the request was not retried")
    return cls(
        f"Anthropic API refused {what}: {detail}{rid}; {step}",
        status=status,
        error_type=error_type,
        request_id=request_id,
        api_message=api_message,
    )
