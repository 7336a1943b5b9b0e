"""The exposure report of a leaked key (usage by hour and model, estimated cost), its Markdown
and JSON forms, and the append-only incident audit log. Fingerprints and hints only."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyguard.errors import UsageError
from keyguard.journal import INCIDENT_LOG
from keyguard.keys import API_KEY_RE
from keyguard.models import UsageRow
from keyguard.policy import Policy
from keyguard.words import plural

#: Cache reads and writes, as a share of the input price, when the policy does not say.
CACHE_READ_SHARE = 0.10
CACHE_WRITE_SHARE = 1.25


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
        }


def cost_of(policy: Policy, model: str | None, row: UsageRow) -> float | None:
    """US dollars for one row at the policy's per-million-token prices."""
    price = policy.price_for(model)
    if price is None:
        return None
    read = price.cache_read if price.cache_read is not None else price.input * CACHE_READ_SHARE
    write = price.cache_write if price.cache_write is not None else price.input * CACHE_WRITE_SHARE
    return (
        row.uncached_input_tokens * price.input
        + row.cache_read_input_tokens * read
        + row.cache_creation_input_tokens * write
        + row.output_tokens * price.output
    ) / 1_000_000


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
        slot = merged.setdefault((row.starting_at, row.model or "unknown"), [0, 0, 0, 0])
        slot[0] += row.uncached_input_tokens
        slot[1] += row.cache_read_input_tokens
        slot[2] += row.cache_creation_input_tokens
        slot[3] += row.output_tokens
    out = Exposure(key_id, since, until, since_reason)
    for (hour, model), (inp, read, write, outp) in sorted(merged.items()):
        usage = UsageRow(hour, hour, key_id, inp, read, write, outp, model)
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
