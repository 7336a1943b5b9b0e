"""``keyguard revoke``: a leaked key deactivated first, then environments, rotation, exposure."""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from keyguard.cli.common import load, read_key
from keyguard.errors import ExitCode, KeyguardError, NotFoundError, UsageError
from keyguard.incident import (
    Deactivation,
    EnvOutcome,
    LeakedKey,
    NotProvenError,
    ScanFinding,
    Snapshot,
    Target,
    deactivate,
    engine_rotator,
    first_commit_time,
    handle_environments,
    identify,
    load_scan,
    prove,
    read_stores,
    reread,
)
from keyguard.incident_report import Exposure, append_audit, build_exposure, markdown, write_report
from keyguard.keys import Secret, find_admin_keys, find_api_keys
from keyguard.keys import scrub_text as scrub
from keyguard.policy import parse_duration
from keyguard.words import plural

if TYPE_CHECKING:
    from keyguard.admin import AdminClient
    from keyguard.config import Config
    from keyguard.models import ApiKey

_KEYISH = re.compile(r"sk-ant-", re.IGNORECASE)

ARGV_REFUSAL = (
    "refusing a key given on the command line: it is now in your shell history and was "
    "visible to every user in the process list (ps). Pass it on stdin instead: "
    "`pbpaste | keyguard revoke --leaked -` (or `xclip -o`, or `< FILE`), or run "
    "`keyguard revoke --leaked -` and paste it at the hidden prompt. Then remove it from "
    "your history (`history -d N`, or edit ~/.bash_history)"
)


def _say(message: str) -> None:
    click.echo(message, err=True)


def refuse_argv_keys(values: dict[str, Any], extra: tuple[str, ...]) -> None:
    """UsageError (exit 2) when any argument holds a key; never repeats the value."""
    for value in [*values.values(), *extra]:
        if isinstance(value, str) and _KEYISH.search(value):
            raise UsageError(ARGV_REFUSAL)
    leaked = values.get("leaked")
    if leaked is not None and leaked != "-":
        raise UsageError(
            "--leaked takes '-' only: the key comes from stdin or the hidden prompt, never "
            "from the command line (shell history, process list)"
        )
    if extra:
        raise UsageError(
            f"unexpected argument(s) ({len(extra)}); `keyguard revoke --help` lists the options"
        )


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


def _admin(config: Config, deadline: float) -> AdminClient:
    from keyguard.admin import AdminClient
    from keyguard.config import resolve_admin_key

    # Many attempts, bounded by the deadline: a 429/529 storm must not stop the deactivation.
    return AdminClient(
        resolve_admin_key(config),
        base_url=config.base_url,
        max_attempts=50,
        deadline_seconds=deadline,
        timeout=min(30.0, deadline),
    )


def _stdin_keys() -> list[Secret]:
    """Every API key in what was piped or pasted, found by its shape (text around it is fine)."""
    given = read_key("Leaked key (input hidden)")
    assert given is not None
    keys = find_api_keys(given.reveal())
    for admin_key in find_admin_keys(given.reveal()):
        _say(
            f"keyguard: warning: the input also holds the admin key {admin_key.hint}: keyguard "
            "does not revoke admin keys; delete it in the Console (Settings > Admin keys) now"
        )
    if not keys:
        raise UsageError(
            "no Anthropic API key (sk-ant-api03-...) found in the input; pipe the leaked key "
            "itself (a line like `ANTHROPIC_API_KEY=...` or a JSON line is fine)"
        )
    return keys


def _targets(
    config: Config,
    admin: AdminClient,
    leaked: str | None,
    key_id: str | None,
    from_scan: str | None,
    repo: Path,
) -> tuple[list[Target], list[ApiKey], list[str]]:
    """The targets, each proven to be the key it names, before any write."""
    if leaked == "-":
        secrets = _stdin_keys()
        keys = prove(admin, secrets)  # all proven, or none acted on
        return [Target(key=s) for s in secrets], keys, []
    if key_id is not None:
        target = Target(key_id=key_id)
        return [target], [identify(admin, target)], []
    assert from_scan is not None
    findings = load_scan(Path(from_scan))
    by_fp: dict[str, list[ScanFinding]] = {}
    for f in findings:
        by_fp.setdefault(f.fingerprint, []).append(f)
    unresolved: list[str] = []
    read: list[tuple[Secret, list[ScanFinding]]] = []
    for group in by_fp.values():
        secret = None
        for f in group:
            got = reread(f, repo)
            if isinstance(got, Secret):
                secret = secret or got
            else:
                _say(f"keyguard: not acted on: {got}")
                if secret is None and f is group[-1]:
                    unresolved.append(got)
        if secret is not None:
            read.append((secret, group))
    targets: list[Target] = []
    proven: list[ApiKey] = []
    listing = list(admin.list_keys()) if read else []  # once for every finding
    for secret, group in read:
        try:
            (api,) = prove(admin, [secret], listing)
        except (NotProvenError, UsageError) as exc:  # e.g. an admin key: not ours to revoke
            _say(f"keyguard: not acted on: {exc}")
            unresolved.append(str(exc))
            continue
        commits = tuple(f.commit for f in group if f.commit)
        where = ", ".join(dict.fromkeys(f.where for f in group))
        targets.append(Target(key=secret, commits=commits, note=f"read again from {where}"))
        proven.append(api)
    if not targets:
        raise NotFoundError(
            f"none of the {len(by_fp)} key(s) in {from_scan} was proven to be a live key of "
            "this organization (read again where the scan found it, then GET /v1/models); "
            "nothing was changed"
        )
    return targets, proven, unresolved


