"""The exposure of a leaked key: its usage by hour and model with the estimated cost, the
organization's own cost report, and the Compliance API's record of the key. Fingerprints and
hints only.

Inference leaves no IP trail: Anthropic logs no ``/v1/messages`` call with an address, so the
usage report is the only evidence of what a leaked key was used for; the compliance feed (when
the organization enabled it beforehand) says who created and changed the key, from where, and
any non-inference request the key made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from keyguard.admin.protocol import AdminApi, ReadsActivities, ReadsCost
from keyguard.errors import KeyguardError, UsageError
from keyguard.incident.leak import Target, first_commit_time
from keyguard.keys import scrub_text
from keyguard.models import ApiKey, Say, UsageRow
from keyguard.policy import Policy, parse_duration

#: Cache reads and writes, as a share of the input price, when the policy does not say
#: (Anthropic: reads 0.1x, 5-minute writes 1.25x, 1-hour writes 2x the input price).
CACHE_READ_SHARE = 0.10
CACHE_WRITE_SHARE = 1.25
CACHE_WRITE_1H_SHARE = 2.0


@dataclass(frozen=True)
class ExposureRow:
    """Tokens of one model in one hour, and what they cost (None: no price known)."""

    hour: datetime
    model: str
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost: float | None

    @property
    def tokens(self) -> int:
        cache = self.cache_read_tokens + self.cache_write_tokens
        return self.input_tokens + cache + self.output_tokens


@dataclass
class Exposure:
    """What a leaked key was used for in a window, and what the organization recorded about it."""

    key_id: str
    since: datetime
    until: datetime
    since_reason: str  # "key creation", "first commit ...", "--since"
    rows: list[ExposureRow] = field(default_factory=list)
    #: The organization's own cost_report over the window (US dollars; all keys: no per-key
    #: split exists), or why it could not be read.
    org_cost_usd: float | None = None
    org_cost_error: str | None = None
    #: Compliance events about this key (created, updated, its own non-inference requests);
    #: None when the feed is not enabled or not readable.
    activities: list[dict[str, Any]] | None = None

    @property
    def tokens(self) -> int:
        return sum(row.tokens for row in self.rows)

    @property
    def cost(self) -> float:
        return sum(row.cost or 0.0 for row in self.rows)

    @property
    def unpriced(self) -> list[str]:
        return sorted({row.model for row in self.rows if row.cost is None})

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "since_reason": self.since_reason,
            "tokens": self.tokens,
            "estimated_cost_usd": round(self.cost, 6),
            "unpriced_models": self.unpriced,
            "by_hour_and_model": [
                {
                    "hour": row.hour.isoformat(),
                    "model": row.model,
                    "input_tokens": row.input_tokens,
                    "cache_read_input_tokens": row.cache_read_tokens,
                    "cache_creation_input_tokens": row.cache_write_tokens,
                    "output_tokens": row.output_tokens,
                    "estimated_cost_usd": None if row.cost is None else round(row.cost, 6),
                }
                for row in self.rows
            ],
            "organization_cost_usd": self.org_cost_usd,
            "organization_cost_error": self.org_cost_error,
            "compliance_enabled": self.activities is not None,
            "activities": self.activities,
        }


def cost_of(policy: Policy, model: str | None, row: UsageRow) -> float | None:
    """US dollars for one row at the policy's per-million-token prices."""
    price = policy.price_for(model)
    if price is None:
        return None
    read = price.cache_read if price.cache_read is not None else price.input * CACHE_READ_SHARE
    write = price.cache_write if price.cache_write is not None else price.input * CACHE_WRITE_SHARE
    hour_writes = min(row.cache_creation_1h_input_tokens, row.cache_creation_input_tokens)
    return (
        row.uncached_input_tokens * price.input
        + row.cache_read_input_tokens * read
        + (row.cache_creation_input_tokens - hour_writes) * write
        + hour_writes * price.input * CACHE_WRITE_1H_SHARE
        + row.output_tokens * price.output
    ) / 1_000_000


def _plain(value: Any, limit: int = 120) -> str:
    """An API-supplied value as one safe line of text: no keys, no Markdown structure."""
    text = scrub_text(str(value if value is not None else "-"))
    text = " ".join(text.split())[:limit]
    return text.replace("|", "/").replace("`", "'").replace("<", "(").replace(">", ")")


def _about_key(event: dict[str, Any], key_id: str) -> bool:
    actor = event.get("actor")
    by_key = isinstance(actor, dict) and actor.get("api_key_id") == key_id
    return event.get("api_key_id") == key_id or by_key


