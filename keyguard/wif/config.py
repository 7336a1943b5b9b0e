"""``[environments.X.federation]``: how one environment's workload federates.

```toml
[environments.ci.federation]
provider = "github-actions"     # or gitlab, kubernetes, aws, gcp, azure, spiffe, oidc
issuer = "https://token.actions.githubusercontent.com"   # filled in where the provider fixes it
subject = "repo:acme/app:ref:refs/heads/main"            # exact, or a prefix ending in *
claims = { repository_owner = "acme" }
audience = "https://api.anthropic.com"
scope = "workspace:inference"
token_lifetime = "10m"
service_account = "ci-app"
```
A shared issuer (GitHub, GitLab.com, Google, Entra common) without a tenant pin is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from keyguard.errors import ConfigError
from keyguard.policy import format_duration, parse_duration
from keyguard.urls import is_loopback, parse_base_url, redact_url
from keyguard.wif.providers import (
    DEFAULT_AUDIENCE,
    FIXED_ISSUERS,
    PROVIDERS,
    TOKEN_FILES,
    shared_issuer,
    tenant_pinned,
)

KEYS = {
    "provider",
    "issuer",
    "subject",
    "claims",
    "audience",
    "scope",
    "token_lifetime",
    "service_account",
    "identity_token_file",
    "jwks_url",
}
SCOPES = ("workspace:inference", "workspace:developer")
_SA_NAME_RE = re.compile(r"^[a-z0-9-]{1,64}$")

Fail = Callable[[str, str], ConfigError]


@dataclass(frozen=True)
class Federation:
    """One environment's federation: who may exchange, for what, as which service account."""

    provider: str
    issuer: str
    subject: str
    service_account: str
    claims: dict[str, str] = field(default_factory=dict)
    audience: str = DEFAULT_AUDIENCE
    scope: str = "workspace:inference"
    token_lifetime: int = 600
    identity_token_file: str | None = None
    jwks_url: str | None = None

    @property
    def lifetime_text(self) -> str:
        from datetime import timedelta

        return format_duration(timedelta(seconds=self.token_lifetime))

    @property
    def token_file(self) -> str:
        """Where the workload reads its identity token (the SDK re-reads it each exchange)."""
        return self.identity_token_file or TOKEN_FILES.get(
            self.provider, "/var/run/secrets/anthropic/token"
        )


def parse_federation(env: str, table: Any, fail: Fail) -> Federation:
    """The ``[environments.ENV.federation]`` table, validated; ``fail(key, msg)`` builds errors."""
    where = f"[environments.{env}.federation]"
    if not isinstance(table, dict):
        raise fail("federation", f"{where} must be a table")
    for key in table:
        if key not in KEYS:
            raise fail(key, f"unknown setting {key!r} in {where}; known: {', '.join(sorted(KEYS))}")

    def text(key: str, default: str | None = None) -> str | None:
        value = table.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(key, f"{where} {key} must be a non-empty string")
        return value

    provider = text("provider")
    if provider not in PROVIDERS:
        raise fail("provider", f"{where} provider must be one of {', '.join(PROVIDERS)}")
    issuer = text("issuer", FIXED_ISSUERS.get(provider))
    if issuer is None:
        raise fail("provider", f"{where} issuer is required for provider {provider!r}")
    _checked_url(issuer, "issuer", where, fail)
    fixed = FIXED_ISSUERS.get(provider)
    if fixed is not None and issuer.rstrip("/") != fixed:
        raise fail(
            "issuer", f"{where} provider {provider!r} issues tokens as {fixed}, not {issuer}"
        )
    subject = text("subject")
    claims = table.get("claims", {})
    if not isinstance(claims, dict) or not all(isinstance(v, str) and v for v in claims.values()):
        raise fail("claims", f"{where} claims must be a table of non-empty strings")
    if subject is None and not claims:
        raise fail("subject", f"{where} needs a subject (exact, or a prefix ending in *) or claims")
    if subject is not None and "*" in subject[:-1]:
        raise fail("subject", f"{where} subject: '*' is allowed only at the end (a prefix)")
    if subject is not None and not subject.strip("*") and not claims:
        raise fail("subject", f"{where} subject '*' alone matches everyone: pin it")
    if not tenant_pinned(issuer, subject, claims):
        shared = shared_issuer(issuer)
        assert shared is not None
        raise fail(
            "subject",
            f"{where} {shared.name} is an issuer every tenant shares: pin yours with "
            f"{shared.example} (Anthropic refuses an unpinned rule too)",
        )
    audience = text("audience", DEFAULT_AUDIENCE)
    scope = text("scope", "workspace:inference")
    if scope not in SCOPES:
        raise fail(
            "scope",
            f"{where} scope must be {' or '.join(SCOPES)} (org:admin rules are made in the "
            "Console only, and a workload rarely needs more than inference)",
        )
    lifetime = _lifetime(table.get("token_lifetime", "10m"), where, fail)
    account_name = text("service_account", env.lower())
    assert account_name is not None
    if not _SA_NAME_RE.match(account_name):
        raise fail(
            "service_account", f"{where} service_account {account_name!r}: a-z, 0-9 and '-' only"
        )
    return Federation(
        provider=provider,
        issuer=issuer.rstrip("/"),
        subject=subject or "",
        service_account=account_name,
        claims=dict(claims),
        audience=audience or DEFAULT_AUDIENCE,
        scope=scope or "workspace:inference",
        token_lifetime=lifetime,
        identity_token_file=text("identity_token_file"),
        jwks_url=_jwks_url(text("jwks_url"), where, fail),
    )


def _checked_url(url: str, key: str, where: str, fail: Fail) -> str:
    """``url`` in normal form: parsed (never prefix-matched), https, or http to a loopback host.

    A cloned repository's keyguard.toml names these URLs: ``http://127.0.0.1.evil.example`` and
    ``http://127.0.0.1@evil.example`` must not pass for the local sandbox.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is None or not (
        parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))
    ):
        raise fail(
            key,
            f"{where} {key} ({redact_url(url)}) must be an https:// URL (plain http only to "
            "127.0.0.1, ::1 or localhost: the sandbox)",
        )
    try:
        return parse_base_url(url, f"{where} {key}")
    except ConfigError as exc:
        raise fail(key, f"{exc}; write it as https://HOST[:PORT][/PATH]") from None


def _jwks_url(url: str | None, where: str, fail: Fail) -> str | None:
    return None if url is None else _checked_url(url, "jwks_url", where, fail)


def _lifetime(value: Any, where: str, fail: Fail) -> int:
    try:
        seconds = int(parse_duration(value).total_seconds())
    except ConfigError as exc:
        raise fail("token_lifetime", f"{where} token_lifetime: {exc}") from None
    if not 60 <= seconds <= 86400:
        raise fail("token_lifetime", f"{where} token_lifetime must be between 1m and 24h")
    return seconds