def _window(
    target: Target, created: datetime | None, since: str | None, now: datetime, repo: Path | None
) -> tuple[datetime, str]:
    if since is not None:
        return parse_since(since, now), "--since"
    first = first_commit_time(target.commits, repo) if target.commits else None
    if first is not None:
        if created is not None and first < created:
            return created, "key creation (after the first commit that holds it)"
        return first, "first commit the scanner found it in"
    if target.commits and created is not None:
        shown = ", ".join(c[:12] for c in dict.fromkeys(target.commits))
        where = repo or Path(".")
        _say(
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


def _exposure(
    admin: AdminClient,
    config: Config,
    d: Deactivation,
    target: Target,
    since: str | None,
    repo: Path | None,
) -> tuple[Exposure | None, str | None]:
    now = datetime.now(UTC)
    start, reason = _window(target, d.key.created_at, since, now, repo)
    start = min(start.astimezone(UTC), now - timedelta(minutes=1))
    try:
        rows = admin.usage([d.key.id], start, now, bucket_width="1h", group_by_model=True)
    except KeyguardError as exc:
        return None, str(exc)
    return build_exposure(d.key.id, rows, config.policy, start, now, reason), None


def _record(
    d: Deactivation,
    target: Target,
    outcomes: list[EnvOutcome],
    exposure: Exposure | None,
    exposure_error: str | None,
    started_at: datetime,
) -> dict[str, Any]:
    return {
        "started_at": started_at.isoformat(),
        "key": {
            "id": d.key.id,
            "name": d.key.name,
            "workspace_id": d.key.workspace_id,
            "hint": d.key.partial_key_hint or target.hint,
            "fingerprint": target.fingerprint,
        },
        "matched": target.note,
        "status_before": d.status_before,
        "status_after": d.key.status,
        "action": d.action,
        "writes": d.writes,
        "seconds_to_deactivate": round(d.seconds, 3),
        "environments": [
            {
                "environment": o.environment,
                "action": o.action,
                "message": o.message,
                "stages": [{"store": h.store, "stage": str(h.stage)} for h in o.stages],
            }
            for o in outcomes
        ],
        "exposure": exposure.to_json() if exposure else None,
        "exposure_error": exposure_error,
    }


def _notify(config: Config, outcome: EnvOutcome) -> str | None:
    """Post the rotation request to the webhook; the problem, if it could not."""
    if outcome.request is None or not config.webhook:
        return None
    from keyguard.notify import post_webhook

    try:
        post_webhook(config.webhook, outcome.request)
    except Exception as exc:  # after the write: named, never a traceback that stops the rest
        problem = scrub(str(exc) if isinstance(exc, KeyguardError) else repr(exc))
        _say(f"keyguard: warning: {problem}")
        return problem
    return None


def _text(record: dict[str, Any], exposure: Exposure | None) -> None:
    for env in record["environments"]:
        click.echo(env["message"])
    if not record["environments"]:
        click.echo("No configured store holds this key: no environment to rotate.")
    if exposure is None:
        click.echo(f"Exposure report not available: {record['exposure_error']}")
        return
    cost = f"${exposure.cost:,.4f}" if exposure.cost < 1 else f"${exposure.cost:,.2f}"
    click.echo(
        f"Exposure since {exposure.since:%Y-%m-%d %H:%M}Z ({exposure.since_reason}): "
        f"{plural(exposure.tokens, 'token')} in {plural(len(exposure.rows), 'hour/model bucket')}, "
        f"estimated {cost}"
        + (f" (no price for {', '.join(exposure.unpriced)})" if exposure.unpriced else "")
    )


@dataclass
class Failure:
    """One step that failed after the first write; the steps after it still ran."""

    step: str  # deactivate, stores, environment, exposure, incident log, report, webhook
    message: str
    code: int
    environment: str | None = None
    store: str | None = None

    def describe(self) -> str:
        where = " ".join(
            x
            for x in (
                f"environment {self.environment}" if self.environment else "",
                f"store {self.store}" if self.store else "",
            )
            if x
        )
        return f"{self.step}" + (f" ({where})" if where else "") + f": {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "environment": self.environment,
            "store": self.store,
            "message": self.message,
            "exit_code": self.code,
        }


