"""What keyguard knows of identity providers: fixed issuer URLs, and which issuers are shared
by many tenants (so a rule must pin the tenant, as Anthropic requires). Stdlib only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

PROVIDERS = ("github-actions", "gitlab", "kubernetes", "aws", "gcp", "azure", "spiffe", "oidc")
#: The ``aud`` a federation rule expects when it names none (Anthropic's own default).
DEFAULT_AUDIENCE = "https://api.anthropic.com"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True)
class SharedIssuer:
    """An issuer many tenants share: what in ``sub`` or the claims pins one tenant."""

    name: str
    subject_pin: re.Pattern[str]  # a subject (prefix) that names the tenant
    pin_claims: frozenset[str]  # a claim whose exact value names the tenant
    example: str


SHARED: dict[str, SharedIssuer] = {
    GITHUB_ISSUER: SharedIssuer(
        "GitHub Actions",
        re.compile(r"^repo:[^*/:]+/"),
        frozenset({"repository_owner", "repository_owner_id", "repository", "repository_id"}),
        'subject = "repo:OWNER/REPO:ref:refs/heads/main" or '
        'claims = { repository_owner = "OWNER" }',
    ),
    "https://gitlab.com": SharedIssuer(
        "GitLab.com",
        re.compile(r"^project_path:[^*/:]+/"),
        frozenset({"namespace_path", "namespace_id", "project_path", "project_id"}),
        'subject = "project_path:GROUP/PROJECT:ref_type:branch:ref:main" or '
        'claims = { namespace_path = "GROUP" }',
    ),
    "https://accounts.google.com": SharedIssuer(
        "Google",
        re.compile(r"^[^*]+$"),  # an exact subject: one service account's unique id
        frozenset({"email", "azp", "hd"}),
        'subject = "<the service account unique id>" or claims = { email = "SA@PROJECT.iam..." }',
    ),
    "https://login.microsoftonline.com/common/v2.0": SharedIssuer(
        "Microsoft Entra (common)",
        re.compile(r"^[^*]+$"),
        frozenset({"tid", "appid", "azp"}),
        'claims = { tid = "<your tenant id>" }',
    ),
}

#: provider -> issuer URL, where the provider fixes it.
FIXED_ISSUERS = {
    "github-actions": GITHUB_ISSUER,
    "gitlab": "https://gitlab.com",
    "gcp": "https://accounts.google.com",
}

#: where a workload of each provider finds its identity token by default.
TOKEN_FILES = {
    "kubernetes": "/var/run/secrets/anthropic/token",
    "github-actions": "${{ runner.temp }}/anthropic-identity-token",
}


def shared_issuer(issuer_url: str) -> SharedIssuer | None:
    """The shared issuer ``issuer_url`` is, or None (a tenant's own issuer)."""
    return SHARED.get(issuer_url.rstrip("/"))


def tenant_pinned(issuer_url: str, subject: str | None, claims: Mapping[str, str] | None) -> bool:
    """False only for a shared issuer matched with neither a tenant subject nor a tenant claim."""
    shared = shared_issuer(issuer_url)
    if shared is None:
        return True
    if any(name in shared.pin_claims and value for name, value in (claims or {}).items()):
        return True
    return bool(subject) and shared.subject_pin.match(subject or "") is not None


def github_ref_pinned(subject: str | None, claims: Mapping[str, str] | None) -> bool:
    """On GitHub, a wildcard subject must still name a branch, tag or environment."""
    claims = claims or {}
    if any(c in claims for c in ("ref", "environment", "job_workflow_ref")):
        return True
    if not subject or not subject.endswith("*"):
        return True
    return any(part in subject for part in (":ref:", ":environment:"))
