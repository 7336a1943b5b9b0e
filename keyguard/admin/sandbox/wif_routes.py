"""Routing for the sandbox's federation: the WIF Admin API, the exchange, bearer-token calls
to ``/v1/models`` and ``/v1/messages``, and the local OIDC issuer. ``handler.py`` asks
``route`` first; it answers True when it answered the request."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

from keyguard.admin.sandbox import exchange, inference, oidc
from keyguard.admin.sandbox import federation as wif
from keyguard.admin.sandbox import federation_rules as objects
from keyguard.admin.sandbox.request import Query, Request
from keyguard.admin.sandbox.state import SandboxState
from keyguard.admin.sandbox.usage import usage_report
from keyguard.admin.sandbox.wire import SandboxError

_ORG = "/v1/organizations"

#: ``action(state, query, body, *path_groups) -> answer``
Action = Callable[..., Any]
AdminRoute = tuple[str, re.Pattern[str], Action]


def _resource_routes(prefix: str, actions: dict[str, Action]) -> list[AdminRoute]:
    """The routes of one federation resource at Anthropic's paths, for the actions it has."""
    one = rf"{prefix}/([^/]+)"
    paths = {
        "create": ("POST", prefix),
        "list": ("GET", prefix),
        "get": ("GET", one),
        "update": ("POST", one),
        "archive": ("POST", rf"{one}/archive"),
        "list_workspaces": ("GET", rf"{one}/workspaces"),
        "add_workspace": ("POST", rf"{one}/workspaces"),
        "remove_workspace": ("DELETE", rf"{one}/workspaces/([^/]+)"),
    }
    return [
        (method, re.compile(path), actions[name])
        for name, (method, path) in paths.items()
        if name in actions
    ]


def _page(items_of: Callable[[SandboxState, Query], list[dict[str, Any]]]) -> Action:
    return lambda state, query, body: wif.page_of(items_of(state, query), query)


def _listing(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"data": items, "has_more": False, "next_page": None}


def _rules(state: SandboxState, query: Query) -> list[dict[str, Any]]:
    wanted = query["issuer_id"][-1] if query.get("issuer_id") else None
    return [
        r for r in wif.federation_data(state)["rules"] if wanted is None or r["issuer_id"] == wanted
    ]


def _service_accounts(state: SandboxState, query: Query) -> list[dict[str, Any]]:
    return [wif.account_view(account) for account in wif.federation_data(state)["service_accounts"]]


ADMIN_ROUTES: list[AdminRoute] = [
    *_resource_routes(
        f"{_ORG}/service_accounts",
        {
            "create": lambda state, query, body: wif.create_service_account(state, body),
            "list": _page(_service_accounts),
            "get": lambda state, query, body, ident: wif.account_view(
                wif.service_account(state, ident)
            ),
            "update": lambda state, query, body, ident: wif.update_service_account(
                state, ident, body
            ),
            "archive": lambda state, query, body, ident: wif.archive_service_account(state, ident),
            "list_workspaces": lambda state, query, body, ident: _listing(
                wif.account_workspaces(state, ident)
            ),
            "add_workspace": lambda state, query, body, ident: wif.add_account_workspace(
                state, ident, body
            ),
            "remove_workspace": lambda state, query, body, ident, workspace: (
                wif.remove_account_workspace(state, ident, workspace)
            ),
        },
    ),
    *_resource_routes(
        f"{_ORG}/federation_issuers",
        {
            "create": lambda state, query, body: objects.create_issuer(state, body),
            "list": _page(lambda state, query: wif.federation_data(state)["issuers"]),
            "get": lambda state, query, body, ident: dict(objects.issuer(state, ident)),
            "update": lambda state, query, body, ident: objects.update_issuer(state, ident, body),
            "archive": lambda state, query, body, ident: objects.archive_issuer(state, ident),
        },
    ),
    *_resource_routes(
        f"{_ORG}/federation_rules",
        {
            "create": lambda state, query, body: objects.create_rule(state, body),
            "list": _page(_rules),
            "get": lambda state, query, body, ident: dict(objects.rule(state, ident)),
            "update": lambda state, query, body, ident: objects.update_rule(state, ident, body),
            "archive": lambda state, query, body, ident: objects.archive_rule(state, ident),
            "list_workspaces": lambda state, query, body, ident: _listing(
                objects.rule_workspaces(state, ident)
            ),
            "add_workspace": lambda state, query, body, ident: objects.rule_workspace(
                state, ident, body
            ),
            "remove_workspace": lambda state, query, body, ident, workspace: (
                objects.remove_rule_workspace(state, ident, workspace)
            ),
        },
    ),
]


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _federated_bearer(request: Request) -> bool:
    """A bearer that is federation's (its admin token or a token it minted): an API key sent as
    a bearer (as the SDK does) and other OAuth tokens are the key Admin API's to judge."""
    token = _bearer(request)
    if token is None:
        return False
    state = request.state
    return wif.is_admin_token(state, token) or wif.token_record(state, token) is not None


