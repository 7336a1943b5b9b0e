"""Errors from Anthropic's API, mapped onto keyguard's error tree and exit codes.

ApiError(KeyguardError)            2  any other answer (400, 409, 413, ...)
├── ApiAuthError(AuthError)        3  401 authentication_error, 403 permission_error
├── ApiNotFoundError(NotFoundError) 1  404 not_found_error
├── ApiConflictError(ConflictError) 2  409 conflict_error (after its one retry)
└── ApiUnavailableError(UnavailableError) 4  retries exhausted, connection failures, timeouts,
    │                                        a 408/429/5xx the server said not to retry
    ├── SpendLimitError              4  a spend limit: the tier's monthly cap (429 with
    │                                   error_code, never retried) or the org's or a
    │                                   workspace's own limit (400 "API usage limits")
    └── BillingError                 4  402 billing_error

Every message names the ``request-id`` when the API gave one (Anthropic support asks for it).

Every message is scrubbed: anything shaped like an ``sk-ant-`` key is redacted before it is
stored, so neither ``str()``, ``repr()`` nor a traceback can show a key.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from keyguard.errors import (
    AuthError,
    ConflictError,
    KeyguardError,
    NotFoundError,
    UnavailableError,
)
from keyguard.keys import scrub_text as scrub


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


class SpendLimitError(ApiUnavailableError):
    """A spend limit was reached: no retry helps until someone raises it (or the month ends)."""


class BillingError(ApiUnavailableError):
    """402: a billing or payment problem on the organization."""


#: ``error.details.error_code`` values that mean a spend cap: never worth a retry.
SPEND_CAP_CODES = frozenset({"enforced_spend_limit_reached", "contract_spend_limit_reached"})


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
    except (ValueError, UnicodeDecodeError, RecursionError):  # any body: even nested too deep
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            error_type = err.get("type") if isinstance(err.get("type"), str) else None
            message = err.get("message") if isinstance(err.get("message"), str) else None
        if request_id is None and isinstance(data.get("request_id"), str):
            request_id = data["request_id"]
    return error_type, message, request_id


def error_code(response: httpx.Response) -> str | None:
    """``error.details.error_code`` of an error answer, if any."""
    try:
        data: Any = json.loads(response.content or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    err = data.get("error") if isinstance(data, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    code = details.get("error_code") if isinstance(details, dict) else None
    return code if isinstance(code, str) else None


def is_spend_cap(response: httpx.Response) -> bool:
    """A spend cap: a 429 carrying ``error.details.error_code`` (and no ``retry-after``)."""
    return response.status_code == 429 and error_code(response) is not None


def _classify(
    status: int, response: httpx.Response, api_message: str | None
) -> tuple[type[ApiError], str]:
    """The error class and the next step for a final (not retried) answer."""
    if is_spend_cap(response):
        return SpendLimitError, (
            f"the organization reached its usage tier's monthly spend cap "
            f"({error_code(response)}); it resets at 00:00 UTC on the 1st: move up a tier "
            "(Console > Settings > Limits) to raise it now"
        )
    if status == 400 and "usage limit" in (api_message or "").lower():
        return SpendLimitError, (
            "a spend limit the organization set was reached: raise the organization's limit "
            "(Console > Settings > Billing) or the workspace's (workspace > Spend limits)"
        )
    if status == 402:
        return BillingError, "fix billing in the Console (Settings > Billing), then run again"
    if status in (408, 429) or status >= 500:
        return ApiUnavailableError, "the API said not to retry; try again later"
    return _BY_STATUS.get(status, ApiError), _NEXT_STEP.get(
        status, "see the message above; the request was not retried"
    )


def error_from_response(response: httpx.Response, what: str) -> ApiError:
    """The ``ApiError`` subclass for a non-2xx answer to ``what`` (e.g. "GET /v1/models")."""
    error_type, api_message, request_id = error_body(response)
    status = response.status_code
    cls, step = _classify(status, response, api_message)
    detail = f"{status} {error_type or 'error'}"
    if api_message:
        detail += f": {api_message}"
    rid = f" (request-id {request_id})" if request_id else ""
    return cls(
        f"Anthropic API refused {what}: {detail}{rid}; {step}",
        status=status,
        error_type=error_type,
        request_id=request_id,
        api_message=api_message,
    )
