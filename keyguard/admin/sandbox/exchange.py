"""The sandbox's ``POST /v1/oauth/token``: RFC 7523 jwt-bearer, verified for real with joserfc.

Every denial is the same opaque 401, as Anthropic answers it; the real reason goes to the
sandbox's log only (``keyguard.sandbox.federation`` and ``denials(state)``), the way the
Console's authentication history keeps it.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import httpx

from keyguard.admin.sandbox import federation as wif
from keyguard.admin.sandbox import federation_rules as objects
from keyguard.admin.sandbox.state import SandboxState
from keyguard.admin.sandbox.wire import SandboxError, iso
from keyguard.wif.providers import DEFAULT_AUDIENCE

log = logging.getLogger("keyguard.sandbox.federation")

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
SKEW = 30
MAX_ASSERTION = 16 * 1024
_DENIALS: weakref.WeakKeyDictionary[SandboxState, list[str]] = weakref.WeakKeyDictionary()


class Denied(Exception):
    """A refused exchange; the message is the reason kept in the sandbox log only."""


def denials(state: SandboxState) -> list[str]:
    """Why each refused exchange was refused, oldest first (the sandbox's own log)."""
    with state.lock:
        return list(_DENIALS.get(state, []))


def _deny(state: SandboxState, reason: str) -> SandboxError:
    with state.lock:
        _DENIALS.setdefault(state, []).append(reason)
    log.warning("token exchange denied: %s", reason)
    return SandboxError(401, "authentication_error", "Authentication failed")


def exchange(state: SandboxState, body: Any) -> dict[str, Any]:
    """Verify the assertion against the named rule and mint a token; SandboxError otherwise."""
    if not isinstance(body, dict):
        raise SandboxError(400, "invalid_request_error", "body must be a JSON object")
    if body.get("grant_type") != GRANT_TYPE:
        raise SandboxError(400, "invalid_request_error", f"grant_type: must be {GRANT_TYPE}")
    for name in ("assertion", "federation_rule_id", "organization_id"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise SandboxError(400, "invalid_request_error", f"{name}: Field required")
    for name in ("service_account_id", "workspace_id"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise SandboxError(400, "invalid_request_error", f"{name}: must be a string")
    if len(body["assertion"].encode()) > MAX_ASSERTION:
        raise SandboxError(400, "invalid_request_error", "assertion: longer than 16 KiB")
    try:
        return _exchange(state, body)
    except Denied as exc:
        raise _deny(state, str(exc)) from None


def _exchange(state: SandboxState, body: dict[str, Any]) -> dict[str, Any]:
    if body["organization_id"] != state.data["organization"]["id"]:
        raise Denied(f"organization_id {body['organization_id']!r} is not this organization")
    try:
        rule = objects.rule(state, body["federation_rule_id"])
        issuer = objects.issuer(state, rule["issuer_id"])
        account = wif.service_account(state, rule["target"]["service_account_id"])
    except SandboxError:
        raise Denied(f"unknown federation rule {body['federation_rule_id']}") from None
    if rule.get("archived_at") is not None:
        raise Denied(f"federation rule {rule['id']} is archived")
    if issuer.get("archived_at") is not None:
        raise Denied(f"federation issuer {issuer['id']} is archived")
    if account.get("archived_at") is not None:
        raise Denied(f"service account {account['id']} is archived")
    wanted_account = body.get("service_account_id")
    if wanted_account is not None and wanted_account != account["id"]:
        raise Denied(
            f"service_account_id {wanted_account} is not the rule's target {account['id']}"
        )
    workspace = _workspace(state, rule, account, body.get("workspace_id"))
    claims = verify_assertion(state, issuer, body["assertion"])
    _match(rule, claims)
    now = state.now()
    remaining = float(claims["exp"]) - now
    lifetime = int(max(60, min(rule["token_lifetime_seconds"], 2 * remaining)))
    token = wif.mint_token(
        state,
        account_id=account["id"],
        rule_id=rule["id"],
        workspace_id=workspace,
        scope=rule["oauth_scope"],
        lifetime=lifetime,
    )
    log.info("token exchange: %s minted a token for %s in %s", rule["id"], account["id"], workspace)
    return {
        "access_token": token.reveal(),
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": rule["oauth_scope"],
    }


def _workspace(
    state: SandboxState, rule: dict[str, Any], account: dict[str, Any], wanted: str | None
) -> str:
    if rule["applies_to_all_workspaces"]:
        chosen = wanted or "default"
        if chosen != "default":
            try:
                state.workspace(chosen)
            except SandboxError:
                raise Denied(f"workspace_id {chosen} does not exist") from None
    else:
        enabled = rule["workspace_ids"]
        if wanted is not None:
            if wanted not in enabled:
                raise Denied(f"rule {rule['id']} is not enabled for workspace {wanted}")
            chosen = wanted
        elif len(enabled) == 1:
            chosen = enabled[0]
        elif "default" in enabled:
            chosen = "default"
        else:
            raise Denied(f"rule {rule['id']} covers several workspaces: workspace_id required")
    if not wif.is_member(account, chosen):
        raise Denied(f"service account {account['id']} is not a member of workspace {chosen}")
    return chosen


def fetch_jwks(state: SandboxState, issuer: dict[str, Any]) -> dict[str, Any]:
    """The issuer's key set: inline, or fetched (explicit URL, or by OIDC discovery)."""
    source = issuer["jwks"]
    if source["type"] == "inline":
        return {"keys": source["keys"]}
    try:
        with httpx.Client(timeout=5.0, follow_redirects=False) as http:
            if source["type"] == "explicit_url":
                url = source["url"]
            else:
                base = (source.get("discovery_base") or issuer["issuer_url"]).rstrip("/")
                meta = http.get(f"{base}/.well-known/openid-configuration")
                meta.raise_for_status()
                url = meta.json()["jwks_uri"]
            answer = http.get(url)
            answer.raise_for_status()
            keys = answer.json()
            if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
                raise ValueError("not a JWK set")
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        _poll(state, issuer, ok=False)
        raise Denied(f"JWKS fetch for {issuer['id']} failed: {type(exc).__name__}") from None
    _poll(state, issuer, ok=True)
    return keys


def _poll(state: SandboxState, issuer: dict[str, Any], *, ok: bool) -> None:
    with state.lock:
        item = objects.issuer(state, issuer["id"])
        status = item.get("poll_status") or {"consecutive_failures": 0, "last_fetched_at": None}
        if ok:
            status = {**status, "consecutive_failures": 0, "last_fetched_at": iso(state.now())}
        else:
            status = {**status, "consecutive_failures": status["consecutive_failures"] + 1}
        status["next_poll_at"] = iso(state.now() + 300)
        item["poll_status"] = status
        state.save()


def verify_assertion(state: SandboxState, issuer: dict[str, Any], assertion: str) -> dict[str, Any]:
    """The assertion's verified claims; ``Denied`` with the reason otherwise."""
    from joserfc import jws, jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import ECKey, RSAKey

    try:
        header = jws.extract_compact(assertion.encode()).headers()
    except (JoseError, ValueError, TypeError):
        raise Denied("assertion is not a compact JWS") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise Denied(f"algorithm {alg!r} is not an accepted asymmetric algorithm")
    if not isinstance(kid, str) or not kid:
        raise Denied("the JWT header has no kid")
    candidates = [
        k for k in fetch_jwks(state, issuer)["keys"] if isinstance(k, dict) and k.get("kid") == kid
    ]
    # Only public asymmetric keys: an "oct" entry must never turn into an HMAC secret.
    candidates = [k for k in candidates if k.get("kty") in ("EC", "RSA")]
    if not candidates:
        raise Denied(f"kid {kid!r} is not in the JWKS of {issuer['id']}")
    jwk = candidates[0]
    try:
        key = ECKey.import_key(jwk) if jwk["kty"] == "EC" else RSAKey.import_key(jwk)
        token = jwt.decode(assertion, key, algorithms=[alg])
    except (JoseError, ValueError, TypeError) as exc:
        raise Denied(f"signature check failed: {type(exc).__name__}") from None
    claims: dict[str, Any] = dict(token.claims)
    _check_times(state, issuer, claims)
    if claims.get("iss") != issuer["issuer_url"]:
        raise Denied(f"iss {claims.get('iss')!r} is not {issuer['issuer_url']!r}")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise Denied("the JWT has no sub")
    _check_jti(state, issuer, claims)
    return claims


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Denied(f"{name} is not a number")
    return float(value)


def _check_times(state: SandboxState, issuer: dict[str, Any], claims: dict[str, Any]) -> None:
    now = state.now()
    iat, exp, nbf = _number(claims, "iat"), _number(claims, "exp"), _number(claims, "nbf")
    if iat is None or exp is None:
        raise Denied("the JWT needs both iat and exp")
    if iat > now + SKEW:
        raise Denied("iat is in the future")
    if exp <= now - SKEW:
        raise Denied("the JWT has expired")
    if nbf is not None and nbf > now + SKEW:
        raise Denied("nbf is in the future")
    if exp - iat > issuer["max_jwt_lifetime_seconds"]:
        raise Denied(
            f"exp - iat = {exp - iat:.0f}s is over the issuer's max_jwt_lifetime_seconds "
            f"({issuer['max_jwt_lifetime_seconds']})"
        )


def _check_jti(state: SandboxState, issuer: dict[str, Any], claims: dict[str, Any]) -> None:
    jti = claims.get("jti")
    if not issuer["check_jti"] or jti is None:
        return
    seen = wif.federation_data(state)["jtis"]
    key = f"{issuer['id']}|{jti}"
    with state.lock:
        now = state.now()
        for old in [k for k, until in seen.items() if until < now - SKEW]:
            del seen[old]
        if key in seen:
            raise Denied(f"jti {jti!r} was already used")
        seen[key] = float(claims["exp"])
        state.save()


def _match(rule: dict[str, Any], claims: dict[str, Any]) -> None:
    match = rule["match"]
    audience = match.get("audience") or DEFAULT_AUDIENCE
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if audience not in auds:
        raise Denied(f"aud {aud!r} does not contain {audience!r}")
    prefix = match.get("subject_prefix")
    sub = claims["sub"]
    if prefix:
        ok = sub.startswith(prefix[:-1]) if prefix.endswith("*") else sub == prefix
        if not ok:
            raise Denied(f"sub {sub!r} does not match subject_prefix {prefix!r}")
    for name, want in (match.get("claims") or {}).items():
        if claims.get(name) != want:
            raise Denied(f"claim {name!r} is {claims.get(name)!r}, not {want!r}")
