"""``keyguard revoke``: a leaked key deactivated first, then environments, rotation, exposure."""

from __future__ import annotations

import json
import re
import sys
import time
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
    Snapshot,
    Target,
    deactivate,
    engine_rotator,
    first_commit_time,
    handle_environments,
    identify,
    load_scan,
    read_stores,
    resolve_scan,
)
from keyguard.incident_report import Exposure, append_audit, build_exposure, markdown, write_report
from keyguard.policy import parse_duration

if TYPE_CHECKING:
    from keyguard.admin import AdminClient
    from keyguard.config import Config

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


def _targets(
    config: Config,
    admin: AdminClient,
    leaked: str | None,
    key_id: str | None,
    from_scan: str | None,
) -> tuple[list[Target], Snapshot | None, list[str]]:
    if leaked == "-":
        key = read_key("Leaked key (input hidden)")
        assert key is not None
        return [Target(key=key)], None, []
    if key_id is not None:
        return [Target(key_id=key_id)], None, []
    assert from_scan is not None
    found = load_scan(Path(from_scan))
    snap = read_stores(config)
    targets, unresolved = resolve_scan(found, snap, admin.list_keys)
    for problem in unresolved:
        _say(f"keyguard: not matched: {problem}")
    if not targets:
        raise NotFoundError(
            f"none of the {len(found)} key(s) in {from_scan} could be matched to a key of this "
            "organization (through the stores or by hint); revoke them with "
            "`keyguard revoke --leaked -` using the key itself"
        )
    return targets, snap, unresolved


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


def _notify(config: Config, outcome: EnvOutcome) -> None:
    if outcome.request is None or not config.webhook:
        return
    from keyguard.notify import post_webhook

    try:
        post_webhook(config.webhook, outcome.request)
    except KeyguardError as exc:
        _say(f"keyguard: warning: {exc}")


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
        f"{exposure.tokens} tokens in {len(exposure.rows)} hour/model bucket(s), "
        f"estimated {cost}"
        + (f" (no price for {', '.join(exposure.unpriced)})" if exposure.unpriced else "")
    )


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
@click.option("--report", type=click.Path(dir_okay=False), help="Write a Markdown report.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--repo",
    type=click.Path(file_okay=False),
    help="Git repository of the scan's history findings (default: .).",
)
@click.option(
    "--deadline", type=float, default=60.0, show_default=True, help="Seconds to retry the API."
)
@click.option("--rule", metavar="fdrl_...", help="Archive a federation rule (exchange stops).")
@click.option(
    "--service-account", metavar="svac_...", help="Archive its federation rules, then it."
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
    rule: str | None = None,
    service_account: str | None = None,
) -> int:
    """Deactivate a leaked key at once, then rotate the environments that use it.

    The key comes from stdin or a hidden prompt (`--leaked -`), never from the command line.
    Exit 0 done, 1 key unknown to the organization, 2 usage, 3 admin key rejected,
    4 API unavailable, 5 deactivated but environments still wait for a new key.
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
    if rule is not None or service_account is not None:  # federation: keyguard.wif.incident
        from keyguard.cli.wif import revoke_federation

        given = (leaked, key_id, from_scan, rule, service_account)
        if sum(x is not None for x in given) != 1:
            raise UsageError("give one of --rule fdrl_..., --service-account svac_... alone")
        return revoke_federation(ctx, rule, service_account, yes, fmt)
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
    with _admin(config, deadline) as admin:
        targets, snap, unresolved = _targets(config, admin, leaked, key_id, from_scan)
        keys = [identify(admin, t) for t in targets]
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
        done = [deactivate(admin, k, archive=archive, started=started) for k in keys]
        for d in done:
            _say(
                f"keyguard: {d.key.id} ({d.key.partial_key_hint}) {d.action}"
                + (f" (status was {d.status_before})" if d.writes == 0 else "")
                + f": {d.seconds:.2f}s from start, {d.writes} Admin API write(s)"
            )
        if snap is None:
            snap = read_stores(config)
        for uri, problem in snap.errors.items():
            _say(f"keyguard: warning: could not read {uri}: {problem}")
        rotate = engine_rotator(config, admin, _say)
        code = int(ExitCode.OK) if not unresolved else int(ExitCode.FOUND)
        records = []
        for d, t in zip(done, targets, strict=True):
            leaked_key = LeakedKey(d.key.id, d.key.partial_key_hint or t.hint or "?", t.fingerprint)
            holdings = snap.holding(t.fingerprint, d.key.id, d.key.partial_key_hint or t.hint)
            outcomes = list(handle_environments(holdings, leaked_key, rotate))
            for o in outcomes:
                _notify(config, o)
            if any(o.action == "waiting" for o in outcomes):
                code = int(ExitCode.PENDING)
            failed = [o.exit_code for o in outcomes if o.action == "error"]
            if failed and code in (ExitCode.OK, ExitCode.FOUND):
                code = failed[0]  # e.g. 4: the API or a store was down during the rotation
            repo_path = Path(repo) if repo else None
            exposure, err = _exposure(admin, config, d, t, since, repo_path)
            if (err or snap.errors) and code == ExitCode.OK:
                code = int(ExitCode.UNAVAILABLE)  # deactivated, but the picture is incomplete
            record = _record(d, t, outcomes, exposure, err, started_at)
            record["store_errors"] = snap.errors
            append_audit(config.state_dir, record)
            records.append((record, exposure))
    for record, exposure in records:
        if fmt == "json":
            click.echo(json.dumps(record, indent=2))
        else:
            _text(record, exposure)
    if report:
        write_report(Path(report), "\n".join(markdown(r, e) for r, e in records))
        _say(f"keyguard: wrote the incident report to {report}")
    if code == ExitCode.PENDING and any(
        e["action"] == "waiting" for r, _ in records for e in r["environments"]
    ):
        _say(
            "keyguard: the leaked key is deactivated, but environments above still wait for "
            "a new key; deliver it with `keyguard deliver ENV`, then run "
            "`keyguard rotate ENV --grace 0 --force`"
        )
    return code
