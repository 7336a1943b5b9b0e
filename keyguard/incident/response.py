"""The incident response, in order: prove -> (confirm) -> deactivate -> environments -> exposure
-> incident log -> report. ``respond`` is the one entry point (``keyguard revoke`` calls it).

Before the first write a failure is the plain error (nothing changed). After it nothing stops
the incident: every failure is caught, named with its step, environment and store, and the
remaining steps still run; ``IncidentResult.exit_code`` then says what was left undone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyguard.admin.client import AdminClient
from keyguard.admin.protocol import AdminApi
from keyguard.config import Config, resolve_admin_key
from keyguard.errors import ExitCode, KeyguardError
from keyguard.incident.deactivation import Deactivation, deactivate
from keyguard.incident.environments import (
    EnvironmentOutcome,
    Rotator,
    engine_rotator,
    handle_environments,
)
from keyguard.incident.exposure import Exposure, measure_exposure
from keyguard.incident.holdings import LeakedKey, Snapshot, read_stores
from keyguard.incident.leak import Target
from keyguard.incident.proof import find_targets
from keyguard.incident.report import incident_record, markdown, write_report
from keyguard.journal import append_incident
from keyguard.keys import Secret
from keyguard.keys import scrub_text as scrub
from keyguard.models import ApiKey, Say
from keyguard.notify import post_webhook
from keyguard.words import plural

#: Asked once every target is proven, before the first write; raises to stop (nothing changed).
Confirm = Callable[[list[ApiKey]], None]


@dataclass(frozen=True)
class Request:
    """What to respond to (one of ``leaked``, ``key_id``, ``from_scan``) and how."""

    leaked: Secret | None = None  # the piped or pasted input; every API key in it counts
    key_id: str | None = None
    from_scan: Path | None = None
    archive: bool = False
    since: str | None = None  # the exposure window's start (``exposure.parse_since``)
    repo: Path | None = None  # where the scan ran (default: the working folder)
    report: Path | None = None  # where to write the Markdown report


@dataclass
class Failure:
    """One step that failed after the first write; the steps after it still ran."""

    step: str  # deactivate, stores, environment, exposure, incident log, report, webhook
    message: str
    code: int
    environment: str | None = None
    store: str | None = None

    def describe(self) -> str:
        places = [
            f"environment {self.environment}" if self.environment else "",
            f"store {self.store}" if self.store else "",
        ]
        where = " ".join(place for place in places if place)
        return self.step + (f" ({where})" if where else "") + f": {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "environment": self.environment,
            "store": self.store,
            "message": self.message,
            "exit_code": self.code,
        }


@dataclass(frozen=True)
class KeyIncident:
    """One deactivated key's record (as the incident log keeps it) and its exposure."""

    record: dict[str, Any]
    exposure: Exposure | None

    @property
    def waiting(self) -> bool:
        return any(env["action"] == "waiting" for env in self.record["environments"])


@dataclass
class IncidentResult:
    """What the response did, what failed after the first write, and the exit code."""

    incidents: list[KeyIncident] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # scan findings not acted on
    report: Path | None = None  # the report, once written

    @property
    def waiting(self) -> bool:
        """Some environment still waits for a new key."""
        return any(incident.waiting for incident in self.incidents)

    @property
    def exit_code(self) -> int:
        """A failed deactivation first (a proven key is still active), then 5 (environments
        wait for a new key), then the first other failure's code, then 1 (findings not acted
        on), else 0 (docs/architecture.md)."""
        for failure in self.failures:
            if failure.step == "deactivate":
                return failure.code
        if self.waiting:
            return int(ExitCode.PENDING)
        if self.failures:
            return self.failures[0].code
        return int(ExitCode.FOUND) if self.unresolved else int(ExitCode.OK)


def incident_admin(config: Config, deadline: float) -> AdminClient:
    """The Admin API client of an incident: many attempts, bounded by ``deadline`` seconds."""
    # A 429/529 storm must not stop the deactivation.
    return AdminClient(
        resolve_admin_key(config),
        base_url=config.base_url,
        max_attempts=50,
        deadline_seconds=deadline,
        timeout=min(30.0, deadline),
    )


def respond(
    config: Config,
    admin: AdminApi,
    request: Request,
    say: Say,
    *,
    confirm: Confirm | None = None,
    started: float | None = None,
    started_at: datetime | None = None,
) -> IncidentResult:
    """Respond to a leak: prove, deactivate, rotate, measure, record, report.

    Raises (nothing changed) until the first write; after it, returns whatever fails.
    ``started`` (``time.monotonic()``) and ``started_at`` date the incident's start.
    """
    started = time.monotonic() if started is None else started
    started_at = started_at or datetime.now(UTC)
    found = find_targets(
        admin,
        say,
        leaked=request.leaked,
        key_id=request.key_id,
        from_scan=request.from_scan,
        repo=request.repo or Path("."),
    )
    if confirm is not None:
        asked = time.monotonic()
        confirm(found.keys)
        started += time.monotonic() - asked  # the human's think time is not ours
    result = IncidentResult(unresolved=found.unresolved)
    done = _deactivate_all(admin, found.targets, found.keys, request, started, result, say)
    # From here on nothing stops the incident: every failure is caught, named with its
    # environment and store, and the remaining steps still run (see the exit codes).
    snapshot = _read_stores(config, result, say)
    rotate = engine_rotator(config, admin, say)
    for target, deactivation in done:
        outcomes = _environments(config, snapshot, target, deactivation, rotate, result, say)
        exposure = measure_exposure(
            admin, config.policy, deactivation.key, target, request.since, request.repo, say
        )
        error = exposure if isinstance(exposure, str) else None
        if error is not None:
            result.failures.append(
                Failure("exposure", f"usage report for {deactivation.key.id}: {error}", 4)
            )
        measured = None if isinstance(exposure, str) else exposure
        record = incident_record(deactivation, target, outcomes, measured, error, started_at)
        record["store_errors"] = snapshot.errors
        record["failures"] = [failure.to_json() for failure in result.failures]
        _log(config, record, result)
        result.incidents.append(KeyIncident(record, measured))
    if request.report is not None:
        _report(request.report, result, say)
    return result


