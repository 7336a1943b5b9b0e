"""One request to the sandbox, as every route sees it: its body and credential, the Admin API's
authentication rules, and answers with ``request-id`` and Anthropic's error body."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from keyguard.admin.sandbox.federation import OAUTH_BETA
from keyguard.admin.sandbox.state import SandboxState
from keyguard.admin.sandbox.wire import SandboxError

_WORKSPACE_ID_RE = re.compile(r"wrkspc_[A-Za-z0-9]{1,64}")

#: A route's query: each parameter's values, in order.
Query = dict[str, list[str]]
#: A route: (method, full-match path pattern, ``target(request, query, *path_groups)``).
Route = tuple[str, re.Pattern[str], Callable[..., None]]


class SandboxServer(ThreadingHTTPServer):
    """A threading server that knows its state and its open connections (to close on stop)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        state: SandboxState,
        handler: type[BaseHTTPRequestHandler],
    ) -> None:
        self.state = state
        self.connections: set[socket.socket] = set()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeouts, dropped connections) is expected here; stay quiet.
        pass

    def close_connections(self) -> None:
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Request(BaseHTTPRequestHandler):
    """The plumbing and the checks every route shares; ``handler.Handler`` routes."""

    server: SandboxServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 60
    request_id = ""
    #: The parsed JSON body: None when empty, ``...`` when it is not JSON.
    body: Any = None

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the sandbox runs inside test suites and demos

    @property
    def state(self) -> SandboxState:
        return self.server.state

    def drain(self) -> bytes:
        """Read the whole request body, so a kept-alive connection stays in step."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header tells the sandbox's own clock (tests move it), as the API tells its.
        return super().date_time_string(self.state.now() if timestamp is None else timestamp)

    # -- answers ----------------------------------------------------------------------------

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Answer with ``body`` (JSON, or bytes as an HTML page) and ``request-id``."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        # Logged before the answer leaves: a client that has its answer sees its request logged.
        with self.state.lock:
            self.state.request_log.append((self.command, urlsplit(self.path).path, status))
        self.send_response(status)
        kind = "text/html" if isinstance(body, bytes) else "application/json"
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(payload)))
        self.send_header("request-id", self.request_id)
        self.send_header("anthropic-organization-id", self.state.data["organization"]["id"])
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def reply_error(
        self,
        status: int,
        error_type: str,
        message: str,
        details: dict[str, Any] | None = None,
        **headers: str,
    ) -> None:
        """Answer with Anthropic's error body; ``retry_after=`` becomes ``retry-after``."""
        error: dict[str, Any] = {"type": error_type, "message": message}
        if details:
            error["details"] = details
        body = {"type": "error", "error": error, "request_id": self.request_id}
        self.reply(status, body, {k.replace("_", "-"): v for k, v in headers.items()})

    # -- who is asking ----------------------------------------------------------------------

    def require_version(self) -> None:
        if not self.headers.get("anthropic-version"):
            raise SandboxError(
                400, "invalid_request_error", "anthropic-version: header is required"
            )

    def credential(self) -> tuple[str, str] | None:
        """``("x-api-key" | "bearer", value)`` as presented, or None."""
        presented = self.headers.get("x-api-key")
        if presented:
            return "x-api-key", presented
        authorization = self.headers.get("authorization") or ""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return "bearer", value.strip()
        return None

    def betas(self) -> list[str]:
        beta = self.headers.get("anthropic-beta", "")
        return [flag.strip() for flag in beta.split(",") if flag.strip()]

    def admin(self, *, console: bool = False) -> dict[str, Any]:
        """Authenticate an Admin API call; returns the caller as the compliance feed shows it.

        Accepted: the admin key, an ``org:admin`` OAuth bearer token, or an organization-scoped
        personal or service-account key whose principal is an organization admin.
        """
        credential = self.credential()
        if credential is None:
            raise SandboxError(401, "authentication_error", "x-api-key header is required")
        how, presented = credential
        actor: dict[str, Any]
        if secrets.compare_digest(presented, self.state.data["admin_key"]):
            actor = {"type": "admin_api_key_actor", "admin_api_key_id": "apikey_admin"}
        elif console:  # the Console routes are ours: the admin key only
            raise SandboxError(401, "authentication_error", "invalid x-api-key")
        elif how == "bearer" and (token := self.state.oauth_token(presented)) is not None:
            if token["scope"] != "org:admin":
                raise SandboxError(
                    403, "permission_error", f"OAuth scope {token['scope']} cannot use this API"
                )
            with self.state.lock:
                self.state.bearer_calls.append(OAUTH_BETA in self.betas())
            actor = self._principal_actor(token["principal"])
        else:
            record = self.state.authenticate(presented)
            if record is None or self.state.status_of(record) != "active":
                raise SandboxError(401, "authentication_error", "invalid x-api-key")
            if record["scope"] != "organization":
                raise SandboxError(
                    403,
                    "permission_error",
                    "This API key is scoped to a workspace and cannot use the Admin API",
                )
            if self.state.role_of(record["principal"]) != "admin":
                raise SandboxError(
                    403,
                    "permission_error",
                    "The account linked to this API key is not an organization admin",
                )
            actor = {"type": "api_actor", "api_key_id": record["id"]}
        if not console:
            self.require_version()
        actor.update(ip_address=self.client_address[0], user_agent=self.headers.get("user-agent"))
        return actor

    @staticmethod
    def _principal_actor(principal: dict[str, str]) -> dict[str, Any]:
        if principal["type"] == "user":
            return {"type": "user_actor", "user_id": principal["id"]}
        return {"type": "service_account_actor", "service_account_id": principal["id"]}

    def api_key(self) -> tuple[dict[str, Any], str]:
        """The calling API key's record and the real workspace the request runs in."""
        credential = self.credential()
        if credential is None:
            raise SandboxError(401, "authentication_error", "x-api-key header is required")
        record = self.state.authenticate(credential[1])
        if record is None:
            raise SandboxError(401, "authentication_error", "invalid x-api-key")
        self.state.note_request(record)
        if self.state.status_of(record) != "active":
            raise SandboxError(401, "authentication_error", "invalid x-api-key")
        self.require_version()
        return record, self.request_workspace(record)

    def request_workspace(self, record: dict[str, Any]) -> str:
        """The ``anthropic-workspace-id`` rules: required for org-scoped keys, checked always."""
        asked = self.headers.get("anthropic-workspace-id")
        own = self.state.real_workspace(record)
        if asked is None:
            if own is None:
                raise SandboxError(
                    400,
                    "invalid_request_error",
                    "anthropic-workspace-id is required when authenticating with an "
                    "identity-linked API key that is not scoped to a workspace",
                )
            return own
        if not _WORKSPACE_ID_RE.fullmatch(asked):
            raise SandboxError(
                400,
                "invalid_request_error",
                "anthropic-workspace-id header must be a valid workspace ID.",
            )
        reachable = own == asked if own is not None else self.state.reachable(asked)
        if not reachable:
            raise SandboxError(404, "not_found_error", f"Workspace `{asked}` not found.")
        return asked
