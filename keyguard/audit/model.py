"""The audit report's value types: one row per environment, one per unmanaged key, one per
federation issuer or rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from keyguard.policy import Policy


class Verdict(StrEnum):
    OK = "ok"
    WARNING = "warning"
    DUE = "due"
    VIOLATION = "violation"

    @property
    def rank(self) -> int:
        return {"ok": 0, "warning": 1, "due": 2, "violation": 3}[self.value]


@dataclass(frozen=True)
class Reason:
    """Why a verdict is not ``ok``: a stable code for machines, a sentence for people."""

    code: str
    verdict: Verdict
    message: str


@dataclass(frozen=True)
class StageView:
    """One stage of one store: ids and hints only, never the key."""

    key_id: str | None = None
    hint: str | None = None
    fingerprint: str | None = None
    stored_at: datetime | None = None
    meta_mismatch: bool = False  # the stored metadata names another key than the value
    well_formed: bool = True  # the value has the shape of an Anthropic API key
    #: The key id the metadata names when that key's hint is not the value's (proves nothing).
    claimed_key_id: str | None = None


@dataclass(frozen=True)
class StoreView:
    """What one store holds for each stage, or why it could not be read."""

    uri: str
    current: StageView | None = None
    pending: StageView | None = None
    previous: StageView | None = None
    error: str | None = None


@dataclass(frozen=True)
class PolicyLimits:
    """The policy numbers a report shows beside each environment."""

    name: str
    due_after: timedelta
    max_age: timedelta
    expiry_warning: timedelta
    one_key_per_environment: bool = True
    personal_key: Verdict = Verdict.WARNING
    never_expires: Verdict = Verdict.WARNING
    #: A rotation revokes the old key at the earliest ``grace`` + ``usage_lag`` after it.
    grace: timedelta = timedelta(hours=24)
    usage_lag: timedelta = timedelta(minutes=5)

    @classmethod
    def of(cls, policy: Policy) -> PolicyLimits:
        return cls(
            name=policy.name,
            due_after=policy.due_after,
            max_age=policy.max_age,
            expiry_warning=policy.expiry_warning,
            one_key_per_environment=policy.one_key_per_environment,
            personal_key=Verdict(policy.personal_key),
            never_expires=Verdict(policy.never_expires),
            grace=policy.grace,
            usage_lag=policy.usage_lag,
        )


@dataclass(frozen=True)
class KeyKind:
    """What a key really is: type (personal, service_account, workspace), scope, principal."""

    key_type: str | None = None
    scope: str | None = None
    principal: str | None = None
    default_workspace: bool | None = None
    admin_equivalent: bool | None = None  # None: not probed

    def workspace_label(self, workspace_id: str | None, known: bool = True) -> str | None:
        """``default`` for the Default Workspace, ``organization`` for org-scoped keys."""
        if self.scope == "organization":
            return "organization"
        if self.default_workspace:
            return "default"
        if workspace_id:
            return workspace_id
        return "unknown" if known else None

    def label(self) -> str:
        """``service_account / workspace``, ``personal / organization``, ... for tables."""
        return f"{self.key_type or '-'} / {self.scope or '?'}"


@dataclass(frozen=True)
class EnvironmentReport:
    """One environment: its current key as Anthropic and its stores see it, and a verdict."""

    name: str
    verdict: Verdict
    reasons: tuple[Reason, ...]
    limits: PolicyLimits
    key_id: str | None = None
    key_name: str | None = None
    hint: str | None = None
    workspace_id: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    age: timedelta | None = None
    expires_at: datetime | None = None
    stores: tuple[StoreView, ...] = ()
    stores_agree: bool = True
    last_rotation: datetime | None = None
    pending_key_id: str | None = None
    pending_hint: str | None = None
    previous_key_id: str | None = None
    previous_status: str | None = None
    tokens_24h: int | None = None
    tokens_7d: int | None = None
    kind: KeyKind = field(default_factory=KeyKind)

    @property
    def age_days(self) -> float | None:
        return None if self.age is None else round(self.age.total_seconds() / 86400, 1)


@dataclass(frozen=True)
class UnmanagedKey:
    """An active key of the organization that no environment holds."""

    key_id: str
    key_name: str
    hint: str | None
    workspace_id: str | None
    created_at: datetime | None
    created_by: str | None
    age: timedelta | None
    expires_at: datetime | None
    tokens_24h: int | None
    tokens_7d: int | None
    kind: KeyKind = field(default_factory=KeyKind)
    #: Notes on the key itself: organization-scoped, never expires (no verdict: no environment).
    flags: tuple[str, ...] = ()

    @property
    def age_days(self) -> float | None:
        return None if self.age is None else round(self.age.total_seconds() / 86400, 1)


@dataclass(frozen=True)
class FederationFinding:
    """One rule (or issuer): ``ok``, ``warning`` or ``violation``, and why."""

    kind: str  # rule | issuer
    id: str
    name: str
    verdict: str
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class FederationAudit:
    rules: tuple[FederationFinding, ...] = ()
    issuers: tuple[FederationFinding, ...] = ()
    backlog: tuple[str, ...] = ()  # environments still on static keys (informational)
    audited: bool = False

    @property
    def violations(self) -> int:
        return sum(finding.verdict == "violation" for finding in (*self.rules, *self.issuers))


@dataclass(frozen=True)
class AuditReport:
    generated_at: datetime
    environments: tuple[EnvironmentReport, ...]
    unmanaged: tuple[UnmanagedKey, ...] = ()
    keys_listed: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: Archived keys of a person or service account that is gone, new since the last audit.
    departed: tuple[UnmanagedKey, ...] = ()
    federation: FederationAudit | None = None  # judged by keyguard.audit.federation

    @property
    def worst(self) -> Verdict:
        """The worst verdict of all environments and federation rules (``ok`` for none)."""
        verdicts = [environment.verdict for environment in self.environments] or [Verdict.OK]
        if self.federation is not None and self.federation.violations:
            verdicts.append(Verdict.VIOLATION)
        return max(verdicts, key=lambda verdict: verdict.rank)

    def counts(self) -> dict[str, int]:
        out = {verdict.value: 0 for verdict in Verdict}
        for environment in self.environments:
            out[environment.verdict.value] += 1
        out["unmanaged"] = len(self.unmanaged)
        return out
