"""The ``keyguard`` command: the only place that prints, prompts and exits.

Subcommands load lazily from ``COMMANDS`` so that ``keyguard scan`` never imports httpx or
a cloud SDK.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import sys
from collections.abc import Sequence
from typing import Any

import click

from keyguard import __version__
from keyguard.errors import ExitCode, KeyguardError
from keyguard.keys import KEYISH_RE, scrub_text

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


class _RedactingStream:
    """``sys.stderr`` that never repeats a key-shaped string the command line held."""

    def __init__(self, stream: Any, secrets: list[str]) -> None:
        self._stream = stream
        self._secrets = secrets

    def write(self, text: str) -> int:
        return int(self._stream.write(scrub_text(text, *self._secrets)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the single error boundary that turns errors into messages and exit codes."""
    args = list(argv) if argv is not None else sys.argv[1:]
    keyish = [m.group(0) for a in args for m in KEYISH_RE.finditer(a)]
    stderr = sys.stderr
    if keyish and stderr is not None:
        sys.stderr = _RedactingStream(stderr, keyish)
    try:
        return _run(args)
    finally:
        sys.stderr = stderr


def _run(args: list[str]) -> int:
    try:
        result: Any = cli.main(args=args, standalone_mode=False)
    except KeyguardError as exc:
        # A message may repeat an argument (an environment name, a path): never a key.
        click.echo(f"keyguard: error: {scrub_text(str(exc))}", err=True)
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
        sys.stderr.write(scrub_text(shown.getvalue()))
        return int(ExitCode.USAGE)
    if isinstance(result, int):
        return result
    return int(ExitCode.OK)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
