"""``keyguard deliver | rotate | status | rollback``: the rotation engine on the command line."""

from __future__ import annotations

import json
import select
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import click

from keyguard import rotation
from keyguard.admin import AdminClient
from keyguard.cli import error_text
from keyguard.cli.common import (
    admin_client,
    complete_environment,
    env_seconds,
    load,
    read_key,
    require_environments,
)
from keyguard.config import Config
from keyguard.errors import ExitCode, KeyguardError, UsageError
from keyguard.keys import Secret
from keyguard.notify import post_webhook
from keyguard.policy import parse_duration
from keyguard.rotation import RotationEngine

#: How long ``rotate`` waits for a key on a non-terminal stdin that has not closed.
STDIN_WAIT_ENV = "KEYGUARD_STDIN_WAIT"


def _say(message: str) -> None:
    click.echo(message, err=True)


@contextmanager
def _admin(config: Config) -> Iterator[AdminClient]:
    client = admin_client(config)
    try:
        yield client
    finally:
        client.close()


def _engine(
    config: Config,
    name: str,
    admin: AdminClient,
    grace: timedelta | None = None,
    force: bool = False,
    recover: bool = False,
) -> RotationEngine:
    return rotation.open_engine(
        config, name, admin, grace=grace, force=force, say=_say, recover=recover
    )


def _prompt(engine: RotationEngine) -> str:
    return f"{engine.env.name}: {engine.request_text()}.\nNew key (hidden)"


def _optional_key(engine: RotationEngine, *, prompt: bool) -> Secret | None:
    """A new key if one is coming: stdin when piped, a prompt on a terminal; never a hang."""
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        return None
    if stdin.isatty():
        return read_key(_prompt(engine), allow_empty=True) if prompt else None
    try:
        fd = stdin.fileno()
    except (OSError, ValueError):
        return read_key(_prompt(engine), allow_empty=True)
    wait = env_seconds(STDIN_WAIT_ENV, 10.0)
    ready, _, _ = select.select([fd], [], [], wait)
    if not ready:
        _say(
            f"{engine.env.name}: nothing arrived on stdin within {wait:g}s; going on without "
            "a new key"
        )
        return None
    return read_key(_prompt(engine), allow_empty=True)


def _refuse_stray_key() -> None:
    """A key piped into a many-environment run belongs to none of them: say so, never drop it."""
    stdin = sys.stdin
    if stdin is None or stdin.closed or stdin.isatty():
        return
    try:
        ready, _, _ = select.select([stdin.fileno()], [], [], 0.5)
    except (OSError, ValueError):
        return
    if ready and stdin.read().strip():
        raise UsageError(
            "a key arrived on stdin, but this run covers several environments and a key "
            "belongs to one: pipe it into `keyguard rotate ENV` (or `keyguard deliver ENV`); "
            "nothing changed"
        )


@click.command()
@click.argument("environment", shell_complete=complete_environment)
@click.pass_context
def deliver(ctx: click.Context, environment: str) -> int:
    """Hand over a new key (stdin or hidden prompt): stored as pending in every store."""
    config = load(ctx)
    config.environment(environment)
    with _admin(config) as admin:
        engine = _engine(config, environment, admin)
        key = read_key(_prompt(engine))
        assert key is not None
        outcome = engine.deliver(key)
    click.echo(outcome.message)
    return outcome.exit_code


FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON document on stdout, for scripts (messages still go to stderr).",
)


class _Record(dict[str, Any]):
    """One environment's part of the JSON document; in text mode, lines go to stdout."""

    def __init__(self, name: str, as_json: bool) -> None:
        super().__init__(environment=name, messages=[])
        self.as_json = as_json

    def out(self, line: str) -> None:
        if self.as_json:
            self["messages"].append(line)
        else:
            click.echo(line)


