"""The sandbox's Workload Identity Federation objects: service accounts, issuers, rules.

Served at Anthropic's Admin API paths, and, as there, only to an ``org:admin`` OAuth bearer
token (``authorization: Bearer sk-ant-oat01-…`` + ``anthropic-beta: oauth-2025-04-20``): an
Admin key is refused with 403. Archiving is soft; archived objects cannot be updated; an issuer
or service account a live rule references cannot be archived. CEL ``condition`` is refused as
unsupported (the sandbox does not evaluate CEL).
"""

from __future__ import annotations

import base64
import re
import secrets
import string
from typing import Any

from keyguard.admin.sandbox.state import SandboxState
from keyguard.admin.sandbox.wire import SandboxError, iso, new_id
from keyguard.keys import Secret, fingerprint

OAUTH_BETA = "oauth-2025-04-20"
FEDERATION_BETA = "oidc-federation-2026-04-01"
WORKSPACE_SCOPES = ("workspace:developer", "workspace:inference", "workspace:manage_tunnels")
SCOPES = (*WORKSPACE_SCOPES, "org:admin")
WORKSPACE_ROLES = (
    "workspace_admin",
    "workspace_developer",
    "workspace_restricted_developer",
    "workspace_user",
)
_NAME_RE = re.compile(r"^[a-z0-9-]+$")
_ALPHABET = string.ascii_letters + string.digits + "_-"


def new_oauth_token() -> Secret:
    """A random ``sk-ant-oat01-`` token (the sandbox's own; not an Anthropic token)."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(93))
    return Secret(f"sk-ant-oat01-{body}AA")


def bad(message: str) -> SandboxError:
    return SandboxError(400, "invalid_request_error", message)


def not_found(what: str, object_id: str) -> SandboxError:
    return SandboxError(404, "not_found_error", f"{what} {object_id} not found")


def federation_data(state: SandboxState) -> dict[str, Any]:
    """The federation part of the sandbox's data (created on first use)."""
    with state.lock:
        data = state.data.get("federation")
        if data is None:
            # One org:admin token for the whole sandbox: issued through the state's own OAuth
            # tokens, so the key Admin API (state.oauth_token) accepts it too.
            _, token = state.issue_oauth_token("org:admin", lifetime=10 * 365 * 86400.0)
            data = state.data["federation"] = {
                "admin_token": token.reveal(),
                "service_accounts": [],
                "issuers": [],
                "rules": [],
                "tokens": {},
                "jtis": {},
            }
            state.save()
        return data


def admin_token(state: SandboxState) -> Secret:
    """The ``org:admin`` OAuth token the sandbox accepts on its whole Admin API."""
    return Secret(federation_data(state)["admin_token"])


# -- paging ----------------------------------------------------------------------------------


