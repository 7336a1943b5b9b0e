"""Anthropic Admin API client: keys, workspaces, usage, ``me``; free key verification."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

# checked_url and key_matches_hint are imported from here too (wif.api, incident response).
from keyguard.admin.auth import ANTHROPIC_VERSION, KeyAuth, credential_kind
from keyguard.admin.auth import checked_url as checked_url
from keyguard.admin.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFoundError,
    error_body,
    error_from_response,
)
from keyguard.admin.hints import hint_parts
from keyguard.admin.hints import key_matches_hint as key_matches_hint
from keyguard.admin.parse import (
    answer_json,
    format_time,
    parse_api_key,
    parse_cost_page,
    parse_usage_page,
    parse_workspace,
)
from keyguard.admin.retry import RetryPolicy, send_with_retries
from keyguard.errors import NotFoundError, UsageError
from keyguard.keys import Secret
from keyguard.models import ApiKey, CostRow, UsageRow, VerifyResult, Workspace
from keyguard.urls import DEFAULT_BASE_URL

log = logging.getLogger("keyguard.admin")

#: Most buckets one usage page may hold, per bucket width (the API's documented maxima).
USAGE_PAGE_LIMIT = {"1m": 1440, "1h": 168, "1d": 31}
PAGE_LIMIT = 1000
#: Keys per usage request, so that the query string stays a sane length.
USAGE_KEYS_PER_CALL = 50


_WORKSPACE_ID_RE = re.compile(r"^wrkspc_[A-Za-z0-9]+$")


def _bucket_start(at: datetime, width: str) -> datetime:
    """The start of the UTC bucket of ``width`` (1h or 1d) holding ``at``."""
    at = at.astimezone(UTC)
    if width == "1h":
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _workspace_problem(response: httpx.Response, key: Secret, workspace: str | None) -> str | None:
    """Why a live key answered 400/404 about its workspace, with the fix; None if not that."""
    _type, message, request_id = error_body(response)
    text = (message or "").lower()
    rid = f" (request-id {request_id})" if request_id else ""
    if response.status_code == 400 and (
        "anthropic-workspace-id is required" in text or "not scoped to a workspace" in text
    ):
        if workspace == "default":
            return (
                f"key {key.hint} is organization-scoped: set workspace = the Default "
                f'Workspace\'s wrkspc_ id (not "default") for this environment{rid}'
            )
        return (
            f'key {key.hint} is organization-scoped: set workspace = "wrkspc_..." (the '
            f"workspace it must serve) for this environment{rid}"
        )
    if response.status_code == 400 and "anthropic-workspace-id" in text:
        return f"workspace {workspace!r} is not a valid workspace id{rid}: fix it in keyguard.toml"
    if response.status_code == 404 and workspace is not None and "workspace" in text:
        return f"key {key.hint} cannot reach workspace {workspace}{rid}"
    return None


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
        self.base_url = checked_url(base_url)
        self.credential_kind = credential_kind(admin_key)
        self._auth = KeyAuth(admin_key)
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
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        what = f"{method} {path}"

        def send() -> httpx.Response:
            return self._http.request(
                method, path, params=params, json=json, auth=auth or self._auth, headers=headers
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
        return answer_json(response, f"{method} {path}", self.base_url)

    def _pages(
        self, path: str, params: dict[str, Any], *, limit: int = PAGE_LIMIT
    ) -> Iterator[Any]:
        """Every item of a cursor-paged list (``after_id`` = the previous ``last_id``)."""
        params = {k: v for k, v in params.items() if v is not None}
        params["limit"] = limit
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
        # Coarse buckets cover whole hours or days; the unfinished last one is read at one
        # minute instead, so traffic in a partial last bucket is neither hidden nor counted twice.
        windows = [(bucket_width, starting_at, ending_at)]
        if ending_at is not None and bucket_width != "1m":
            edge = _bucket_start(ending_at, bucket_width)
            if starting_at < edge < ending_at:
                windows = [(bucket_width, starting_at, edge), ("1m", edge, ending_at)]
            elif edge <= starting_at:
                windows = [("1m", starting_at, ending_at)]
        rows: list[UsageRow] = []
        for width, start, end in windows:
            for chunk in chunks:
                rows.extend(self._usage_chunk(chunk, start, end, width, group_by_model))
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
        path = "/v1/organizations/usage_report/messages"
        return [row for page in self._cursor_pages(path, base) for row in parse_usage_page(page)]

    def cost_report(self, starting_at: datetime, ending_at: datetime) -> list[CostRow]:
        """The organization's own ``cost_report`` (daily; no per-key split), every page."""
        base: list[tuple[str, str]] = [
            ("starting_at", format_time(starting_at)),
            ("ending_at", format_time(ending_at)),
            ("bucket_width", "1d"),
            ("limit", "31"),
        ]
        return [
            row
            for page in self._cursor_pages("/v1/organizations/cost_report", base)
            for row in parse_cost_page(page)
        ]

    def activities(
        self, starting_at: datetime, ending_at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The Compliance API's activity feed over a window, oldest first, deduplicated.

        Raises ``ApiAuthError`` when the feed is not enabled or the key lacks
        ``read:compliance_activities``; the events are returned as they came (hostile text).
        """
        params: dict[str, Any] = {"created_at.gte": format_time(starting_at), "order": "asc"}
        if ending_at is not None:
            params["created_at.lte"] = format_time(ending_at)
        seen: dict[str, dict[str, Any]] = {}
        for item in self._pages("/v1/compliance/activities", params, limit=5000):
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                seen.setdefault(item["id"], item)  # delivery is at least once
        return list(seen.values())

    def _cursor_pages(self, path: str, base: list[tuple[str, str]]) -> Iterator[Any]:
        """Each page of a ``page``/``next_page`` paged report."""
        page_token: str | None = None
        seen: set[str] = set()
        while True:
            params = base + ([("page", page_token)] if page_token else [])
            page = self._call("GET", path, params=params)
            yield page
            next_page = page.get("next_page") if isinstance(page, dict) else None
            more = isinstance(page, dict) and page.get("has_more")
            if not more or not isinstance(next_page, str):
                return
            if next_page in seen:
                raise ApiError(f"Anthropic API repeated a page token on GET {path}")
            seen.add(next_page)
            page_token = next_page

    # -- API keys themselves ----------------------------------------------------------------

    def verify_key(self, key: Secret, workspace: str | None = None) -> VerifyResult:
        """``GET /v1/models`` with ``key``: free. Sent only to the configured base URL.

        ``workspace`` (a ``wrkspc_`` id) goes in ``anthropic-workspace-id``: required for an
        organization-scoped key, a check for any other. A live key that cannot serve there
        comes back unusable with ``problem`` set; a dead key (401/403) without.
        """
        headers = None
        if workspace is not None and _WORKSPACE_ID_RE.match(workspace):
            headers = {"anthropic-workspace-id": workspace}
        response = self._send("GET", "/v1/models", auth=KeyAuth(key), headers=headers)
        request_id = response.headers.get("request-id")
        status = response.status_code
        if status in (401, 403):
            return VerifyResult(False, None, status, request_id)
        if status in (400, 404) and (problem := _workspace_problem(response, key, workspace)):
            return VerifyResult(False, None, status, request_id, problem)
        if not response.is_success:
            raise error_from_response(response, f"GET /v1/models with key {key.hint}")
        answered = response.headers.get("anthropic-workspace-id") or None
        return VerifyResult(True, answered, status, request_id)

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

    def reaches_admin_api(self, key: Secret) -> bool:
        """Whether ``key`` (an organization-scoped API key) can call the Admin API: a read of
        ``/v1/organizations/me`` with it, sent only to the configured base URL."""
        response = self._send("GET", "/v1/organizations/me", auth=KeyAuth(key))
        if response.status_code in (401, 403):
            return False
        if not response.is_success:
            raise error_from_response(response, f"GET /v1/organizations/me with key {key.hint}")
        return True

    def whoami(self) -> dict[str, Any]:
        """Which admin credential is in use, its organization, and what it may do (probed)."""
        org = self.me()
        can: dict[str, bool] = {}
        probes = {
            "list_keys": ("/v1/organizations/api_keys", {"limit": 1}),
            "read_usage": (
                "/v1/organizations/usage_report/messages",
                {"starting_at": format_time(datetime.now(UTC) - timedelta(hours=1)), "limit": 1},
            ),
            "read_compliance": ("/v1/compliance/activities", {"limit": 1}),
        }
        for name, (path, params) in probes.items():
            try:
                self._call("GET", path, params=params)
                can[name] = True
            except (ApiAuthError, ApiNotFoundError):
                can[name] = False
        return {"credential": self.credential_kind, "organization": org, "can": can}

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
