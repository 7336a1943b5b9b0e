"""``keyguard wif``: move an environment from its static key to Workload Identity Federation.

plan -> apply -> (deploy with `wif env`) -> verify -> retire-key; `wif status` shows where
every environment stands. Exit codes: 0 done, 2 usage/config, 3 credential refused (the OAuth
token, or an exchange), 4 API unavailable, 5 waiting (retire-key: traffic, drain, or another
environment that still serves the static key).
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any

import click

from keyguard.cli.common import load
from keyguard.errors import AuthError, KeyguardError, UsageError
from keyguard.keys import Secret

if TYPE_CHECKING:
    from keyguard.config import Config, Environment
    from keyguard.wif.api import WifClient
    from keyguard.wif.config import Federation


def _say(message: str) -> None:
    click.echo(message, err=True)


def _federated(config: Config, name: str) -> tuple[Environment, Federation]:
    env = config.environment(name)
    if env.federation is None:
        raise UsageError(
            f"{name} has no [environments.{name}.federation] table: add one (provider, subject, "
            "...) to say how its workload proves who it is; see docs/keyless.md"
        )
    return env, env.federation


def _client(config: Config) -> WifClient:
    from keyguard.wif.api import WifClient, resolve_oauth_token

    return WifClient(resolve_oauth_token(), config.base_url)


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if sys.stdin is None or sys.stdin.closed or not sys.stdin.isatty():
        raise UsageError("stdin is not a terminal, so keyguard cannot ask first; add --yes")
    _say(question)
    click.confirm("Go ahead?", abort=True, err=True)


@click.group()
def wif() -> None:
    """Keyless: federate workloads (no static key), and retire their keys safely."""


@wif.command("plan")
@click.argument("environment")
@click.pass_context
def plan_cmd(ctx: click.Context, environment: str) -> int:
    """Show what `apply` would create or change (service account, issuer, rule). Changes nothing."""
    from keyguard.wif.plan import make_plan

    config = load(ctx)
    env, federation = _federated(config, environment)
    with _client(config) as client:
        plan = make_plan(client, environment, federation, env.workspace)
    for change in plan.changes:
        click.echo(change.line())
    click.echo(f"{len(plan.pending)} change(s) to apply" if plan.pending else "nothing to change")
    return 0


@wif.command("apply")
@click.argument("environment")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def apply_cmd(ctx: click.Context, environment: str, yes: bool) -> int:
    """Create or update the federation through the Admin API (an org:admin OAuth token)."""
    from keyguard.wif.plan import apply_plan, make_plan

    config = load(ctx)
    env, federation = _federated(config, environment)
    with _client(config) as client:
        plan = make_plan(client, environment, federation, env.workspace)
        if plan.pending:
            _confirm(yes, "\n".join(c.line() for c in plan.pending))
        record = apply_plan(client, plan, federation, env.workspace, config.state_dir, _say)
    click.echo(
        f"{environment}: federated through rule {record.rule_id} -> service account "
        f"{record.service_account_id} (workspace {record.workspace_id}); next: "
        f"`keyguard wif env {environment}` for the workload, then `keyguard wif verify`"
    )
    return 0


def _read_identity(path: str) -> Secret:
    if path == "-":
        value = sys.stdin.read() if sys.stdin is not None else ""
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read()
        except OSError as exc:
            raise UsageError(
                f"cannot read the identity token file {path}: {exc.strerror}"
            ) from None
    value = value.strip()
    if not value:
        raise UsageError("the identity token is empty")
    return Secret(value)


@wif.command("verify")
@click.argument("environment")
@click.option(
    "--identity-token-file",
    "token_file",
    required=True,
    metavar="PATH|-",
    help="The workload's identity token (a JWT from its IdP); '-' reads stdin.",
)
@click.pass_context
def verify_cmd(ctx: click.Context, environment: str, token_file: str) -> int:
    """Exchange an identity token as the SDKs do, then GET /v1/models. Never prints a token."""
    from keyguard.wif.record import load_record
    from keyguard.wif.verify import RuleLookup, RuleUnreadable, verify

    config = load(ctx)
    env, federation = _federated(config, environment)
    identity = _read_identity(token_file)
    record = load_record(config.state_dir, environment)
    lookup: RuleLookup | None = None
    client = None
    try:
        client = _client(config)
    except AuthError:  # no org:admin token here (a workload): diagnose without the rule
        client = None
    if client is not None:
        wc = client

        def lookup_rule(rule_id: str) -> dict[str, Any] | None:
            from keyguard.errors import NotFoundError

            try:
                return wc.get("federation_rules", rule_id)
            except NotFoundError:
                return None
            except KeyguardError:  # a refused token, the API down: diagnose without it
                raise RuleUnreadable from None

        lookup = lookup_rule
    try:
        result = verify(config.base_url, federation, record, identity, env.workspace, lookup)
    finally:
        if client is not None:
            client.close()
    for line in result.lines():
        click.echo(line)
    return 0


@wif.command("env")
@click.argument("environment")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["env", "json", "github-actions", "kubernetes"]),
    default="env",
    show_default=True,
    help="NAME=value lines, JSON, a GitHub Actions job, or a Kubernetes pod snippet.",
)
@click.pass_context
def env_cmd(ctx: click.Context, environment: str, fmt: str) -> int:
    """What the workload needs: the SDKs' federation variables, or a CI / pod snippet."""
    from keyguard.wif.record import load_record
    from keyguard.wif.workload import SHADOW_WARNING, render

    config = load(ctx)
    _env, federation = _federated(config, environment)
    click.echo(render(fmt, federation, load_record(config.state_dir, environment)))
    _say(f"keyguard: warning: {SHADOW_WARNING}")
    return 0


