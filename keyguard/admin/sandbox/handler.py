"""HTTP handler of the sandbox: Anthropic's documented routes (``api_routes``), the federation's
(``wif_routes``) and the Console's under ``/_sandbox/`` (``console_routes``), with faults
injected first. Answers carry ``request-id``; errors use Anthropic's error body."""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import time
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

from keyguard.admin.sandbox import api_routes, console_routes, wif_routes
from keyguard.admin.sandbox.faults import FAULT_ANSWERS
from keyguard.admin.sandbox.request import Request, Route
from keyguard.admin.sandbox.wire import SandboxError


class Handler(Request):
    """One request: drain the body, maybe inject a fault, route, answer."""

    #: The route table: (method, full-match path pattern, target); the federation's routes
    #: are asked first (``wif_routes.route``).
    routes: ClassVar[list[Route]] = [*api_routes.ROUTES, *console_routes.ROUTES]

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

    def _dispatch(self, method: str) -> None:
        self.request_id = "req_" + secrets.token_hex(12)
        raw = self.drain()
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            self.body = json.loads(raw) if raw.strip() else None
        except ValueError:
            self.body = ...
        if path.startswith("/v1/") and self._fault(method, path):
            return
        if wif_routes.route(self, method, path, query):  # federation, OIDC, bearer tokens
            return
        matched_path = False
        for verb, pattern, target in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            matched_path = True
            if verb != method:
                continue
            try:
                if self.body is ... and method in ("POST", "PUT", "PATCH"):
                    raise SandboxError(400, "invalid_request_error", "body is not valid JSON")
                target(self, query, *match.groups())
            except SandboxError as exc:
                self.reply_error(exc.status, exc.error_type, exc.message)
            return
        if matched_path:
            self.reply_error(405, "invalid_request_error", f"{method} is not allowed on {path}")
        else:
            self.reply_error(404, "not_found_error", f"no route {method} {path}")

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
        status, error_type, message = FAULT_ANSWERS[kind]
        extra = {"retry_after": f"{faults.retry_after:g}"} if kind == "429" else {}
        if faults.should_retry is not None:
            extra["x_should_retry"] = faults.should_retry
        if kind == "502":  # a proxy's page, not JSON: clients must cope
            headers = {k.replace("_", "-"): v for k, v in extra.items()}
            self.reply(status, b"<html><body>502 Bad Gateway</body></html>", headers)
            return True
        details = {"error_code": "enforced_spend_limit_reached"} if kind == "spend_cap" else None
        self.reply_error(status, error_type, message, details, **extra)
        return True
