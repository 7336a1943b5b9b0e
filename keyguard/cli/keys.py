"""``keyguard keys``: list, show and find API keys through Anthropic's Admin API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from keyguard.cli.common import admin_client, load, print_table, read_key, terminal_console
from keyguard.models import KEY_STATUSES, ApiKey
from keyguard.words import shown


def key_dict(key: ApiKey) -> dict[str, Any]:
    """An ApiKey as plain JSON-ready data (never a secret: the API has none to give)."""

    def when(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": key.id,
        "name": key.name,
        "status": key.status,
        "type": key.key_type,
        "scope": key.scope,
        "principal": str(key.principal) if key.principal else None,
        "workspace_id": key.workspace_id,
        "created_at": when(key.created_at),
        "expires_at": when(key.expires_at),
        "partial_key_hint": key.partial_key_hint,
        "created_by": key.created_by,
    }


def _table(keys: list[ApiKey]) -> None:
    from rich.table import Table

    from keyguard.audit.table import cell

    table = Table(show_edge=False, pad_edge=False)
    columns = ("ID", "NAME", "STATUS", "TYPE", "WORKSPACE", "CREATED", "EXPIRES", "HINT")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for key in keys:
        d = key_dict(key)
        row = (
            d["id"],
            d["name"],
            d["status"],
            d["type"],
            "default" if key.default_workspace else key.where,
            (d["created_at"] or "-")[:19],
            (d["expires_at"] or "never")[:19],
            d["partial_key_hint"] or "-",
        )
        # The API's words (a name is whatever its creator typed): text, never rich markup.
        table.add_row(*(cell("-" if value is None else value) for value in row))
    # A terminal's own width (rows stack when too narrow); a pipe: wide, ids never cut.
    print_table(terminal_console(pipe_width=160), table)


FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)


@click.group()
def keys() -> None:
    """Read and find API keys with the admin key (ANTHROPIC_ADMIN_KEY or the config)."""


@keys.command("list")
@click.option("--workspace", "workspace_id", help="Only keys of this workspace (wrkspc_...).")
@click.option("--status", type=click.Choice(KEY_STATUSES), help="Only keys with this status.")
@FORMAT
@click.pass_context
def list_keys(ctx: click.Context, workspace_id: str | None, status: str | None, fmt: str) -> None:
    """List every API key of the organization (all pages)."""
    with admin_client(load(ctx)) as client:
        found = list(client.list_keys(status=status, workspace_id=workspace_id))
    if fmt == "json":
        click.echo(json.dumps([key_dict(k) for k in found], indent=2))
    elif found:
        _table(found)
    else:
        click.echo("no keys match", err=True)


@keys.command("show")
@click.argument("key_id")
@FORMAT
@click.pass_context
def show(ctx: click.Context, key_id: str, fmt: str) -> None:
    """Show one API key by its id (apikey_...)."""
    with admin_client(load(ctx)) as client:
        data = key_dict(client.get_key(key_id))
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    for field, value in data.items():
        click.echo(f"{field + ':':<18}{shown(str(value)) if value is not None else '-'}")


@keys.command("find")
@click.option("--name", help="The key's name, to choose between keys with the same hint.")
@FORMAT
@click.pass_context
def find(ctx: click.Context, name: str | None, fmt: str) -> None:
    """Print the id of a full API key read from stdin or a hidden prompt (never argv)."""
    secret = read_key("API key to look up")
    assert secret is not None  # read_key raises instead of returning None here
    with admin_client(load(ctx)) as client:
        key = client.find_key(secret, name=name)
    if fmt == "json":
        click.echo(json.dumps(key_dict(key), indent=2))
    else:
        click.echo(shown(key.id))


_CREDENTIALS = {
    "admin_key": "an Admin API key (sk-ant-admin01-, sent as x-api-key): every Admin endpoint "
    "except service accounts and federation",
    "oauth_token": "an OAuth bearer token (sk-ant-oat01-, with anthropic-beta "
    "oauth-2025-04-20): the whole Admin API its org:admin scope allows",
    "api_key": "an organization-scoped personal or service-account key (x-api-key): the "
    "Admin API with its account's permissions",
}


@keys.command("whoami")
@FORMAT
@click.pass_context
def whoami(ctx: click.Context, fmt: str) -> None:
    """Say which admin credential is in use, its organization, and what it may do."""
    with admin_client(load(ctx)) as client:
        info = client.whoami()
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return
    org = info["organization"]
    click.echo(f"credential:    {_CREDENTIALS.get(info['credential'], info['credential'])}")
    name, org_id = (shown(str(org.get(field) or "-")) for field in ("name", "id"))
    click.echo(f"organization:  {name} ({org_id})")
    for what, label in (
        ("list_keys", "list and update API keys"),
        ("read_usage", "read the usage report"),
        ("read_compliance", "read the Compliance API feed"),
    ):
        click.echo(f"{label + ':':<32}{'yes' if info['can'].get(what) else 'no'}")
