"""The federation's audit: every issuer and rule of the organization judged ok, warning or
violation, and the environments still on static keys (the migration backlog).

Read with the ``org:admin`` OAuth token (``ANTHROPIC_AUTH_TOKEN``): the WIF endpoints take
nothing else. Without it the federation is not audited, and the report says so when the
configuration has federated environments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from keyguard.admin.errors import ApiError
from keyguard.audit.model import AuditReport, FederationAudit, FederationFinding
from keyguard.errors import AuthError
from keyguard.wif.providers import github_ref_pinned, shared_issuer, tenant_pinned

if TYPE_CHECKING:
    from keyguard.config import Config

HOUR = 3600
_TRUE_CEL = re.compile(r"^\(*\s*(true|1\s*==\s*1|!\s*false)\s*\)*$", re.IGNORECASE)


@dataclass
class _Judge:
    warnings: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def finding(self, kind: str, obj: dict[str, Any]) -> FederationFinding:
        verdict = "violation" if self.violations else "warning" if self.warnings else "ok"
        return FederationFinding(
            kind,
            str(obj.get("id")),
            str(obj.get("name") or ""),
            verdict,
            tuple(self.violations + self.warnings),
        )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def judge_issuer(issuer: dict[str, Any]) -> FederationFinding:
    ruling = _Judge()
    if issuer.get("check_jti") is False:
        ruling.warnings.append("check_jti is off: a stolen identity token can be replayed")
    max_life = _int(issuer.get("max_jwt_lifetime_seconds"))
    if max_life is not None and max_life > HOUR:
        ruling.warnings.append(f"max_jwt_lifetime_seconds is {max_life}: over 1 h")
    jwks: dict[str, Any] = issuer["jwks"] if isinstance(issuer.get("jwks"), dict) else {}
    if jwks.get("type") == "inline":
        ruling.warnings.append("inline JWKS: never refreshed, a rotated IdP key breaks or lingers")
    poll: dict[str, Any] = (
        issuer["poll_status"] if isinstance(issuer.get("poll_status"), dict) else {}
    )
    failures = _int(poll.get("consecutive_failures")) or 0
    if failures > 0:
        ruling.warnings.append(f"JWKS polling failed {failures} time(s) in a row")
    if issuer.get("jwks_polling_disabled_at"):
        ruling.violations.append(
            "JWKS polling is disabled: the issuer's keys are no longer refreshed"
        )
    return ruling.finding("issuer", issuer)


def judge_rule(
    rule: dict[str, Any], issuer: dict[str, Any] | None, service_account: dict[str, Any] | None
) -> FederationFinding:
    ruling = _Judge()
    match: dict[str, Any] = rule["match"] if isinstance(rule.get("match"), dict) else {}
    subject = match.get("subject_prefix") if isinstance(match.get("subject_prefix"), str) else None
    claims: dict[str, str] = match["claims"] if isinstance(match.get("claims"), dict) else {}
    issuer_url = str((issuer or {}).get("issuer_url") or "")
    if issuer_url and not tenant_pinned(issuer_url, subject, claims):
        shared = shared_issuer(issuer_url)
        name = shared.name if shared else issuer_url
        ruling.violations.append(f"{name} is a shared issuer and this rule pins no tenant")
    github = shared_issuer(issuer_url) is not None and "actions.githubusercontent" in issuer_url
    if github and not github_ref_pinned(subject, claims):
        ruling.warnings.append(
            "subject wildcard with no ref/branch pin on GitHub: any workflow of the repo, "
            "fork pull requests included, could mint tokens"
        )
    condition = match.get("condition")
    if isinstance(condition, str) and _TRUE_CEL.match(condition.strip()):
        ruling.violations.append(f"CEL condition {condition!r} is always true")
    if rule.get("applies_to_all_workspaces"):
        ruling.warnings.append(
            "applies_to_all_workspaces: tokens for every workspace, future ones too"
        )
    scope = str(rule.get("oauth_scope") or "")
    if "org:admin" in scope.split():
        ruling.violations.append(
            "org:admin scope: a workload token can administer the organization"
        )
    lifetime = _int(rule.get("token_lifetime_seconds"))
    if lifetime is not None and lifetime > HOUR:
        ruling.warnings.append(
            f"token lifetime {lifetime} s: over 1 h (a stolen token lives that long)"
        )
    if service_account is None or service_account.get("archived_at"):
        target = (rule.get("target") or {}).get("service_account_id")
        ruling.warnings.append(f"targets an archived or unknown service account ({target})")
    if issuer is not None:
        inherited = judge_issuer(issuer)
        tag = f"issuer {issuer.get('id')}: "
        bucket = ruling.violations if inherited.verdict == "violation" else ruling.warnings
        bucket.extend(tag + reason for reason in inherited.reasons)
    return ruling.finding("rule", rule)


def judge(
    issuers: Iterable[dict[str, Any]],
    rules: Iterable[dict[str, Any]],
    service_accounts: Iterable[dict[str, Any]],
) -> tuple[tuple[FederationFinding, ...], tuple[FederationFinding, ...]]:
    """Findings for every live rule and issuer."""
    by_issuer = {str(issuer.get("id")): issuer for issuer in issuers}
    by_account = {str(account.get("id")): account for account in service_accounts}
    live_rules = [rule for rule in rules if not rule.get("archived_at")]
    out_rules = tuple(
        judge_rule(
            rule,
            by_issuer.get(str(rule.get("issuer_id"))),
            by_account.get(str((rule.get("target") or {}).get("service_account_id"))),
        )
        for rule in live_rules
    )
    out_issuers = tuple(
        judge_issuer(issuer) for issuer in by_issuer.values() if not issuer.get("archived_at")
    )
    return out_rules, out_issuers


def backlog(config: Config) -> tuple[str, ...]:
    """Environments still served by a static key, and what would move them."""
    out = []
    for name, env in sorted(config.environments.items()):
        if env.federation is None:
            out.append(
                f"{name}: static key; if its consumers run where an OIDC token exists (CI, "
                "Kubernetes, a cloud), add [environments.{name}.federation] and run "
                f"`keyguard wif plan {name}`".replace("{name}", name)
            )
        else:
            from keyguard.wif.record import load_record

            if not load_record(config.state_dir, name).retired:
                out.append(f"{name}: migrating; `keyguard wif status` says what it waits for")
    return tuple(out)


def audit_federation(config: Config, report: AuditReport) -> AuditReport:
    """``report`` with the federation's findings (or a note why they are missing)."""
    from keyguard.wif.api import WifClient, resolve_oauth_token

    todo = backlog(config)
    try:
        token = resolve_oauth_token()
    except AuthError:
        if any(env.federation for env in config.environments.values()):
            note = (
                "federation not audited: set ANTHROPIC_AUTH_TOKEN to an org:admin OAuth token "
                "(the federation endpoints accept nothing else)"
            )
            return replace(
                report, federation=FederationAudit(backlog=todo), notes=(*report.notes, note)
            )
        return replace(report, federation=FederationAudit(backlog=todo))
    try:
        with WifClient(token, config.base_url) as client:
            issuers = client.list_all("federation_issuers")
            rules = client.list_all("federation_rules")
            accounts = client.list_all("service_accounts", include_archived=True)
    except (AuthError, ApiError) as exc:
        # The keys' audit stands on its own: a token without org:admin must not sink it.
        note = f"federation not audited: {exc}"
        return replace(
            report, federation=FederationAudit(backlog=todo), notes=(*report.notes, note)
        )
    found_rules, found_issuers = judge(issuers, rules, accounts)
    return replace(
        report,
        federation=FederationAudit(found_rules, found_issuers, todo, audited=True),
    )


# -- rendering hooks ---------------------------------------------------------------------------


def json_part(federation_audit: FederationAudit | None) -> dict[str, Any]:
    if federation_audit is None:
        return {}
    return {
        "federation_rules": [finding.to_json() for finding in federation_audit.rules],
        "federation_issuers": [finding.to_json() for finding in federation_audit.issuers],
        "migration_backlog": list(federation_audit.backlog),
    }


def rows(federation_audit: FederationAudit | None) -> list[list[object]]:
    """``[kind, id, name, verdict, reasons]`` per finding, for tables, Markdown, CSV, HTML."""
    if federation_audit is None:
        return []
    return [
        [finding.kind, finding.id, finding.name, finding.verdict, "; ".join(finding.reasons) or "-"]
        for finding in (*federation_audit.rules, *federation_audit.issuers)
    ]


HEADER = ["Kind", "Id", "Name", "Verdict", "Reasons"]
