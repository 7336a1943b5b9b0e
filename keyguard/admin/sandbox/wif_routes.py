"""Routing for the sandbox's federation: the WIF Admin API, the exchange, bearer-token calls
to ``/v1/models`` and ``/v1/messages``, and the local OIDC issuer. ``handler.py`` asks
``route`` first; it answers True when it answered the request."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keyguard.admin.sandbox import exchange, oidc
from keyguard.admin.sandbox import federation as wif
from keyguard.admin.sandbox import federation_rules as objects
from keyguard.admin.sandbox.state import SandboxState
from keyguard.admin.sandbox.usage import usage_report
from keyguard.admin.sandbox.wire import SandboxError

if TYPE_CHECKING:
    from keyguard.admin.sandbox.handler import Handler

Query = dict[str, list[str]]
_ORG = "/v1/organizations"
_SA = f"{_ORG}/service_accounts"
_ISS = f"{_ORG}/federation_issuers"
_RULES = f"{_ORG}/federation_rules"


def _list(items_of: Callable[[SandboxState, Query], list[dict[str, Any]]]) -> Any:
    return lambda st, q, body: wif.page_of(items_of(st, q), q)


def _rules(st: SandboxState, q: Query) -> list[dict[str, Any]]:
    wanted = q["issuer_id"][-1] if q.get("issuer_id") else None
    return [r for r in wif.fed(st)["rules"] if wanted is None or r["issuer_id"] == wanted]


def _listing(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"data": items, "has_more": False, "next_page": None}


#: (method, path pattern, action(state, query, body, *groups) -> answer)
ADMIN_ROUTES: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
    ("POST", re.compile(_SA), lambda st, q, b: wif.create_service_account(st, b)),
    (
        "GET",
        re.compile(_SA),
        _list(lambda st, q: [wif.sa_view(s) for s in wif.fed(st)["service_accounts"]]),
    ),
    (
        "GET",
        re.compile(rf"{_SA}/([^/]+)"),
        lambda st, q, b, i: wif.sa_view(wif.service_account(st, i)),
    ),
    (
        "POST",
        re.compile(rf"{_SA}/([^/]+)"),
        lambda st, q, b, i: wif.update_service_account(st, i, b),
    ),
    (
        "POST",
        re.compile(rf"{_SA}/([^/]+)/archive"),
        lambda st, q, b, i: wif.archive_service_account(st, i),
    ),
    (
        "GET",
        re.compile(rf"{_SA}/([^/]+)/workspaces"),
        lambda st, q, b, i: _listing(wif.sa_workspaces(st, i)),
    ),
    (
        "POST",
        re.compile(rf"{_SA}/([^/]+)/workspaces"),
        lambda st, q, b, i: wif.add_sa_workspace(st, i, b),
    ),
    (
        "DELETE",
        re.compile(rf"{_SA}/([^/]+)/workspaces/([^/]+)"),
        lambda st, q, b, i, w: wif.remove_sa_workspace(st, i, w),
    ),
    ("POST", re.compile(_ISS), lambda st, q, b: objects.create_issuer(st, b)),
    ("GET", re.compile(_ISS), _list(lambda st, q: wif.fed(st)["issuers"])),
    ("GET", re.compile(rf"{_ISS}/([^/]+)"), lambda st, q, b, i: dict(objects.issuer(st, i))),
    ("POST", re.compile(rf"{_ISS}/([^/]+)"), lambda st, q, b, i: objects.update_issuer(st, i, b)),
    (
        "POST",
        re.compile(rf"{_ISS}/([^/]+)/archive"),
        lambda st, q, b, i: objects.archive_issuer(st, i),
    ),
    ("POST", re.compile(_RULES), lambda st, q, b: objects.create_rule(st, b)),
    ("GET", re.compile(_RULES), _list(_rules)),
    ("GET", re.compile(rf"{_RULES}/([^/]+)"), lambda st, q, b, i: dict(objects.rule(st, i))),
    ("POST", re.compile(rf"{_RULES}/([^/]+)"), lambda st, q, b, i: objects.update_rule(st, i, b)),
    (
        "POST",
        re.compile(rf"{_RULES}/([^/]+)/archive"),
        lambda st, q, b, i: objects.archive_rule(st, i),
    ),
    (
        "GET",
        re.compile(rf"{_RULES}/([^/]+)/workspaces"),
        lambda st, q, b, i: _listing(objects.rule_workspaces(st, i)),
    ),
    (
        "POST",
        re.compile(rf"{_RULES}/([^/]+)/workspaces"),
        lambda st, q, b, i: objects.rule_workspace(st, i, b),
    ),
    (
        "DELETE",
        re.compile(rf"{_RULES}/([^/]+)/workspaces/([^/]+)"),
        lambda st, q, b, i, w: objects.remove_rule_workspace(st, i, w),
    ),
]


def _bearer(h: Handler) -> str | None:
    value = h.headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _federated_bearer(h: Handler) -> bool:
    """A bearer that is federation's (its admin token or a token it minted): an API key sent as
    a bearer (as the SDK does) and other OAuth tokens are the key Admin API's to judge."""
    token = _bearer(h)
    if token is None:
        return False
    return wif.is_admin_token(h.state, token) or wif.token_record(h.state, token) is not None


def _require_beta(h: Handler) -> None:
    flags = [f.strip() for f in (h.headers.get("anthropic-beta") or "").split(",")]
    if wif.OAUTH_BETA not in flags:
        raise SandboxError(
            400,
            "invalid_request_error",
            f"OAuth bearer tokens need the header anthropic-beta: {wif.OAUTH_BETA}",
        )


