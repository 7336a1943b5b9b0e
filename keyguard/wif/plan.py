"""``wif plan`` and ``wif apply``: the service account, its workspace membership, the issuer and
the rule an environment's federation needs, as a diff against what exists, then made so.

Idempotent: objects are found by name (service account, rule) or URL (issuer), so a rerun
changes nothing, and a crash part-way is finished by the next run.

The keyguard.toml may come with a cloned repository, so some changes are refused rather than
made (exit 2, saying what would change, old and new): an issuer's JWKS source (which keys sign
its tokens: a Console decision), any change to an issuer that rules outside this environment
use, and a rule whose issuer differs from the configured one (a rule's ``issuer_id`` cannot
change: archive the rule, then apply). A rule wider than configured (more workspaces, a CEL
condition) is planned as an update and narrowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from keyguard.errors import ConfigError, ConflictError, UsageError
from keyguard.models import Say
from keyguard.urls import parse_base_url, redact_url
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


def _env_rule(env: str) -> Callable[[dict[str, Any]], bool]:
    """Whether a rule is ``env``'s: named ``keyguard-ENV``, or ``keyguard-ENV-rN`` (made after
    an archived one kept the name) with ``env``'s description."""
    base = rule_name(env)
    again = re.compile(re.escape(base) + r"-r[0-9]{1,4}")

    def test(rule: dict[str, Any]) -> bool:
        name = rule.get("name")
        if name == base:
            return True
        return (
            isinstance(name, str)
            and again.fullmatch(name) is not None
            and rule.get("description") == f"keyguard: environment {env}"
        )

    return test


def _free_rule_name(client: WifClient, env: str) -> str:
    """``keyguard-ENV``, or the first free ``keyguard-ENV-rN`` (archived rules keep names)."""
    taken = {r.get("name") for r in client.list_all("federation_rules", include_archived=True)}
    base = rule_name(env)
    if base not in taken:
        return base
    return next(f"{base}-r{n}" for n in range(2, 10000) if f"{base}-r{n}" not in taken)


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


def _printable(value: Any) -> str:
    """API text for a terminal line: no control or non-ASCII characters."""
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in str(value))


def _shown_url(url: Any) -> str:
    """A URL from the API in full when it parses cleanly, else only its redacted origin."""
    if not isinstance(url, str):
        return "(no URL)"
    try:
        return parse_base_url(url, "url")
    except ConfigError:
        return _printable(redact_url(url)) + " (not a clean https URL)"


def jwks_source(jwks: Any) -> str:
    """An issuer's JWKS source in words: discovery, explicit URL ..., inline (N keys)."""
    if not isinstance(jwks, dict) or jwks.get("type") in (None, "discovery"):
        return "discovery"
    if jwks.get("type") == "explicit_url":
        return f"explicit URL {_shown_url(jwks.get('url'))}"
    if jwks.get("type") == "inline":
        keys = jwks.get("keys")
        return f"inline ({len(keys) if isinstance(keys, list) else '?'} keys)"
    return f"an unknown source ({_printable(jwks.get('type'))[:40]})"


def wanted_jwks(federation: Federation) -> dict[str, Any]:
    if federation.jwks_url:
        return {"type": "explicit_url", "url": federation.jwks_url}
    return {"type": "discovery"}


def _rule_workspaces(live: dict[str, Any]) -> list[str]:
    ids = live.get("workspace_ids")
    return [str(w) for w in ids] if isinstance(ids, list) else []


