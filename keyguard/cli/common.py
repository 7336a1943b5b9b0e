"""Helpers shared by commands: loading the config, building the admin client, reading keys."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from keyguard.config import Config, find_config, load_config
from keyguard.errors import ConfigError, KeyguardError, UsageError
from keyguard.keys import Secret
from keyguard.policy import parse_duration

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from keyguard.admin import AdminClient


def load(ctx: click.Context) -> Config:
    """The config named by ``--config``/``KEYGUARD_CONFIG``/``./keyguard.toml``, or defaults."""
    options = ctx.find_root().obj or {}
    return load_config(find_config(options.get("config_path")), base_url=options.get("base_url"))


def no_environments(config: Config, consequence: str = "") -> str:
    """The one sentence for a configuration without environments: where, what follows, the fix."""
    where = config.path or "keyguard.toml (none found here)"
    follows = f": {consequence}" if consequence else ""
    return (
        f"no environments configured in {where}{follows}; "
        "`keyguard init` writes one, or add [environments.NAME]"
    )


def require_environments(config: Config, names: Sequence[str]) -> None:
    """``UsageError`` (exit 2) when a command that acts on environments has none to act on."""
    if not names:
        raise UsageError(no_environments(config))


def warn_without_environments(config: Config, consequence: str) -> None:
    """The same sentence as a warning on stderr, for a command that still runs without any."""
    if not config.environments:
        click.echo(f"keyguard: warning: {no_environments(config, consequence)}", err=True)


def admin_client(config: Config) -> AdminClient:
    from keyguard.admin import AdminClient
    from keyguard.config import resolve_admin_key

    return AdminClient(resolve_admin_key(config), base_url=config.base_url)


def read_key(prompt: str, *, allow_empty: bool = False) -> Secret | None:
    """A key from stdin when it is not a terminal, else from a hidden prompt. Never argv."""
    if sys.stdin is None or sys.stdin.closed:
        value = ""
    elif not sys.stdin.isatty():
        value = sys.stdin.read().strip()
    else:
        value = click.prompt(prompt, hide_input=True, default="", show_default=False).strip()
    if not value:
        if allow_empty:
            return None
        raise UsageError("no key given: pipe it on stdin or type it at the hidden prompt")
    return Secret(value)


def terminal_console(pipe_width: int = 160) -> Any:
    """A rich console for stdout: a terminal's own width and colours (``NO_COLOR`` honoured);
    a pipe gets ``COLUMNS`` (else ``pipe_width``) and no colour."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() else pipe_width
        console = Console(highlight=False, width=width, no_color=True)
    return console


def print_table(console: Any, table: Any) -> None:
    """The table when it fits; else one stacked block per row (nothing cut, no column lost).

    A pipe without ``COLUMNS`` always gets the whole table, as wide as it needs."""
    from keyguard.audit.render import fit_table, least_width

    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console.width = max(console.width, least_width(table))
    fit_table(console, table)


def complete_environment(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion: the environments of the config in use (nothing when it cannot load)."""
    from click.shell_completion import CompletionItem

    root = ctx.find_root()
    path = root.params.get("config_path") or (root.obj or {}).get("config_path")
    try:
        names = sorted(load_config(find_config(path)).environments)
    except KeyguardError:
        return []
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def env_seconds(name: str, default: float) -> float:
    """A number of seconds from environment variable ``name`` (``10``, ``90s``, ``2m``)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse_duration(raw).total_seconds()
    except ConfigError as exc:
        raise UsageError(f"environment variable {name}: {exc}; or unset it") from None


def seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Option callback: a finite number of seconds from 0 to a day (``float`` takes ``nan``)."""
    if value is not None and not (math.isfinite(value) and 0 <= value <= 86400):
        raise click.BadParameter(f"{value!r} is not a number of seconds from 0 to 86400")
    return value