@wif.command("retire-key")
@click.argument("environment")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def retire_cmd(ctx: click.Context, environment: str, yes: bool) -> int:
    """Deactivate the static key once the service account carries traffic and the key drained."""
    from keyguard.cli.common import admin_client
    from keyguard.wif.retire import retire_key

    config = load(ctx)
    _federated(config, environment)
    with _client(config) as client, admin_client(config) as admin:
        done = retire_key(config, environment, admin, client, lambda q: _confirm(yes, q))
    click.echo(done.message)
    return 0


@wif.command("status")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> int:
    """Every environment: static, in migration or federated, and what it waits for."""
    from keyguard.cli.common import admin_client
    from keyguard.wif.status import states

    config = load(ctx)
    with contextlib.ExitStack() as stack:  # the Admin API only to check a recorded retirement
        rows = states(config, lambda: stack.enter_context(admin_client(config)))
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return 0
    for row in rows:
        wait = f": waiting for {row.waiting_for}" if row.waiting_for else ""
        click.echo(f"{row.environment}: {row.state}{wait}")
    return 0


def revoke_federation(
    ctx: click.Context, rule: str | None, service_account: str | None, yes: bool, fmt: str
) -> int:
    """``keyguard revoke --rule / --service-account``: archive, then say when tokens die."""
    from keyguard.wif.incident import (
        archive_rule,
        archive_service_account,
        describe_rule,
        rules_of,
    )

    config = load(ctx)
    with _client(config) as client:
        if rule is not None:
            found = describe_rule(client, rule)
            question = f"About to archive federation rule {rule} ({found.get('name')!r})."
        else:
            assert service_account is not None
            rules = [str(r.get("id")) for r in rules_of(client, service_account)]
            question = (
                f"About to archive service account {service_account} and the "
                f"{len(rules)} federation rule(s) that target it: {', '.join(rules) or 'none'}."
            )
        _confirm(yes, question)
        done = (
            archive_rule(client, rule)
            if rule is not None
            else archive_service_account(client, str(service_account))
        )
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "archived_rules": done.rules,
                    "archived_service_account": done.service_account,
                    "last_token_expires_at": done.last_token_expires_at,
                },
                indent=2,
            )
        )
    else:
        for line in done.lines():
            click.echo(line)
    return 0
