"""Value types shared across layers: what Anthropic's Admin API tells about keys and usage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Key statuses the API documents. Unknown values are kept as they come, never rejected.
KEY_STATUSES = ("active", "inactive", "archived", "expired")
#: Key types (the Console's "Linked account"): a person's, a service account's, or a legacy
#: workspace key linked to no one. ``unknown`` when an older answer carries no ``principal``.
KEY_TYPES = ("personal", "service_account", "workspace", "unknown")

#: Where core code sends a line of progress for the person at the terminal (the notifier):
#: cli/ passes a function that prints it; core code never prints.
Say = Callable[[str], None]


@dataclass(frozen=True)
class Principal:
    """Who a key acts as: ``kind`` is ``user`` or ``service_account`` (or an unknown value,
    kept as it came)."""

    kind: str
    id: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.id or '?'}"


@dataclass(frozen=True)
class ApiKey:
    """An API key as the Admin API describes it (never with its secret).

    ``workspace_id`` is the key's real workspace (``scope.workspace_id``, the Default
    Workspace's real id included; the deprecated ``workspace_id`` field only for answers
    without ``scope``). None means organization-scoped (``scope == "organization"``) or not
    known (``scope`` None: an older answer whose ``workspace_id`` was null, which means the
    Default Workspace *or* an organization-scoped key, so keyguard never guesses).
    """

    id: str
    name: str
    status: str
    created_at: datetime | None = None
    workspace_id: str | None = None
    partial_key_hint: str | None = None
    expires_at: datetime | None = None
    created_by: str | None = None  # the creator's id, when known
    scope: str | None = None  # "workspace" | "organization" | another value | None: unknown
    principal: Principal | None = None  # None: linked to no one (legacy) or not said
    key_type: str = "unknown"  # one of KEY_TYPES, or an unknown principal type as it came
    #: True: the Default Workspace (scope names a workspace, the deprecated field is null);
    #: False: another workspace; None: not known.
    default_workspace: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def org_scoped(self) -> bool:
        return self.scope == "organization"

    @property
    def where(self) -> str:
        """Where the key works, for people: a workspace id, ``organization`` or ``unknown``."""
        if self.workspace_id:
            return self.workspace_id + (" (default)" if self.default_workspace else "")
        return "organization" if self.org_scoped else "unknown workspace"


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
    cache_creation_input_tokens: int = 0  # every cache write, 5-minute and 1-hour
    output_tokens: int = 0
    model: str | None = None
    cache_creation_1h_input_tokens: int = 0  # the 1-hour writes among them (priced 2x input)

    @property
    def total_tokens(self) -> int:
        return (
            self.uncached_input_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_input_tokens
            + self.output_tokens
        )


@dataclass(frozen=True)
class CostRow:
    """One line of the organization's ``cost_report``: an amount in US cents for one day."""

    starting_at: datetime
    amount_cents: float
    currency: str = "USD"
    model: str | None = None
    token_type: str | None = None
    workspace_id: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class VerifyResult:
    """What ``GET /v1/models`` said about a key.

    ``workspace_id`` is the real workspace the call ran in (response header). ``problem`` says
    why a live key cannot serve as configured (organization-scoped without a workspace, a
    workspace it cannot reach): the key is not dead, the configuration is wrong.
    """

    usable: bool
    workspace_id: str | None = None
    status_code: int = 0
    request_id: str | None = None
    problem: str | None = None


def workspace_problem(expected: str | None, key: ApiKey) -> str | None:
    """Why ``key`` (as the Admin API lists it) cannot serve an environment whose ``workspace``
    is ``expected`` (a ``wrkspc_`` id or ``default``); None when it can or nothing tells."""
    if key.org_scoped:
        if expected is None or expected == "default":
            return (
                f"key {key.id} is organization-scoped (it reaches every workspace its "
                'principal can): set workspace = "wrkspc_..." (the workspace it must serve) '
                "for this environment, or create a workspace-scoped key"
            )
        return None  # verification sends the header and proves it reaches ``expected``
    if expected is None or key.workspace_id is None:
        return None
    if expected == "default":
        if key.default_workspace is False:
            return f"key {key.id} belongs to workspace {key.workspace_id}, not the Default"
        return None
    if key.workspace_id != expected:
        return f"key {key.id} belongs to workspace {key.workspace_id}, not {expected}"
    return None
