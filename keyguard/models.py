"""Value types shared across layers: what Anthropic's Admin API tells about keys and usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Key statuses the API documents. Unknown values are kept as they come, never rejected.
KEY_STATUSES = ("active", "inactive", "archived", "expired")


@dataclass(frozen=True)
class ApiKey:
    """An API key as the Admin API describes it (never with its secret)."""

    id: str
    name: str
    status: str
    created_at: datetime | None = None
    workspace_id: str | None = None  # None: the default workspace
    partial_key_hint: str | None = None
    expires_at: datetime | None = None
    created_by: str | None = None  # the creator's id, when known
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    archived_at: datetime | None = None


@dataclass(frozen=True)
class UsageRow:
    """Token counts for one key over one time bucket."""

    starting_at: datetime
    ending_at: datetime
    api_key_id: str | None
    uncached_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None

    @property
    def total_tokens(self) -> int:
        return (
            self.uncached_input_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_input_tokens
            + self.output_tokens
        )


@dataclass(frozen=True)
class VerifyResult:
    """What ``GET /v1/models`` said about a key."""

    usable: bool
    workspace_id: str | None = None
    status_code: int = 0
    request_id: str | None = None
