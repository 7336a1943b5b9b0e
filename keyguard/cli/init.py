"""``keyguard init``: write a commented ``keyguard.toml`` (asks on a terminal, flags otherwise)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import click

from keyguard.config import CONFIG_NAME, load_config
from keyguard.errors import UsageError

_ENV_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_ENVS = ("dev", "prod")


def render_config(
    environments: list[str], stores: dict[str, str], policy: str, admin_key: str
) -> str:
    """The text of a commented keyguard.toml: every setting explained where it stands."""
    lines = [
        "# keyguard.toml, written by `keyguard init`. Every setting is optional except each",
        "# environment's `stores`. Relative file: paths resolve against this file's folder.",
        "",
        "[anthropic]",
        '# base_url = "https://api.anthropic.com"   # ANTHROPIC_BASE_URL overrides',
        "# Where the admin key comes from: env:NAME, file:PATH or a store URI (never the key).",
        f"admin_key = {_toml(admin_key)}",
        "",
        "[policy]",
        "# The built-in default (due 80d, max 90d, grace 24h) or strict, or a TOML path.",
        f"file = {_toml(policy)}",
        '# grace = "24h"                             # any policy setting overrides the file',
        "",
    ]
    for name in environments:
        lines += [
            f"[environments.{name}]",
            "# Where this environment's key lives: file:PATH, aws-sm://REGION/NAME,",
            "# gcp-sm://PROJECT/SECRET or azure-kv://VAULT/NAME; several stores get the same key.",
            f"stores = [{_toml(stores[name])}]",
            '# workspace = "wrkspc_..."                 # verify checks the key\'s workspace',
            f'# key_name = "{name}-{{date:%Y%m%d}}"   # the key\'s name in the Console',
            '# check = "curl -fsS https://app.internal/healthz"   # a consumer check after verify',
            "",
        ]
    lines += [
        "[scan]",
        '# exclude = ["tests/fixtures/**"]          # path globs the scanner skips',
        "",
        "[state]",
        '# dir = ".keyguard"                        # rotation journals: keep them between runs',
        "",
    ]
    return "\n".join(lines)


def _write_checked(path: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` to ``path`` only once keyguard reads it back: a bad answer writes nothing."""
    tmp = path.with_name(f".{path.name}.init-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        load_config(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # never replaces a file that appeared meanwhile
    except FileExistsError:
        raise UsageError(f"{path} already exists; pass --force to replace it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.replace(",", " ").split() if n.strip()]
    bad = [n for n in names if not _ENV_NAME.match(n)]
    if bad or not names:
        raise UsageError(
            f"environment names are letters, digits, '-' and '_': {', '.join(bad) or '(none)'}"
        )
    return list(dict.fromkeys(names))


@click.command()
@click.option(
    "--env",
    "envs",
    multiple=True,
    help="An environment to configure (repeat it); default: dev and prod.",
)
@click.option(
    "--store",
    "store_pairs",
    multiple=True,
    metavar="ENV=URI",
    help="A store for ENV (default: file:.keyguard/stores/ENV.json).",
)
@click.option(
    "--policy",
    default="default",
    show_default=True,
    help="Built-in policy (default, strict) or a policy TOML path.",
)
@click.option(
    "--admin-key",
    default="env:ANTHROPIC_ADMIN_KEY",
    show_default=True,
    help="Where the admin key comes from: env:NAME, file:PATH or a store URI.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write here instead of --config or ./keyguard.toml.",
)
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.pass_context
def init(
    ctx: click.Context,
    envs: tuple[str, ...],
    store_pairs: tuple[str, ...],
    policy: str,
    admin_key: str,
    output: str | None,
    force: bool,
) -> int:
    """Write a commented keyguard.toml: asks on a terminal, takes the flags otherwise."""
    root_obj = ctx.find_root().obj or {}
    path = Path(output or root_obj.get("config_path") or CONFIG_NAME)
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; pass --force to replace it")
    ask = sys.stdin is not None and sys.stdin.isatty() and not envs
    stores: dict[str, str] = {}
    for pair in store_pairs:
        env, sep, uri = pair.partition("=")
        if not sep or not env or not uri:
            raise UsageError(f"--store takes ENV=URI, got {pair!r}")
        stores[env.strip()] = uri.strip()
    if ask:
        names = _names(click.prompt("Environments", default=" ".join(DEFAULT_ENVS), err=True))
    else:
        names = _names(" ".join(envs)) if envs else list(DEFAULT_ENVS)
    unknown = sorted(set(stores) - set(names))
    if unknown:
        raise UsageError(f"--store names an environment not configured: {', '.join(unknown)}")
    for name in names:
        default = stores.get(name, f"file:.keyguard/stores/{name}.json")
        stores[name] = (
            click.prompt(f"Store for {name}", default=default, err=True) if ask else default
        )
    if ask:
        policy = click.prompt("Policy (default, strict or a path)", default=policy, err=True)
    text = render_config(names, stores, policy, admin_key)
    _write_checked(path, text, replace=force)
    click.echo(f"keyguard: wrote {path} ({', '.join(names)})", err=True)
    click.echo(
        "Next: `keyguard stores check`, then `keyguard rotate ENV` to deliver a key.", err=True
    )
    return 0
