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

from keyguard.admin.sandbox.state import SandboxError, SandboxState, iso, new_id
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


def _bad(message: str) -> SandboxError:
    return SandboxError(400, "invalid_request_error", message)


def _not_found(what: str, object_id: str) -> SandboxError:
    return SandboxError(404, "not_found_error", f"{what} {object_id} not found")


def fed(state: SandboxState) -> dict[str, Any]:
    """The federation part of the sandbox's data (created on first use)."""
    with state.lock:
        data = state.data.get("federation")
        if data is None:
            data = state.data["federation"] = {
                "admin_token": new_oauth_token().reveal(),
                "service_accounts": [],
                "issuers": [],
                "rules": [],
                "tokens": {},
                "jtis": {},
            }
            state.save()
        return data  # type: ignore[no-any-return]


def admin_token(state: SandboxState) -> Secret:
    """The ``org:admin`` OAuth token the sandbox accepts on its whole Admin API."""
    return Secret(fed(state)["admin_token"])


# -- paging ----------------------------------------------------------------------------------


def _page(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    raw_limit = (query.get("limit") or ["20"])[-1]
    try:
        limit = int(raw_limit)
    except ValueError:
        raise _bad("limit: must be an integer") from None
    if not 1 <= limit <= 100:
        raise _bad("limit: must be between 1 and 100")
    if (query.get("include_archived") or ["false"])[-1].lower() != "true":
        items = [i for i in items if i.get("archived_at") is None]
    token = (query.get("page") or [""])[-1]
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.removeprefix("page_").encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise _bad("page: not a cursor this list gave out") from None
    chosen = items[start : start + limit]
    more = start + limit < len(items)
    nxt = "page_" + base64.urlsafe_b64encode(str(start + limit).encode()).decode()
    return {"data": [dict(i) for i in chosen], "has_more": more, "next_page": nxt if more else None}


def _find(items: list[dict[str, Any]], object_id: str, what: str) -> dict[str, Any]:
    for item in items:
        if item["id"] == object_id:
            return item
    raise _not_found(what, object_id)


def _live(item: dict[str, Any], what: str) -> None:
    if item.get("archived_at") is not None:
        raise _bad(f"{what} {item['id']} is archived and cannot be updated")


def _obj(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    return body


def _name(body: dict[str, Any], items: list[dict[str, Any]], what: str) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > 64:
        raise _bad("name: lowercase letters, digits and '-' only (^[a-z0-9-]+$)")
    if any(i["name"] == name for i in items):
        raise SandboxError(409, "conflict_error", f"a {what} named {name!r} already exists")
    return name


def _stamp(state: SandboxState, item: dict[str, Any], *, created: bool = False) -> None:
    now = iso(state.now())
    if created:
        item["created_at"] = now
        item["created_by_actor_id"] = state.data["user_id"]
    item["updated_at"] = now
    item["updated_by_actor_id"] = state.data["user_id"]


# -- service accounts ------------------------------------------------------------------------


def create_service_account(state: SandboxState, body: Any) -> dict[str, Any]:
    body = _obj(body)
    with state.lock:
        sas = fed(state)["service_accounts"]
        name = _name(body, sas, "service account")
        role = body.get("organization_role", "developer")
        if role not in ("developer", "admin"):
            raise _bad("organization_role: developer or admin")
        sa: dict[str, Any] = {
            "type": "service_account",
            "id": new_id("svac_"),
            "name": name,
            "description": body.get("description"),
            "organization_role": role,
            "archived_at": None,
            "archived_by_actor_id": None,
            "workspaces": [],
        }
        _stamp(state, sa, created=True)
        sas.append(sa)
        state.save()
        return _sa_view(sa)


def _sa_view(sa: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sa.items() if k != "workspaces"}


def service_account(state: SandboxState, sa_id: str) -> dict[str, Any]:
    return _find(fed(state)["service_accounts"], sa_id, "service account")


def update_service_account(state: SandboxState, sa_id: str, body: Any) -> dict[str, Any]:
    body = _obj(body)
    with state.lock:
        sa = service_account(state, sa_id)
        _live(sa, "service account")
        if "name" in body and body["name"] != sa["name"]:
            raise _bad("name: cannot be changed")
        if "description" in body:
            sa["description"] = body["description"]
        _stamp(state, sa)
        state.save()
        return _sa_view(sa)


def archive_service_account(state: SandboxState, sa_id: str) -> dict[str, Any]:
    with state.lock:
        sa = service_account(state, sa_id)
        if sa.get("archived_at") is None:
            live = [
                r["id"]
                for r in fed(state)["rules"]
                if r.get("archived_at") is None and r["target"]["service_account_id"] == sa_id
            ]
            if live:
                raise _bad(f"service account {sa_id} is the target of live rule(s) {live[0]}")
            sa["archived_at"] = iso(state.now())
            sa["archived_by_actor_id"] = state.data["user_id"]
            state.save()
        return _sa_view(sa)


def _membership(sa: dict[str, Any], ws_id: str, role: str, implicit: bool) -> dict[str, Any]:
    return {
        "type": "service_account_workspace_member",
        "service_account_id": sa["id"],
        "workspace_id": ws_id,
        "workspace_role": role,
        "implicit": implicit,
    }


def sa_workspaces(state: SandboxState, sa_id: str) -> list[dict[str, Any]]:
    with state.lock:
        sa = service_account(state, sa_id)
        default = _membership(sa, "default", "workspace_user", True)
        return [default] + [_membership(sa, w, r, False) for w, r in sa["workspaces"]]


def add_sa_workspace(state: SandboxState, sa_id: str, body: Any) -> dict[str, Any]:
    body = _obj(body)
    ws_id, role = body.get("workspace_id"), body.get("workspace_role", "workspace_developer")
    if not isinstance(ws_id, str) or role not in WORKSPACE_ROLES:
        raise _bad(f"workspace_id and workspace_role ({', '.join(WORKSPACE_ROLES)}) required")
    with state.lock:
        sa = service_account(state, sa_id)
        _live(sa, "service account")
        state.workspace(ws_id)
        if any(w == ws_id for w, _ in sa["workspaces"]):
            raise SandboxError(409, "conflict_error", f"{sa_id} is already in {ws_id}")
        sa["workspaces"].append([ws_id, role])
        state.save()
        return _membership(sa, ws_id, role, False)


def remove_sa_workspace(state: SandboxState, sa_id: str, ws_id: str) -> dict[str, Any]:
    with state.lock:
        sa = service_account(state, sa_id)
        if ws_id == "default":
            raise _bad("the Default Workspace membership is implicit and cannot be removed")
        kept = [m for m in sa["workspaces"] if m[0] != ws_id]
        if len(kept) == len(sa["workspaces"]):
            raise _not_found("workspace membership", ws_id)
        sa["workspaces"] = kept
        state.save()
        return {"type": "service_account_workspace_member_deleted", "workspace_id": ws_id}


def is_member(sa: dict[str, Any], ws_id: str) -> bool:
    return ws_id == "default" or any(w == ws_id for w, _ in sa["workspaces"])


# -- issuers ---------------------------------------------------------------------------------


def _jwks(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": "discovery"}
    if not isinstance(value, dict):
        raise _bad("jwks: an object with type discovery, explicit_url or inline")
    kind = value.get("type")
    if kind == "discovery":
        return {"type": "discovery", "discovery_base": value.get("discovery_base")}
    if kind == "explicit_url":
        url = value.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise _bad("jwks.url: an http(s) URL")
        return {"type": "explicit_url", "url": url}
    if kind == "inline":
        keys = value.get("keys")
        if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
            raise _bad("jwks.keys: a non-empty list of JWK objects")
        return {"type": "inline", "keys": keys}
    raise _bad("jwks.type: discovery, explicit_url or inline")


def _lifetime(value: Any, name: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"{name}: an integer from {low} to {high}")
    return value


def create_issuer(state: SandboxState, body: Any) -> dict[str, Any]:
    body = _obj(body)
    url = body.get("issuer_url")
    if not isinstance(url, str) or not url:
        raise _bad("issuer_url: Field required")
    with state.lock:
        issuers = fed(state)["issuers"]
        issuer: dict[str, Any] = {
            "type": "federation_issuer",
            "id": new_id("fdis_"),
            "name": _name(body, issuers, "federation issuer"),
            "issuer_url": url,
            "jwks": _jwks(body.get("jwks")),
            "check_jti": body.get("check_jti") is not False,
            "max_jwt_lifetime_seconds": _lifetime(
                body.get("max_jwt_lifetime_seconds"), "max_jwt_lifetime_seconds", 1, 176400, 3600
            ),
            "poll_status": None,
            "jwks_polling_disabled_at": None,
            "archived_at": None,
            "archived_by_actor_id": None,
        }
        _stamp(state, issuer, created=True)
        issuers.append(issuer)
        state.save()
        return dict(issuer)


def issuer(state: SandboxState, issuer_id: str) -> dict[str, Any]:
    return _find(fed(state)["issuers"], issuer_id, "federation issuer")


def update_issuer(state: SandboxState, issuer_id: str, body: Any) -> dict[str, Any]:
    body = _obj(body)
    with state.lock:
        item = issuer(state, issuer_id)
        _live(item, "federation issuer")
        if "issuer_url" in body:
            if not isinstance(body["issuer_url"], str) or not body["issuer_url"]:
                raise _bad("issuer_url: a non-empty string")
            item["issuer_url"] = body["issuer_url"]
        if "jwks" in body:
            item["jwks"] = _jwks(body["jwks"])
        if "check_jti" in body:
            item["check_jti"] = body["check_jti"] is not False
        if "max_jwt_lifetime_seconds" in body:
            item["max_jwt_lifetime_seconds"] = _lifetime(
                body["max_jwt_lifetime_seconds"], "max_jwt_lifetime_seconds", 1, 176400, 3600
            )
        if body.get("jwks_polling_disabled") is False:
            item["jwks_polling_disabled_at"] = None
        _stamp(state, item)
        state.save()
        return dict(item)


def archive_issuer(state: SandboxState, issuer_id: str) -> dict[str, Any]:
    with state.lock:
        item = issuer(state, issuer_id)
        if item.get("archived_at") is None:
            live = [
                r["id"]
                for r in fed(state)["rules"]
                if r.get("archived_at") is None and r["issuer_id"] == issuer_id
            ]
            if live:
                raise _bad(f"federation issuer {issuer_id} backs live rule {live[0]}")
            item["archived_at"] = iso(state.now())
            item["archived_by_actor_id"] = state.data["user_id"]
            state.save()
        return dict(item)


# -- rules -----------------------------------------------------------------------------------


def _match(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad("match: an object with subject_prefix, audience, claims, condition")
    if value.get("condition") is not None:
        raise _bad("match.condition: CEL conditions are not supported by the keyguard sandbox")
    prefix, audience, claims = (
        value.get("subject_prefix"),
        value.get("audience"),
        value.get("claims"),
    )
    if prefix is not None and not isinstance(prefix, str):
        raise _bad("match.subject_prefix: a string")
    if audience is not None and not isinstance(audience, str):
        raise _bad("match.audience: a string")
    if claims is not None and (
        not isinstance(claims, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in claims.items())
    ):
        raise _bad("match.claims: an object of string claims")
    if not (prefix and prefix.strip("*")) and not claims:
        raise _bad("match: subject_prefix (not only '*') or claims is required")
    return {"subject_prefix": prefix, "audience": audience, "claims": claims, "condition": None}


def create_rule(state: SandboxState, body: Any, *, console: bool = False) -> dict[str, Any]:
    """A rule; ``console`` allows what only a Console session may make (``org:admin`` scope)."""
    body = _obj(body)
    scope = body.get("oauth_scope")
    allowed = SCOPES if console else WORKSPACE_SCOPES
    if scope not in allowed:
        raise _bad(f"oauth_scope: one of {', '.join(allowed)} (org:admin needs the Console)")
    target = body.get("target")
    if not isinstance(target, dict) or target.get("type") != "service_account":
        raise _bad("target: {type: service_account, service_account_id}")
    all_ws = body.get("applies_to_all_workspaces") is True
    ws_id = body.get("workspace_id")
    if not all_ws and not isinstance(ws_id, str):
        raise _bad("workspace_id: required unless applies_to_all_workspaces is true")
    with state.lock:
        f = fed(state)
        name = _name(body, f["rules"], "federation rule")
        iss = issuer(state, str(body.get("issuer_id")))
        _live(iss, "federation issuer")
        sa = service_account(state, str(target.get("service_account_id")))
        _live(sa, "service account")
        if isinstance(ws_id, str) and ws_id != "default":
            state.workspace(ws_id)
        rule: dict[str, Any] = {
            "type": "federation_rule",
            "id": new_id("fdrl_"),
            "name": name,
            "description": body.get("description"),
            "issuer_id": iss["id"],
            "issuer_name": iss["name"],
            "match": _match(body.get("match")),
            "target": {"type": "service_account", "service_account_id": sa["id"]},
            "oauth_scope": scope,
            "workspace_ids": [ws_id] if isinstance(ws_id, str) else [],
            "applies_to_all_workspaces": all_ws,
            "token_lifetime_seconds": _lifetime(
                body.get("token_lifetime_seconds"), "token_lifetime_seconds", 60, 86400, 3600
            ),
            "archived_at": None,
            "archived_by_actor_id": None,
        }
        _stamp(state, rule, created=True)
        f["rules"].append(rule)
        state.save()
        return dict(rule)


def rule(state: SandboxState, rule_id: str) -> dict[str, Any]:
    return _find(fed(state)["rules"], rule_id, "federation rule")


def update_rule(state: SandboxState, rule_id: str, body: Any) -> dict[str, Any]:
    body = _obj(body)
    with state.lock:
        item = rule(state, rule_id)
        _live(item, "federation rule")
        if "issuer_id" in body and body["issuer_id"] != item["issuer_id"]:
            raise _bad("issuer_id: cannot be changed")
        if "match" in body:
            item["match"] = _match(body["match"])
        if "oauth_scope" in body:
            if body["oauth_scope"] not in WORKSPACE_SCOPES:
                raise _bad(f"oauth_scope: one of {', '.join(WORKSPACE_SCOPES)}")
            item["oauth_scope"] = body["oauth_scope"]
        if "token_lifetime_seconds" in body:
            item["token_lifetime_seconds"] = _lifetime(
                body["token_lifetime_seconds"], "token_lifetime_seconds", 60, 86400, 3600
            )
        if "target" in body:
            target = body["target"]
            sa_id = target.get("service_account_id") if isinstance(target, dict) else None
            sa = service_account(state, str(sa_id))
            _live(sa, "service account")
            item["target"] = {"type": "service_account", "service_account_id": sa["id"]}
        if "applies_to_all_workspaces" in body:
            item["applies_to_all_workspaces"] = body["applies_to_all_workspaces"] is True
        for key in ("name", "description"):
            if key in body:
                item[key] = body[key]
        _stamp(state, item)
        state.save()
        return dict(item)


def archive_rule(state: SandboxState, rule_id: str) -> dict[str, Any]:
    with state.lock:
        item = rule(state, rule_id)
        if item.get("archived_at") is None:
            item["archived_at"] = iso(state.now())
            item["archived_by_actor_id"] = state.data["user_id"]
            state.save()
        return dict(item)


def rule_workspace(state: SandboxState, rule_id: str, body: Any) -> dict[str, Any]:
    ws_id = _obj(body).get("workspace_id")
    if not isinstance(ws_id, str):
        raise _bad("workspace_id: Field required")
    with state.lock:
        item = rule(state, rule_id)
        _live(item, "federation rule")
        if ws_id != "default":
            state.workspace(ws_id)
        if ws_id not in item["workspace_ids"]:
            item["workspace_ids"].append(ws_id)
            state.save()
        return {"type": "federation_rule_workspace", "rule_id": rule_id, "workspace_id": ws_id}


def remove_rule_workspace(state: SandboxState, rule_id: str, ws_id: str) -> dict[str, Any]:
    with state.lock:
        item = rule(state, rule_id)
        if ws_id not in item["workspace_ids"]:
            raise _not_found("federation rule workspace", ws_id)
        item["workspace_ids"].remove(ws_id)
        state.save()
        return {"type": "federation_rule_workspace_deleted", "workspace_id": ws_id}


def rule_workspaces(state: SandboxState, rule_id: str) -> list[dict[str, Any]]:
    item = rule(state, rule_id)
    return [
        {"type": "federation_rule_workspace", "rule_id": rule_id, "workspace_id": w}
        for w in item["workspace_ids"]
    ]


# -- minted tokens ---------------------------------------------------------------------------


def mint_token(
    state: SandboxState, *, sa_id: str, rule_id: str, workspace_id: str, scope: str, lifetime: int
) -> Secret:
    token = new_oauth_token()
    with state.lock:
        fed(state)["tokens"][token.fingerprint] = {
            "service_account_id": sa_id,
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
        rec = fed(state)["tokens"].get(fingerprint(presented))
        if rec is None or rec["expires_at"] <= state.now():
            return None
        return dict(rec)


def is_admin_token(state: SandboxState, presented: str) -> bool:
    return secrets.compare_digest(presented.encode(), fed(state)["admin_token"].encode())
