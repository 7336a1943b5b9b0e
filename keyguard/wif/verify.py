"""``wif verify``: exchange an identity token as the SDKs do, then ``GET /v1/models``.

Anthropic answers every refused exchange with the same opaque 401. keyguard then checks what
it can see locally, in the order that most often explains it: issuer, audience, subject, rule
id, workspace; and says which check fails. The JWT is only decoded for that diagnosis (its
signature is Anthropic's to check); no token is ever printed.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keyguard.errors import AuthError, UsageError
from keyguard.keys import Secret
from keyguard.wif import api
from keyguard.wif.config import Federation
from keyguard.wif.plan import workspace_of
from keyguard.wif.record import WifRecord

#: rule id -> the rule, or None when it does not exist; raises RuleUnreadable when it cannot tell
RuleLookup = Callable[[str], dict[str, Any] | None]


class RuleUnreadable(Exception):
    """The rule could not be read (no or a refused OAuth token): skip the rule checks."""


@dataclass
class Verified:
    scope: str | None
    workspace: str
    expires_at: float | None
    request_id: str | None

    def lines(self) -> list[str]:
        expiry = (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires_at))
            if self.expires_at
            else "unknown"
        )
        return [
            "exchange: ok (the workload can call the API)",
            f"scope: {self.scope or 'unknown'}",
            f"workspace: {self.workspace}",
            f"expires: {expiry}",
        ]


def jwt_claims(token: str) -> dict[str, Any]:
    """The JWT's payload, unverified (for diagnosis only); UsageError if it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        raise UsageError("the identity token is not a JWT (three dot-separated parts)")
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UsageError("the identity token's payload is not base64url JSON") from None
    if not isinstance(claims, dict):
        raise UsageError("the identity token's payload is not a JSON object")
    return claims


def _subject_ok(federation: Federation, sub: Any) -> bool:
    if not federation.subject:
        return True
    if not isinstance(sub, str):
        return False
    if federation.subject.endswith("*"):
        return sub.startswith(federation.subject[:-1])
    return sub == federation.subject


def diagnose(
    federation: Federation,
    record: WifRecord,
    claims: dict[str, Any],
    workspace: str | None,
    lookup: RuleLookup | None,
    now: float,
) -> str:
    """The first local check that fails, in the order issuer, audience, subject, rule, workspace."""
    iss = claims.get("iss")
    if iss != federation.issuer:
        return (
            f"issuer: the token's iss is {iss!r}, the rule trusts {federation.issuer!r} (exactly)"
        )
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if federation.audience not in auds:
        return f"audience: the token's aud is {aud!r}, the rule wants {federation.audience!r}"
    if not _subject_ok(federation, claims.get("sub")):
        return (
            f"subject: the token's sub {claims.get('sub')!r} does not match {federation.subject!r}"
        )
    for name, want in federation.claims.items():
        if claims.get(name) != want:
            return f"subject: claim {name!r} is {claims.get(name)!r}, the rule pins {want!r}"
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp <= now - 30:
        return "subject: the identity token has expired; fetch a fresh one"
    if not record.rule_id:
        return "rule id: no rule recorded for this environment; run `keyguard wif apply`"
    try:
        rule = lookup(record.rule_id) if lookup else None
    except RuleUnreadable:
        lookup, rule = None, None
    if lookup is not None and (rule is None or rule.get("archived_at")):
        return f"rule id: rule {record.rule_id} is unknown or archived; run `keyguard wif apply`"
    ws = workspace_of(workspace)
    enabled = [] if rule is None else rule.get("workspace_ids") or []
    if rule is not None and not rule.get("applies_to_all_workspaces") and ws not in enabled:
        return f"workspace: rule {record.rule_id} is not enabled for workspace {ws}"
    if lookup is None:
        return (
            "issuer, audience and subject match locally; rule and workspace could not be read "
            "(set ANTHROPIC_AUTH_TOKEN to check them): see the Console's authentication history"
        )
    return (
        "no local check fails: the issuer's keys (JWKS), a reused jti, or the service account's "
        "workspace membership; see the Console's authentication history"
    )


def verify(
    base_url: str,
    federation: Federation,
    record: WifRecord,
    identity_token: Secret,
    workspace: str | None,
    lookup: RuleLookup | None = None,
) -> Verified:
    """The exchange and a free call; AuthError (exit 3) with the likely cause when refused."""
    if not record.rule_id or not record.organization_id:
        raise UsageError(
            f"{record.environment} has no applied federation (rule id, organization id); "
            f"run `keyguard wif apply {record.environment}` first"
        )
    ws = workspace_of(workspace)
    result = api.exchange(
        base_url,
        identity_token,
        rule_id=record.rule_id,
        organization_id=record.organization_id,
        service_account_id=record.service_account_id,
        workspace_id=ws,
    )
    rid = f" (request-id {result.request_id})" if result.request_id else ""
    if result.token is None:
        if result.status != 401:
            raise AuthError(f"the exchange answered {result.status}{rid}: check the request")
        cause = diagnose(
            federation, record, jwt_claims(identity_token.reveal()), workspace, lookup, time.time()
        )
        raise AuthError(f"the exchange was refused (401){rid}; likely cause: {cause}")
    status, answered_ws = api.list_models(base_url, result.token)
    if status != 200:
        raise AuthError(
            f"the exchange worked but GET /v1/models with the token answered {status}: "
            f"the rule's scope ({result.scope}) may not allow inference"
        )
    return Verified(result.scope, answered_ws or ws, result.expires_at, result.request_id)
