"""``keyguard revoke``: a leaked key deactivated first, then environments, rotation, exposure.

The response itself is ``keyguard.incident.respond``; this command parses, confirms and prints.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from keyguard.cli.common import load, read_key, seconds
from keyguard.cli.paths import check_writable
from keyguard.cli.wif import revoke_federation
from keyguard.errors import ExitCode, UsageError
from keyguard.incident import Confirm, IncidentResult, Request, incident_admin, respond
from keyguard.incident.exposure import parse_since
from keyguard.incident.report import summary
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


def _confirm(archive: bool) -> Confirm:
    """Show each proven key, then ask; no answer or 'no' aborts before any write."""

    def confirm(keys: list[ApiKey]) -> None:
        for key in keys:
            click.echo(
                f"About to {'archive' if archive else 'deactivate'} {key.id} "
                f"({key.name!r}, {key.partial_key_hint}, "
                f"{key.workspace_id or 'default workspace'}, now {key.status}).",
                err=True,
            )
        click.confirm("Go ahead?", abort=True, err=True)

    return confirm


def _show(result: IncidentResult, output_format: str) -> None:
    for incident in result.incidents:
        if output_format == "json":
            click.echo(json.dumps(incident.record, indent=2))
        else:
            for line in summary(incident.record, incident.exposure):
                click.echo(line)
    for failure in result.failures:
        _say(f"keyguard: FAILED: {failure.describe()}")
    if result.exit_code == ExitCode.PENDING and result.waiting:
        _say(
            "keyguard: the leaked key is deactivated, but environments above still wait for "
            "a new key; deliver it with `keyguard deliver ENV`, then run "
            "`keyguard rotate ENV --grace 0 --force`"
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
@click.option(
    "--report", "-o", "--output", type=click.Path(dir_okay=False), help="Write a Markdown report."
)
@click.option(
    "--format",
    "output_format",
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
    "--deadline",
    type=float,
    callback=seconds,
    default=60.0,
    show_default=True,
    help="Seconds to retry the API.",
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
    output_format: str,
    repo: str | None,
    deadline: float,
    extra: tuple[str, ...],
    rule: str | None = None,
    service_account: str | None = None,
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
    if rule is not None or service_account is not None:  # federation: keyguard.wif.incident
        given = (leaked, key_id, from_scan, rule, service_account)
        if sum(option is not None for option in given) != 1:
            raise UsageError("give one of --rule fdrl_..., --service-account svac_... alone")
        return revoke_federation(ctx, rule, service_account, yes, output_format)
    if sum(option is not None for option in (leaked, key_id, from_scan)) != 1:
        raise UsageError("give exactly one of --leaked -, --key-id apikey_... or --from-scan FILE")
    if since is not None:
        parse_since(since, started_at)  # fail on a bad value before any write
    if report is not None:
        check_writable(report, "--report")
    interactive = sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty()
    if not yes and not interactive:
        raise UsageError(
            "stdin is not a terminal, so keyguard cannot ask before deactivating; add --yes "
            "(e.g. `pbpaste | keyguard revoke --leaked - --yes`)"
        )
    config = load(ctx)
    with incident_admin(config, deadline) as admin:
        leaked_input = read_key("Leaked key (input hidden)") if leaked == "-" else None
        request = Request(
            leaked=leaked_input,
            key_id=key_id,
            from_scan=Path(from_scan) if from_scan is not None else None,
            archive=archive,
            since=since,
            repo=Path(repo) if repo else None,
            report=Path(report) if report else None,
        )
        result = respond(
            config,
            admin,
            request,
            _say,
            confirm=None if yes else _confirm(archive),
            started=started,
            started_at=started_at,
        )
    _show(result, output_format)
    return result.exit_code
