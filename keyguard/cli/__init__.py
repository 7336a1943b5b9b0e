"""The ``keyguard`` command: the only place that prints, prompts and exits.

Subcommands load lazily from ``COMMANDS`` so that ``keyguard scan`` never imports httpx or
a cloud SDK.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import re
import sys
from collections.abc import Sequence
from typing import Any

import click

from keyguard import __version__
from keyguard.errors import ExitCode, KeyguardError
from keyguard.keys import redact

_KEYISH_RE = re.compile(r"sk-ant-[A-Za-z0-9_\-]*")

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
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Keep Anthropic API keys from leaking, and keep them fresh."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the single error boundary that turns errors into messages and exit codes."""
    try:
        result: Any = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except KeyguardError as exc:
        click.echo(f"keyguard: error: {exc}", err=True)
        return int(exc.exit_code)
    except click.exceptions.Abort:  # "n" (or Ctrl-C, end of input) at a prompt, before any change
        click.echo("keyguard: cancelled at the prompt; nothing changed", err=True)
        return int(ExitCode.INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("keyguard: interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        # Click repeats a bad argument in its message: never let that be a key.
        shown = io.StringIO()
        exc.show(file=shown)
        sys.stderr.write(_KEYISH_RE.sub(lambda m: redact(m.group(0)), shown.getvalue()))
        return int(ExitCode.USAGE)
    if isinstance(result, int):
        return result
    return int(ExitCode.OK)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
