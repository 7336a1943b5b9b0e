"""The verdict: an environment's key and stores measured against its policy (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from keyguard.audit.model import PolicyLimits, Reason, StageView, StoreView, Verdict
from keyguard.models import ApiKey, workspace_problem
from keyguard.policy import format_duration

#: Statuses that must never be what consumers read.
DEAD_STATUSES = ("inactive", "archived")


def _days(seconds: float) -> str:
    return f"{seconds / 86400:.1f}d"


def _mismatch(uri: str, stage: str, view: StageView) -> Reason:
    which = "its metadata" if stage == "current" else f"the metadata of its {stage} version"
    named = f", metadata names {view.claimed_key_id}" if view.claimed_key_id else ""
    return Reason(
        "metadata_mismatch",
        Verdict.VIOLATION,
        f"store {uri}: {which} does not describe the key it holds "
        f"(value {view.hint}{named}); it was changed outside keyguard",
    )


def store_reasons(stores: Sequence[StoreView]) -> list[Reason]:
    """Unreadable stores, empty stores, stores whose metadata lies (any stage), stores that
    disagree."""
    v = Verdict.VIOLATION
    out: list[Reason] = []
    for s in stores:
        if s.error is not None:
            out.append(Reason("store_unreadable", v, f"store {s.uri} could not be read: {s.error}"))
            continue
        if s.current is None:
            out.append(Reason("no_current_key", v, f"store {s.uri} holds no current key"))
        elif not s.current.well_formed:
            out.append(
                Reason(
                    "not_a_key",
                    v,
                    f"store {s.uri} serves a value that is not an Anthropic API key "
                    f"({s.current.hint}); put the environment's key back with `keyguard deliver`",
                )
            )
        elif s.current.meta_mismatch:
            out.append(_mismatch(s.uri, "current", s.current))
        for stage, view in (("pending", s.pending), ("previous", s.previous)):
            if view is not None and view.meta_mismatch:
                out.append(_mismatch(s.uri, stage, view))
    if not stores_agree(stores):
        held = ", ".join(
            f"{s.uri}={s.current.key_id or s.current.hint}" for s in stores if s.current is not None
        )
        out.append(Reason("stores_disagree", v, f"stores serve different keys: {held}"))
    return out


def previous_reasons(
    environment: str,
    kept: Sequence[tuple[str, ApiKey]],
    rotated: datetime | None,
    limits: PolicyLimits,
    now: datetime,
) -> list[Reason]:
    """Keys stores keep as ``previous`` that are still active once the rotation's grace (plus
    the usage report's lag) is over, or when the rotation's time is unknown: a second live key
    the environment no longer serves."""
    since = now - rotated if rotated is not None and rotated <= now else None
    if since is not None and since <= limits.grace + limits.usage_lag:
        return []  # a rotation in progress: its old key drains
    when = (
        f"{_days(since.total_seconds())} after the last rotation"
        if since is not None
        else "and the rotation's time is unknown"
    )
    return [
        Reason(
            "previous_active",
            Verdict.WARNING,
            f"store {uri} keeps key {key.id} as previous, still active {when} "
            f"(grace {format_duration(limits.grace)}): a rotation that has not finished "
            f"finishes with `keyguard rotate {environment}`; otherwise deactivate the key "
            "once nothing uses it",
        )
        for uri, key in kept
        if key.status == "active"
    ]


def stores_agree(stores: Sequence[StoreView]) -> bool:
    """True when every readable store serves the same current key (by fingerprint, else id)."""
    seen = {
        s.current.fingerprint or s.current.key_id or s.current.hint
        for s in stores
        if s.error is None and s.current is not None
    }
    return len(seen) <= 1


def key_reasons(
    key: ApiKey | None,
    key_ref: str | None,
    limits: PolicyLimits,
    now: datetime,
    *,
    workspace: str | None = None,
) -> list[Reason]:
    """Age, expiry, status and workspace of the served key against ``limits``."""
    v = Verdict.VIOLATION
    out: list[Reason] = []
    if key is None:
        if key_ref is not None:
            out.append(
                Reason(
                    "unknown_key",
                    v,
                    f"the served key {key_ref} is not among the organization's keys "
                    "(deleted, another organization, or a hand-edited store)",
                )
            )
        return out
    if key.status in DEAD_STATUSES:
        out.append(Reason("inactive_served", v, f"key {key.id} is {key.status} but still served"))
    expired = key.status == "expired" or (key.expires_at is not None and key.expires_at <= now)
    if expired:
        when = f" at {key.expires_at:%Y-%m-%d %H:%M}Z" if key.expires_at else ""
        out.append(Reason("expired", v, f"key {key.id} expired{when}"))
    elif key.expires_at is not None and key.expires_at - now <= limits.expiry_warning:
        left = (key.expires_at - now).total_seconds()
        creator = f", {key.created_by}" if key.created_by else ""
        out.append(
            Reason(
                "expiring",
                v,
                f"key {key.id} expires in {_days(left)} "
                f"(inside the {format_duration(limits.expiry_warning)} warning window; "
                f"Anthropic emails only the key's creator{creator}); rotate it now",
            )
        )
    if key.created_at is not None:
        age = now - key.created_at
        if age >= limits.max_age:
            out.append(
                Reason(
                    "max_age",
                    v,
                    f"age {_days(age.total_seconds())} is past max_age "
                    f"{format_duration(limits.max_age)}",
                )
            )
        elif age >= limits.due_after:
            out.append(
                Reason(
                    "due",
                    Verdict.DUE,
                    f"age {_days(age.total_seconds())} is past due_after "
                    f"{format_duration(limits.due_after)}: run `keyguard rotate --due`",
                )
            )
    mismatch = workspace_problem(workspace, key)
    if mismatch is not None:
        out.append(Reason("workspace_mismatch", v, mismatch))
    return out


def kind_reasons(
    key: ApiKey | None, limits: PolicyLimits, *, admin_equivalent: bool | None = None
) -> list[Reason]:
    """What the served key is: legacy, personal, organization-scoped, never expiring."""
    if key is None or key.status in DEAD_STATUSES or key.status == "expired":
        return []
    out: list[Reason] = []
    if key.key_type == "workspace":
        out.append(
            Reason(
                "legacy_workspace_key",
                Verdict.WARNING,
                f"key {key.id} is a legacy workspace key (linked to no one): migrate to a "
                "service-account key, or to workload identity federation (no static key)",
            )
        )
    elif key.key_type == "personal":
        who = key.principal.id if key.principal and key.principal.id else "a person"
        out.append(
            Reason(
                "personal_key",
                limits.personal_key,
                f"key {key.id} is a personal key of {who}: Anthropic archives it when that "
                "person leaves the organization; serve a service-account key",
            )
        )
    if key.org_scoped:
        out.append(
            Reason(
                "org_scoped",
                Verdict.WARNING,
                f"key {key.id} is organization-scoped: high blast radius (every workspace its "
                "principal reaches, and the Admin API if the principal is an admin); use a "
                "workspace-scoped key",
            )
        )
        if admin_equivalent:
            out.append(
                Reason(
                    "admin_equivalent",
                    Verdict.VIOLATION,
                    f"key {key.id} is admin-equivalent: organization-scoped and its principal "
                    "is an organization admin, so it can call the Admin API (list, disable "
                    "and archive every key)",
                )
            )
    if key.expires_at is None and key.status == "active" and limits.never_expires != Verdict.OK:
        out.append(
            Reason(
                "never_expires",
                limits.never_expires,
                f"key {key.id} never expires: create its successor with an expiry (Console), "
                "so a leaked copy dies on its own",
            )
        )
    return [r for r in out if r.verdict != Verdict.OK]


def key_flags(key: ApiKey) -> tuple[str, ...]:
    """Short notes on an unmanaged key (no environment, so no verdict)."""
    flags = []
    if key.key_type == "workspace":
        flags.append("legacy workspace key: migrate")
    if key.org_scoped:
        flags.append("organization-scoped: high blast radius")
    if key.expires_at is None:
        flags.append("never expires")
    return tuple(flags)


def shared_reasons(key_ref: str, shared_with: Sequence[str], limits: PolicyLimits) -> list[Reason]:
    """One key served by several environments breaks ``one_key_per_environment``."""
    if not shared_with or not limits.one_key_per_environment:
        return []
    others = ", ".join(sorted(shared_with))
    return [
        Reason(
            "shared",
            Verdict.VIOLATION,
            f"key {key_ref} is also served by {others}, which violates one_key_per_environment",
        )
    ]


def verdict_of(reasons: Sequence[Reason]) -> Verdict:
    """The worst verdict among ``reasons`` (``ok`` when there are none)."""
    return max((r.verdict for r in reasons), key=lambda x: x.rank, default=Verdict.OK)