def _rule_differs(live: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """What differs between a live rule and the wanted one, including anything wider."""
    differs = []
    if live.get("issuer_id") != want["issuer_id"]:
        differs.append("issuer_id")
    have: dict[str, Any] = live["match"] if isinstance(live.get("match"), dict) else {}
    for key in ("subject_prefix", "audience", "claims"):
        if (have.get(key) or None) != (want["match"].get(key) or None):
            differs.append(f"match.{key}")
    if have.get("condition") or None:
        differs.append("match.condition")
    for key in ("oauth_scope", "token_lifetime_seconds"):
        if live.get(key) != want[key]:
            differs.append(key)
    target: dict[str, Any] = live["target"] if isinstance(live.get("target"), dict) else {}
    if target.get("service_account_id") != want["target"]["service_account_id"]:
        differs.append("target")
    if live.get("applies_to_all_workspaces"):
        differs.append("applies_to_all_workspaces")
    workspaces = _rule_workspaces(live)
    if want["workspace_id"] not in workspaces:
        differs.append("workspace")
    extra = [w for w in workspaces if w != want["workspace_id"]]
    if extra:
        differs.append("workspaces: also " + ", ".join(_printable(w) for w in extra))
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
    issuers = client.list_all("federation_issuers")
    issuer = _live(issuers, lambda i: i.get("issuer_url") == federation.issuer)
    rule = None
    issuer_rules: list[dict[str, Any]] = []
    if issuer is not None:
        issuer_rules = [
            r
            for r in client.list_all("federation_rules", issuer_id=str(issuer["id"]))
            if r.get("archived_at") is None and r.get("issuer_id") == issuer["id"]
        ]
        rule = _live(issuer_rules, _env_rule(env))
    if rule is None:
        rule = _live(client.list_all("federation_rules"), _env_rule(env))
        if rule is not None:
            _refuse_issuer_change(env, federation, rule, issuers)
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
    if issuer is None:
        if federation.jwks_url:
            issuer_differs.append(f"jwks {jwks_source(wanted_jwks(federation))}")
    else:
        others = [r for r in issuer_rules if rule is None or r.get("id") != rule.get("id")]
        _refuse_jwks_change(federation, issuer, others)
        if issuer.get("check_jti") is False:
            issuer_differs.append("check_jti: off -> on")
        if issuer_differs and others:
            raise ConfigError(
                f"issuer {federation.issuer} ({_printable(issuer['id'])}) is also used by "
                f"{_rules_text(others)}, outside environment {env}: `wif apply` never changes "
                f"it ({', '.join(issuer_differs)}). Change it in the Console (Settings -> "
                "Workload identity) if every rule on it should have that"
            )
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
        assert issuer is not None  # a rule on another issuer was refused above
        want = rule_body(
            env,
            federation,
            str(issuer["id"]),
            str(account["id"]) if account else "?",
            workspace_id,
        )
        differs = _rule_differs(rule, want)
        changes.append(
            Change("rule", "update" if differs else "keep", rule_name(env), rule["id"], differs)
        )
    return Plan(env, changes, {"service_account": account, "issuer": issuer, "rule": rule})


def _rules_text(rules: list[dict[str, Any]]) -> str:
    shown = [f"{_printable(r.get('id'))} ({_printable(r.get('name'))})" for r in rules[:5]]
    more = f" and {len(rules) - 5} more" if len(rules) > 5 else ""
    return ("rule " if len(rules) == 1 else "rules ") + ", ".join(shown) + more


def _refuse_issuer_change(
    env: str, federation: Federation, rule: dict[str, Any], issuers: list[dict[str, Any]]
) -> None:
    """The environment's rule trusts another issuer than the configured one: never keep it."""
    old = next((i for i in issuers if i.get("id") == rule.get("issuer_id")), None)
    old_text = (
        _shown_url(old.get("issuer_url")) if old else f"issuer {_printable(rule.get('issuer_id'))}"
    )
    rule_id = _printable(rule.get("id"))
    raise ConfigError(
        f"environment {env}: issuer {old_text} -> {federation.issuer}, but rule {rule_id} "
        f"({rule_name(env)}) would keep trusting {old_text} (a rule's issuer cannot change). "
        f"Archive it (`keyguard revoke --rule {rule_id}`: exchanges through it stop), then run "
        f"`keyguard wif apply {env}` again to make a rule on {federation.issuer}"
    )


def _refuse_jwks_change(
    federation: Federation, issuer: dict[str, Any], others: list[dict[str, Any]]
) -> None:
    """Which keys sign an issuer's tokens is decided in the Console, never by a keyguard.toml."""
    have, want = jwks_source(issuer.get("jwks")), jwks_source(wanted_jwks(federation))
    if have == want:
        return
    used = f"; it is also used by {_rules_text(others)}" if others else ""
    raise ConfigError(
        f"issuer {federation.issuer} ({_printable(issuer.get('id'))}): jwks {have} -> {want}"
        f"{used}. `wif apply` never changes an existing issuer's JWKS (whoever holds those keys "
        "can mint tokens for every rule on it, and a keyguard.toml may come with a cloned "
        "repository): change it in the Console (Settings -> Workload identity) if you mean "
        "it, or make jwks_url in keyguard.toml match the issuer"
    )


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
    if issuer is None:
        issuer = client.create(
            "federation_issuers",
            {
                "name": issuer_name(federation),
                "issuer_url": federation.issuer,
                "jwks": wanted_jwks(federation),
                "check_jti": True,
                "max_jwt_lifetime_seconds": 3600,
            },
        )
        say(f"created issuer {federation.issuer} ({issuer.get('id')})")
    else:
        change = next(c for c in plan.changes if c.kind == "issuer")
        if change.action == "update":
            # make_plan refused every other issuer change: only check_jti is ever turned on
            if change.differs != ["check_jti: off -> on"]:
                raise ConflictError(f"issuer {issuer['id']}: refusing {change.differs}")
            issuer = client.update("federation_issuers", str(issuer["id"]), {"check_jti": True})
            say(f"updated issuer {issuer.get('id')}: {', '.join(change.differs)}")
    record.issuer_id = str(issuer["id"])
    note()
    want = rule_body(env, federation, str(issuer["id"]), str(account["id"]), workspace_id)
    rule = plan.existing["rule"]
    if rule is None:
        want["name"] = _free_rule_name(client, env)
        rule = client.create("federation_rules", want)
        say(f"created rule {want['name']} ({rule.get('id')})")
    else:
        differs = _rule_differs(rule, want)
        if "issuer_id" in differs:  # make_plan refuses this; never update such a rule
            raise ConflictError(f"rule {rule['id']} trusts another issuer; rerun `wif plan`")
        if differs:
            rule = _narrow_rule(client, rule, want, differs)
            say(f"updated rule {rule.get('id')}: {', '.join(differs)}")
    if not isinstance(rule.get("id"), str):
        raise UsageError("the API answered a rule without an id; nothing recorded, rerun apply")
    record.rule_id = rule["id"]
    record.applied_at = record.applied_at or datetime.now(UTC).isoformat()
    note()
    return record


def _narrow_rule(
    client: WifClient, rule: dict[str, Any], want: dict[str, Any], differs: list[str]
) -> dict[str, Any]:
    """Update ``rule`` to ``want``: its fields, then its workspaces (add, then remove extras).

    Read back afterwards: a rule still wider than configured is an error, never "updated".
    """
    rule_id = str(rule["id"])
    body = {k: v for k, v in want.items() if k not in ("name", "issuer_id", "workspace_id")}
    body["applies_to_all_workspaces"] = False
    if "match.condition" in differs:
        body["match"] = {**body["match"], "condition": None}
    client.update("federation_rules", rule_id, body)
    workspaces = _rule_workspaces(rule)
    if want["workspace_id"] not in workspaces:
        client.add_rule_workspace(rule_id, want["workspace_id"])
    for extra in workspaces:
        if extra != want["workspace_id"]:
            path = (
                f"/v1/organizations/federation_rules/{quote(rule_id, safe='')}/workspaces/"
                f"{quote(extra, safe='')}"
            )
            client.call("DELETE", path)
    after = client.get("federation_rules", rule_id)
    left = _rule_differs(after, want)
    if left:
        raise ConflictError(
            f"rule {rule_id}: updated, but the API still shows {', '.join(left)} differing "
            "from keyguard.toml; look at it in the Console (Settings -> Workload identity)"
        )
    return after