def _deactivate_all(
    admin: AdminApi,
    targets: list[Target],
    keys: list[ApiKey],
    request: Request,
    started: float,
    result: IncidentResult,
    say: Say,
) -> list[tuple[Target, Deactivation]]:
    """Each proven key deactivated (and leak-marked); raise only if nothing was written."""
    done: list[tuple[Target, Deactivation]] = []
    first: KeyguardError | None = None
    for target, key in zip(targets, keys, strict=True):
        try:
            deactivation = deactivate(admin, key, archive=request.archive, started=started)
        except KeyguardError as exc:
            first = first or exc
            problem = f"{key.id} ({key.partial_key_hint}): {exc}"
            result.failures.append(Failure("deactivate", problem, int(exc.exit_code)))
            continue
        done.append((target, deactivation))
        after = deactivation.key
        say(
            f"keyguard: {after.id} ({after.partial_key_hint}) {deactivation.action}"
            + (
                f" (status was {deactivation.status_before})"
                if deactivation.status_before != "active"
                else ""
            )
            + f", renamed {after.name!r}"
            + f": {deactivation.seconds:.2f}s from start, "
            + plural(deactivation.writes, "Admin API write")
        )
    if first is not None and not any(deactivation.writes for _, deactivation in done):
        raise first  # nothing written: the plain error (2, 3, 4), nothing changed
    return done


def _read_stores(config: Config, result: IncidentResult, say: Say) -> Snapshot:
    try:
        snapshot = read_stores(config)
    except Exception as exc:  # incident response never stops half-way
        snapshot = Snapshot(errors={"*": scrub(f"{type(exc).__name__}: {exc}")})
    for uri, problem in snapshot.errors.items():
        say(f"keyguard: warning: could not read {uri}: {problem}")
        code = snapshot.error_codes.get(uri, int(ExitCode.UNAVAILABLE))
        environment = snapshot.error_environments.get(uri)
        result.failures.append(
            Failure("stores", f"could not read it: {problem}", code, environment, uri)
        )
    return snapshot


def _environments(
    config: Config,
    snapshot: Snapshot,
    target: Target,
    deactivation: Deactivation,
    rotate: Rotator,
    result: IncidentResult,
    say: Say,
) -> list[EnvironmentOutcome]:
    """Rotate (or ask for a key for) every environment that holds the key; notify the webhook."""
    key = deactivation.key
    leaked = LeakedKey(key.id, key.partial_key_hint or target.hint or "?", target.fingerprint)
    for place in snapshot.same_hint(leaked):
        say(
            f"keyguard: warning: {place} holds a key with the hint {leaked.hint} and no "
            "key id: keyguard cannot tell whether it is the leaked key; check it by hand"
        )
    outcomes = list(handle_environments(snapshot.holding(leaked), leaked, rotate))
    for outcome in outcomes:
        if outcome.action == "error":
            result.failures.append(
                Failure("environment", outcome.message, outcome.exit_code, outcome.environment)
            )
        problem = _notify(config, outcome, say)
        if problem is not None:
            result.failures.append(Failure("webhook", problem, 4, outcome.environment))
    return outcomes


def _notify(config: Config, outcome: EnvironmentOutcome, say: Say) -> str | None:
    """Post the rotation request to the webhook; the problem, if it could not."""
    if outcome.request is None or not config.webhook:
        return None
    try:
        post_webhook(config.webhook, outcome.request)
    except Exception as exc:  # after the write: named, never a traceback that stops the rest
        problem = scrub(str(exc) if isinstance(exc, KeyguardError) else repr(exc))
        say(f"keyguard: warning: {problem}")
        return problem
    return None


def _log(config: Config, record: dict[str, Any], result: IncidentResult) -> None:
    try:
        append_incident(config.state_dir, record)
    except Exception as exc:  # after the write: named, and the rest still runs
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else scrub(str(exc))
        result.failures.append(
            Failure("incident log", f"could not write {config.state_dir}: {why}", 2)
        )


def _report(path: Path, result: IncidentResult, say: Say) -> None:
    text = "\n".join(markdown(incident.record, incident.exposure) for incident in result.incidents)
    try:
        write_report(path, text)
    except (OSError, KeyguardError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        result.failures.append(Failure("report", f"could not write the report {path}: {why}", 2))
        return
    result.report = path
    say(f"keyguard: wrote the incident report to {path}")