def _require_beta(request: Request) -> None:
    if wif.OAUTH_BETA not in request.betas():
        raise SandboxError(
            400,
            "invalid_request_error",
            f"OAuth bearer tokens need the header anthropic-beta: {wif.OAUTH_BETA}",
        )


def _org_admin(request: Request) -> None:
    """Only an ``org:admin`` OAuth bearer token passes; an Admin key gets 403."""
    token = _bearer(request)
    if token is None:
        presented = request.headers.get("x-api-key")
        if presented and secrets.compare_digest(
            presented.encode(), request.state.data["admin_key"].encode()
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
    _require_beta(request)
    if wif.is_admin_token(request.state, token):
        return
    record = wif.token_record(request.state, token) or request.state.oauth_token(token)
    if record is None:
        raise SandboxError(401, "authentication_error", "invalid bearer token")
    if record["scope"] != "org:admin":
        raise SandboxError(403, "permission_error", f"scope {record['scope']} cannot do this")


def _inference(request: Request) -> dict[str, Any]:
    token = _bearer(request)
    assert token is not None
    _require_beta(request)
    request.require_version()
    if request.headers.get("anthropic-workspace-id"):
        raise SandboxError(
            400,
            "invalid_request_error",
            "anthropic-workspace-id cannot be used with a federated token (bound at exchange)",
        )
    if wif.is_admin_token(request.state, token):
        return {"workspace_id": "default", "service_account_id": None, "scope": "org:admin"}
    record = wif.token_record(request.state, token)
    if record is None:
        raise SandboxError(401, "authentication_error", "invalid bearer token")
    if record["scope"] not in ("workspace:inference", "workspace:developer", "org:admin"):
        raise SandboxError(403, "permission_error", f"scope {record['scope']} cannot do this")
    return record


def _workspace_header(record: dict[str, Any]) -> dict[str, str]:
    workspace = record.get("workspace_id")
    return {"anthropic-workspace-id": workspace} if workspace and workspace != "default" else {}


def _models(request: Request) -> None:
    record = _inference(request)
    request.reply(200, inference.models_page(lifecycle=False), _workspace_header(record))


def _messages(request: Request) -> None:
    record = _inference(request)
    model, input_tokens, output_tokens = inference.message_tokens(request.body)
    record_usage(request.state, record, model, input_tokens, output_tokens)
    answer = inference.message(model, input_tokens, output_tokens)
    request.reply(200, answer, _workspace_header(record))


def record_usage(
    state: SandboxState,
    record: dict[str, Any],
    model: str,
    input_tokens: int,
    output_tokens: int,
    at: float | None = None,
) -> None:
    """Messages usage of a federated token: no API key, its service account instead."""
    workspace = record.get("workspace_id")
    event = {
        "api_key_id": None,
        "service_account_id": record.get("service_account_id"),
        "workspace_id": workspace if workspace and workspace != "default" else None,
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


def route(request: Request, method: str, path: str, query: Query) -> bool:
    """Answer the request if it is federation's; False to let the handler route it."""
    try:
        return _route(request, method, path, query)
    except SandboxError as exc:
        request.reply_error(exc.status, exc.error_type, exc.message)
        return True


def _route(request: Request, method: str, path: str, query: Query) -> bool:
    if path.startswith(oidc.PREFIX + "/") or path == oidc.PREFIX:
        issuer = oidc.issuer_url(request.server.server_address)
        sub = path[len(oidc.PREFIX) :]
        if method == "GET" and sub == "/.well-known/openid-configuration":
            request.reply(200, oidc.discovery(issuer))
        elif method == "GET" and sub == "/jwks":
            request.reply(200, oidc.public_jwks(request.state))
        elif method == "POST" and sub == "/token":
            request.reply(200, oidc.issue(request.state, issuer, _json(request)))
        else:
            raise SandboxError(404, "not_found_error", f"no route {method} {path}")
        return True
    if path == "/v1/oauth/token":
        if method != "POST":
            raise SandboxError(405, "invalid_request_error", f"{method} is not allowed on {path}")
        request.reply(200, exchange.exchange(request.state, _json(request)))
        return True
    if _federated_bearer(request) and not request.headers.get("x-api-key"):
        if method == "GET" and path == "/v1/models":
            _models(request)
            return True
        if method == "POST" and path == "/v1/messages":
            _messages(request)
            return True
        if method == "GET" and path == f"{_ORG}/usage_report/messages":
            _org_admin(request)  # the whole Admin API takes an org:admin token
            state = request.state
            request.reply(200, usage_report(query, state.usage_events(), state.now()))
            return True
    for verb, pattern, action in ADMIN_ROUTES:
        match = pattern.fullmatch(path)
        if match is None or verb != method:
            continue
        _org_admin(request)
        body = _json(request) if method == "POST" else None
        request.reply(200, action(request.state, query, body, *match.groups()))
        return True
    return False


def _json(request: Request) -> Any:
    if request.body is ...:
        raise SandboxError(400, "invalid_request_error", "body is not valid JSON")
    return request.body if request.body is not None else {}
