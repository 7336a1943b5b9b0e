"""Incident response for federation: archive a rule (exchange stops at once), or every rule
that targets a service account and then the account. Tokens already minted stay valid until
they expire: no endpoint revokes them, so the answer says until when."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from keyguard.errors import NotFoundError, UsageError
from keyguard.wif.api import WifClient


@dataclass
class Archived:
    rules: list[str] = field(default_factory=list)
    service_account: str | None = None
    #: when the last token the archived rules could have minted expires (epoch seconds)
    last_token_expires_at: float = 0.0

    def lines(self) -> list[str]:
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_token_expires_at))
        out = [f"archived rule {r}: no new token can be exchanged through it" for r in self.rules]
        if self.service_account:
            out.append(f"archived service account {self.service_account}")
        if self.rules:
            out.append(
                f"tokens it already minted stay valid until {until} at the latest "
                "(no endpoint revokes them); watch the usage report until then"
            )
        return out


def _lifetime(rule: dict[str, Any]) -> int:
    value = rule.get("token_lifetime_seconds")
    return value if isinstance(value, int) and not isinstance(value, bool) else 86400


def _check(prefix: str, object_id: str) -> None:
    if not object_id.startswith(prefix):
        raise UsageError(f"{object_id!r} is not a {prefix}… id")


def describe_rule(client: WifClient, rule_id: str) -> dict[str, Any]:
    _check("fdrl_", rule_id)
    return client.get("federation_rules", rule_id)


def archive_rule(client: WifClient, rule_id: str) -> Archived:
    """Archive one rule (idempotent); an unknown id is NotFoundError (exit 1)."""
    rule = describe_rule(client, rule_id)
    if not rule:
        raise NotFoundError(f"no federation rule {rule_id}")
    client.archive("federation_rules", rule_id)
    return Archived([rule_id], None, time.time() + _lifetime(rule))


def rules_of(client: WifClient, sa_id: str) -> list[dict[str, Any]]:
    _check("svac_", sa_id)
    client.get("service_accounts", sa_id)  # NotFoundError for an unknown id
    return [
        r
        for r in client.list_all("federation_rules")
        if isinstance(r.get("target"), dict) and r["target"].get("service_account_id") == sa_id
    ]


def archive_service_account(client: WifClient, sa_id: str) -> Archived:
    """Archive every live rule that targets the service account, then the account."""
    rules = rules_of(client, sa_id)
    out = Archived()
    for rule in rules:
        client.archive("federation_rules", str(rule["id"]))
        out.rules.append(str(rule["id"]))
        out.last_token_expires_at = max(out.last_token_expires_at, time.time() + _lifetime(rule))
    client.archive("service_accounts", sa_id)
    out.service_account = sa_id
    return out
