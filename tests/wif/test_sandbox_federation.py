"""The sandbox federates: WIF Admin API for OAuth tokens only, a real JWT check, minted tokens."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from keyguard.admin.sandbox import Sandbox
from keyguard.admin.sandbox.exchange import denials
from keyguard.admin.sandbox.oidc import public_jwks
from tests.wif.conftest import (
    AUDIENCE,
    SUBJECT,
    Federated,
    admin_http,
    bearer_headers,
    federate,
    ok,
)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _signed(key: Any, header: dict[str, Any], claims: dict[str, Any]) -> str:
    return jwt.encode(header, claims, key)


def _claims(f: Federated, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": f.sb.oidc_issuer,
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "owner": "acme",
        "iat": now,
        "exp": now + 300,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def _denied(f: Federated, response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error == {"type": "authentication_error", "message": "Authentication failed"}
    assert reason in denials(f.sb.state)[-1]


# -- the Admin API takes an org:admin OAuth token only --------------------------------------


def test_an_admin_key_is_refused_on_the_federation_endpoints(sandbox: Sandbox) -> None:
    for path in ("service_accounts", "federation_issuers", "federation_rules"):
        answer = httpx.get(
            f"{sandbox.url}/v1/organizations/{path}",
            headers={"x-api-key": sandbox.admin_key.reveal(), "anthropic-version": "2023-06-01"},
        )
        assert answer.status_code == 403
        assert answer.json()["error"]["type"] == "permission_error"
        assert "OAuth" in answer.json()["error"]["message"]


def test_no_credential_or_a_wrong_token_is_refused(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/v1/organizations/service_accounts"
    assert httpx.get(url).status_code == 401
    forged = "sk-ant-oat01-" + "x" * 95
    assert httpx.get(url, headers=bearer_headers(forged)).status_code == 401


def test_a_bearer_token_without_the_oauth_beta_header_is_refused(sandbox: Sandbox) -> None:
    headers = bearer_headers(sandbox.oauth_token.reveal())
    del headers["anthropic-beta"]
    answer = httpx.get(f"{sandbox.url}/v1/organizations/service_accounts", headers=headers)
    assert answer.status_code == 400
    assert "oauth-2025-04-20" in answer.json()["error"]["message"]


def test_objects_are_created_listed_and_archived_softly(federated: Federated) -> None:
    http = federated.http
    listed = ok(http.get("/v1/organizations/federation_rules"))
    assert [r["id"] for r in listed["data"]] == [federated.rule["id"]]
    assert listed["next_page"] is None
    # a live rule pins its issuer and service account
    issuer_id, sa_id = federated.issuer["id"], federated.sa["id"]
    assert http.post(f"/v1/organizations/federation_issuers/{issuer_id}/archive").status_code == 400
    assert http.post(f"/v1/organizations/service_accounts/{sa_id}/archive").status_code == 400
    archived = ok(http.post(f"/v1/organizations/federation_rules/{federated.rule['id']}/archive"))
    assert archived["archived_at"] is not None
    assert ok(http.get("/v1/organizations/federation_rules"))["data"] == []
    everything = ok(http.get("/v1/organizations/federation_rules?include_archived=true"))
    assert len(everything["data"]) == 1
    update = http.post(f"/v1/organizations/federation_rules/{federated.rule['id']}", json={})
    assert update.status_code == 400
    assert http.post(f"/v1/organizations/service_accounts/{sa_id}/archive").status_code == 200


def test_duplicate_names_conflict_and_paging_goes_on(sandbox: Sandbox) -> None:
    with admin_http(sandbox) as http:
        for n in range(3):
            ok(http.post("/v1/organizations/service_accounts", json={"name": f"sa-{n}"}))
        again = http.post("/v1/organizations/service_accounts", json={"name": "sa-0"})
        assert again.status_code == 409
        first = ok(http.get("/v1/organizations/service_accounts?limit=2"))
        assert first["has_more"] is True
        rest = ok(http.get(f"/v1/organizations/service_accounts?limit=2&page={first['next_page']}"))
        assert [s["name"] for s in first["data"] + rest["data"]] == ["sa-0", "sa-1", "sa-2"]


def test_cel_conditions_and_org_admin_rules_are_refused(federated: Federated) -> None:
    body = {
        "name": "cel",
        "issuer_id": federated.issuer["id"],
        "match": {"subject_prefix": "x", "condition": "claims.sub != ''"},
        "target": {"type": "service_account", "service_account_id": federated.sa["id"]},
        "oauth_scope": "workspace:inference",
        "workspace_id": federated.workspace,
    }
    answer = federated.http.post("/v1/organizations/federation_rules", json=body)
    assert answer.status_code == 400
    assert "CEL" in answer.json()["error"]["message"]
    body["match"] = {"subject_prefix": "x"}
    body["oauth_scope"] = "org:admin"
    assert federated.http.post("/v1/organizations/federation_rules", json=body).status_code == 400
    body["oauth_scope"] = "workspace:inference"
    body["match"] = {"subject_prefix": "*"}
    assert federated.http.post("/v1/organizations/federation_rules", json=body).status_code == 400


# -- the exchange -----------------------------------------------------------------------------


def test_a_good_identity_token_is_exchanged_and_the_token_lists_models(f: Federated) -> None:
    answer = ok(f.exchange(f.identity_token(claims={"owner": "acme"})))
    assert answer["token_type"] == "Bearer"
    assert answer["scope"] == "workspace:inference"
    assert answer["access_token"].startswith("sk-ant-oat01-")
    assert 60 <= answer["expires_in"] <= 600
    models = httpx.get(f"{f.sb.url}/v1/models", headers=bearer_headers(answer["access_token"]))
    assert models.status_code == 200
    assert models.headers["anthropic-workspace-id"] == f.workspace


def test_the_token_lifetime_is_capped_by_twice_the_jwt_validity(f: Federated) -> None:
    answer = ok(f.exchange(f.identity_token(claims={"owner": "acme"}, lifetime=100)))
    assert answer["expires_in"] <= 200


def test_a_minted_token_expires(f: Federated) -> None:
    token = ok(f.exchange(f.identity_token(claims={"owner": "acme"})))["access_token"]
    real = f.sb.state.now
    f.sb.state.now = lambda: real() + 601
    try:
        answer = httpx.get(f"{f.sb.url}/v1/models", headers=bearer_headers(token))
    finally:
        f.sb.state.now = real
    assert answer.status_code == 401


def test_a_minted_token_is_not_an_admin_credential(f: Federated) -> None:
    token = ok(f.exchange(f.identity_token(claims={"owner": "acme"})))["access_token"]
    answer = httpx.get(
        f"{f.sb.url}/v1/organizations/federation_rules", headers=bearer_headers(token)
    )
    assert answer.status_code == 403


def test_traffic_shows_in_the_usage_report_under_the_service_account(f: Federated) -> None:
    token = ok(f.exchange(f.identity_token(claims={"owner": "acme"})))["access_token"]
    sent = httpx.post(
        f"{f.sb.url}/v1/messages",
        headers=bearer_headers(token),
        json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user"}]},
    )
    assert sent.status_code == 200
    report = httpx.get(
        f"{f.sb.url}/v1/organizations/usage_report/messages",
        params=[
            ("starting_at", time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime())),
            ("group_by[]", "service_account_id"),
            ("service_account_ids[]", f.sa["id"]),
            ("limit", "31"),
            ("bucket_width", "1d"),
        ],
        headers={"x-api-key": f.sb.admin_key.reveal(), "anthropic-version": "2023-06-01"},
    )
    rows = [r for b in report.json()["data"] for r in b["results"]]
    assert [r["service_account_id"] for r in rows] == [f.sa["id"]]
    assert rows[0]["output_tokens"] > 0


@pytest.fixture
def f(federated: Federated) -> Federated:
    return federated


def test_a_wrong_audience_is_denied_opaquely(f: Federated) -> None:
    _denied(
        f, f.exchange(f.identity_token(aud="https://evil.example", claims={"owner": "acme"})), "aud"
    )


def test_a_subject_outside_the_rule_is_denied(f: Federated) -> None:
    token = f.identity_token(sub="repo:acme/app:pull_request", claims={"owner": "acme"})
    _denied(f, f.exchange(token), "subject_prefix")


def test_a_missing_pinned_claim_is_denied(f: Federated) -> None:
    _denied(f, f.exchange(f.identity_token(claims={"owner": "mallory"})), "claim 'owner'")


def test_an_expired_token_is_denied_beyond_the_skew(f: Federated) -> None:
    now = int(time.time())
    inside = f.identity_token(claims={"owner": "acme", "iat": now - 100, "exp": now - 20})
    assert f.exchange(inside).status_code == 200  # within the 30 s skew
    old = f.identity_token(claims={"owner": "acme", "iat": now - 100, "exp": now - 40})
    _denied(f, f.exchange(old), "expired")


def test_a_token_issued_in_the_future_is_denied(f: Federated) -> None:
    now = int(time.time())
    token = f.identity_token(claims={"owner": "acme", "iat": now + 120, "exp": now + 400})
    _denied(f, f.exchange(token), "iat")
    token = f.identity_token(claims={"owner": "acme", "nbf": now + 120})
    _denied(f, f.exchange(token), "nbf")


def test_a_token_living_longer_than_the_issuer_allows_is_denied(f: Federated) -> None:
    _denied(f, f.exchange(f.identity_token(claims={"owner": "acme"}, lifetime=7200)), "max_jwt")


def test_a_replayed_jti_is_denied(f: Federated) -> None:
    token = f.identity_token(claims={"owner": "acme"})
    assert f.exchange(token).status_code == 200
    _denied(f, f.exchange(token), "jti")


def test_a_replay_is_accepted_when_check_jti_is_off(f: Federated) -> None:
    ok(
        f.http.post(
            f"/v1/organizations/federation_issuers/{f.issuer['id']}", json={"check_jti": False}
        )
    )
    token = f.identity_token(claims={"owner": "acme"})
    assert f.exchange(token).status_code == 200
    assert f.exchange(token).status_code == 200


def test_another_issuers_token_is_denied(f: Federated) -> None:
    token = f.identity_token(claims={"owner": "acme", "iss": "https://token.actions.example"})
    _denied(f, f.exchange(token), "iss")


def test_a_token_signed_by_an_attackers_key_is_denied(f: Federated) -> None:
    kid = public_jwks(f.sb.state)["keys"][0]["kid"]
    mine = ECKey.generate_key("P-256", parameters={"kid": kid})
    _denied(f, f.exchange(_signed(mine, {"alg": "ES256", "kid": kid}, _claims(f))), "signature")


def test_an_unknown_kid_is_denied(f: Federated) -> None:
    mine = RSAKey.generate_key(2048, parameters={"kid": "other"})
    _denied(f, f.exchange(_signed(mine, {"alg": "RS256", "kid": "other"}, _claims(f))), "kid")


def test_a_missing_kid_is_denied(f: Federated) -> None:
    mine = ECKey.generate_key("P-256")
    _denied(f, f.exchange(_signed(mine, {"alg": "ES256"}, _claims(f))), "kid")


def test_hmac_with_the_public_key_as_secret_is_denied(f: Federated) -> None:
    public = public_jwks(f.sb.state)["keys"][0]
    secret = OctKey.import_key(json.dumps(public).encode())
    token = _signed(secret, {"alg": "HS256", "kid": public["kid"]}, _claims(f))
    _denied(f, f.exchange(token), "algorithm")


def test_alg_none_is_denied(f: Federated) -> None:
    kid = public_jwks(f.sb.state)["keys"][0]["kid"]
    token = f"{_b64({'alg': 'none', 'kid': kid})}.{_b64(_claims(f))}."
    _denied(f, f.exchange(token), "algorithm")


def test_garbage_is_denied_not_crashed_on(f: Federated) -> None:
    _denied(f, f.exchange("not.a.jwt"), "")
    _denied(f, f.exchange("x"), "")


def test_an_archived_rule_stops_the_exchange_at_once(f: Federated) -> None:
    ok(f.http.post(f"/v1/organizations/federation_rules/{f.rule['id']}/archive"))
    _denied(f, f.exchange(f.identity_token(claims={"owner": "acme"})), "archived")


def test_an_unknown_rule_or_organization_is_denied(f: Federated) -> None:
    token = f.identity_token(claims={"owner": "acme"})
    _denied(f, f.exchange(token, federation_rule_id="fdrl_01nope"), "unknown federation rule")
    _denied(f, f.exchange(token, organization_id="00000000-0000"), "organization_id")


def test_a_workspace_the_rule_does_not_cover_is_denied(f: Federated) -> None:
    other = f.sb.add_workspace("other")
    token = f.identity_token(claims={"owner": "acme"})
    _denied(f, f.exchange(token, workspace_id=other), "not enabled for workspace")


def test_malformed_requests_are_400_not_401(f: Federated) -> None:
    assert (
        f.exchange("x", grant_type="urn:ietf:params:oauth:grant-type:token-exchange").status_code
        == 400
    )
    assert f.exchange("x", federation_rule_id="").status_code == 400
    assert f.exchange("a" * (16 * 1024 + 1)).status_code == 400


@pytest.mark.parametrize("kind", ["explicit_url", "inline"])
def test_jwks_by_explicit_url_or_inline_verifies_too(sandbox: Sandbox, kind: str) -> None:
    jwks: dict[str, Any] = (
        {"type": "explicit_url", "url": f"{sandbox.oidc_issuer}/jwks"}
        if kind == "explicit_url"
        else {"type": "inline", "keys": public_jwks(sandbox.state)["keys"]}
    )
    with admin_http(sandbox) as http:
        f = federate(sandbox, http, jwks=jwks)
        assert f.exchange(f.identity_token(claims={"owner": "acme"})).status_code == 200


def test_a_broken_jwks_endpoint_is_a_denial_and_shows_in_poll_status(sandbox: Sandbox) -> None:
    with admin_http(sandbox) as http:
        f = federate(sandbox, http, jwks={"type": "explicit_url", "url": f"{sandbox.url}/nowhere"})
        _denied(f, f.exchange(f.identity_token(claims={"owner": "acme"})), "JWKS")
        issuer = ok(http.get(f"/v1/organizations/federation_issuers/{f.issuer['id']}"))
        assert issuer["poll_status"]["consecutive_failures"] == 1
