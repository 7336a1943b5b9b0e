"""Incident response for federation: archive a rule (exchange stops at once), or every rule
that targets a service account and then the account. Tokens already minted stay valid until
they expire: no endpoint revokes them, so the answer says until when."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from keyguard.admin.errors import ApiError
from keyguard.errors import NotFoundError, UsageError
from keyguard.wif.api import MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME, WifClient, token_lifetime


@dataclass
class Archived:
    """What a federation incident archived, and until when tokens it minted stay valid."""

    rules: list[str] = field(default_factory=list)
    service_account: str | None = None
    #: when the last token the archived rules could have minted expires (epoch seconds)
    last_token_expires_at: float = 0.0
    #: what the API said that could not be believed, and what was counted instead
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_token_expires_at))
        lines = [
            f"archived rule {rule}: no new token can be exchanged through it" for rule in self.rules
        ]
        lines.extend(self.notes)
        if self.service_account:
            lines.append(f"archived service account {self.service_account}")
        if self.rules:
            lines.append(
                f"tokens it already minted stay valid until {until} at the latest "
                "(no endpoint revokes them); watch the usage report until then"
            )
        return lines


def _lifetime(rule_id: str, rule: dict[str, Any]) -> tuple[int, str | None]:
    """How long the rule's tokens can live, and a note when its answer is outside the
    documented 60-86400 s: the longest a token can then live is counted, so no wait is cut
    short. Read before the archive, so nothing computed after that write can fail."""
    value = rule.get("token_lifetime_seconds")
    if value is None:
        return MAX_TOKEN_LIFETIME, None  # not said: the longest a token can live
    lifetime = token_lifetime(value)
    if lifetime is not None and MIN_TOKEN_LIFETIME <= value <= MAX_TOKEN_LIFETIME:
        return lifetime, None
    counted = MAX_TOKEN_LIFETIME if lifetime is None or value > MAX_TOKEN_LIFETIME else lifetime
    return counted, (
        f"rule {rule_id} reported token_lifetime_seconds = {repr(value)[:40]}, outside "
        f"the documented {MIN_TOKEN_LIFETIME}-{MAX_TOKEN_LIFETIME}: counted as {counted} s"
    )


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
    lifetime, note = _lifetime(rule_id, rule)
    client.archive("federation_rules", rule_id)
    return Archived([rule_id], None, time.time() + lifetime, [note] if note else [])


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
    # everything read from the answers is checked before the first archive
    ids = [rule.get("id") for rule in rules]
    if not all(isinstance(i, str) and i.startswith("fdrl_") for i in ids):
        raise ApiError(
            f"Anthropic API listed a federation rule of {service_account_id} without an fdrl_ "
            "id: nothing was archived; archive its rules in the Console"
        )
    lifetimes = [_lifetime(str(i), rule) for i, rule in zip(ids, rules, strict=True)]
    archived = Archived()
    for rule_id, (lifetime, note) in zip(ids, lifetimes, strict=True):
        client.archive("federation_rules", str(rule_id))
        archived.rules.append(str(rule_id))
        archived.notes.extend([note] if note else [])
        expires = time.time() + lifetime
        archived.last_token_expires_at = max(archived.last_token_expires_at, expires)
    client.archive("service_accounts", service_account_id)
    archived.service_account = service_account_id
    return archived
