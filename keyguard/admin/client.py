"""Anthropic Admin API client: keys, workspaces, usage, ``me``; free key verification."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from keyguard.admin.errors import ApiError, error_from_response
from keyguard.admin.parse import (
    format_time,
    parse_api_key,
    parse_usage_page,
    parse_workspace,
)
from keyguard.admin.retry import RetryPolicy, send_with_retries
from keyguard.errors import NotFoundError, UsageError
from keyguard.keys import Secret
from keyguard.models import ApiKey, UsageRow, VerifyResult, Workspace

log = logging.getLogger("keyguard.admin")

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
#: Most buckets one usage page may hold, per bucket width (the API's documented maxima).
USAGE_PAGE_LIMIT = {"1m": 1440, "1h": 168, "1d": 31}
PAGE_LIMIT = 1000
#: Keys per usage request, so that the query string stays a sane length.
USAGE_KEYS_PER_CALL = 50
_HINT_PREFIX_RE = re.compile(r"^(sk-ant-[a-z]+[0-9]*-)")
_HINT_GAP_RE = re.compile(r"(\.\.\.|…|\*+)")


class _KeyAuth(httpx.Auth):
    """Puts a key in ``x-api-key`` at send time, so no header dict of ours ever holds it."""

    def __init__(self, key: Secret) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["x-api-key"] = self._key.reveal()
        yield request

    def __repr__(self) -> str:
        return f"_KeyAuth({self._key!r})"


def hint_parts(hint: str | None) -> tuple[str, str, str] | None:
    """``(prefix, first 3 body chars, last 4 chars)`` of a ``partial_key_hint``, or None."""
    if not hint:
        return None
    m = _HINT_PREFIX_RE.match(hint)
    if not m:
        return None
    body = hint[m.end() :]
    gap = _HINT_GAP_RE.search(body)
    if gap is None or gap.start() != 3 or len(body) - gap.end() != 4:
        return None
    return m.group(1), body[:3], body[-4:]


def key_matches_hint(key: Secret, hint: str | None) -> bool:
    """True when ``key`` has the prefix, first 3 and last 4 characters the hint shows."""
    parts = hint_parts(hint)
    if parts is None:
        return False
    prefix, first, last = parts
    value = key.reveal()
    body = value[len(prefix) :]
    return value.startswith(prefix) and len(body) >= 7 and body[:3] == first and body[-4:] == last


class AdminClient:
    """Talks to ``/v1/organizations/*`` with an admin key; verifies API keys for free."""

    def __init__(
        self,
        admin_key: Secret,
        base_url: str = DEFAULT_BASE_URL,
        *,
        transport: Any = None,
        max_attempts: int = 5,
        deadline_seconds: float = 60.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not isinstance(admin_key, Secret):
            raise TypeError("admin_key must be a keyguard.keys.Secret")
        self.base_url = base_url.rstrip("/")
        self._auth = _KeyAuth(admin_key)
        self._policy = RetryPolicy(
            max_attempts=max(1, max_attempts),
            deadline_seconds=deadline_seconds,
            sleep=sleep or time.sleep,
        )
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            follow_redirects=False,  # a key is only ever sent to the configured base URL
            headers={"anthropic-version": ANTHROPIC_VERSION, "user-agent": "keyguard"},
        )
        self._date: tuple[datetime, float] | None = None  # last Date header, monotonic arrival
        self._agrees = False  # the local clock matched that Date within its one-second grain

    def __repr__(self) -> str:
        return f"AdminClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        what = f"{method} {path}"

        def send() -> httpx.Response:
            return self._http.request(
                method, path, params=params, json=json, auth=auth or self._auth
            )

        response = send_with_retries(send, self._policy, what, self.base_url)
        self._note_date(response.headers.get("date"))
        log.debug(
            "%s -> %s (request-id %s)",
            what,
            response.status_code,
            response.headers.get("request-id"),
        )
        return response

    def _note_date(self, header: str | None) -> None:
        try:
            date = parsedate_to_datetime(header) if header else None
        except (TypeError, ValueError, IndexError):
            date = None  # a Date we cannot read is no time at all
        if date is not None:
            date = date if date.tzinfo else date.replace(tzinfo=UTC)
            # Date has whole seconds: a local clock inside that second agrees, and is finer.
            self._agrees = -0.5 < time.time() - date.timestamp() < 1.5
            self._date = (date, time.monotonic())

    def server_time(self) -> datetime | None:
        """Now by the API's clock: its last ``Date`` header plus the time since (None: no Date)."""
        if self._date is None:
            return None
        date, arrived = self._date
        if self._agrees:
            return datetime.now(UTC)
        return date + timedelta(seconds=time.monotonic() - arrived)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if not response.is_success:
            raise error_from_response(response, f"{method} {path}")
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"Anthropic API answered {method} {path} with something that is not JSON "
                f"(status {response.status_code}); check ANTHROPIC_BASE_URL ({self.base_url})",
                status=response.status_code,
                request_id=response.headers.get("request-id"),
            ) from None

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[Any]:
        """Every item of a cursor-paged list (``after_id`` = the previous ``last_id``)."""
        params = {k: v for k, v in params.items() if v is not None}
        params["limit"] = PAGE_LIMIT
        seen: set[str] = set()
        while True:
            page = self._call("GET", path, params=params)
            data = page.get("data") if isinstance(page, dict) else None
            yield from data if isinstance(data, list) else []
            last_id = page.get("last_id") if isinstance(page, dict) else None
            if not (isinstance(page, dict) and page.get("has_more")) or not last_id:
                return
            if last_id in seen:  # a server that repeats itself must not loop us forever
                raise ApiError(f"Anthropic API repeated the page after {last_id} on GET {path}")
            seen.add(last_id)
            params["after_id"] = last_id

    # -- keys -------------------------------------------------------------------------------

    def list_keys(
        self, *, status: str | None = None, workspace_id: str | None = None
    ) -> Iterator[ApiKey]:
        """Every key, page by page."""
        params = {"status": status, "workspace_id": workspace_id}
        for item in self._pages("/v1/organizations/api_keys", params):
            try:
                yield parse_api_key(item)
            except ValueError:
                log.debug("skipping an API key entry without an id")

    def get_key(self, key_id: str) -> ApiKey:
        """One key by its ``apikey_...`` id."""
        data = self._call("GET", f"/v1/organizations/api_keys/{quote(key_id, safe='')}")
        return parse_api_key(data)

    def update_key(
        self, key_id: str, *, name: str | None = None, status: str | None = None
    ) -> ApiKey:
        """Rename a key and/or set its status (active, inactive, archived)."""
        body: dict[str, str] = {}
        if name is not None:
            body["name"] = name
        if status is not None:
            body["status"] = status
        if not body:
            raise UsageError(f"nothing to update on {key_id}: give a name or a status")
        path = f"/v1/organizations/api_keys/{quote(key_id, safe='')}"
        return parse_api_key(self._call("POST", path, json=body))

    # -- workspaces, org, usage -------------------------------------------------------------

    def list_workspaces(self, *, include_archived: bool = False) -> Iterator[Workspace]:
        """Every workspace, page by page."""
        params = {"include_archived": "true" if include_archived else None}
        for item in self._pages("/v1/organizations/workspaces", params):
            try:
                yield parse_workspace(item)
            except ValueError:
                log.debug("skipping a workspace entry without an id")

    def me(self) -> dict[str, Any]:
        """The organization this admin key belongs to (``id``, ``name``, ``type``)."""
        data = self._call("GET", "/v1/organizations/me")
        return data if isinstance(data, dict) else {}

    def usage(
        self,
        key_ids: Sequence[str],
        starting_at: datetime,
        ending_at: datetime | None = None,
        *,
        bucket_width: str = "1h",
        group_by_model: bool = False,
    ) -> list[UsageRow]:
        """Usage grouped by key (and model if asked) over the window, every page."""
        if bucket_width not in USAGE_PAGE_LIMIT:
            raise UsageError(f"bucket_width {bucket_width!r}: use one of 1m, 1h, 1d")
        ids = list(key_ids)
        step = USAGE_KEYS_PER_CALL
        chunks = [ids[i : i + step] for i in range(0, len(ids), step)] or [[]]
        rows: list[UsageRow] = []
        for chunk in chunks:
            rows.extend(
                self._usage_chunk(chunk, starting_at, ending_at, bucket_width, group_by_model)
            )
        return rows

    def _usage_chunk(
        self,
        key_ids: list[str],
        starting_at: datetime,
        ending_at: datetime | None,
        bucket_width: str,
        group_by_model: bool,
    ) -> list[UsageRow]:
        base: list[tuple[str, str]] = [
            ("starting_at", format_time(starting_at)),
            ("bucket_width", bucket_width),
            ("limit", str(USAGE_PAGE_LIMIT[bucket_width])),
            ("group_by[]", "api_key_id"),
        ]
        if group_by_model:
            base.append(("group_by[]", "model"))
        if ending_at is not None:
            base.append(("ending_at", format_time(ending_at)))
        base.extend(("api_key_ids[]", key_id) for key_id in key_ids)
        rows: list[UsageRow] = []
        page_token: str | None = None
        seen: set[str] = set()
        while True:
            params = base + ([("page", page_token)] if page_token else [])
            page = self._call("GET", "/v1/organizations/usage_report/messages", params=params)
            rows.extend(parse_usage_page(page))
            nxt = page.get("next_page") if isinstance(page, dict) else None
            if not (isinstance(page, dict) and page.get("has_more")) or not isinstance(nxt, str):
                return rows
            if nxt in seen:
                raise ApiError("Anthropic API repeated a usage-report page token")
            seen.add(nxt)
            page_token = nxt

    # -- API keys themselves ----------------------------------------------------------------

    def verify_key(self, key: Secret) -> VerifyResult:
        """``GET /v1/models`` with ``key``: free. Sent only to the configured base URL."""
        response = self._send("GET", "/v1/models", auth=_KeyAuth(key))
        request_id = response.headers.get("request-id")
        if response.status_code in (401, 403):
            return VerifyResult(False, None, response.status_code, request_id)
        if not response.is_success:
            raise error_from_response(response, f"GET /v1/models with key {key.hint}")
        workspace = response.headers.get("anthropic-workspace-id") or None
        return VerifyResult(True, workspace, response.status_code, request_id)

    def find_key(
        self, key: Secret, *, name: str | None = None, workspace_id: str | None = None
    ) -> ApiKey:
        """The key id of a full key, by hint (+ verify, name); ``NotFoundError`` if unknown."""
        if hint_parts(key.hint) is None:
            raise UsageError(f"{key.hint} does not look like an Anthropic key (sk-ant-...)")
        candidates = [k for k in self.list_keys() if key_matches_hint(key, k.partial_key_hint)]
        if not candidates:
            raise NotFoundError(
                f"no key of this organization matches {key.hint}: it belongs to another "
                "organization, or the admin key cannot see it; check the Console"
            )
        if len(candidates) == 1:
            return candidates[0]
        narrowed = self._narrow(key, candidates, name, workspace_id)
        if len(narrowed) == 1:
            return narrowed[0]
        listing = ", ".join(
            f"{k.id} ({k.name!r}, {k.workspace_id or 'default workspace'}, {k.status})"
            for k in narrowed
        )
        raise UsageError(
            f"{len(narrowed)} keys match {key.hint} and nothing tells them apart: {listing}; "
            "give the key's name (--name) to choose"
        )

    def _narrow(
        self, key: Secret, candidates: list[ApiKey], name: str | None, workspace_id: str | None
    ) -> list[ApiKey]:
        """Apply each tie-breaker that leaves at least one candidate."""

        def keep(pool: list[ApiKey], test: Callable[[ApiKey], bool]) -> list[ApiKey]:
            chosen = [k for k in pool if test(k)]
            return chosen or pool

        pool = candidates
        result = self.verify_key(key)
        if result.usable:
            # A key that works is active, and lives in the workspace the API names.
            pool = keep(pool, lambda k: k.status == "active")
            pool = keep(pool, lambda k: k.workspace_id == result.workspace_id)
        if workspace_id is not None:
            pool = keep(pool, lambda k: k.workspace_id == workspace_id)
        if name is not None:
            pool = keep(pool, lambda k: k.name == name)
        return pool
