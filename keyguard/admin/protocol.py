"""The Admin API as the layers above see it: ``AdminClient``'s methods as typing Protocols.

One Protocol per method, so each layer names exactly the part it uses (a test fake then needs
only those) while every signature is written once, here, the same as in ``client.py``. This
module imports no httpx: rotation and audit import it without loading the HTTP stack.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from keyguard.keys import Secret
from keyguard.models import ApiKey, CostRow, UsageRow, VerifyResult, Workspace


class ListsKeys(Protocol):
    """Lists the organization's API keys."""

    def list_keys(
        self, *, status: str | None = None, workspace_id: str | None = None
    ) -> Iterator[ApiKey]: ...


class GetsKey(Protocol):
    """Reads one API key by id."""

    def get_key(self, key_id: str) -> ApiKey: ...


class UpdatesKey(Protocol):
    """Renames an API key or sets its status."""

    def update_key(
        self, key_id: str, *, name: str | None = None, status: str | None = None
    ) -> ApiKey: ...


class ListsWorkspaces(Protocol):
    """Lists the organization's workspaces."""

    def list_workspaces(self, *, include_archived: bool = False) -> Iterator[Workspace]: ...


class ReadsOrganization(Protocol):
    """Reads the organization the admin key belongs to."""

    def me(self) -> dict[str, Any]: ...


class ReadsUsage(Protocol):
    """Reads the usage report, grouped by key."""

    def usage(
        self,
        key_ids: Sequence[str],
        starting_at: datetime,
        ending_at: datetime | None = None,
        *,
        bucket_width: str = "1h",
        group_by_model: bool = False,
    ) -> list[UsageRow]: ...


class ReadsCost(Protocol):
    """Reads the organization's ``cost_report``."""

    def cost_report(self, starting_at: datetime, ending_at: datetime) -> list[CostRow]: ...


class ReadsActivities(Protocol):
    """Reads the Compliance API's activity feed."""

    def activities(
        self, starting_at: datetime, ending_at: datetime | None = None
    ) -> list[dict[str, Any]]: ...


class ProbesAdminReach(Protocol):
    """Tells whether an API key can call the Admin API (an org admin's org-scoped key)."""

    def reaches_admin_api(self, key: Secret) -> bool: ...


class SaysWhoAmI(Protocol):
    """Says which admin credential is in use and what it may do."""

    def whoami(self) -> dict[str, Any]: ...


class VerifiesKey(Protocol):
    """Checks an API key with the free ``GET /v1/models`` (in ``workspace`` if given)."""

    def verify_key(self, key: Secret, workspace: str | None = None) -> VerifyResult: ...


class FindsKey(Protocol):
    """Finds the id of a full API key."""

    def find_key(
        self, key: Secret, *, name: str | None = None, workspace_id: str | None = None
    ) -> ApiKey: ...


class TellsTime(Protocol):
    """Tells the API's time: its last ``Date`` header, moved on since (None: none seen)."""

    def server_time(self) -> datetime | None: ...


class AdminApi(
    ListsKeys,
    GetsKey,
    UpdatesKey,
    ListsWorkspaces,
    ReadsOrganization,
    ReadsUsage,
    ReadsCost,
    ReadsActivities,
    SaysWhoAmI,
    ProbesAdminReach,
    VerifiesKey,
    FindsKey,
    TellsTime,
    Protocol,
):
    """Everything ``AdminClient`` offers the layers above it."""


if TYPE_CHECKING:
    from keyguard.admin.client import AdminClient

    def _client_is_an_admin_api(client: AdminClient) -> AdminApi:
        return client  # mypy fails here if client.py and these signatures drift apart
