"""``wif plan`` and ``wif apply``: the service account, its workspace membership, the issuer and
the rule an environment's federation needs, as a diff against what exists, then made so.

Idempotent: objects are found by name (service account, rule) or URL (issuer), so a rerun
changes nothing, and a crash part-way is finished by the next run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyguard.errors import ConfigError, UsageError
from keyguard.models import Say
from keyguard.wif.api import WifClient
from keyguard.wif.config import Federation
from keyguard.wif.record import WifRecord, load_record, save_record


@dataclass
class Change:
    """One object: ``create``, ``update`` (with what differs) or ``keep``."""

    kind: str
    action: str
    name: str
    object_id: str | None = None
    differs: list[str] = field(default_factory=list)

    def line(self) -> str:
        mark = {"create": "+", "update": "~", "keep": "="}[self.action]
        what = f"{mark} {self.kind} {self.name}"
        if self.object_id:
            what += f" ({self.object_id})"
        if self.differs:
            what += ": " + ", ".join(self.differs)
        return what


@dataclass
class Plan:
    environment: str
    changes: list[Change]
    existing: dict[str, Any]  # kind -> the live object found, if any

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.action != "keep"]


def rule_name(env: str) -> str:
    return "keyguard-" + "".join(c if c.isalnum() else "-" for c in env.lower())


def issuer_name(federation: Federation) -> str:
    host = federation.issuer.split("://", 1)[-1].split("/", 1)[0]
    return ("iss-" + "".join(c if c.isalnum() else "-" for c in host.lower()))[:60]


def workspace_of(env_workspace: str | None) -> str:
    return env_workspace or "default"


def rule_body(
    env: str, federation: Federation, issuer_id: str, service_account_id: str, workspace_id: str
) -> dict[str, Any]:
    match: dict[str, Any] = {"audience": federation.audience}
    if federation.subject:
        match["subject_prefix"] = federation.subject
    if federation.claims:
        match["claims"] = dict(federation.claims)
    return {
        "name": rule_name(env),
        "description": f"keyguard: environment {env}",
        "issuer_id": issuer_id,
        "match": match,
        "target": {"type": "service_account", "service_account_id": service_account_id},
        "oauth_scope": federation.scope,
        "workspace_id": workspace_id,
        "token_lifetime_seconds": federation.token_lifetime,
    }


def _rule_differs(live: dict[str, Any], want: dict[str, Any]) -> list[str]:
    differs = []
    have: dict[str, Any] = live["match"] if isinstance(live.get("match"), dict) else {}
    for key in ("subject_prefix", "audience", "claims"):
        if (have.get(key) or None) != (want["match"].get(key) or None):
            differs.append(f"match.{key}")
    for key in ("oauth_scope", "token_lifetime_seconds"):
        if live.get(key) != want[key]:
            differs.append(key)
    target: dict[str, Any] = live["target"] if isinstance(live.get("target"), dict) else {}
    if target.get("service_account_id") != want["target"]["service_account_id"]:
        differs.append("target")
    if live.get("applies_to_all_workspaces"):
        differs.append("applies_to_all_workspaces")
    if want["workspace_id"] not in (live.get("workspace_ids") or []):
        differs.append("workspace")
    return differs


def _live(
    items: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    for item in items:
        if item.get("archived_at") is None and test(item):
            return item
    return None


def make_plan(client: WifClient, env: str, federation: Federation, workspace: str | None) -> Plan:
    """What apply would create or change; reads only."""
    workspace_id = workspace_of(workspace)
    account = _live(
        client.list_all("service_accounts"), lambda s: s.get("name") == federation.service_account
    )
    issuer = _live(
        client.list_all("federation_issuers"), lambda i: i.get("issuer_url") == federation.issuer
    )
    rule = None
    if issuer is not None:
        rule = _live(
            client.list_all("federation_rules", issuer_id=str(issuer["id"])),
            lambda r: r.get("name") == rule_name(env),
        )
    if rule is None:
        rule = _live(client.list_all("federation_rules"), lambda r: r.get("name") == rule_name(env))
        if rule is not None and issuer is not None and rule.get("issuer_id") != issuer["id"]:
            raise ConfigError(
                f"rule {rule['id']} ({rule_name(env)}) trusts another issuer than "
                f"{federation.issuer}; archive it (`keyguard revoke --rule {rule['id']}`) and run "
                "apply again"
            )
    changes = [
        Change(
            "service account",
            "keep" if account else "create",
            federation.service_account,
            str(account["id"]) if account else None,
        )
    ]
    if workspace_id != "default":
        member = account is not None and workspace_id in client.sa_workspaces(str(account["id"]))
        changes.append(Change("workspace membership", "keep" if member else "create", workspace_id))
    issuer_differs = []
    if issuer is not None:
        if issuer.get("check_jti") is False:
            issuer_differs.append("check_jti")
        if federation.jwks_url and (issuer.get("jwks") or {}).get("url") != federation.jwks_url:
            issuer_differs.append("jwks")
    issuer_action = "create" if issuer is None else ("update" if issuer_differs else "keep")
    changes.append(
        Change(
            "issuer",
            issuer_action,
            federation.issuer,
            str(issuer["id"]) if issuer else None,
            issuer_differs,
        )
    )
    if rule is None:
        changes.append(Change("rule", "create", rule_name(env)))
    else:
        want = rule_body(
            env,
            federation,
            str(rule["issuer_id"]),
            str(account["id"]) if account else "?",
            workspace_id,
        )
        differs = _rule_differs(rule, want)
        changes.append(
            Change("rule", "update" if differs else "keep", rule_name(env), rule["id"], differs)
        )
    return Plan(env, changes, {"service_account": account, "issuer": issuer, "rule": rule})


def apply_plan(
    client: WifClient,
    plan: Plan,
    federation: Federation,
    workspace: str | None,
    state_dir: Path,
    say: Say,
) -> WifRecord:
    """Create or update what the plan says, recording each id as soon as it exists."""
    env, workspace_id = plan.environment, workspace_of(workspace)
    record = load_record(state_dir, env)
    record.workspace_id = workspace_id

    def note() -> None:
        record.organization_id = (
            client.organization_id
            or record.organization_id
            or os.environ.get("ANTHROPIC_ORGANIZATION_ID")
            or None
        )
        save_record(state_dir, record)

    account = plan.existing["service_account"]
    if account is None:
        account = client.create(
            "service_accounts",
            {"name": federation.service_account, "description": f"keyguard: environment {env}"},
        )
        say(f"created service account {federation.service_account} ({account.get('id')})")
    record.service_account_id = str(account["id"])
    note()
    if workspace_id != "default" and workspace_id not in client.sa_workspaces(str(account["id"])):
        client.add_sa_workspace(str(account["id"]), workspace_id)
        say(f"added {account['id']} to workspace {workspace_id}")
    issuer = plan.existing["issuer"]
    jwks = (
        {"type": "explicit_url", "url": federation.jwks_url}
        if federation.jwks_url
        else {"type": "discovery"}
    )
    if issuer is None:
        issuer = client.create(
            "federation_issuers",
            {
                "name": issuer_name(federation),
                "issuer_url": federation.issuer,
                "jwks": jwks,
                "check_jti": True,
                "max_jwt_lifetime_seconds": 3600,
            },
        )
        say(f"created issuer {federation.issuer} ({issuer.get('id')})")
    else:
        change = next(c for c in plan.changes if c.kind == "issuer")
        if change.action == "update":
            issuer = client.update(
                "federation_issuers", str(issuer["id"]), {"check_jti": True, "jwks": jwks}
            )
            say(f"updated issuer {issuer.get('id')}: {', '.join(change.differs)}")
    record.issuer_id = str(issuer["id"])
    note()
    want = rule_body(env, federation, str(issuer["id"]), str(account["id"]), workspace_id)
    rule = plan.existing["rule"]
    if rule is None:
        rule = client.create("federation_rules", want)
        say(f"created rule {rule_name(env)} ({rule.get('id')})")
    else:
        differs = _rule_differs(rule, want)
        if differs:
            body = {k: v for k, v in want.items() if k not in ("issuer_id", "workspace_id")}
            body["applies_to_all_workspaces"] = False
            rule = client.update("federation_rules", str(rule["id"]), body)
            if "workspace" in differs:
                client.add_rule_workspace(str(rule["id"]), workspace_id)
            say(f"updated rule {rule.get('id')}: {', '.join(differs)}")
    if not isinstance(rule.get("id"), str):
        raise UsageError("the API answered a rule without an id; nothing recorded, rerun apply")
    record.rule_id = rule["id"]
    record.applied_at = record.applied_at or datetime.now(UTC).isoformat()
    note()
    return record
