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
    """What a federation incident archived, and until when tokens it minted stay valid."""

    rules: list[str] = field(default_factory=list)
    service_account: str | None = None
    #: when the last token the archived rules could have minted expires (epoch seconds)
    last_token_expires_at: float = 0.0

    def lines(self) -> list[str]:
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_token_expires_at))
        lines = [
            f"archived rule {rule}: no new token can be exchanged through it" for rule in self.rules
        ]
        if self.service_account:
            lines.append(f"archived service account {self.service_account}")
        if self.rules:
            lines.append(
                f"tokens it already minted stay valid until {until} at the latest "
                "(no endpoint revokes them); watch the usage report until then"
            )
        return lines


def _lifetime(rule: dict[str, Any]) -> int:
    value = rule.get("token_lifetime_seconds")
    return value if isinstance(value, int) and not isinstance(value, bool) else 86400


def _check(prefix: str, object_id: str) -> None:
    if not object_id.startswith(prefix):
        raise UsageError(f"{object_id!r} is not a {prefix}… id")


def describe_rule(client: WifClient, rule_id: str) -> dict[str, Any]:
    """The federation rule as the API describes it."""
    _check("fdrl_", rule_id)
    return client.get("federation_rules", rule_id)


def archive_rule(client: WifClient, rule_id: str) -> Archived:
    """Archive one rule (idempotent); an unknown id is NotFoundError (exit 1)."""
    rule = describe_rule(client, rule_id)
    if not rule:
        raise NotFoundError(f"no federation rule {rule_id}")
    client.archive("federation_rules", rule_id)
    return Archived([rule_id], None, time.time() + _lifetime(rule))


def rules_of(client: WifClient, service_account_id: str) -> list[dict[str, Any]]:
    """The federation rules that target the service account (NotFoundError: no such account)."""
    _check("svac_", service_account_id)
    client.get("service_accounts", service_account_id)
    return [
        rule
        for rule in client.list_all("federation_rules")
        if isinstance(rule.get("target"), dict)
        and rule["target"].get("service_account_id") == service_account_id
    ]


def archive_service_account(client: WifClient, service_account_id: str) -> Archived:
    """Archive every live rule that targets the service account, then the account."""
    rules = rules_of(client, service_account_id)
    archived = Archived()
    for rule in rules:
        client.archive("federation_rules", str(rule["id"]))
        archived.rules.append(str(rule["id"]))
        expires = time.time() + _lifetime(rule)
        archived.last_token_expires_at = max(archived.last_token_expires_at, expires)
    client.archive("service_accounts", service_account_id)
    archived.service_account = service_account_id
    return archived
