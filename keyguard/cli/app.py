"""The click group behind ``keyguard``: its global options, and the subcommands, each loaded
from ``COMMANDS`` only when named (so that ``keyguard scan`` never imports httpx or a cloud
SDK). ``keyguard.cli.main`` is the error boundary around it."""

from __future__ import annotations

import importlib
import importlib.util
import io
import sys
from typing import Any

import click

from keyguard import __version__
from keyguard.errors import ExitCode
from keyguard.keys import scrub_text

#: command name -> "module:attr" of a click command.
COMMANDS: dict[str, str] = {
    "scan": "keyguard.cli.scan:scan",
    "install-hook": "keyguard.cli.scan:install_hook",
    "keys": "keyguard.cli.keys:keys",
    "sandbox": "keyguard.cli.sandbox:sandbox",
    "stores": "keyguard.cli.stores:stores",
    "get": "keyguard.cli.stores:get",
    "deliver": "keyguard.cli.rotate:deliver",
    "rotate": "keyguard.cli.rotate:rotate",
    "status": "keyguard.cli.rotate:status",
    "rollback": "keyguard.cli.rotate:rollback",
    "demo": "keyguard.cli.demo:demo",
    "init": "keyguard.cli.init:init",
    "revoke": "keyguard.cli.revoke:revoke",
    "audit": "keyguard.cli.audit:audit",
    "fleet": "keyguard.cli.fleet:fleet",
    "wif": "keyguard.cli.wif:wif",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._available(name))

    @staticmethod
    def _available(name: str) -> bool:
        module = COMMANDS[name].partition(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not self._available(cmd_name):
            return None
        module_name, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyguard")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="KEYGUARD_CONFIG",
    help="Config file (default: ./keyguard.toml).",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="Send keys to this API base URL instead of https://api.anthropic.com "
    "(or set ANTHROPIC_BASE_URL). A keyguard.toml's base_url alone is refused.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, base_url: str | None) -> None:
    """Keep Anthropic API keys from leaking, and keep them fresh."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["base_url"] = base_url


def run(args: list[str]) -> int:
    """Parse ``args`` and run the command; click's own outcomes become exit codes here (a
    KeyguardError or an interrupt goes up to ``keyguard.cli.main``)."""
    try:
        result: Any = cli.main(args=args, standalone_mode=False)
    except click.exceptions.Abort:  # "n" (or Ctrl-C, end of input) at a prompt, before any change
        click.echo("keyguard: cancelled at the prompt; nothing changed", err=True)
        return int(ExitCode.INTERRUPTED)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        # Click repeats a bad argument in its message: never let that be a key.
        shown = io.StringIO()
        exc.show(file=shown)
        sys.stderr.write(scrub_text(shown.getvalue()))
        return int(ExitCode.USAGE)
    if isinstance(result, int):
        return result
    return int(ExitCode.OK)
