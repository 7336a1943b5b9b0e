"""A tiny scripted Anthropic API on ``httpx.MockTransport`` for unit tests of the client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from keyguard.admin import AdminClient
from keyguard.keys import Secret

Handler = Callable[[httpx.Request], httpx.Response]


def answer(status: int = 200, body: Any = None, **headers: str) -> httpx.Response:
    """An answer with a ``request-id`` and the given headers (``retry_after`` -> retry-after)."""
    hdrs = {"request-id": "req_test"} | {k.replace("_", "-"): v for k, v in headers.items()}
    return httpx.Response(status, json=body if body is not None else {}, headers=hdrs)


def error(status: int, error_type: str, message: str = "nope", **headers: str) -> httpx.Response:
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": "req_err",
    }
    return answer(status, body, **headers)


def key_obj(key_id: str, **fields: Any) -> dict[str, Any]:
    base = {
        "type": "api_key",
        "id": key_id,
        "name": key_id,
        "status": "active",
        "workspace_id": None,
        "created_at": "2026-01-01T00:00:00Z",
        "created_by": {"id": "user_1", "type": "user"},
        "expires_at": None,
        "partial_key_hint": None,
    }
    return base | fields


class Recorder:
    """Calls ``handler`` and keeps every request; sleeps are recorded, never slept."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self, admin_key: Secret, **kwargs: Any) -> AdminClient:
        kwargs.setdefault("sleep", self.sleeps.append)
        return AdminClient(
            admin_key, "https://api.test", transport=httpx.MockTransport(self), **kwargs
        )

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)
