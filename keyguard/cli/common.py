"""Helpers shared by commands: loading the config, building the admin client, reading keys."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from keyguard.config import Config, find_config, load_config
from keyguard.errors import UsageError
from keyguard.keys import Secret

if TYPE_CHECKING:
    from keyguard.admin import AdminClient


def load(ctx: click.Context) -> Config:
    """The config named by ``--config``/``KEYGUARD_CONFIG``/``./keyguard.toml``, or defaults."""
    obj = ctx.find_root().obj or {}
    return load_config(find_config(obj.get("config_path")))


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