def _deactivate_all(
    admin: AdminClient, targets: list[Target], keys: list[ApiKey], archive: bool, started: float
) -> tuple[list[tuple[Target, Deactivation]], list[Failure]]:
    """Each proven key deactivated (and leak-marked); raise only if nothing was written."""
    done: list[tuple[Target, Deactivation]] = []
    failures: list[Failure] = []
    first: KeyguardError | None = None
    for t, k in zip(targets, keys, strict=True):
        try:
            d = deactivate(admin, k, archive=archive, started=started)
        except KeyguardError as exc:
            first = first or exc
            failures.append(
                Failure("deactivate", f"{k.id} ({k.partial_key_hint}): {exc}", int(exc.exit_code))
            )
            continue
        done.append((t, d))
        _say(
            f"keyguard: {d.key.id} ({d.key.partial_key_hint}) {d.action}"
            + (f" (status was {d.status_before})" if d.status_before != "active" else "")
            + f", renamed {d.key.name!r}"
            + f": {d.seconds:.2f}s from start, {plural(d.writes, 'Admin API write')}"
        )
    if first is not None and not any(d.writes for _, d in done):
        raise first  # nothing written: the plain error (2, 3, 4), nothing changed
    return done, failures


def _after_write(
    config: Config,
    admin: AdminClient,
    done: list[tuple[Target, Deactivation]],
    failures: list[Failure],
    since: str | None,
    repo: Path | None,
    started_at: datetime,
) -> list[tuple[dict[str, Any], Exposure | None]]:
    """Environments, rotations, webhook, exposure, incident log: each step runs whatever failed
    before it; failures go to ``failures``."""
    try:
        snap = read_stores(config)
    except Exception as exc:  # incident response never stops half-way
        snap = Snapshot(errors={"*": scrub(f"{type(exc).__name__}: {exc}")})
    for uri, problem in snap.errors.items():
        env = snap.error_envs.get(uri)
        _say(f"keyguard: warning: could not read {uri}: {problem}")
        code = snap.error_codes.get(uri, int(ExitCode.UNAVAILABLE))
        failures.append(Failure("stores", f"could not read it: {problem}", code, env, uri))
    rotate = engine_rotator(config, admin, _say)
    records = []
    for t, d in done:
        hint = d.key.partial_key_hint or t.hint or "?"
        leaked_key = LeakedKey(d.key.id, hint, t.fingerprint)
        holdings = snap.holding(t.fingerprint, d.key.id)
        for place in snap.same_hint(leaked_key.hint, t.fingerprint, d.key.id):
            _say(
                f"keyguard: warning: {place} holds a key with the hint {leaked_key.hint} and no "
                "key id: keyguard cannot tell whether it is the leaked key; check it by hand"
            )
        outcomes = list(handle_environments(holdings, leaked_key, rotate))
        for o in outcomes:
            if o.action == "error":
                failures.append(Failure("environment", o.message, o.exit_code, o.environment))
            hook_error = _notify(config, o)
            if hook_error is not None:
                failures.append(Failure("webhook", hook_error, 4, o.environment))
        exposure, err = _exposure(admin, config, d, t, since, repo)
        if err:
            failures.append(Failure("exposure", f"usage report for {d.key.id}: {err}", 4))
        record = _record(d, t, outcomes, exposure, err, started_at)
        record["store_errors"] = snap.errors
        record["failures"] = [f.to_json() for f in failures]
        try:
            append_audit(config.state_dir, record)
        except Exception as exc:  # after the write: named, and the rest still runs
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else scrub(str(exc))
            failures.append(
                Failure("incident log", f"could not write {config.state_dir}: {why}", 2)
            )
        records.append((record, exposure))
    return records


def _exit_code(
    records: list[tuple[dict[str, Any], Exposure | None]],
    failures: list[Failure],
    unresolved: list[str],
) -> int:
    """What was done and what was not (docs/architecture.md, README incident runbook).

    A failed deactivation first (a proven key is still active), then 5 (environments wait for
    a new key), then the first other failure's code, then 1 (findings not acted on), else 0.
    """
    for f in failures:
        if f.step == "deactivate":
            return f.code
    if any(e["action"] == "waiting" for r, _ in records for e in r["environments"]):
        return int(ExitCode.PENDING)
    if failures:
        return failures[0].code
    return int(ExitCode.FOUND) if unresolved else int(ExitCode.OK)


