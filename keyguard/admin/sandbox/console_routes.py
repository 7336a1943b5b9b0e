"""The sandbox's Console, under ``/_sandbox/``: what a person does in Anthropic's Console (mint a
key, add a member, turn the activity feed on) plus the test controls (faults, usage events).
The admin key only."""

from __future__ import annotations

import re
from typing import Any

from keyguard.admin.parse import parse_time
from keyguard.admin.sandbox.faults import FAULT_KINDS
from keyguard.admin.sandbox.request import Query, Request, Route
from keyguard.admin.sandbox.wire import SandboxError
from keyguard.policy import parse_duration


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


def _body(request: Request) -> dict[str, Any]:
    request.admin(console=True)
    if not isinstance(request.body, dict):
        raise SandboxError(400, "invalid_request_error", "body must be a JSON object")
    return request.body


def health(request: Request, query: Query) -> None:
    request.reply(200, {"ok": True})


def list_keys(request: Request, query: Query) -> None:
    request.admin(console=True)
    state = request.state
    with state.lock:
        data = [
            {
                **state.view(record),
                "requests": record["requests"],
                "last_request_at": record["last_request_at"],
            }
            for record in state.data["keys"]
        ]
    request.reply(200, {"data": data})


def mint_key(request: Request, query: Query) -> None:
    body = _body(request)
    now = request.state.now()
    created = _when(body.get("created_at"), "created_at")
    age = _seconds(body.get("age"), "age")
    if created is None and age is not None:
        created = now - age
    expires = _when(body.get("expires_at"), "expires_at")
    expires_in = _seconds(body.get("expires_in"), "expires_in")
    if expires is None and expires_in is not None:
        expires = now + expires_in
    view, secret = request.state.mint_key(
        str(body.get("name") or ""),
        body.get("workspace_id"),
        created,
        expires,
        key_type=str(body.get("type") or "service_account"),
        scope=str(body.get("scope") or "workspace"),
        principal_id=body.get("principal_id"),
    )
    request.reply(201, {**view, "secret": secret.reveal()})


def add_user(request: Request, query: Query) -> None:
    body = _body(request)
    email = str(body.get("email") or "member@sandbox.invalid")
    request.reply(201, request.state.add_user(email, str(body.get("role") or "developer")))


def remove_user(request: Request, query: Query, user_id: str) -> None:
    request.admin(console=True)
    request.reply(200, request.state.remove_user(user_id))


def add_service_account(request: Request, query: Query) -> None:
    body = _body(request)
    name = str(body.get("name") or "service")
    role = str(body.get("organization_role") or "developer")
    request.reply(201, request.state.add_service_account(name, role))


def issue_oauth_token(request: Request, query: Query) -> None:
    body = _body(request)
    lifetime = _seconds(body.get("expires_in"), "expires_in") or 3600.0
    record, token = request.state.issue_oauth_token(
        str(body.get("scope") or "org:admin"), lifetime=lifetime
    )
    request.reply(201, {"access_token": token.reveal(), "scope": record["scope"]})


def set_compliance(request: Request, query: Query) -> None:
    body = _body(request)
    state = request.state
    with state.lock:
        state.data["compliance_enabled"] = bool(body.get("enabled", True))
        state.save()
    request.reply(200, {"enabled": state.data["compliance_enabled"]})


def record_activity(request: Request, query: Query) -> None:
    body = _body(request)
    given = body.get("actor")
    actor: dict[str, Any] = given if isinstance(given, dict) else {}
    fields = {k: v for k, v in body.items() if k not in ("type", "actor", "at")}
    event = request.state.record_activity(
        str(body.get("type") or "platform_file_created"),
        actor,
        _when(body.get("at"), "at"),
        **fields,
    )
    request.reply(201, event or {"recorded": False})


def add_workspace(request: Request, query: Query) -> None:
    body = _body(request)
    tags = body.get("tags") if isinstance(body.get("tags"), dict) else {}
    request.reply(201, request.state.add_workspace(str(body.get("name") or ""), tags))


def get_faults(request: Request, query: Query) -> None:
    request.admin(console=True)
    request.reply(200, request.state.faults.describe())


def set_faults(request: Request, query: Query) -> None:
    body = _body(request)
    kinds = body.get("kinds", ["429"])
    if not isinstance(kinds, list) or not all(k in FAULT_KINDS for k in kinds):
        raise SandboxError(
            400, "invalid_request_error", f"kinds: a list of {', '.join(FAULT_KINDS)}"
        )
    with request.state.lock:
        faults = request.state.faults
        faults.rate = float(body.get("rate", 1.0))
        faults.kinds = tuple(kinds)
        faults.retry_after = float(body.get("retry_after", 0))
        faults.latency = float(body.get("latency", 0.0))
        count = body.get("count")
        faults.count = int(count) if count is not None else None
        retry = body.get("should_retry")
        faults.should_retry = None if retry is None else str(bool(retry)).lower()
    request.reply(200, faults.describe())


def clear_faults(request: Request, query: Query) -> None:
    request.admin(console=True)
    with request.state.lock:
        faults = request.state.faults
        faults.rate = 0.0
        faults.kinds = ()
        faults.count = None
    request.reply(200, faults.describe())


def record_usage(request: Request, query: Query) -> None:
    body = _body(request)
    event = request.state.record_usage(
        str(body.get("api_key_id") or ""),
        at=_when(body.get("at"), "at"),
        model=str(body.get("model") or "claude-sonnet-4-5"),
        input_tokens=int(body.get("input_tokens", 0)),
        output_tokens=int(body.get("output_tokens", 0)),
        cache_read_input_tokens=int(body.get("cache_read_input_tokens", 0)),
        cache_creation_input_tokens=int(body.get("cache_creation_input_tokens", 0)),
    )
    request.reply(201, event)


ROUTES: list[Route] = [
    ("GET", re.compile(r"/_sandbox/health"), health),
    ("GET", re.compile(r"/_sandbox/keys"), list_keys),
    ("POST", re.compile(r"/_sandbox/keys"), mint_key),
    ("POST", re.compile(r"/_sandbox/workspaces"), add_workspace),
    ("POST", re.compile(r"/_sandbox/users"), add_user),
    ("POST", re.compile(r"/_sandbox/users/([^/]+)/remove"), remove_user),
    ("POST", re.compile(r"/_sandbox/service_accounts"), add_service_account),
    ("POST", re.compile(r"/_sandbox/oauth_tokens"), issue_oauth_token),
    ("POST", re.compile(r"/_sandbox/compliance"), set_compliance),
    ("POST", re.compile(r"/_sandbox/activities"), record_activity),
    ("GET", re.compile(r"/_sandbox/faults"), get_faults),
    ("POST", re.compile(r"/_sandbox/faults"), set_faults),
    ("DELETE", re.compile(r"/_sandbox/faults"), clear_faults),
    ("POST", re.compile(r"/_sandbox/usage"), record_usage),
]
