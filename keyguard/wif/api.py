"""The WIF Admin API (service accounts, federation issuers and rules) and the exchange.

These endpoints accept only an ``org:admin`` OAuth bearer token: Anthropic refuses Admin keys
on them "for reads or writes". The token goes in ``authorization: Bearer`` with
``anthropic-beta: oauth-2025-04-20``, only to the configured base URL.
"""

from __future__ import annotations

import builtins
import logging
import math
import os
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from keyguard.admin.auth import ANTHROPIC_VERSION, OAUTH_BETA
from keyguard.admin.client import checked_url
from keyguard.admin.errors import ApiAuthError, ApiError, error_from_response
from keyguard.admin.parse import (
    answer_json,
    decode_answer,
    format_time,
    parse_count,
    parse_time,
)
from keyguard.admin.retry import RetryPolicy, send_with_retries
from keyguard.errors import AuthError, UnavailableError
from keyguard.keys import Secret
from keyguard.keys import scrub_text as scrub

log = logging.getLogger("keyguard.wif")

FEDERATION_BETA = "oidc-federation-2026-04-01"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
KINDS = ("service_accounts", "federation_issuers", "federation_rules")
#: The longest a federated token lives (``token_lifetime_seconds`` is 60-86400, and a token
#: lives max(60, min(that, 2 x the JWT's remaining validity))): an answer claiming longer is
#: counted at this.
MAX_TOKEN_LIFETIME = 86400
MIN_TOKEN_LIFETIME = 60
#: Most pages one listing may take (100 objects or a week of hourly buckets each): an answer
#: whose ``next_page`` never ends is the API error, not a loop.
MAX_PAGES = 1000

OAUTH_HELP = (
    "the federation endpoints (service accounts, issuers, rules) accept only an org:admin "
    "OAuth token, never an Admin key: run `ant auth login --scope org:admin` as an "
    "organization admin and export ANTHROPIC_AUTH_TOKEN=<the sk-ant-oat01- token it prints>"
)


def resolve_oauth_token(environ: Mapping[str, str] | None = None) -> Secret:
    """The ``org:admin`` token from ``ANTHROPIC_AUTH_TOKEN`` (or ``ANTHROPIC_OAUTH_TOKEN``)."""
    env = os.environ if environ is None else environ
    name = "ANTHROPIC_AUTH_TOKEN" if env.get("ANTHROPIC_AUTH_TOKEN") else "ANTHROPIC_OAUTH_TOKEN"
    value = env.get(name, "").strip()
    if value.startswith(("sk-ant-admin", "sk-ant-api")):
        kind = "an Admin key" if value.startswith("sk-ant-admin") else "an API key"
        raise AuthError(f"${name} holds {kind}, not an OAuth token; {OAUTH_HELP}")
    if not value:
        given = " (ANTHROPIC_ADMIN_KEY is set, but an Admin key cannot do this)"
        raise AuthError(
            "no org:admin OAuth token: $ANTHROPIC_AUTH_TOKEN is empty"
            + (given if env.get("ANTHROPIC_ADMIN_KEY") else "")
            + f"; {OAUTH_HELP}"
        )
    return Secret(value)


