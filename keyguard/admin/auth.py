"""How the Admin API client presents a credential, and where it may send one.

Keys go in ``x-api-key``; an OAuth token (``sk-ant-oat01-``) as a bearer with the beta flag
bearer calls need. A key is sent only to the base URL keyguard.urls allows, as httpx reads it.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx

from keyguard.keys import Secret
from keyguard.urls import checked_base_url, parse_base_url

ANTHROPIC_VERSION = "2023-06-01"
OAUTH_TOKEN_PREFIX = "sk-ant-oat01-"  # noqa: S105 - a prefix, not a secret
OAUTH_BETA = "oauth-2025-04-20"


def credential_kind(secret: Secret) -> str:
    """``admin_key``, ``oauth_token`` (bearer) or ``api_key`` (org-scoped personal/SA key)."""
    value = secret.reveal()
    if value.startswith("sk-ant-admin"):
        return "admin_key"
    if value.startswith(OAUTH_TOKEN_PREFIX):
        return "oauth_token"
    return "api_key"


class KeyAuth(httpx.Auth):
    """Puts a credential on the request at send time, so no header dict of ours holds it:
    keys in ``x-api-key``; an OAuth token as a bearer, with the beta flag bearer calls need."""

    def __init__(self, key: Secret) -> None:
        self._key = key
        self._bearer = credential_kind(key) == "oauth_token"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._bearer:
            request.headers["authorization"] = f"Bearer {self._key.reveal()}"
            betas = [b.strip() for b in request.headers.get("anthropic-beta", "").split(",")]
            if OAUTH_BETA not in betas:
                request.headers["anthropic-beta"] = ",".join([*filter(None, betas), OAUTH_BETA])
        else:
            request.headers["x-api-key"] = self._key.reveal()
        yield request

    def __repr__(self) -> str:
        return f"KeyAuth({self._key!r})"


def checked_url(base_url: str) -> str:
    """The one check before a key is sent: keyguard.urls' rule, and httpx reads the same host."""
    parse_base_url(base_url, "the base URL")  # our own parser first: httpx never sees garbage
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        url = httpx.URL("invalid:")
    return checked_base_url(base_url, url.host, url.userinfo.decode("ascii", "replace"))