def page_of(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    raw_limit = (query.get("limit") or ["20"])[-1]
    try:
        limit = int(raw_limit)
    except ValueError:
        raise bad("limit: must be an integer") from None
    if not 1 <= limit <= 100:
        raise bad("limit: must be between 1 and 100")
    if (query.get("include_archived") or ["false"])[-1].lower() != "true":
        items = [i for i in items if i.get("archived_at") is None]
    token = (query.get("page") or [""])[-1]
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.removeprefix("page_").encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise bad("page: not a cursor this list gave out") from None
    chosen = items[start : start + limit]
    more = start + limit < len(items)
    next_page = "page_" + base64.urlsafe_b64encode(str(start + limit).encode()).decode()
    return {
        "data": [dict(item) for item in chosen],
        "has_more": more,
        "next_page": next_page if more else None,
    }


def find(items: list[dict[str, Any]], object_id: str, what: str) -> dict[str, Any]:
    for item in items:
        if item["id"] == object_id:
            return item
    raise not_found(what, object_id)


def ensure_live(item: dict[str, Any], what: str) -> None:
    if item.get("archived_at") is not None:
        raise bad(f"{what} {item['id']} is archived and cannot be updated")


def as_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad("body must be a JSON object")
    return body


def unique_name(body: dict[str, Any], items: list[dict[str, Any]], what: str) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > 64:
        raise bad("name: lowercase letters, digits and '-' only (^[a-z0-9-]+$)")
    if any(i["name"] == name for i in items):
        raise SandboxError(409, "conflict_error", f"a {what} named {name!r} already exists")
    return name


def stamp(state: SandboxState, item: dict[str, Any], *, created: bool = False) -> None:
    now = iso(state.now())
    if created:
        item["created_at"] = now
        item["created_by_actor_id"] = state.data["user_id"]
    item["updated_at"] = now
    item["updated_by_actor_id"] = state.data["user_id"]


# -- service accounts ------------------------------------------------------------------------


def create_service_account(state: SandboxState, body: Any) -> dict[str, Any]:
    body = as_object(body)
    with state.lock:
        accounts = federation_data(state)["service_accounts"]
        name = unique_name(body, accounts, "service account")
        role = body.get("organization_role", "developer")
        if role not in ("developer", "admin"):
            raise bad("organization_role: developer or admin")
        account: dict[str, Any] = {
            "type": "service_account",
            "id": new_id("svac_"),
            "name": name,
            "description": body.get("description"),
            "organization_role": role,
            "archived_at": None,
            "archived_by_actor_id": None,
            "workspaces": [],
        }
        stamp(state, account, created=True)
        accounts.append(account)
        state.save()
        return account_view(account)


def account_view(account: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in account.items() if k != "workspaces"}


def service_account(state: SandboxState, account_id: str) -> dict[str, Any]:
    return find(federation_data(state)["service_accounts"], account_id, "service account")


def update_service_account(state: SandboxState, account_id: str, body: Any) -> dict[str, Any]:
    body = as_object(body)
    with state.lock:
        account = service_account(state, account_id)
        ensure_live(account, "service account")
        if "name" in body and body["name"] != account["name"]:
            raise bad("name: cannot be changed")
        if "description" in body:
            account["description"] = body["description"]
        stamp(state, account)
        state.save()
        return account_view(account)


def archive_service_account(state: SandboxState, account_id: str) -> dict[str, Any]:
    with state.lock:
        account = service_account(state, account_id)
        if account.get("archived_at") is None:
            live = [
                r["id"]
                for r in federation_data(state)["rules"]
                if r.get("archived_at") is None and r["target"]["service_account_id"] == account_id
            ]
            if live:
                raise bad(f"service account {account_id} is the target of live rule(s) {live[0]}")
            account["archived_at"] = iso(state.now())
            account["archived_by_actor_id"] = state.data["user_id"]
            state.save()
        return account_view(account)


def _membership(
    account: dict[str, Any], workspace_id: str, role: str, implicit: bool
) -> dict[str, Any]:
    return {
        "type": "service_account_workspace_member",
        "service_account_id": account["id"],
        "workspace_id": workspace_id,
        "workspace_role": role,
        "implicit": implicit,
    }


def account_workspaces(state: SandboxState, account_id: str) -> list[dict[str, Any]]:
    with state.lock:
        account = service_account(state, account_id)
        default = _membership(account, "default", "workspace_user", True)
        return [default] + [_membership(account, w, r, False) for w, r in account["workspaces"]]


def add_account_workspace(state: SandboxState, account_id: str, body: Any) -> dict[str, Any]:
    body = as_object(body)
    workspace_id, role = body.get("workspace_id"), body.get("workspace_role", "workspace_developer")
    if not isinstance(workspace_id, str) or role not in WORKSPACE_ROLES:
        raise bad(f"workspace_id and workspace_role ({', '.join(WORKSPACE_ROLES)}) required")
    with state.lock:
        account = service_account(state, account_id)
        ensure_live(account, "service account")
        state.workspace(workspace_id)
        if any(w == workspace_id for w, _ in account["workspaces"]):
            raise SandboxError(409, "conflict_error", f"{account_id} is already in {workspace_id}")
        account["workspaces"].append([workspace_id, role])
        state.save()
        return _membership(account, workspace_id, role, False)


def remove_account_workspace(
    state: SandboxState, account_id: str, workspace_id: str
) -> dict[str, Any]:
    with state.lock:
        account = service_account(state, account_id)
        if workspace_id == "default":
            raise bad("the Default Workspace membership is implicit and cannot be removed")
        kept = [m for m in account["workspaces"] if m[0] != workspace_id]
        if len(kept) == len(account["workspaces"]):
            raise not_found("workspace membership", workspace_id)
        account["workspaces"] = kept
        state.save()
        return {"type": "service_account_workspace_member_deleted", "workspace_id": workspace_id}


def is_member(account: dict[str, Any], workspace_id: str) -> bool:
    return workspace_id == "default" or any(w == workspace_id for w, _ in account["workspaces"])


# -- minted tokens ---------------------------------------------------------------------------


def mint_token(
    state: SandboxState,
    *,
    account_id: str,
    rule_id: str,
    workspace_id: str,
    scope: str,
    lifetime: int,
) -> Secret:
    token = new_oauth_token()
    with state.lock:
        federation_data(state)["tokens"][token.fingerprint] = {
            "service_account_id": account_id,
            "rule_id": rule_id,
            "workspace_id": workspace_id,
            "scope": scope,
            "issued_at": state.now(),
            "expires_at": state.now() + lifetime,
        }
        state.save()
    return token


def token_record(state: SandboxState, presented: str) -> dict[str, Any] | None:
    """The live minted token ``presented`` is, or None (unknown or expired)."""
    with state.lock:
        record = federation_data(state)["tokens"].get(fingerprint(presented))
        if record is None or record["expires_at"] <= state.now():
            return None
        return dict(record)


def is_admin_token(state: SandboxState, presented: str) -> bool:
    return secrets.compare_digest(
        presented.encode(), federation_data(state)["admin_token"].encode()
    )