class _BearerAuth(httpx.Auth):
    """Puts the token in ``authorization`` at send time: no header dict of ours holds it."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["authorization"] = f"Bearer {self._token.reveal()}"
        flags = [f.strip() for f in request.headers.get("anthropic-beta", "").split(",") if f]
        if OAUTH_BETA not in flags:
            request.headers["anthropic-beta"] = ",".join([*flags, OAUTH_BETA])
        yield request

    def __repr__(self) -> str:
        return f"_BearerAuth({self._token!r})"


def _http(base_url: str, transport: Any, timeout: float) -> httpx.Client:
    return httpx.Client(
        base_url=checked_url(base_url),  # keyguard.urls' rule, as for every other key sent
        transport=transport,
        timeout=timeout,
        follow_redirects=False,  # a token is only ever sent to the configured base URL
        headers={"anthropic-version": ANTHROPIC_VERSION, "user-agent": "keyguard"},
    )


class WifClient:
    """Service accounts, issuers, rules (``org:admin`` bearer), and the usage report."""

    def __init__(
        self,
        token: Secret,
        base_url: str,
        *,
        transport: Any = None,
        max_attempts: int = 5,
        deadline_seconds: float = 60.0,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = _BearerAuth(token)
        self._policy = RetryPolicy(
            max_attempts=max(1, max_attempts), deadline_seconds=deadline_seconds
        )
        self._http = _http(self.base_url, transport, timeout)
        #: the organization's UUID, from the ``anthropic-organization-id`` answer header
        self.organization_id: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WifClient:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def call(self, method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
        what = f"{method} {path}"

        def send() -> httpx.Response:
            return self._http.request(method, path, params=params, json=json, auth=self._auth)

        response = send_with_retries(send, self._policy, what, self.base_url)
        self.organization_id = response.headers.get("anthropic-organization-id") or (
            self.organization_id
        )
        if not response.is_success:
            err = error_from_response(response, what)
            if isinstance(err, ApiAuthError):
                rid = f" (request-id {err.request_id})" if err.request_id else ""
                reason = scrub(err.api_message or "no reason given")
                raise AuthError(
                    f"Anthropic API refused {what} with {response.status_code}{rid}: "
                    f"{reason}; {OAUTH_HELP}"
                ) from None
            raise err
        return answer_json(response, what, self.base_url)

    def pages(self, path: str, query: Callable[[str | None], Any]) -> Iterator[Any]:
        """Each page of a ``page``/``next_page`` listing; ``query(token)`` gives its params.

        A token seen before or more than ``MAX_PAGES`` pages are the API error: a listing
        that stopped early would be read as complete (a rule, an account, traffic missed)."""
        token: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = self.call("GET", path, params=query(token))
            yield page
            nxt = page.get("next_page") if isinstance(page, dict) else None
            more = page.get("has_more") if isinstance(page, dict) else None
            if more is False:
                return
            if not isinstance(nxt, str) or not nxt:
                if more is True:  # a partial list would pass for the whole
                    raise ApiError(
                        f"Anthropic API answered GET {path} with has_more but no next_page: "
                        "more pages follow that cannot be read; nothing was decided on a "
                        "partial list"
                    )
                return
            if nxt in seen:
                raise ApiError(f"Anthropic API repeated a page token on GET {path}")
            seen.add(nxt)
            token = nxt
        raise ApiError(
            f"Anthropic API kept answering GET {path} with more pages after {MAX_PAGES}: "
            "nothing was decided on a partial list; run again, and if it stays, report it"
        )

    def list_all(self, kind: str, *, include_archived: bool = False, **filters: str) -> list[Any]:
        """Every object of ``kind`` (``page`` = the previous ``next_page``)."""
        params: dict[str, Any] = {"limit": 100, **filters}
        if include_archived:
            params["include_archived"] = "true"

        def query(token: str | None) -> dict[str, Any]:
            return params | ({"page": token} if token else {})

        items: list[Any] = []
        for page in self.pages(f"/v1/organizations/{kind}", query):
            data = page.get("data") if isinstance(page, dict) else None
            items.extend(i for i in (data if isinstance(data, list) else []) if isinstance(i, dict))
        return items

    def get(self, kind: str, object_id: str) -> dict[str, Any]:
        data = self.call("GET", f"/v1/organizations/{kind}/{quote(object_id, safe='')}")
        return data if isinstance(data, dict) else {}

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        data = self.call("POST", f"/v1/organizations/{kind}", json=body)
        return data if isinstance(data, dict) else {}

    def update(self, kind: str, object_id: str, body: dict[str, Any]) -> dict[str, Any]:
        data = self.call("POST", f"/v1/organizations/{kind}/{quote(object_id, safe='')}", json=body)
        return data if isinstance(data, dict) else {}

    def archive(self, kind: str, object_id: str) -> dict[str, Any]:
        path = f"/v1/organizations/{kind}/{quote(object_id, safe='')}/archive"
        data = self.call("POST", path)
        return data if isinstance(data, dict) else {}

    def sa_workspaces(self, service_account_id: str) -> builtins.list[str]:
        data = self.call(
            "GET",
            f"/v1/organizations/service_accounts/{quote(service_account_id, safe='')}/workspaces",
        )
        items = data.get("data") if isinstance(data, dict) else None
        return [str(m.get("workspace_id")) for m in items or [] if isinstance(m, dict)]

    def add_sa_workspace(self, service_account_id: str, workspace_id: str) -> None:
        path = f"/v1/organizations/service_accounts/{quote(service_account_id, safe='')}/workspaces"
        self.call(
            "POST",
            path,
            json={"workspace_id": workspace_id, "workspace_role": "workspace_developer"},
        )

    def add_rule_workspace(self, rule_id: str, workspace_id: str) -> None:
        path = f"/v1/organizations/federation_rules/{quote(rule_id, safe='')}/workspaces"
        self.call("POST", path, json={"workspace_id": workspace_id})

    def service_account_tokens(
        self, service_account_id: str, starting_at: datetime, ending_at: datetime
    ) -> builtins.list[tuple[datetime, int]]:
        """Tokens the service account used per 1m/1h bucket: ``(bucket end, tokens)``."""
        width = "1m" if (ending_at - starting_at).total_seconds() <= 86400 else "1h"
        params: list[tuple[str, str]] = [
            ("starting_at", format_time(starting_at)),
            ("ending_at", format_time(ending_at)),
            ("bucket_width", width),
            ("limit", "1440" if width == "1m" else "168"),
            ("group_by[]", "service_account_id"),
            ("service_account_ids[]", service_account_id),
        ]

        def query(token: str | None) -> list[tuple[str, str]]:
            return params + ([("page", token)] if token else [])

        out: builtins.list[tuple[datetime, int]] = []
        for page in self.pages("/v1/organizations/usage_report/messages", query):
            for bucket in page.get("data") or [] if isinstance(page, dict) else []:
                end = parse_time(bucket.get("ending_at")) if isinstance(bucket, dict) else None
                for row in bucket.get("results") or [] if end else []:
                    if (
                        isinstance(row, dict)
                        and row.get("service_account_id") == service_account_id
                        and end
                    ):
                        out.append((end, _tokens(row)))
        return out


def _tokens(row: dict[str, Any]) -> int:
    """A result's tokens; a value that is not a count is the API error, never 0 (the drain
    check would read a hostile ``-1000000`` or ``"9"`` as an idle service account)."""
    what = "a usage report"
    total = 0
    for name in ("uncached_input_tokens", "cache_read_input_tokens", "output_tokens"):
        total += parse_count(row.get(name), name, what)
    cache = row.get("cache_creation")
    if isinstance(cache, dict):
        total += sum(
            parse_count(v, f"cache_creation[{str(k)[:40]!r}]", what)
            for k, v in cache.items()
            if str(k).endswith("_tokens")
        )
    return total


def seconds(value: Any) -> int | None:
    """A number of seconds from an answer, at most ``MAX_TOKEN_LIFETIME`` (what the API
    enforces for any token: an answer claiming longer is counted at it); None when it is not
    a finite number from 0 up (absent, bool, text, negative, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return min(math.ceil(value), MAX_TOKEN_LIFETIME) if value >= 0 else None


def token_lifetime(value: Any) -> int | None:
    """How long tokens a rule mints can live, from its ``token_lifetime_seconds``: 60-86400
    (every token lives at least 60 s); None when the value is not a number of seconds."""
    lifetime = seconds(value)
    return None if lifetime is None else max(MIN_TOKEN_LIFETIME, lifetime)


class ExchangeResult:
    """What an exchange answered: status, and on success scope and expiry, never the token."""

    def __init__(self, status: int, body: Any, request_id: str | None) -> None:
        self.status = status
        self.request_id = request_id
        self._token: Secret | None = None
        self.scope: str | None = None
        self.expires_in: int | None = None
        if status == 200 and isinstance(body, dict) and isinstance(body.get("access_token"), str):
            raw = body.get("expires_in")
            if raw is not None:
                self.expires_in = seconds(raw)
                if self.expires_in is None:  # the token itself is dropped with the answer
                    rid = f" (request-id {request_id})" if request_id else ""
                    raise ApiError(
                        f"Anthropic API answered POST /v1/oauth/token with expires_in = "
                        f"{repr(raw)[:40]}{rid}: not a number of seconds; run again, and if it "
                        "stays, check ANTHROPIC_BASE_URL and report it to Anthropic",
                        status=status,
                        request_id=request_id,
                    )
            self._token = Secret(body["access_token"])
            self.scope = body.get("scope") if isinstance(body.get("scope"), str) else None
        self.expires_at = time.time() + self.expires_in if self.expires_in else None

    @property
    def token(self) -> Secret | None:
        return self._token


def exchange(
    base_url: str,
    assertion: Secret,
    *,
    rule_id: str,
    organization_id: str,
    service_account_id: str | None,
    workspace_id: str | None,
    transport: Any = None,
) -> ExchangeResult:
    """``POST /v1/oauth/token`` exactly as the official SDKs send it (jwt-bearer, both betas)."""
    body: dict[str, str] = {
        "grant_type": GRANT_TYPE,
        "assertion": assertion.reveal(),
        "federation_rule_id": rule_id,
        "organization_id": organization_id,
    }
    if service_account_id is not None:
        body["service_account_id"] = service_account_id
    if workspace_id is not None:
        body["workspace_id"] = workspace_id
    with _http(base_url, transport, 30.0) as http:
        try:
            response = http.post(
                "/v1/oauth/token",
                json=body,
                headers={"anthropic-beta": f"{OAUTH_BETA},{FEDERATION_BETA}"},
            )
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"cannot reach {base_url}/v1/oauth/token: {type(exc).__name__}"
            ) from None
    if response.is_success:
        data = answer_json(response, "POST /v1/oauth/token", base_url)
    else:
        try:
            data = decode_answer(response.content)
        except ValueError:
            data = None
    return ExchangeResult(response.status_code, data, response.headers.get("request-id"))


def list_models(base_url: str, token: Secret, *, transport: Any = None) -> tuple[int, str | None]:
    """``GET /v1/models`` with a federated token: ``(status, anthropic-workspace-id)``."""
    with _http(base_url, transport, 30.0) as http:
        try:
            response = http.get("/v1/models", auth=_BearerAuth(token))
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"cannot reach {base_url}/v1/models: {type(exc).__name__}"
            ) from None
    return response.status_code, response.headers.get("anthropic-workspace-id")
