"""The exposure report of a leaked key (usage by hour and model, estimated cost, the
organization's own cost report, the Compliance API's record of the key), its Markdown and JSON
forms, and the append-only incident audit log. Fingerprints and hints only.

Inference leaves no IP trail: Anthropic logs no ``/v1/messages`` call with an address, so the
usage report is the only evidence of what a leaked key was used for; the compliance feed (when
the organization enabled it beforehand) says who created and changed the key, from where, and
any non-inference request the key made.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyguard.admin.protocol import ReadsActivities, ReadsCost
from keyguard.errors import KeyguardError, UsageError
from keyguard.journal import INCIDENT_LOG
from keyguard.keys import API_KEY_RE, scrub_text
from keyguard.models import ApiKey, UsageRow
from keyguard.policy import Policy
from keyguard.words import plural

#: Cache reads and writes, as a share of the input price, when the policy does not say
#: (Anthropic: reads 0.1x, 5-minute writes 1.25x, 1-hour writes 2x the input price).
CACHE_READ_SHARE = 0.10
CACHE_WRITE_SHARE = 1.25
CACHE_WRITE_1H_SHARE = 2.0
NO_IP_TRAIL = (
    "Inference calls leave no IP trail: Anthropic records no address for /v1/messages "
    "requests, so the usage above is the only evidence of what the key was used for."
)
ENABLE_COMPLIANCE = (
    "The Compliance API's activity feed is not enabled for this organization (or the admin "
    "key lacks read:compliance_activities), so nothing recorded who created or changed this "
    "key, or from where. Enable it before the next incident: Console > Settings > Security > "
    "Compliance API, then create an admin key with read:compliance_activities."
)


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
        return sum(r.tokens for r in self.rows)

    @property
    def cost(self) -> float:
        return sum(r.cost or 0.0 for r in self.rows)

    @property
    def unpriced(self) -> list[str]:
        return sorted({r.model for r in self.rows if r.cost is None})

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
                    "hour": r.hour.isoformat(),
                    "model": r.model,
                    "input_tokens": r.input_tokens,
                    "cache_read_input_tokens": r.cache_read_tokens,
                    "cache_creation_input_tokens": r.cache_write_tokens,
                    "output_tokens": r.output_tokens,
                    "estimated_cost_usd": None if r.cost is None else round(r.cost, 6),
                }
                for r in self.rows
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
        f"{u.get('type')}: {u.get('previous_value')} to {u.get('current_value')}"
        for u in updates
        if isinstance(u, dict)
    ]
    return {
        "id": _plain(event.get("id")),
        "created_at": _plain(event.get("created_at")),
        "type": _plain(event.get("type")),
        "actor_type": _plain(actor.get("type")),
        "actor": _plain(who),
        "ip_address": _plain(actor.get("ip_address")),
        "changes": [_plain(c) for c in changes],
    }


def add_evidence(
    exposure: Exposure, admin: ReadsCost | ReadsActivities, key: ApiKey | None = None
) -> Exposure:
    """Add the organization's cost report and the compliance feed's events about the key.

    Neither may fail the incident: a refusal becomes a sentence in the report."""
    if hasattr(admin, "cost_report"):
        try:
            rows = admin.cost_report(exposure.since, exposure.until)
            exposure.org_cost_usd = round(
                sum(r.amount_cents for r in rows if r.currency == "USD") / 100, 6
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
                _event(e) for e in events if isinstance(e, dict) and _about_key(e, exposure.key_id)
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
    out = Exposure(key_id, since, until, since_reason)
    for (hour, model), (inp, read, write, outp, write_1h) in sorted(merged.items()):
        usage = UsageRow(hour, hour, key_id, inp, read, write, outp, model, write_1h)
        out.rows.append(
            ExposureRow(hour, model, inp, read, write, outp, cost_of(policy, model, usage))
        )
    return out


def markdown(incident: dict[str, Any], exposure: Exposure | None) -> str:
    """The incident and its exposure as a Markdown document."""
    key = incident["key"]
    lines = [
        f"# Incident: leaked Anthropic API key {key['hint']}",
        "",
        f"- Key: `{key['id']}` ({key.get('name') or 'unnamed'}), workspace "
        f"{key.get('workspace_id') or 'default'}",
        f"- Fingerprint (SHA-256): `{key.get('fingerprint') or 'unknown'}`",
        f"- Started: {incident['started_at']}",
        f"- Action: {incident['action']} (status before: {incident['status_before']}); "
        f"{incident['seconds_to_deactivate']:.2f}s from start, "
        f"{plural(incident['writes'], 'Admin API write')}",
        "",
        "## Environments",
        "",
    ]
    envs = incident.get("environments") or []
    if not envs:
        lines.append("No configured store holds this key.")
    for env in envs:
        stages = ", ".join(f"{h['stage']} in `{h['store']}`" for h in env["stages"])
        lines.append(f"- **{env['environment']}** ({stages}): {env['action']}: {env['message']}")
    lines += ["", "## Exposure", ""]
    if exposure is None:
        lines.append(f"Not available: {incident.get('exposure_error') or 'not requested'}")
        return "\n".join(lines) + "\n"
    lines += [
        f"Usage from {exposure.since:%Y-%m-%d %H:%M}Z ({exposure.since_reason}) to "
        f"{exposure.until:%Y-%m-%d %H:%M}Z: **{exposure.tokens} tokens**, estimated "
        f"**${exposure.cost:,.4f}**.",
        "",
    ]
    if exposure.unpriced:
        lines += [f"No price for: {', '.join(exposure.unpriced)} (cost not counted).", ""]
    if exposure.rows:
        lines += [
            "| hour (UTC) | model | input | cache read | cache write | output | cost (USD) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in exposure.rows:
            cost = "n/a" if r.cost is None else f"{r.cost:.4f}"
            lines.append(
                f"| {r.hour:%Y-%m-%d %H:00} | {r.model} | {r.input_tokens} | "
                f"{r.cache_read_tokens} | {r.cache_write_tokens} | {r.output_tokens} | {cost} |"
            )
    else:
        lines.append("No usage recorded in this window.")
    lines += ["", "Anthropic's usage report lags about 5 minutes; run again later to complete it."]
    lines += ["", "## The organization's cost report", ""]
    if exposure.org_cost_usd is not None:
        lines.append(
            f"Anthropic's `cost_report` for the whole organization over the same window (every "
            f"key; it has no per-key split): **${exposure.org_cost_usd:,.2f}**, beside this "
            f"key's estimate of ${exposure.cost:,.4f}."
        )
    else:
        lines.append(f"Not available: {exposure.org_cost_error or 'not read'}")
    lines += ["", "## Who created and changed the key (Compliance API)", ""]
    if exposure.activities is None:
        lines.append(ENABLE_COMPLIANCE)
    elif not exposure.activities:
        lines.append("The activity feed holds no event about this key in the window.")
    else:
        lines += ["| when (UTC) | event | by | from IP | changes |", "|---|---|---|---|---|"]
        for e in exposure.activities:
            who = f"{e['actor']} ({e['actor_type']})"
            changes = "; ".join(e["changes"]) or "-"
            lines.append(
                f"| {e['created_at']} | {e['type']} | {who} | {e['ip_address']} | {changes} |"
            )
    lines += ["", NO_IP_TRAIL]
    return "\n".join(lines) + "\n"


def _no_key(text: str) -> str:
    if API_KEY_RE.search(text):  # never: but a report with a key in it must not be written
        raise UsageError("refusing to write an incident record that holds a key")
    return text


def write_report(path: Path, text: str) -> None:
    """Write the Markdown report (0600: it names keys and environments)."""
    _no_key(text)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def append_audit(state_dir: Path, record: dict[str, Any]) -> Path:
    """Append one JSON line to ``<state_dir>/incidents.jsonl`` (0600, fsync'd)."""
    line = _no_key(json.dumps({"logged_at": datetime.now(UTC).isoformat(), **record}))
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / INCIDENT_LOG
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
