"""Incident response: a leaked key proven, deactivated first, then its environments rotated and
its exposure measured. ``respond`` (in ``response``) runs it all; ``keyguard revoke`` only
parses, confirms and prints.

leak          what leaked: keys piped in, or a scan report's findings read again
proof         before any write: each string is a live key of this organization, and which one
deactivation  the first (and only Admin API) write: inactive or archived, plus the leak mark
holdings      where it lives: every stage of every configured store, read once
environments  each environment that serves it: rotated, asked for a key, or rolled back
exposure      what it was used for (usage report, cost), and what the organization recorded
report        the incident's record, its Markdown report and its text summary
response      ``respond``: the steps in order, failures after the first write, the exit code

The incident log itself (``keyguard.journal``) sits below rotation, which reads it.
"""

from __future__ import annotations

from keyguard.incident.proof import NotProvenError, authenticates, prove
from keyguard.incident.response import (
    Confirm,
    IncidentResult,
    Request,
    incident_admin,
    respond,
)

__all__ = [
    "Confirm",
    "IncidentResult",
    "NotProvenError",
    "Request",
    "authenticates",
    "incident_admin",
    "prove",
    "respond",
]
