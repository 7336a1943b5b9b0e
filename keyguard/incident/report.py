"""The incident's record (what the incident log keeps), its Markdown report and its text
summary. Fingerprints and hints only: a record or report that holds a key is never written."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from keyguard.atomic import write_atomic
from keyguard.errors import UsageError
from keyguard.incident.deactivation import Deactivation
from keyguard.incident.environments import EnvironmentOutcome
from keyguard.incident.exposure import Exposure
from keyguard.incident.leak import Target
from keyguard.keys import API_KEY_RE
from keyguard.words import plural

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


def incident_record(
    deactivation: Deactivation,
    target: Target,
    outcomes: list[EnvironmentOutcome],
    exposure: Exposure | None,
    exposure_error: str | None,
    started_at: datetime,
) -> dict[str, Any]:
    """One key's incident as the incident log, ``--format json`` and the report show it."""
    key = deactivation.key
    return {
        "started_at": started_at.isoformat(),
        "key": {
            "id": key.id,
            "name": key.name,
            "workspace_id": key.workspace_id,
            "hint": key.partial_key_hint or target.hint,
            "fingerprint": target.fingerprint,
        },
        "matched": target.note,
        "status_before": deactivation.status_before,
        "status_after": key.status,
        "action": deactivation.action,
        "writes": deactivation.writes,
        "seconds_to_deactivate": round(deactivation.seconds, 3),
        "environments": [
            {
                "environment": outcome.environment,
                "action": outcome.action,
                "message": outcome.message,
                "stages": [
                    {"store": holding.store, "stage": str(holding.stage)}
                    for holding in outcome.stages
                ],
            }
            for outcome in outcomes
        ],
        "exposure": exposure.to_json() if exposure else None,
        "exposure_error": exposure_error,
    }


def summary(record: dict[str, Any], exposure: Exposure | None) -> list[str]:
    """The lines ``keyguard revoke`` shows for one key: each environment, then the exposure."""
    lines = [env["message"] for env in record["environments"]]
    if not record["environments"]:
        lines.append("No configured store holds this key: no environment to rotate.")
    if exposure is None:
        lines.append(f"Exposure report not available: {record['exposure_error']}")
        return lines
    cost = f"${exposure.cost:,.4f}" if exposure.cost < 1 else f"${exposure.cost:,.2f}"
    lines.append(
        f"Exposure since {exposure.since:%Y-%m-%d %H:%M}Z ({exposure.since_reason}): "
        f"{plural(exposure.tokens, 'token')} in {plural(len(exposure.rows), 'hour/model bucket')}, "
        f"estimated {cost}"
        + (f" (no price for {', '.join(exposure.unpriced)})" if exposure.unpriced else "")
    )
    return lines


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
    environments = incident.get("environments") or []
    if not environments:
        lines.append("No configured store holds this key.")
    for env in environments:
        stages = ", ".join(f"{held['stage']} in `{held['store']}`" for held in env["stages"])
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
        for row in exposure.rows:
            cost = "n/a" if row.cost is None else f"{row.cost:.4f}"
            lines.append(
                f"| {row.hour:%Y-%m-%d %H:00} | {row.model} | {row.input_tokens} | "
                f"{row.cache_read_tokens} | {row.cache_write_tokens} | {row.output_tokens} | "
                f"{cost} |"
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
        for event in exposure.activities:
            who = f"{event['actor']} ({event['actor_type']})"
            changes = "; ".join(event["changes"]) or "-"
            lines.append(
                f"| {event['created_at']} | {event['type']} | {who} | {event['ip_address']} | "
                f"{changes} |"
            )
    lines += ["", NO_IP_TRAIL]
    return "\n".join(lines) + "\n"


def write_report(path: Path, text: str) -> None:
    """Write the Markdown report (0600: it names keys and environments)."""
    if API_KEY_RE.search(text):  # never: but a report with a key in it must not be written
        raise UsageError("refusing to write an incident record that holds a key")
    write_atomic(path, text, mode=0o600, make_folder=False)