def _org_admin(h: Handler) -> None:
    """Only an ``org:admin`` OAuth bearer token passes; an Admin key gets 403."""
    token = _bearer(h)
    if token is None:
        presented = h.headers.get("x-api-key")
        if presented and secrets.compare_digest(
            presented.encode(), h.state.data["admin_key"].encode()
        ):
            raise SandboxError(
                403,
                "permission_error",
                "Admin API keys cannot manage service accounts, federation issuers or "
                "federation rules: use an org:admin OAuth token (authorization: Bearer)",
            )
        raise SandboxError(
            401, "authentication_error", "an org:admin OAuth bearer token is required"
        )
    _require_beta(h)
    if wif.is_admin_token(h.state, token):
        return
    rec = wif.token_record(h.state, token) or h.state.oauth_token(token)
    if rec is None:
        raise SandboxError(401, "authentication_error", "invalid bearer token")
    if rec["scope"] != "org:admin":
        raise SandboxError(403, "permission_error", f"scope {rec['scope']} cannot do this")


def _inference(h: Handler) -> dict[str, Any]:
    token = _bearer(h)
    assert token is not None
    _require_beta(h)
    if not h.headers.get("anthropic-version"):
        raise SandboxError(400, "invalid_request_error", "anthropic-version: header is required")
    if h.headers.get("anthropic-workspace-id"):
        raise SandboxError(
            400,
            "invalid_request_error",
            "anthropic-workspace-id cannot be used with a federated token (bound at exchange)",
        )
    if wif.is_admin_token(h.state, token):
        return {"workspace_id": "default", "service_account_id": None, "scope": "org:admin"}
    rec = wif.token_record(h.state, token)
    if rec is None:
        raise SandboxError(401, "authentication_error", "invalid bearer token")
    if rec["scope"] not in ("workspace:inference", "workspace:developer", "org:admin"):
        raise SandboxError(403, "permission_error", f"scope {rec['scope']} cannot do this")
    return rec


def _ws_header(rec: dict[str, Any]) -> dict[str, str]:
    ws = rec.get("workspace_id")
    return {"anthropic-workspace-id": ws} if ws and ws != "default" else {}


def _models(h: Handler) -> None:
    from keyguard.admin.sandbox.handler import MODELS

    rec = _inference(h)
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
        for m in MODELS
    ]
    body = {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
    h._send(200, body, _ws_header(rec))


def _messages(h: Handler) -> None:
    rec = _inference(h)
    body = h.body if isinstance(h.body, dict) else {}
    model, max_tokens = body.get("model"), body.get("max_tokens")
    if not isinstance(model, str) or not isinstance(body.get("messages"), list):
        raise SandboxError(400, "invalid_request_error", "model and messages are required")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise SandboxError(400, "invalid_request_error", "max_tokens: Field required")
    input_tokens = max(1, len(json.dumps(body["messages"])) // 4)
    output_tokens = min(max_tokens, 8)
    record_usage(h.state, rec, model, input_tokens, output_tokens)
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
    h._send(200, answer, _ws_header(rec))


def record_usage(
    state: SandboxState,
    rec: dict[str, Any],
    model: str,
    input_tokens: int,
    output_tokens: int,
    at: float | None = None,
) -> None:
    """Messages usage of a federated token: no API key, its service account instead."""
    ws = rec.get("workspace_id")
    event = {
        "api_key_id": None,
        "service_account_id": rec.get("service_account_id"),
        "workspace_id": ws if ws and ws != "default" else None,
        "at": state.now() if at is None else at,
        "model": model,
        "uncached_input_tokens": int(input_tokens),
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "output_tokens": int(output_tokens),
    }
    with state.lock:
        state.data["usage"].append(event)
        state.save()


def _issuer_url(h: Handler) -> str:
    return oidc.issuer_url(h.server.server_address)


def route(h: Handler, method: str, path: str, query: Query) -> bool:
    """Answer the request if it is federation's; False to let the handler route it."""
    try:
        return _route(h, method, path, query)
    except SandboxError as exc:
        h._error(exc.status, exc.error_type, exc.message)
        return True


def _route(h: Handler, method: str, path: str, query: Query) -> bool:
    if path.startswith(oidc.PREFIX + "/") or path == oidc.PREFIX:
        sub = path[len(oidc.PREFIX) :]
        if method == "GET" and sub == "/.well-known/openid-configuration":
            h._send(200, oidc.discovery(_issuer_url(h)))
        elif method == "GET" and sub == "/jwks":
            h._send(200, oidc.public_jwks(h.state))
        elif method == "POST" and sub == "/token":
            h._send(200, oidc.issue(h.state, _issuer_url(h), _json(h)))
        else:
            raise SandboxError(404, "not_found_error", f"no route {method} {path}")
        return True
    if path == "/v1/oauth/token":
        if method != "POST":
            raise SandboxError(405, "invalid_request_error", f"{method} is not allowed on {path}")
        h._send(200, exchange.exchange(h.state, _json(h)))
        return True
    if _federated_bearer(h) and not h.headers.get("x-api-key"):
        if method == "GET" and path == "/v1/models":
            _models(h)
            return True
        if method == "POST" and path == "/v1/messages":
            _messages(h)
            return True
        if method == "GET" and path == "/v1/organizations/usage_report/messages":
            _org_admin(h)  # the whole Admin API takes an org:admin token
            h._send(200, usage_report(query, h.state.usage_events(), h.state.now()))
            return True
    for verb, pattern, action in ADMIN_ROUTES:
        m = pattern.fullmatch(path)
        if m is None or verb != method:
            continue
        _org_admin(h)
        h._send(200, action(h.state, query, _json(h) if method == "POST" else None, *m.groups()))
        return True
    return False


def _json(h: Handler) -> Any:
    if h.body is ...:
        raise SandboxError(400, "invalid_request_error", "body is not valid JSON")
    return h.body if h.body is not None else {}
