"""The sandbox's answers to Anthropic's documented routes for API keys and Admin keys."""

from __future__ import annotations

import re

from keyguard.admin.sandbox import inference
from keyguard.admin.sandbox.compliance import list_activities
from keyguard.admin.sandbox.request import Query, Request, Route
from keyguard.admin.sandbox.usage import cost_report, usage_report
from keyguard.admin.sandbox.wire import SandboxError
from keyguard.models import KEY_STATUSES


def limit_of(query: Query) -> int:
    """The ``limit`` parameter: 20 when absent, else 1 to 1000."""
    raw = query.get("limit", ["20"])[-1]
    try:
        value = int(raw)
    except ValueError:
        raise SandboxError(400, "invalid_request_error", "limit: must be an integer") from None
    if not 1 <= value <= 1000:
        raise SandboxError(400, "invalid_request_error", "limit: must be between 1 and 1000")
    return value


def one(query: Query, name: str) -> str | None:
    """The last value of parameter ``name``, or None."""
    values = query.get(name)
    return values[-1] if values else None


def models(request: Request, query: Query) -> None:
    _record, workspace = request.api_key()
    # The real id of the workspace the call ran in, the Default Workspace's included.
    request.reply(200, inference.models_page(lifecycle=True), {"anthropic-workspace-id": workspace})


def messages(request: Request, query: Query) -> None:
    record, workspace = request.api_key()
    model, input_tokens, output_tokens = inference.message_tokens(request.body)
    default = request.state.data["default_workspace_id"]
    request.state.record_usage(
        record["id"],
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        workspace_id=None if workspace == default else workspace,
    )
    answer = inference.message(model, input_tokens, output_tokens)
    request.reply(200, answer, {"anthropic-workspace-id": workspace})


def me(request: Request, query: Query) -> None:
    request.admin()
    request.reply(200, request.state.data["organization"])


def list_keys(request: Request, query: Query) -> None:
    request.admin()
    status = one(query, "status")
    if status is not None and status not in KEY_STATUSES:
        raise SandboxError(400, "invalid_request_error", f"status: {status!r} is not valid")
    filters = {
        "status": status,
        "workspace_id": one(query, "workspace_id"),
        "created_by_user_id": one(query, "created_by_user_id"),
    }
    result = request.state.list_keys(
        filters, one(query, "after_id"), one(query, "before_id"), limit_of(query)
    )
    request.reply(200, result)


def get_key(request: Request, query: Query, key_id: str) -> None:
    request.admin()
    with request.state.lock:
        request.reply(200, request.state.view(request.state.key(key_id)))


def update_key(request: Request, query: Query, key_id: str) -> None:
    actor = request.admin()
    request.reply(200, request.state.update_key(key_id, request.body, actor))


def list_workspaces(request: Request, query: Query) -> None:
    request.admin()
    include = (one(query, "include_archived") or "false").lower() == "true"
    result = request.state.list_workspaces(
        include, one(query, "after_id"), one(query, "before_id"), limit_of(query)
    )
    request.reply(200, result)


def get_workspace(request: Request, query: Query, workspace_id: str) -> None:
    request.admin()
    request.reply(200, request.state.workspace(workspace_id))


def usage(request: Request, query: Query) -> None:
    request.admin()
    state = request.state
    request.reply(200, usage_report(query, state.usage_events(), state.now()))


def cost(request: Request, query: Query) -> None:
    request.admin()
    state = request.state
    request.reply(200, cost_report(query, state.usage_events(), state.now()))


def activities(request: Request, query: Query) -> None:
    actor = request.admin()
    if actor["type"] != "admin_api_key_actor" or not request.state.compliance_readable():
        raise SandboxError(
            403,
            "permission_error",
            "The Compliance API is not enabled for this organization, or this key lacks "
            "read:compliance_activities",
        )
    request.reply(200, list_activities(query, request.state.activities()))


_ORG = "/v1/organizations"
ROUTES: list[Route] = [
    ("GET", re.compile(r"/v1/models"), models),
    ("POST", re.compile(r"/v1/messages"), messages),
    ("GET", re.compile(rf"{_ORG}/me"), me),
    ("GET", re.compile(rf"{_ORG}/api_keys"), list_keys),
    ("GET", re.compile(rf"{_ORG}/api_keys/([^/]+)"), get_key),
    ("POST", re.compile(rf"{_ORG}/api_keys/([^/]+)"), update_key),
    ("GET", re.compile(rf"{_ORG}/workspaces"), list_workspaces),
    ("GET", re.compile(rf"{_ORG}/workspaces/([^/]+)"), get_workspace),
    ("GET", re.compile(rf"{_ORG}/usage_report/messages"), usage),
    ("GET", re.compile(rf"{_ORG}/cost_report"), cost),
    ("GET", re.compile(r"/v1/compliance/activities"), activities),
]
