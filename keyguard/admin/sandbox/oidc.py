"""A local OIDC issuer inside the sandbox, under ``/oidc``: the workload identity for tests.

``GET /oidc/.well-known/openid-configuration`` and ``GET /oidc/jwks`` publish its ES256 key;
``POST /oidc/token`` with ``{"sub", "aud", "claims", "lifetime"}`` answers ``{"id_token"}``
signed with it. Anyone on loopback may ask: it stands for GitHub's or Kubernetes' token
service, never for a real one. Its key lives in the sandbox's state (file mode 0600).
"""

from __future__ import annotations

import secrets
from typing import Any

from keyguard.admin.sandbox.state import SandboxState
from keyguard.admin.sandbox.wire import SandboxError

PREFIX = "/oidc"
MAX_LIFETIME = 176400


def issuer_url(address: tuple[Any, ...]) -> str:
    """The issuer URL for a server bound at ``address`` (what every token's ``iss`` says)."""
    host, port = str(address[0]), int(address[1])
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{PREFIX}"


def _private_jwk(state: SandboxState) -> dict[str, Any]:
    from joserfc.jwk import ECKey

    with state.lock:
        jwk = state.data.get("oidc_jwk")
        if jwk is None:
            kid = "kg-" + secrets.token_hex(8)
            key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"})
            jwk = state.data["oidc_jwk"] = dict(key.as_dict(private=True))
            state.save()
        return dict(jwk)


def public_jwks(state: SandboxState) -> dict[str, Any]:
    """The issuer's JWK set (public half only)."""
    jwk = _private_jwk(state)
    return {"keys": [{k: v for k, v in jwk.items() if k != "d"}]}


def discovery(issuer_url: str) -> dict[str, Any]:
    return {
        "issuer": issuer_url,
        "jwks_uri": f"{issuer_url}/jwks",
        "token_endpoint": f"{issuer_url}/token",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }


def issue(state: SandboxState, issuer_url: str, body: Any) -> dict[str, Any]:
    """A signed identity token for ``body`` (``sub``, ``aud``, ``claims``, ``lifetime``)."""
    from joserfc import jwt
    from joserfc.jwk import ECKey

    if not isinstance(body, dict):
        raise SandboxError(400, "invalid_request_error", "body must be a JSON object")
    sub, aud = body.get("sub"), body.get("aud", "https://api.anthropic.com")
    extra = body.get("claims") or {}
    lifetime = body.get("lifetime", 300)
    if not isinstance(sub, str) or not sub:
        raise SandboxError(400, "invalid_request_error", "sub: a non-empty string")
    if not isinstance(aud, str | list) or not isinstance(extra, dict):
        raise SandboxError(400, "invalid_request_error", "aud: a string or list; claims: object")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int):
        raise SandboxError(400, "invalid_request_error", "lifetime: seconds, an integer")
    if not 1 <= lifetime <= MAX_LIFETIME:
        raise SandboxError(400, "invalid_request_error", f"lifetime: 1 to {MAX_LIFETIME}")
    now = int(state.now())
    claims: dict[str, Any] = {
        "iss": issuer_url,
        "sub": sub,
        "aud": aud,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": secrets.token_hex(16),
        **extra,
    }
    jwk = _private_jwk(state)
    key = ECKey.import_key(jwk)
    token = jwt.encode({"alg": "ES256", "kid": jwk["kid"], "typ": "JWT"}, claims, key)
    return {"id_token": token}
