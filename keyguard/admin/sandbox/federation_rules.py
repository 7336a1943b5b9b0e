"""The sandbox's federation issuers and rules (the Admin API's ``federation_issuers`` and
``federation_rules``), kept in the federation part of the sandbox's data."""

from __future__ import annotations

from typing import Any

from keyguard.admin.sandbox.federation import (
    SCOPES,
    WORKSPACE_SCOPES,
    as_object,
    bad,
    ensure_live,
    federation_data,
    find,
    not_found,
    service_account,
    stamp,
    unique_name,
)
from keyguard.admin.sandbox.state import SandboxState
from keyguard.admin.sandbox.wire import iso, new_id

# -- issuers ---------------------------------------------------------------------------------


def _jwks(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": "discovery"}
    if not isinstance(value, dict):
        raise bad("jwks: an object with type discovery, explicit_url or inline")
    kind = value.get("type")
    if kind == "discovery":
        return {"type": "discovery", "discovery_base": value.get("discovery_base")}
    if kind == "explicit_url":
        url = value.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise bad("jwks.url: an http(s) URL")
        return {"type": "explicit_url", "url": url}
    if kind == "inline":
        keys = value.get("keys")
        if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
            raise bad("jwks.keys: a non-empty list of JWK objects")
        return {"type": "inline", "keys": keys}
    raise bad("jwks.type: discovery, explicit_url or inline")


def _lifetime(value: Any, name: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad(f"{name}: an integer from {low} to {high}")
    return value


def create_issuer(state: SandboxState, body: Any) -> dict[str, Any]:
    body = as_object(body)
    url = body.get("issuer_url")
    if not isinstance(url, str) or not url:
        raise bad("issuer_url: Field required")
    with state.lock:
        issuers = federation_data(state)["issuers"]
        issuer: dict[str, Any] = {
            "type": "federation_issuer",
            "id": new_id("fdis_"),
            "name": unique_name(body, issuers, "federation issuer"),
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
        stamp(state, issuer, created=True)
        issuers.append(issuer)
        state.save()
        return dict(issuer)


def issuer(state: SandboxState, issuer_id: str) -> dict[str, Any]:
    return find(federation_data(state)["issuers"], issuer_id, "federation issuer")


def update_issuer(state: SandboxState, issuer_id: str, body: Any) -> dict[str, Any]:
    body = as_object(body)
    with state.lock:
        item = issuer(state, issuer_id)
        ensure_live(item, "federation issuer")
        if "issuer_url" in body:
            if not isinstance(body["issuer_url"], str) or not body["issuer_url"]:
                raise bad("issuer_url: a non-empty string")
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
        stamp(state, item)
        state.save()
        return dict(item)


def archive_issuer(state: SandboxState, issuer_id: str) -> dict[str, Any]:
    with state.lock:
        item = issuer(state, issuer_id)
        if item.get("archived_at") is None:
            live = [
                r["id"]
                for r in federation_data(state)["rules"]
                if r.get("archived_at") is None and r["issuer_id"] == issuer_id
            ]
            if live:
                raise bad(f"federation issuer {issuer_id} backs live rule {live[0]}")
            item["archived_at"] = iso(state.now())
            item["archived_by_actor_id"] = state.data["user_id"]
            state.save()
        return dict(item)


# -- rules -----------------------------------------------------------------------------------


def _match(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad("match: an object with subject_prefix, audience, claims, condition")
    if value.get("condition") is not None:
        raise bad("match.condition: CEL conditions are not supported by the keyguard sandbox")
    prefix, audience, claims = (
        value.get("subject_prefix"),
        value.get("audience"),
        value.get("claims"),
    )
    if prefix is not None and not isinstance(prefix, str):
        raise bad("match.subject_prefix: a string")
    if audience is not None and not isinstance(audience, str):
        raise bad("match.audience: a string")
    if claims is not None and (
        not isinstance(claims, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in claims.items())
    ):
        raise bad("match.claims: an object of string claims")
    if not (prefix and prefix.strip("*")) and not claims:
        raise bad("match: subject_prefix (not only '*') or claims is required")
    return {"subject_prefix": prefix, "audience": audience, "claims": claims, "condition": None}


def create_rule(state: SandboxState, body: Any, *, console: bool = False) -> dict[str, Any]:
    """A rule; ``console`` allows what only a Console session may make (``org:admin`` scope)."""
    body = as_object(body)
    scope = body.get("oauth_scope")
    allowed = SCOPES if console else WORKSPACE_SCOPES
    if scope not in allowed:
        raise bad(f"oauth_scope: one of {', '.join(allowed)} (org:admin needs the Console)")
    target = body.get("target")
    if not isinstance(target, dict) or target.get("type") != "service_account":
        raise bad("target: {type: service_account, service_account_id}")
    all_ws = body.get("applies_to_all_workspaces") is True
    workspace_id = body.get("workspace_id")
    if not all_ws and not isinstance(workspace_id, str):
        raise bad("workspace_id: required unless applies_to_all_workspaces is true")
    with state.lock:
        f = federation_data(state)
        name = unique_name(body, f["rules"], "federation rule")
        iss = issuer(state, str(body.get("issuer_id")))
        ensure_live(iss, "federation issuer")
        account = service_account(state, str(target.get("service_account_id")))
        ensure_live(account, "service account")
        if isinstance(workspace_id, str) and workspace_id != "default":
            state.workspace(workspace_id)
        rule: dict[str, Any] = {
            "type": "federation_rule",
            "id": new_id("fdrl_"),
            "name": name,
            "description": body.get("description"),
            "issuer_id": iss["id"],
            "issuer_name": iss["name"],
            "match": _match(body.get("match")),
            "target": {"type": "service_account", "service_account_id": account["id"]},
            "oauth_scope": scope,
            "workspace_ids": [workspace_id] if isinstance(workspace_id, str) else [],
            "applies_to_all_workspaces": all_ws,
            "token_lifetime_seconds": _lifetime(
                body.get("token_lifetime_seconds"), "token_lifetime_seconds", 60, 86400, 3600
            ),
            "archived_at": None,
            "archived_by_actor_id": None,
        }
        stamp(state, rule, created=True)
        f["rules"].append(rule)
        state.save()
        return dict(rule)


def rule(state: SandboxState, rule_id: str) -> dict[str, Any]:
    return find(federation_data(state)["rules"], rule_id, "federation rule")


def update_rule(state: SandboxState, rule_id: str, body: Any) -> dict[str, Any]:
    body = as_object(body)
    with state.lock:
        item = rule(state, rule_id)
        ensure_live(item, "federation rule")
        if "issuer_id" in body and body["issuer_id"] != item["issuer_id"]:
            raise bad("issuer_id: cannot be changed")
        if "match" in body:
            item["match"] = _match(body["match"])
        if "oauth_scope" in body:
            if body["oauth_scope"] not in WORKSPACE_SCOPES:
                raise bad(f"oauth_scope: one of {', '.join(WORKSPACE_SCOPES)}")
            item["oauth_scope"] = body["oauth_scope"]
        if "token_lifetime_seconds" in body:
            item["token_lifetime_seconds"] = _lifetime(
                body["token_lifetime_seconds"], "token_lifetime_seconds", 60, 86400, 3600
            )
        if "target" in body:
            target = body["target"]
            account_id = target.get("service_account_id") if isinstance(target, dict) else None
            account = service_account(state, str(account_id))
            ensure_live(account, "service account")
            item["target"] = {"type": "service_account", "service_account_id": account["id"]}
        if "applies_to_all_workspaces" in body:
            item["applies_to_all_workspaces"] = body["applies_to_all_workspaces"] is True
        for key in ("name", "description"):
            if key in body:
                item[key] = body[key]
        stamp(state, item)
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
    workspace_id = as_object(body).get("workspace_id")
    if not isinstance(workspace_id, str):
        raise bad("workspace_id: Field required")
    with state.lock:
        item = rule(state, rule_id)
        ensure_live(item, "federation rule")
        if workspace_id != "default":
            state.workspace(workspace_id)
        if workspace_id not in item["workspace_ids"]:
            item["workspace_ids"].append(workspace_id)
            state.save()
        return {
            "type": "federation_rule_workspace",
            "rule_id": rule_id,
            "workspace_id": workspace_id,
        }


def remove_rule_workspace(state: SandboxState, rule_id: str, workspace_id: str) -> dict[str, Any]:
    with state.lock:
        item = rule(state, rule_id)
        if workspace_id not in item["workspace_ids"]:
            raise not_found("federation rule workspace", workspace_id)
        item["workspace_ids"].remove(workspace_id)
        state.save()
        return {"type": "federation_rule_workspace_deleted", "workspace_id": workspace_id}


def rule_workspaces(state: SandboxState, rule_id: str) -> list[dict[str, Any]]:
    item = rule(state, rule_id)
    return [
        {"type": "federation_rule_workspace", "rule_id": rule_id, "workspace_id": w}
        for w in item["workspace_ids"]
    ]