@click.command()
@click.option("--leaked", metavar="-", help="Read the leaked key from stdin or a hidden prompt.")
@click.option("--key-id", metavar="apikey_...", help="Revoke the key with this id.")
@click.option(
    "--from-scan",
    type=click.Path(dir_okay=False),
    help="Revoke the keys of a `keyguard scan --format json` report.",
)
@click.option("--archive", is_flag=True, help="Archive the key too (final).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--since", metavar="WHEN", help="Exposure window start: a date or 48h/7d back.")
@click.option(
    "--report", "-o", "--output", type=click.Path(dir_okay=False), help="Write a Markdown report."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: the incident record as JSON on stdout.",
)
@click.option(
    "--repo",
    type=click.Path(file_okay=False),
    help="Folder the scan ran in: its files and git history are read again (default: .).",
)
@click.option(
    "--deadline", type=float, default=60.0, show_default=True, help="Seconds to retry the API."
)
@click.argument("extra", nargs=-1, metavar="")
@click.pass_context
def revoke(
    ctx: click.Context,
    leaked: str | None,
    key_id: str | None,
    from_scan: str | None,
    archive: bool,
    yes: bool,
    since: str | None,
    report: str | None,
    fmt: str,
    repo: str | None,
    deadline: float,
    extra: tuple[str, ...],
) -> int:
    """Deactivate a leaked key at once, then rotate the environments that use it.

    The key comes from stdin or a hidden prompt (`--leaked -`), never from the command line;
    before any write keyguard proves it is a live key of this organization (GET /v1/models
    and exactly one key with its hint), and the write also marks its name `leaked-DATE ...`.
    Before a write: 1 not proven (nothing changed), 2 usage, 3 admin key rejected, 4 API
    unavailable. After it: 0 done, 5 environments wait for a new key, else the code of the
    first failed step (each named on stderr; the rest still ran), 1 findings not acted on.
    """
    started = time.monotonic()
    started_at = datetime.now(UTC)
    refuse_argv_keys(
        {
            "leaked": leaked,
            "key_id": key_id,
            "from_scan": from_scan,
            "since": since,
            "report": report,
            "repo": repo,
        },
        extra,
    )
    if sum(x is not None for x in (leaked, key_id, from_scan)) != 1:
        raise UsageError("give exactly one of --leaked -, --key-id apikey_... or --from-scan FILE")
    if since is not None:
        parse_since(since, started_at)  # fail on a bad value before any write
    interactive = sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty()
    if not yes and not interactive:
        raise UsageError(
            "stdin is not a terminal, so keyguard cannot ask before deactivating; add --yes "
            "(e.g. `pbpaste | keyguard revoke --leaked - --yes`)"
        )
    config = load(ctx)
    repo_path = Path(repo) if repo else None
    with _admin(config, deadline) as admin:
        targets, keys, unresolved = _targets(
            config, admin, leaked, key_id, from_scan, repo_path or Path(".")
        )
        if not yes:
            asked = time.monotonic()
            for k in keys:
                click.echo(
                    f"About to {'archive' if archive else 'deactivate'} {k.id} "
                    f"({k.name!r}, {k.partial_key_hint}, {k.workspace_id or 'default workspace'}, "
                    f"now {k.status}).",
                    err=True,
                )
            click.confirm("Go ahead?", abort=True, err=True)
            started += time.monotonic() - asked  # the human's think time is not ours
        done, failures = _deactivate_all(admin, targets, keys, archive, started)
        # From here on nothing stops the incident: every failure is caught, named with its
        # environment and store, and the remaining steps still run (see the exit codes).
        records = _after_write(config, admin, done, failures, since, repo_path, started_at)
    code = _exit_code(records, failures, unresolved)
    for record, exposure in records:
        if fmt == "json":
            click.echo(json.dumps(record, indent=2))
        else:
            _text(record, exposure)
    if report:
        try:
            write_report(Path(report), "\n".join(markdown(r, e) for r, e in records))
            _say(f"keyguard: wrote the incident report to {report}")
        except (OSError, KeyguardError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            failures.append(Failure("report", f"could not write the report {report}: {why}", 2))
            code = _exit_code(records, failures, unresolved)
    for f in failures:
        _say(f"keyguard: FAILED: {f.describe()}")
    if code == ExitCode.PENDING and any(
        e["action"] == "waiting" for r, _ in records for e in r["environments"]
    ):
        _say(
            "keyguard: the leaked key is deactivated, but environments above still wait for "
            "a new key; deliver it with `keyguard deliver ENV`, then run "
            "`keyguard rotate ENV --grace 0 --force`"
        )
    return code