def _event(event: dict[str, Any]) -> dict[str, Any]:
    """The fields of a compliance event the report keeps, as safe strings."""
    actor = event.get("actor") if isinstance(event.get("actor"), dict) else {}
    assert isinstance(actor, dict)
    who = (
        actor.get("email_address")
        or actor.get("user_id")
        or actor.get("api_key_id")
        or actor.get("admin_api_key_id")
        or actor.get("service_account_id")
        or actor.get("subject")
    )
    given = event.get("updates")
    updates: list[Any] = given if isinstance(given, list) else []
    changes = [
        f"{update.get('type')}: {update.get('previous_value')} to {update.get('current_value')}"
        for update in updates
        if isinstance(update, dict)
    ]
    return {
        "id": _plain(event.get("id")),
        "created_at": _plain(event.get("created_at")),
        "type": _plain(event.get("type")),
        "actor_type": _plain(actor.get("type")),
        "actor": _plain(who),
        "ip_address": _plain(actor.get("ip_address")),
        "changes": [_plain(change) for change in changes],
    }


def add_evidence(
    exposure: Exposure, admin: ReadsCost | ReadsActivities, key: ApiKey | None = None
) -> Exposure:
    """Add the organization's cost report and the compliance feed's events about the key.

    Neither may fail the incident: a refusal becomes a sentence in the report."""
    if hasattr(admin, "cost_report"):
        try:
            costs = admin.cost_report(exposure.since, exposure.until)
            exposure.org_cost_usd = round(
                sum(cost.amount_cents for cost in costs if cost.currency == "USD") / 100, 6
            )
        except KeyguardError as exc:
            exposure.org_cost_error = scrub_text(str(exc))
    if hasattr(admin, "activities"):
        start = exposure.since
        if key is not None and key.created_at is not None and key.created_at < start:
            start = key.created_at
        try:
            events = admin.activities(start, exposure.until)
        except KeyguardError:
            exposure.activities = None
        else:
            exposure.activities = [
                _event(event)
                for event in events
                if isinstance(event, dict) and _about_key(event, exposure.key_id)
            ]
    return exposure


def build_exposure(
    key_id: str,
    rows: Sequence[UsageRow],
    policy: Policy,
    since: datetime,
    until: datetime,
    since_reason: str,
) -> Exposure:
    """Non-empty usage rows of ``key_id``, merged per hour and model, with their cost."""
    merged: dict[tuple[datetime, str], list[int]] = {}
    for row in rows:
        if row.api_key_id not in (None, key_id) or row.total_tokens == 0:
            continue
        hour = row.starting_at.replace(minute=0, second=0, microsecond=0)  # 1m tail rows too
        slot = merged.setdefault((hour, row.model or "unknown"), [0, 0, 0, 0, 0])
        slot[0] += row.uncached_input_tokens
        slot[1] += row.cache_read_input_tokens
        slot[2] += row.cache_creation_input_tokens
        slot[3] += row.output_tokens
        slot[4] += row.cache_creation_1h_input_tokens
    exposure = Exposure(key_id, since, until, since_reason)
    for (hour, model), tokens in sorted(merged.items()):
        uncached, read, write, output, write_1h = tokens
        usage = UsageRow(hour, hour, key_id, uncached, read, write, output, model, write_1h)
        cost = cost_of(policy, model, usage)
        exposure.rows.append(ExposureRow(hour, model, uncached, read, write, output, cost))
    return exposure


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: an RFC 3339 date/time, or a duration back from now (``48h``, ``7d``)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - parse_duration(text)
        except KeyguardError:
            raise UsageError(
                f"--since {text!r}: give a date (2026-11-20, 2026-11-20T08:00Z) or a duration "
                "back from now (48h, 7d)"
            ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def exposure_window(
    target: Target,
    created: datetime | None,
    since: str | None,
    now: datetime,
    repo: Path | None,
    say: Say,
) -> tuple[datetime, str]:
    """Where the exposure starts, and why there: --since, the first commit, or key creation."""
    if since is not None:
        return parse_since(since, now), "--since"
    first = first_commit_time(target.commits, repo) if target.commits else None
    if first is not None:
        if created is not None and first < created:
            return created, "key creation (after the first commit that holds it)"
        return first, "first commit the scanner found it in"
    if target.commits and created is not None:
        shown = ", ".join(commit[:12] for commit in dict.fromkeys(target.commits))
        where = repo or Path(".")
        say(
            f"keyguard: warning: git cannot resolve the scan's commit(s) {shown} in {where}; "
            "the exposure window starts at the key's creation (pass --repo or --since)"
        )
        return (
            created,
            f"key creation (commit(s) {shown} not found in {where}; see --repo, --since)",
        )
    if created is not None:
        return created, "key creation"
    return now - timedelta(days=30), "30 days back (key creation unknown)"


def measure_exposure(
    admin: AdminApi,
    policy: Policy,
    key: ApiKey,
    target: Target,
    since: str | None,
    repo: Path | None,
    say: Say,
) -> Exposure | str:
    """The key's exposure up to now, or why the usage report could not be read."""
    now = datetime.now(UTC)
    start, reason = exposure_window(target, key.created_at, since, now, repo, say)
    start = min(start.astimezone(UTC), now - timedelta(minutes=1))
    try:
        rows = admin.usage([key.id], start, now, bucket_width="1h", group_by_model=True)
    except KeyguardError as exc:
        return str(exc)
    exposure = build_exposure(key.id, rows, policy, start, now, reason)
    return add_evidence(exposure, admin, key)
