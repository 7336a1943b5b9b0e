"""A local sandbox of Anthropic's Admin API (the way moto serves AWS), in-process or standalone.

>>> with Sandbox() as sb:                      # doctest: +SKIP
...     key_id, secret = sb.mint_key("dev-1")
...     sb.client().find_key(secret).id == key_id
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from keyguard.admin.client import AdminClient
from keyguard.admin.sandbox.faults import FAULT_KINDS
from keyguard.admin.sandbox.handler import Handler
from keyguard.admin.sandbox.request import SandboxServer
from keyguard.admin.sandbox.state import SandboxState
from keyguard.errors import UsageError
from keyguard.keys import Secret

__all__ = ["FAULT_KINDS", "Sandbox"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _ts(value: datetime | float | None) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    return value.timestamp()


class Sandbox:
    """The sandbox server plus the Console-side controls tests and demos need."""

    def __init__(
        self,
        port: int = 0,
        state_file: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
    ) -> None:
        if host not in _LOOPBACK:
            raise UsageError(f"the sandbox serves loopback only, not {host!r}")
        self.host = host
        self.port = port
        self.state = SandboxState(Path(state_file) if state_file else None)
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def bind(self) -> SandboxServer:
        """Open the listening socket (once); ``url`` is known from here on."""
        if self._server is None:
            self._server = SandboxServer((self.host, self.port), self.state, Handler)
            self.port = self._server.server_address[1]
        return self._server

    def start(self) -> Sandbox:
        """Bind and serve in a background thread; returns self."""
        if self._thread is None:
            server = self.bind()
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"keyguard-sandbox-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (``keyguard sandbox``)."""
        server = self.bind()
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.close_connections()
            server.server_close()
            self._server = None

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sandbox(url={self.url!r})"

    # -- facts ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def admin_key(self) -> Secret:
        """The admin key this sandbox accepts (its own; not an Anthropic key)."""
        return self.state.admin_key

    @property
    def oauth_token(self) -> Secret:
        """The ``org:admin`` OAuth token (``sk-ant-oat01-``) this sandbox accepts: its own."""
        from keyguard.admin.sandbox.federation import admin_token

        return admin_token(self.state)

    @property
    def oidc_issuer(self) -> str:
        """The local OIDC issuer's URL (``POST {issuer}/token`` mints identity tokens)."""
        from keyguard.admin.sandbox.oidc import issuer_url

        return issuer_url(self.bind().server_address)

    def client(self, **kwargs: Any) -> AdminClient:
        """An ``AdminClient`` pointed at this sandbox."""
        return AdminClient(self.admin_key, self.url, **kwargs)

    def requests(self, key_id: str) -> int:
        """How many API requests ``key_id`` has made to the sandbox."""
        with self.state.lock:
            count: int = self.state.key(key_id)["requests"]
            return count

    # -- the Console ------------------------------------------------------------------------

    def add_workspace(self, name: str, tags: dict[str, str] | None = None) -> str:
        """Create a workspace; returns its ``wrkspc_...`` id."""
        workspace_id: str = self.state.add_workspace(name, tags)["id"]
        return workspace_id

    def mint_key(
        self,
        name: str,
        workspace_id: str | None = None,
        created_at: datetime | float | None = None,
        expires_at: datetime | float | None = None,
        *,
        age: timedelta | None = None,
        secret: Secret | None = None,
        key_type: str = "service_account",
        scope: str = "workspace",
        principal_id: str | None = None,
    ) -> tuple[str, Secret]:
        """Create a key as the Console does: ``(key id, secret)``; the secret is shown once.

        ``workspace_id`` None: the Default Workspace (or no workspace, for ``scope``
        ``organization``). ``key_type``: ``service_account`` (a new ``svac_`` unless
        ``principal_id`` names one), ``personal`` (the owner unless ``principal_id`` names a
        ``user_``) or ``workspace`` (legacy, linked to no one). ``secret`` forces the key's
        value (tests only: e.g. two keys that share one hint).
        """
        created = _ts(created_at)
        if created is None and age is not None:
            created = self.state.now() - age.total_seconds()
        view, minted = self.state.mint_key(
            name,
            workspace_id,
            created,
            _ts(expires_at),
            secret,
            key_type=key_type,
            scope=scope,
            principal_id=principal_id,
        )
        return view["id"], minted

    @property
    def default_workspace_id(self) -> str:
        """The Default Workspace's real id (the API shows keys there with ``workspace_id``
        null; only the ``anthropic-workspace-id`` response header names it)."""
        workspace: str = self.state.data["default_workspace_id"]
        return workspace

    @property
    def owner_id(self) -> str:
        """The ``user_`` id of the organization's owner (an admin)."""
        owner: str = self.state.data["user_id"]
        return owner

    def add_user(self, email: str, role: str = "developer") -> str:
        """Invite a member; returns the ``user_...`` id."""
        user_id: str = self.state.add_user(email, role)["id"]
        return user_id

    def remove_user(self, user_id: str) -> None:
        """The member leaves: Anthropic archives their personal keys."""
        self.state.remove_user(user_id)

    def add_service_account(self, name: str, role: str = "developer") -> str:
        """Create a service account; returns its ``svac_...`` id."""
        account_id: str = self.state.add_service_account(name, role)["id"]
        return account_id

    def archive_service_account(self, account_id: str) -> None:
        self.state.archive_service_account(account_id)

    def issue_oauth_token(self, scope: str = "org:admin", lifetime: float = 3600.0) -> Secret:
        """An ``sk-ant-oat01-`` bearer token of the owner (``ant auth login --scope ...``)."""
        _rec, token = self.state.issue_oauth_token(scope, lifetime=lifetime)
        return token

    def enable_compliance(self, enabled: bool = True) -> None:
        """Turn the Compliance API's activity feed on (nothing is recorded while it is off)."""
        with self.state.lock:
            self.state.data["compliance_enabled"] = enabled
            self.state.save()

    def record_activity(
        self,
        activity_type: str,
        actor: dict[str, Any],
        at: datetime | float | None = None,
        **fields: Any,
    ) -> None:
        """Add an event to the compliance feed (e.g. an ``api_actor`` using a leaked key)."""
        self.state.record_activity(activity_type, actor, _ts(at), **fields)

    def record_usage(
        self,
        key_id: str,
        at: datetime | float | None = None,
        model: str = "claude-sonnet-4-5",
        input_tokens: int = 100,
        output_tokens: int = 20,
        *,
        cache_read_input_tokens: int = 0,
        cache_creation_input_tokens: int = 0,
        workspace_id: str | None = None,
    ) -> None:
        """Record traffic for a key (as if it had called the Messages API at ``at``)."""
        self.state.record_usage(
            key_id,
            at=_ts(at),
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_input_tokens=cache_read_input_tokens,
            cache_creation_input_tokens=cache_creation_input_tokens,
            workspace_id=workspace_id,
        )

    def set_faults(
        self,
        rate: float = 1.0,
        kinds: Sequence[str] = ("429",),
        retry_after: float = 0,
        latency: float = 0.0,
        count: int | None = None,
        only: str | None = None,
        should_retry: bool | None = None,
    ) -> None:
        """Answer ``/v1/`` requests with faults at ``rate`` (see ``FAULT_KINDS``: 429,
        spend_cap, 402, 408, 409, 5xx, 529, latency, drop).

        ``only`` limits faults to one method and path prefix, e.g. ``"POST"`` (writes) or
        ``"GET /v1/organizations/usage_report"``; ``should_retry`` adds ``x-should-retry``.
        """
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown:
            raise UsageError(f"unknown fault kind {unknown[0]!r}: use {', '.join(FAULT_KINDS)}")
        with self.state.lock:
            faults = self.state.faults
            faults.rate, faults.kinds = rate, tuple(kinds)
            faults.retry_after, faults.latency, faults.count = retry_after, latency, count
            faults.only = only
            faults.should_retry = None if should_retry is None else str(should_retry).lower()

    def clear_faults(self) -> None:
        """No more faults."""
        self.set_faults(rate=0.0, kinds=())

    def request_log(self) -> list[tuple[str, str, int]]:
        """Every answered request so far as ``(method, path, status)``, oldest first."""
        with self.state.lock:
            return list(self.state.request_log)

    def writes(self) -> list[tuple[str, str, int]]:
        """The Admin API writes that succeeded (``POST /v1/organizations/...`` answered 2xx)."""
        return [
            r
            for r in self.request_log()
            if r[0] == "POST" and r[1].startswith("/v1/organizations/") and 200 <= r[2] < 300
        ]

    @property
    def faults_injected(self) -> int:
        return self.state.faults.injected