@click.command()
@click.argument("environments", nargs=-1, shell_complete=complete_environment)
@click.option("--due", is_flag=True, help="Every environment past due or mid-rotation.")
@click.option("--all", "all_", is_flag=True, help="Every configured environment.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--grace", help="Override the policy's grace period: 0, 90s, 10m, 24h, 7d.")
@click.option("--force", is_flag=True, help="Skip the drain check (incidents).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--recover", is_flag=True, help="Rebuild a lost journal from the stores, then continue."
)
@FORMAT
@click.pass_context
def rotate(
    ctx: click.Context,
    environments: tuple[str, ...],
    due: bool,
    all_: bool,
    dry_run: bool,
    grace: str | None,
    force: bool,
    yes: bool,
    recover: bool,
    fmt: str,
) -> int:
    """Rotate keys: create (new key on stdin) -> update -> verify -> revoke. Exit 5 = run again."""
    if sum([bool(environments), due, all_]) != 1:
        raise UsageError("name environments, or pass --due or --all (exactly one of them)")
    config = load(ctx)
    names = sorted(config.environments) if (due or all_) else list(environments)
    for name in names:
        config.environment(name)
    require_environments(config, names)
    try:
        grace_period = parse_duration(grace) if grace is not None else None
    except KeyguardError as exc:
        raise UsageError(f"--grace: {exc}") from None
    if not (environments and len(names) == 1):
        _refuse_stray_key()
    codes: list[int] = []
    records: list[_Record] = []
    with _admin(config) as admin:
        for name in names:
            record = _Record(name, fmt == "json")
            records.append(record)
            engine = _engine(config, name, admin, grace_period, force, recover)
            try:
                codes.append(
                    _rotate_one(
                        config,
                        engine,
                        record,
                        single=bool(environments) and len(names) == 1,
                        due=due,
                        dry_run=dry_run,
                        yes=yes,
                    )
                )
            except KeyguardError as exc:
                if len(names) == 1 and fmt != "json":
                    raise
                click.echo(f"keyguard: error: {error_text(exc)}", err=True)
                codes.append(int(exc.exit_code))
                record["error"] = str(exc)
            record["exit_code"] = codes[-1]
    errors = [c for c in codes if c not in (0, 5)]
    final = errors[0] if errors else max(codes)
    if fmt == "json":
        doc = {"exit_code": final, "dry_run": dry_run, "environments": records}
        click.echo(json.dumps(doc, indent=2))
    return final


def _rotate_one(
    config: Config,
    engine: RotationEngine,
    record: _Record,
    *,
    single: bool,
    due: bool,
    dry_run: bool,
    yes: bool,
) -> int:
    latest = engine.latest()
    in_flight = latest is not None and latest.in_flight
    # A crash while storing may have left the key nowhere: then it is wanted again.
    wants_key = not in_flight or (latest is not None and latest.phase == "creating")
    # A piped key is always read, so that one sent mid-rotation is refused, not ignored.
    key = _optional_key(engine, prompt=wants_key) if single else None
    if dry_run:
        for line in rotation.plan(engine, key.hint if key else None):
            record.out(line)
        record.out("(dry run: nothing changed)")
        return 0
    state = rotation.status(engine) if not in_flight and key is None and not single else None
    if state is not None and state.phase != "journal lost":
        if state.phase == "federated":  # `wif retire-key` retired its static key
            record.out(f"{engine.env.name}: federated, not rotated ({state.waiting_for})")
            return 0
        if due and not state.due:
            record.out(f"{engine.env.name}: not due ({state.waiting_for})")
            return 0
        age = f"{state.age.days} days old" if state.age else "of unknown age"
        why = "no key yet" if state.current is None else f"the key {state.current} is {age}"
        request = rotation.rotation_request(engine, why)
        record["request"] = request
        record.out(request["text"])
        if config.webhook:
            try:
                post_webhook(config.webhook, request)
            except KeyguardError as exc:
                _say(f"keyguard: warning: {exc}")
        return int(ExitCode.PENDING)
    # On a terminal, show the plan and ask before anything changes (a continued rotation
    # may revoke the old key); schedulers pass --yes and have no terminal anyway.
    changes = key is not None or in_flight or engine.recover
    if changes and sys.stdin is not None and sys.stdin.isatty() and not yes:
        for line in rotation.plan(engine, key.hint if key else None):
            click.echo(line, err=record.as_json)
        click.confirm("Go ahead?", abort=True, err=True)
    outcome = engine.rotate(key)
    record.update(finished=outcome.finished, waiting_for=outcome.waiting_for)
    record.out(outcome.message)
    return outcome.exit_code


@click.command()
@click.argument("environment", required=False, shell_complete=complete_environment)
@FORMAT
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@click.pass_context
def status(ctx: click.Context, environment: str | None, fmt: str, as_json: bool) -> int:
    """Each environment's rotation state and what it waits for."""
    config = load(ctx)
    names = [environment] if environment else sorted(config.environments)
    require_environments(config, names)
    as_json = as_json or fmt == "json"
    states: list[dict[str, Any]] = []
    with _admin(config) as admin:
        for name in names:
            state = rotation.status(_engine(config, name, admin))
            if as_json:
                states.append(state.to_json())
                continue
            age = f", {state.age.days}d old" if state.age is not None else ""
            click.echo(
                f"{name}: {state.phase}; serving {state.current or 'no key'}{age}"
                + (" (DUE)" if state.due else "")
            )
            click.echo(f"  waiting for: {state.waiting_for}")
    if as_json:
        click.echo(json.dumps({"environments": states}, indent=2))
    return 0


@click.command()
@click.argument("environment", shell_complete=complete_environment)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def rollback(ctx: click.Context, environment: str, yes: bool) -> int:
    """Serve the previous key again (re-activated if it was only inactive)."""
    config = load(ctx)
    config.environment(environment)
    if sys.stdin is not None and sys.stdin.isatty() and not yes:
        click.confirm(f"Serve the previous key of {environment} again?", abort=True, err=True)
    with _admin(config) as admin:
        outcome = rotation.rollback(_engine(config, environment, admin))
    click.echo(outcome.message)
    return outcome.exit_code
