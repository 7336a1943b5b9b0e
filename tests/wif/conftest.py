"""Fixtures for federation: a sandbox with its OIDC issuer, and a client holding its OAuth token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from keyguard.admin.sandbox import Sandbox

OAUTH_BETA = "oauth-2025-04-20"
AUDIENCE = "https://api.anthropic.com"
SUBJECT = "repo:acme/app:ref:refs/heads/main"


def bearer_headers(token: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {token}",
        "anthropic-beta": OAUTH_BETA,
        "anthropic-version": "2023-06-01",
    }


@dataclass
class Federated:
    """A sandbox with a workspace, a service account in it, an issuer (its own OIDC) and a rule."""

    sb: Sandbox
    http: httpx.Client
    workspace: str
    sa: dict[str, Any]
    issuer: dict[str, Any]
    rule: dict[str, Any]

    @property
    def org_id(self) -> str:
        org_id: str = self.sb.state.data["organization"]["id"]
        return org_id

    def identity_token(self, sub: str = SUBJECT, aud: Any = AUDIENCE, **kw: Any) -> str:
        body = {"sub": sub, "aud": aud, "claims": kw.pop("claims", {}), **kw}
        answer = httpx.post(f"{self.sb.oidc_issuer}/token", json=body)
        answer.raise_for_status()
        token: str = answer.json()["id_token"]
        return token

    def exchange(self, assertion: str, **overrides: Any) -> httpx.Response:
        body = {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion,
            "federation_rule_id": self.rule["id"],
            "organization_id": self.org_id,
            "service_account_id": self.sa["id"],
            **overrides,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return httpx.post(
            f"{self.sb.url}/v1/oauth/token",
            json=body,
            headers={"anthropic-beta": f"{OAUTH_BETA},oidc-federation-2026-04-01"},
        )


def admin_http(sb: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=sb.url, headers=bearer_headers(sb.oauth_token.reveal()))


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def federate(
    sb: Sandbox, http: httpx.Client, *, jwks: dict[str, Any] | None = None, **rule: Any
) -> Federated:
    ws = sb.add_workspace("ci")
    sa = ok(http.post("/v1/organizations/service_accounts", json={"name": "ci-app"}))
    ok(
        http.post(
            f"/v1/organizations/service_accounts/{sa['id']}/workspaces",
            json={"workspace_id": ws, "workspace_role": "workspace_developer"},
        )
    )
    issuer_body: dict[str, Any] = {"name": "sandbox-oidc", "issuer_url": sb.oidc_issuer}
    if jwks is not None:
        issuer_body["jwks"] = jwks
    issuer = ok(http.post("/v1/organizations/federation_issuers", json=issuer_body))
    body = {
        "name": "ci-main",
        "issuer_id": issuer["id"],
        "match": {"subject_prefix": SUBJECT, "audience": AUDIENCE, "claims": {"owner": "acme"}},
        "target": {"type": "service_account", "service_account_id": sa["id"]},
        "oauth_scope": "workspace:inference",
        "workspace_id": ws,
        "token_lifetime_seconds": 600,
        **rule,
    }
    made = ok(http.post("/v1/organizations/federation_rules", json=body))
    return Federated(sb, http, ws, sa, issuer, made)


@pytest.fixture
def federated(sandbox: Sandbox) -> Iterator[Federated]:
    """One workload's federation, set up through the Admin API with the OAuth token."""
    with admin_http(sandbox) as http:
        yield federate(sandbox, http)
