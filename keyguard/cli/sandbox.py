"""``keyguard sandbox``: run the local Admin API sandbox until Ctrl-C."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from keyguard.errors import UsageError


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1; 0 takes any free one (the printed URL names it).",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False),
    help="Keep the sandbox's organization in this JSON file (mode 0600) across restarts.",
)
def sandbox(port: int, state_file: str | None) -> None:
    """Serve a local stand-in for Anthropic's Admin API on 127.0.0.1, until Ctrl-C.

    It prints, as shell lines you can source, its URL and ITS OWN admin key: that key is
    made up by the sandbox, is accepted only by it, and printing it is the point. It is not
    an Anthropic key. Keys are minted Console-style with POST /_sandbox/keys.
    """
    from keyguard.admin.sandbox import Sandbox

    sb = Sandbox(port=port, state_file=state_file)
    try:
        sb.bind()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; "
            "pass --port 0 to take any free port (the printed lines say which)"
        ) from None
    lines = [
        "# keyguard sandbox: a local stand-in for Anthropic's Admin API (loopback only)",
        f"# state: {state_file or 'in memory'}; the admin key below is the sandbox's own",
        f"export ANTHROPIC_BASE_URL={sb.url}",
        f"export ANTHROPIC_ADMIN_KEY={sb.admin_key.reveal()}",
        "# Ctrl-C stops it",
    ]
    click.echo("\n".join(lines))
    sys.stdout.flush()
    # Stop cleanly on SIGTERM too, and on Ctrl-C even when started in the background.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        sb.serve_forever()
    except KeyboardInterrupt:
        click.echo("keyguard sandbox: stopped", err=True)
