"""Anthropic Admin API client. SKELETON: signatures only; the admin issue fills them in."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from keyguard.keys import Secret
from keyguard.models import ApiKey, UsageRow, VerifyResult, Workspace


class AdminClient:
    """Talks to ``/v1/organizations/*`` with an admin key; verifies API keys for free."""

    def __init__(
        self,
        admin_key: Secret,
        base_url: str = "https://api.anthropic.com",
        *,
        transport: Any = None,
        max_attempts: int = 5,
        deadline_seconds: float = 60.0,
    ) -> None:
        raise NotImplementedError

    def list_keys(
        self, *, status: str | None = None, workspace_id: str | None = None
    ) -> Iterator[ApiKey]:
        """Every key, page by page."""
        raise NotImplementedError

    def get_key(self, key_id: str) -> ApiKey:
        raise NotImplementedError

    def update_key(
        self, key_id: str, *, name: str | None = None, status: str | None = None
    ) -> ApiKey:
        raise NotImplementedError

    def list_workspaces(self) -> Iterator[Workspace]:
        raise NotImplementedError

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
        raise NotImplementedError

    def me(self) -> dict[str, Any]:
        raise NotImplementedError

    def verify_key(self, key: Secret) -> VerifyResult:
        """``GET /v1/models`` with ``key``: free. Sent only to the configured base URL."""
        raise NotImplementedError

    def find_key(self, key: Secret) -> ApiKey:
        """The key id of a full key, by hint (+ verify, name); ``NotFoundError`` if unknown."""
        raise NotImplementedError
