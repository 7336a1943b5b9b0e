"""``keyguard get ENV`` (prints the current key, for consumers) and ``keyguard stores check``."""

from __future__ import annotations

import json

import click

from keyguard.cli.common import (
    complete_environment,
    load,
    print_table,
    require_environments,
    terminal_console,
)
from keyguard.errors import ConfigError, ExitCode, KeyguardError, NotFoundError
from keyguard.keys import Secret
from keyguard.stores import Stage, open_store
from keyguard.stores.interface import stage_map
from keyguard.words import shown


@click.command()
@click.argument("environment", shell_complete=complete_environment)
@click.pass_context
def get(ctx: click.Context, environment: str) -> int:
    """Print ENVIRONMENT's current key and nothing else.

    For consumers: export ANTHROPIC_API_KEY=$(keyguard get prod). Stores are tried in the
    configured order; an unreachable one falls through to the next.
    """
    env = load(ctx).environment(environment)
    first_error: KeyguardError | None = None
    key: Secret | None = None
    for uri in env.stores:
        try:
            key = open_store(uri).get(Stage.CURRENT)
        except ConfigError:
            raise  # a store refused by its URI (say, an endpoint nobody chose) is no outage
        except KeyguardError as exc:
            first_error = first_error or exc
            continue
        if key is not None:
            break
    if key is None:
        if first_error is not None:
            raise first_error
        raise NotFoundError(
            f"environment {environment!r} has no current key in {', '.join(env.stores)}; "
            f"run `keyguard rotate {environment}` to deliver one"
        )
    # The one place keyguard prints a key, by design: stdout goes to the consumer.
    click.echo(key.reveal())
    return int(ExitCode.OK)


@click.group()
def stores() -> None:
    """Inspect the configured secret stores."""


@stores.command()
@click.argument("environments", nargs=-1, shell_complete=complete_environment)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json: one document {exit_code, stores: [...]}, for scripts.",
)
@click.pass_context
def check(ctx: click.Context, environments: tuple[str, ...], fmt: str) -> int:
    """Open every configured store; show reachability, stages and key hints (never keys)."""
    from rich.table import Table

    from keyguard.audit.table import cell

    config = load(ctx)
    names = list(environments) or sorted(config.environments)
    require_environments(config, names)
    table = Table(title="secret stores")
    table.add_column("environment")
    table.add_column("store", overflow="fold")
    table.add_column("status", no_wrap=True)
    for column in ("current", "pending", "previous"):
        table.add_column(column, no_wrap=True)
    worst = 0
    problems: list[str] = []
    rows: list[dict[str, str | None]] = []
    for name in names:
        for uri in config.environment(name).stores:
            row: dict[str, str | None] = {"environment": name, "store": uri}
            rows.append(row)
            try:
                held = stage_map(open_store(uri).describe())
            except KeyguardError as exc:
                worst = max(worst, int(exc.exit_code))
                table.add_row(cell(name), cell(uri), cell(type(exc).__name__, "red"), "", "", "")
                problems.append(f"{name}: {str(exc).removeprefix(name + ': ')}")
                row.update(status="error", error=str(exc), kind=type(exc).__name__)
                continue
            cells = []
            for stage in (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS):
                version = held.get(stage)
                cells.append("-" if version is None else (version.meta.hint or "(no hint)"))
                row[stage.value] = None if version is None else version.meta.hint
            status = cell("ok", "green") if Stage.CURRENT in held else cell("empty", "yellow")
            row["status"] = "ok" if Stage.CURRENT in held else "empty"
            # A store's metadata is whoever wrote the store's word: text, never rich markup.
            table.add_row(cell(name), cell(uri), status, *map(cell, cells))
    if fmt == "json":
        click.echo(json.dumps({"exit_code": worst, "stores": rows}, indent=2))
        return worst
    console = terminal_console(pipe_width=200)
    print_table(console, table)
    for line in problems:
        console.print(shown(line), markup=False, highlight=False, soft_wrap=True)
    return worst
