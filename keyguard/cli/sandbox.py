"""``keyguard sandbox``: run the local Admin API sandbox until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import click

from keyguard.errors import UsageError


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _log_denials() -> None:
    """Why the sandbox refused a token exchange goes to stderr: its 401s are opaque."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("keyguard sandbox: %(message)s"))
    log = logging.getLogger("keyguard.sandbox.federation")
    log.addHandler(handler)
    log.setLevel(logging.INFO)


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
        "# its own org:admin OAuth token (federation endpoints accept only this), its org,",
        "# and its local OIDC issuer (POST $KEYGUARD_SANDBOX_OIDC_ISSUER/token mints identities)",
        f"export ANTHROPIC_AUTH_TOKEN={sb.oauth_token.reveal()}",
        f"export ANTHROPIC_ORGANIZATION_ID={sb.state.data['organization']['id']}",
        f"export KEYGUARD_SANDBOX_OIDC_ISSUER={sb.oidc_issuer}",
        "# Ctrl-C stops it",
    ]
    click.echo("\n".join(lines))
    _log_denials()
    sys.stdout.flush()
    # Stop cleanly on SIGTERM too, and on Ctrl-C even when started in the background.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        sb.serve_forever()
    except KeyboardInterrupt:
        click.echo("keyguard sandbox: stopped", err=True)
