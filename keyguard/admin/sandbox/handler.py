"""HTTP handler of the sandbox: Anthropic's documented routes plus Console routes under
``/_sandbox/``. Answers carry ``request-id``; errors use Anthropic's error body."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from keyguard.admin.parse import parse_time
from keyguard.admin.sandbox import wif_routes
from keyguard.admin.sandbox.compliance import list_activities
from keyguard.admin.sandbox.faults import FAULT_KINDS
from keyguard.admin.sandbox.state import SandboxState
from keyguard.admin.sandbox.usage import cost_report, usage_report
from keyguard.admin.sandbox.wire import SandboxError
from keyguard.models import KEY_STATUSES
from keyguard.policy import parse_duration

MODELS = ("claude-opus-4-6", "claude-sonnet-4-5", "claude-haiku-4-5")
_FAULT_ANSWERS = {
    "429": (429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
    "spend_cap": (
        429,
        "rate_limit_error",
        "You have reached your usage tier's monthly spend limit. Your access will be restored "
        "on the 1st of next month at 00:00 UTC, or raise the limit by moving up a tier.",
    ),
    "402": (402, "billing_error", "Your credit balance is too low to access the Anthropic API."),
    "408": (408, "timeout_error", "Request timeout"),
    "409": (409, "conflict_error", "The resource was modified concurrently"),
    "500": (500, "api_error", "Internal server error"),
    "502": (502, "api_error", "Bad gateway"),
    "503": (503, "api_error", "Service unavailable"),
    "529": (529, "overloaded_error", "Overloaded"),
}
_WORKSPACE_ID_RE = re.compile(r"wrkspc_[A-Za-z0-9]{1,64}")
OAUTH_BETA = "oauth-2025-04-20"

#: A route target: the name of a ``Handler.r_<name>`` method, or a function called as
#: ``target(handler, query, *path_groups)`` (how a feature in its own module hooks in).
RouteTarget = str | Callable[..., None]
Route = tuple[str, re.Pattern[str], RouteTarget]


class SandboxServer(ThreadingHTTPServer):
    """A threading server that knows its state and its open connections (to close on stop)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        self.state = state
        self.connections: set[socket.socket] = set()
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeouts, dropped connections) is expected here; stay quiet.
        pass

    def close_connections(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _limit(query: dict[str, list[str]]) -> int:
    raw = query.get("limit", ["20"])[-1]
    try:
        value = int(raw)
    except ValueError:
        raise SandboxError(400, "invalid_request_error", "limit: must be an integer") from None
    if not 1 <= value <= 1000:
        raise SandboxError(400, "invalid_request_error", "limit: must be between 1 and 1000")
    return value


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _when(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    parsed = parse_time(value)
    if parsed is None:
        raise SandboxError(400, "invalid_request_error", f"{name}: not an RFC 3339 timestamp")
    return parsed.timestamp()


def _seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_duration(str(value)).total_seconds()
    except Exception:
        raise SandboxError(400, "invalid_request_error", f"{name}: a duration like 30d") from None


class Handler(BaseHTTPRequestHandler):
    """One request: drain the body, maybe inject a fault, route, answer."""

    server: SandboxServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 60
    #: The route table: (method, full-match path pattern, target). Add a feature's routes
    #: with ``Handler.routes += its_module.ROUTES`` (see ``RouteTarget``).
    routes: ClassVar[list[Route]] = [
        ("GET", re.compile(r"/v1/models"), "models"),
        ("POST", re.compile(r"/v1/messages"), "messages"),
        ("GET", re.compile(r"/v1/organizations/me"), "me"),
        ("GET", re.compile(r"/v1/organizations/api_keys"), "list_keys"),
        ("GET", re.compile(r"/v1/organizations/api_keys/([^/]+)"), "get_key"),
        ("POST", re.compile(r"/v1/organizations/api_keys/([^/]+)"), "update_key"),
        ("GET", re.compile(r"/v1/organizations/workspaces"), "list_workspaces"),
        ("GET", re.compile(r"/v1/organizations/workspaces/([^/]+)"), "get_workspace"),
        ("GET", re.compile(r"/v1/organizations/usage_report/messages"), "usage"),
        ("GET", re.compile(r"/v1/organizations/cost_report"), "cost"),
        ("GET", re.compile(r"/v1/compliance/activities"), "activities"),
        ("GET", re.compile(r"/_sandbox/health"), "sb_health"),
        ("GET", re.compile(r"/_sandbox/keys"), "sb_list_keys"),
        ("POST", re.compile(r"/_sandbox/keys"), "sb_mint_key"),
        ("POST", re.compile(r"/_sandbox/workspaces"), "sb_add_workspace"),
        ("POST", re.compile(r"/_sandbox/users"), "sb_add_user"),
        ("POST", re.compile(r"/_sandbox/users/([^/]+)/remove"), "sb_remove_user"),
        ("POST", re.compile(r"/_sandbox/service_accounts"), "sb_add_service_account"),
        ("POST", re.compile(r"/_sandbox/oauth_tokens"), "sb_issue_oauth_token"),
        ("POST", re.compile(r"/_sandbox/compliance"), "sb_set_compliance"),
        ("POST", re.compile(r"/_sandbox/activities"), "sb_record_activity"),
        ("GET", re.compile(r"/_sandbox/faults"), "sb_get_faults"),
        ("POST", re.compile(r"/_sandbox/faults"), "sb_set_faults"),
        ("DELETE", re.compile(r"/_sandbox/faults"), "sb_clear_faults"),
        ("POST", re.compile(r"/_sandbox/usage"), "sb_record_usage"),
    ]

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the sandbox runs inside test suites and demos

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def state(self) -> SandboxState:
        return self.server.state

    def _drain(self) -> bytes:
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

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
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

    def _error(
        self,
        status: int,
        error_type: str,
        message: str,
        details: dict[str, Any] | None = None,
        **headers: str,
    ) -> None:
        error: dict[str, Any] = {"type": error_type, "message": message}
        if details:
            error["details"] = details
        body = {"type": "error", "error": error, "request_id": self.request_id}
        self._send(status, body, {k.replace("_", "-"): v for k, v in headers.items()})

    def _dispatch(self, method: str) -> None:
        self.request_id = "req_" + secrets.token_hex(12)
        raw = self._drain()
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            self.body: Any = json.loads(raw) if raw.strip() else None
        except ValueError:
            self.body = ...
        if path.startswith("/v1/") and self._fault(method, path):
            return
        if wif_routes.route(self, method, path, query):  # federation, OIDC, bearer tokens
            return
        matched_path = False
        for verb, pattern, name in self.routes:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            matched_path = True
            if verb != method:
                continue
            try:
                if self.body is ... and method in ("POST", "PUT", "PATCH"):
                    raise SandboxError(400, "invalid_request_error", "body is not valid JSON")
                if callable(name):
                    name(self, query, *m.groups())
                else:
                    getattr(self, f"r_{name}")(query, *m.groups())
            except SandboxError as exc:
                self._error(exc.status, exc.error_type, exc.message)
            return
        if matched_path:
            self._error(405, "invalid_request_error", f"{method} is not allowed on {path}")
        else:
            self._error(404, "not_found_error", f"no route {method} {path}")

    def _fault(self, method: str, path: str) -> bool:
        """Inject a fault if one is drawn; True when the request is answered (or dropped)."""
        with self.state.lock:
            applies = self.state.faults.applies(method, path)
            kind = self.state.faults.draw() if applies else None
            faults = self.state.faults
        if kind is None:
            return False
        if kind == "latency":
            time.sleep(faults.latency)
            return False
        if kind == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        status, error_type, message = _FAULT_ANSWERS[kind]
        extra = {"retry_after": f"{faults.retry_after:g}"} if kind == "429" else {}
        if faults.should_retry is not None:
            extra["x_should_retry"] = faults.should_retry
        if kind == "502":  # a proxy's page, not JSON: clients must cope
            headers = {k.replace("_", "-"): v for k, v in extra.items()}
            self._send(status, b"<html><body>502 Bad Gateway</body></html>", headers)
            return True
        details = {"error_code": "enforced_spend_limit_reached"} if kind == "spend_cap" else None
        self._error(status, error_type, message, details, **extra)
        return True

    def _require_version(self) -> None:
        if not self.headers.get("anthropic-version"):
            raise SandboxError(
                400, "invalid_request_error", "anthropic-version: header is required"
            )

    def _credential(self) -> tuple[str, str] | None:
        """``("x-api-key" | "bearer", value)`` as presented, or None."""
        presented = self.headers.get("x-api-key")
        if presented:
            return "x-api-key", presented
        auth = self.headers.get("authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return "bearer", value.strip()
        return None

    def _admin(self, *, console: bool = False) -> dict[str, Any]:
        """Authenticate an Admin API call; returns the caller as the compliance feed shows it.

        Accepted: the admin key, an ``org:admin`` OAuth bearer token, or an organization-scoped
        personal or service-account key whose principal is an organization admin.
        """
        cred = self._credential()
        if cred is None:
            raise SandboxError(401, "authentication_error", "x-api-key header is required")
        how, presented = cred
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
                self.state.bearer_calls.append(OAUTH_BETA in self._betas())
            actor = self._principal_actor(token["principal"])
        else:
            rec = self.state.authenticate(presented)
            if rec is None or self.state.status_of(rec) != "active":
                raise SandboxError(401, "authentication_error", "invalid x-api-key")
            if rec["scope"] != "organization":
                raise SandboxError(
                    403,
                    "permission_error",
                    "This API key is scoped to a workspace and cannot use the Admin API",
                )
            if self.state.role_of(rec["principal"]) != "admin":
                raise SandboxError(
                    403,
                    "permission_error",
                    "The account linked to this API key is not an organization admin",
                )
            actor = {"type": "api_actor", "api_key_id": rec["id"]}
        if not console:
            self._require_version()
        actor.update(ip_address=self.client_address[0], user_agent=self.headers.get("user-agent"))
        return actor

    def _betas(self) -> list[str]:
        return [b.strip() for b in self.headers.get("anthropic-beta", "").split(",") if b.strip()]

    @staticmethod
    def _principal_actor(principal: dict[str, str]) -> dict[str, Any]:
        if principal["type"] == "user":
            return {"type": "user_actor", "user_id": principal["id"]}
        return {"type": "service_account_actor", "service_account_id": principal["id"]}

    def _api_key(self) -> tuple[dict[str, Any], str]:
        """The calling API key's record and the real workspace the request runs in."""
        cred = self._credential()
        if cred is None:
            raise SandboxError(401, "authentication_error", "x-api-key header is required")
        rec = self.state.authenticate(cred[1])
        if rec is None:
            raise SandboxError(401, "authentication_error", "invalid x-api-key")
        self.state.note_request(rec)
        if self.state.status_of(rec) != "active":
            raise SandboxError(401, "authentication_error", "invalid x-api-key")
        self._require_version()
        return rec, self._request_workspace(rec)

    def _request_workspace(self, rec: dict[str, Any]) -> str:
        """The ``anthropic-workspace-id`` rules: required for org-scoped keys, checked always."""
        asked = self.headers.get("anthropic-workspace-id")
        own = self.state.real_workspace(rec)
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

    # -- Anthropic's routes -----------------------------------------------------------------

    def r_models(self, query: dict[str, list[str]]) -> None:
        _rec, workspace = self._api_key()
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m,
                "created_at": "2025-01-01T00:00:00Z",
                "lifecycle": "active",
                "line": m.split("-")[1],
            }
            for m in MODELS
        ]
        body = {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
        # The real id of the workspace the call ran in, the Default Workspace's included.
        self._send(200, body, {"anthropic-workspace-id": workspace})

    def r_messages(self, query: dict[str, list[str]]) -> None:
        rec, workspace = self._api_key()
        body = self.body if isinstance(self.body, dict) else {}
        model = body.get("model")
        if not isinstance(model, str) or not isinstance(body.get("messages"), list):
            raise SandboxError(400, "invalid_request_error", "model and messages are required")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise SandboxError(400, "invalid_request_error", "max_tokens: Field required")
        input_tokens = max(1, len(json.dumps(body["messages"])) // 4)
        output_tokens = min(max_tokens, 8)
        default = self.state.data["default_workspace_id"]
        self.state.record_usage(
            rec["id"],
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            workspace_id=None if workspace == default else workspace,
        )
        answer = {
            "id": "msg_" + secrets.token_hex(12),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "sandbox"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        self._send(200, answer, {"anthropic-workspace-id": workspace})

    def r_me(self, query: dict[str, list[str]]) -> None:
        self._admin()
        self._send(200, self.state.data["organization"])

    def r_list_keys(self, query: dict[str, list[str]]) -> None:
        self._admin()
        status = _one(query, "status")
        if status is not None and status not in KEY_STATUSES:
            raise SandboxError(400, "invalid_request_error", f"status: {status!r} is not valid")
        filters = {
            "status": status,
            "workspace_id": _one(query, "workspace_id"),
            "created_by_user_id": _one(query, "created_by_user_id"),
        }
        result = self.state.list_keys(
            filters, _one(query, "after_id"), _one(query, "before_id"), _limit(query)
        )
        self._send(200, result)

    def r_get_key(self, query: dict[str, list[str]], key_id: str) -> None:
        self._admin()
        with self.state.lock:
            self._send(200, self.state.view(self.state.key(key_id)))

    def r_update_key(self, query: dict[str, list[str]], key_id: str) -> None:
        actor = self._admin()
        self._send(200, self.state.update_key(key_id, self.body, actor))

    def r_list_workspaces(self, query: dict[str, list[str]]) -> None:
        self._admin()
        include = (_one(query, "include_archived") or "false").lower() == "true"
        result = self.state.list_workspaces(
            include, _one(query, "after_id"), _one(query, "before_id"), _limit(query)
        )
        self._send(200, result)

    def r_get_workspace(self, query: dict[str, list[str]], workspace_id: str) -> None:
        self._admin()
        self._send(200, self.state.workspace(workspace_id))

    def r_usage(self, query: dict[str, list[str]]) -> None:
        self._admin()
        self._send(200, usage_report(query, self.state.usage_events(), self.state.now()))

    def r_cost(self, query: dict[str, list[str]]) -> None:
        self._admin()
        self._send(200, cost_report(query, self.state.usage_events(), self.state.now()))

    def r_activities(self, query: dict[str, list[str]]) -> None:
        actor = self._admin()
        if actor["type"] != "admin_api_key_actor" or not self.state.compliance_readable():
            raise SandboxError(
                403,
                "permission_error",
                "The Compliance API is not enabled for this organization, or this key lacks "
                "read:compliance_activities",
            )
        self._send(200, list_activities(query, self.state.activities()))

    # -- the Console, under /_sandbox/ ------------------------------------------------------

    def _sb_body(self) -> dict[str, Any]:
        self._admin(console=True)
        if not isinstance(self.body, dict):
            raise SandboxError(400, "invalid_request_error", "body must be a JSON object")
        return self.body

    def r_sb_health(self, query: dict[str, list[str]]) -> None:
        self._send(200, {"ok": True})

    def r_sb_list_keys(self, query: dict[str, list[str]]) -> None:
        self._admin(console=True)
        with self.state.lock:
            data = [
                {
                    **self.state.view(rec),
                    "requests": rec["requests"],
                    "last_request_at": rec["last_request_at"],
                }
                for rec in self.state.data["keys"]
            ]
        self._send(200, {"data": data})

    def r_sb_mint_key(self, query: dict[str, list[str]]) -> None:
        body = self._sb_body()
        now = self.state.now()
        created = _when(body.get("created_at"), "created_at")
        age = _seconds(body.get("age"), "age")
        if created is None and age is not None:
            created = now - age
        expires = _when(body.get("expires_at"), "expires_at")
        expires_in = _seconds(body.get("expires_in"), "expires_in")
        if expires is None and expires_in is not None:
            expires = now + expires_in
        view, secret = self.state.mint_key(
            str(body.get("name") or ""),
            body.get("workspace_id"),
            created,
            expires,
            key_type=str(body.get("type") or "service_account"),
            scope=str(body.get("scope") or "workspace"),
            principal_id=body.get("principal_id"),
        )
        self._send(201, {**view, "secret": secret.reveal()})

    def r_sb_add_user(self, query: dict[str, list[str]]) -> None:
        body = self._sb_body()
        email = str(body.get("email") or "member@sandbox.invalid")
        self._send(201, self.state.add_user(email, str(body.get("role") or "developer")))

    def r_sb_remove_user(self, query: dict[str, list[str]], user_id: str) -> None:
        self._admin(console=True)
        self._send(200, self.state.remove_user(user_id))

    def r_sb_add_service_account(self, query: dict[str, list[str]]) -> None:
        body = self._sb_body()
        name = str(body.get("name") or "service")
        role = str(body.get("organization_role") or "developer")
        self._send(201, self.state.add_service_account(name, role))

    def r_sb_issue_oauth_token(self, query: dict[str, list[str]]) -> None:
        body = self._sb_body()
        lifetime = _seconds(body.get("expires_in"), "expires_in") or 3600.0
        rec, token = self.state.issue_oauth_token(
            str(body.get("scope") or "org:admin"), lifetime=lifetime
        )
        self._send(201, {"access_token": token.reveal(), "scope": rec["scope"]})

    def r_sb_set_compliance(self, query: dict[str, list[str]]) -> None:
        body = self._sb_body()
        with self.state.lock:
            self.state.data["compliance_enabled"] = bool(body.get("enabled", True))
            self.state.save()
        self._send(200, {"enabled": self.state.data["compliance_enabled"]})

    def r_sb_record_activity(self, query: dict[str, list[str]]) -> None:
        body = self._sb_body()
        given = body.get("actor")
        actor: dict[str, Any] = given if isinstance(given, dict) else {}
        fields = {k: v for k, v in body.items() if k not in ("type", "actor", "at")}
        event = self.state.record_activity(
            str(body.get("type") or "platform_file_created"),
            actor,
            _when(body.get("at"), "at"),
            **fields,
        )
        self._send(201, event or {"recorded": False})

    def r_sb_add_workspace(self, query: dict[str, list[str]]) -> None:
        body = self._sb_body()
        tags = body.get("tags") if isinstance(body.get("tags"), dict) else {}
        self._send(201, self.state.add_workspace(str(body.get("name") or ""), tags))

    def r_sb_get_faults(self, query: dict[str, list[str]]) -> None:
        self._admin(console=True)
        self._send(200, self.state.faults.describe())

    def r_sb_set_faults(self, query: dict[str, list[str]]) -> None:
        body = self._sb_body()
        kinds = body.get("kinds", ["429"])
        if not isinstance(kinds, list) or not all(k in FAULT_KINDS for k in kinds):
            raise SandboxError(
                400, "invalid_request_error", f"kinds: a list of {', '.join(FAULT_KINDS)}"
            )
        with self.state.lock:
            faults = self.state.faults
            faults.rate = float(body.get("rate", 1.0))
            faults.kinds = tuple(kinds)
            faults.retry_after = float(body.get("retry_after", 0))
            faults.latency = float(body.get("latency", 0.0))
            count = body.get("count")
            faults.count = int(count) if count is not None else None
            retry = body.get("should_retry")
            faults.should_retry = None if retry is None else str(bool(retry)).lower()
        self._send(200, faults.describe())

    def r_sb_clear_faults(self, query: dict[str, list[str]]) -> None:
        self._admin(console=True)
        with self.state.lock:
            self.state.faults.rate = 0.0
            self.state.faults.kinds = ()
            self.state.faults.count = None
        self._send(200, self.state.faults.describe())

    def r_sb_record_usage(self, query: dict[str, list[str]]) -> None:
        body = self._sb_body()
        event = self.state.record_usage(
            str(body.get("api_key_id") or ""),
            at=_when(body.get("at"), "at"),
            model=str(body.get("model") or "claude-sonnet-4-5"),
            input_tokens=int(body.get("input_tokens", 0)),
            output_tokens=int(body.get("output_tokens", 0)),
            cache_read_input_tokens=int(body.get("cache_read_input_tokens", 0)),
            cache_creation_input_tokens=int(body.get("cache_creation_input_tokens", 0)),
        )
        self._send(201, event)
