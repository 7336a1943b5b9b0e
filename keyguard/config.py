"""``keyguard.toml``: the Anthropic connection, the policy, environments and their stores."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyguard.errors import AuthError, ConfigError
from keyguard.keys import Secret
from keyguard.policy import Policy, check_key_name, load_policy, parse_setting
from keyguard.stores import scheme_of
from keyguard.urls import chosen_base_url, resolve_base_url
from keyguard.wif.config import Federation, parse_federation

CONFIG_NAME = "keyguard.toml"
DEFAULT_ADMIN_KEY_REF = "env:ANTHROPIC_ADMIN_KEY"
_ENV_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

_SECTIONS = {"anthropic", "policy", "environments", "scan", "notify", "state"}
_ANTHROPIC_KEYS = {"base_url", "admin_key"}
_ENV_KEYS = {"stores", "workspace", "key_name", "check", "policy", "service", "federation"}


@dataclass(frozen=True)
class Environment:
    """A named place a key serves: its stores (in promotion order), workspace, policy."""

    name: str
    stores: tuple[str, ...]
    policy: Policy
    workspace: str | None = None
    key_name: str | None = None  # template; falls back to the policy's
    check: str | None = None  # shell command run after verify, gets the key hint only
    service: str | None = None
    federation: Federation | None = None  # [environments.X.federation]: keyless

    def key_name_template(self) -> str:
        return self.key_name or self.policy.key_name


@dataclass(frozen=True)
class Config:
    path: Path | None
    root: Path  # the config file's folder; relative paths resolve against it
    #: ``[anthropic] base_url`` as written, and where (file:line): only a hint, see base_url.
    base_url_setting: str | None = None
    base_url_source: str = "[anthropic] base_url"
    #: (URL, "--base-url" | "ANTHROPIC_BASE_URL"): the base URL the person running keyguard chose.
    base_url_choice: tuple[str, str] | None = None
    admin_key_ref: str = DEFAULT_ADMIN_KEY_REF
    policy: Policy = field(default_factory=Policy)
    environments: dict[str, Environment] = field(default_factory=dict)
    scan_exclude: tuple[str, ...] = ()
    webhook: str | None = None
    state_dir: Path = Path(".keyguard")

    @property
    def base_url(self) -> str:
        """Where keys may be sent (keyguard.urls): ConfigError for a config-only base_url."""
        return resolve_base_url(self.base_url_setting, self.base_url_source, self.base_url_choice)

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            if self.path is None:
                raise ConfigError(
                    f"no environment {name!r}: no {CONFIG_NAME} here (nor --config or "
                    "KEYGUARD_CONFIG); `keyguard init` writes one"
                ) from None
            known = ", ".join(sorted(self.environments)) or "none configured"
            raise ConfigError(
                f"no environment {name!r} in {self.path} (known: {known}); "
                f"add an [environments.{name}] table"
            ) from None


def find_config(explicit: str | Path | None = None, cwd: Path | None = None) -> Path | None:
    """``--config``, else ``KEYGUARD_CONFIG``, else ``keyguard.toml`` in the working directory."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("KEYGUARD_CONFIG")
    if env:
        return Path(env)
    candidate = (cwd or Path.cwd()) / CONFIG_NAME
    return candidate if candidate.is_file() else None


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*(\[[^\]]*\b{re.escape(key)}\b[^\]]*\]|\"?{re.escape(key)}\"?\s*=)")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            return number
    return None


class _Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, key: str, message: str) -> ConfigError:
        line = _line_of(self.text, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: {message}")

    def unknown(self, table: str, data: dict[str, Any], known: set[str]) -> None:
        for key in data:
            if key not in known:
                raise self.fail(
                    key,
                    f"unknown setting {key!r} in [{table}]; known: {', '.join(sorted(known))}",
                )

    def table(self, data: dict[str, Any], key: str, name: str) -> dict[str, Any]:
        """``data[key]`` when it is a table (``{}`` when absent); ConfigError otherwise."""
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"{name} must be a table ([{name}] with settings under it)")
        return value

    def string(self, data: dict[str, Any], key: str, table: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value or "\x00" in value:
            raise self.fail(key, f"[{table}] {key} must be a non-empty string")
        return value


def load_config(path: Path | None = None, base_url: str | None = None) -> Config:
    """Load and validate a config file; no file gives the embedded defaults.

    ``base_url`` is ``--base-url``: with ``ANTHROPIC_BASE_URL``, the only way to choose where
    keys go (the file's own ``base_url`` must agree with it).
    """
    choice = chosen_base_url(base_url)
    if path is None:
        return Config(path=None, root=Path.cwd(), base_url_choice=choice)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}; pass --config PATH or create "
            f"{CONFIG_NAME} with `keyguard init`"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: byte {exc.start} is not UTF-8; save the config file as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}; fix the TOML syntax there") from None
    return _build(_Loader(path, text), data, choice)


def _build(loader: _Loader, data: dict[str, Any], choice: tuple[str, str] | None) -> Config:
    root = loader.path.parent.resolve()
    loader.unknown("top level", data, _SECTIONS)
    anthropic = loader.table(data, "anthropic", "anthropic")
    loader.unknown("anthropic", anthropic, _ANTHROPIC_KEYS)
    # Checked when a key is about to be sent, not here: a plain scan (the pre-commit hook) of a
    # repository whose keyguard.toml names some other host sends nothing, and must still run.
    base_url = loader.string(anthropic, "base_url", "anthropic")
    line = _line_of(loader.text, "base_url")
    base_url_source = (
        f"{loader.path}:{line}: [anthropic] base_url"
        if line
        else f"{loader.path}: [anthropic] base_url"
    )
    admin_ref = loader.string(anthropic, "admin_key", "anthropic") or DEFAULT_ADMIN_KEY_REF

    policy_table = loader.table(data, "policy", "policy")
    policy_file = loader.string(policy_table, "file", "policy")
    ref: str | Path | None = policy_file
    if policy_file and policy_file not in ("default", "strict"):
        ref = root / policy_file
    policy = load_policy(ref)
    overrides = {k: v for k, v in policy_table.items() if k != "file"}
    if overrides:
        policy = _overrides(loader, policy, overrides, "policy")

    envs: dict[str, Environment] = {}
    for name, table in loader.table(data, "environments", "environments").items():
        envs[name] = _environment(loader, name, table, policy, root)

    scan = loader.table(data, "scan", "scan")
    loader.unknown(
        "scan", scan, {"exclude", "baseline"}
    )  # baseline: read by keyguard.scanner.settings
    exclude = scan.get("exclude", [])
    if not isinstance(exclude, list) or not all(
        isinstance(x, str) and "\x00" not in x for x in exclude
    ):
        raise loader.fail("exclude", "[scan] exclude must be a list of path globs")
    notify = loader.table(data, "notify", "notify")
    loader.unknown("notify", notify, {"webhook"})
    state = loader.table(data, "state", "state")
    loader.unknown("state", state, {"dir"})
    state_dir = root / (loader.string(state, "dir", "state") or ".keyguard")
    return Config(
        path=loader.path,
        root=root,
        base_url_setting=base_url,
        base_url_source=base_url_source,
        base_url_choice=choice,
        admin_key_ref=admin_ref,
        policy=policy,
        environments=envs,
        scan_exclude=tuple(exclude),
        webhook=loader.string(notify, "webhook", "notify"),
        state_dir=state_dir,
    )


def _environment(loader: _Loader, name: str, table: Any, policy: Policy, root: Path) -> Environment:
    if not _ENV_NAME_RE.match(name):
        raise loader.fail(name, f"environment name {name!r}: use letters, digits, '-', '_' or '.'")
    if not isinstance(table, dict):
        raise loader.fail(name, f"environments.{name} must be a table")
    loader.unknown(f"environments.{name}", table, _ENV_KEYS)
    stores = table.get("stores")
    if (
        not isinstance(stores, list)
        or not stores
        or not all(isinstance(s, str) and s and "\x00" not in s for s in stores)
    ):
        raise loader.fail(
            name,
            f'[environments.{name}] needs stores = ["file:.keyguard/{name}.json", ...] '
            "(one or more store URIs)",
        )
    for uri in stores:
        try:
            scheme_of(uri)
        except ConfigError as exc:
            raise loader.fail(name, f"[environments.{name}] stores: {exc}") from None
    key_name = loader.string(table, "key_name", f"environments.{name}")
    if key_name is not None:
        try:
            check_key_name(key_name, f"[environments.{name}]")
        except ConfigError as exc:
            raise loader.fail("key_name", str(exc)) from None
    env_policy = policy
    if "policy" in table:
        if not isinstance(table["policy"], dict):
            raise loader.fail(name, f"[environments.{name}.policy] must be a table")
        env_policy = _overrides(loader, policy, table["policy"], f"environments.{name}.policy")
    return Environment(
        name=name,
        stores=tuple(_absolute_store(uri, root) for uri in stores),
        policy=env_policy,
        workspace=loader.string(table, "workspace", f"environments.{name}"),
        key_name=key_name,
        check=loader.string(table, "check", f"environments.{name}"),
        service=loader.string(table, "service", f"environments.{name}"),
        federation=(
            parse_federation(name, table["federation"], loader.fail)
            if "federation" in table
            else None
        ),
    )


def _overrides(loader: _Loader, policy: Policy, data: dict[str, Any], table: str) -> Policy:
    """``policy`` with a table's settings; an error names the line of the bad setting."""
    try:
        return policy.with_overrides(data, f"[{table}]")
    except ConfigError as exc:
        # No setting wrong on its own: the two that disagree (due_after > max_age).
        crossed = [k for k in ("max_age", "due_after") if k in data]
        bad = crossed[0] if crossed else table.rsplit(".", 1)[-1]
        for key, value in data.items():
            try:
                parse_setting(policy, key, value, "")
            except ConfigError:
                bad = key
                break
        raise loader.fail(bad, str(exc)) from None


def _absolute_store(uri: str, root: Path) -> str:
    """``file:`` paths are relative to the config file, not to the working directory."""
    if uri.startswith("file:"):
        rest = uri[len("file:") :]
        path_part, sep, query = rest.partition("?")
        path_part, hsep, fieldname = path_part.partition("#")
        p = Path(path_part).expanduser()
        if not p.is_absolute():
            p = root / p
        return f"file:{p}{hsep}{fieldname}{sep}{query}"
    return uri


def _admin_key(value: str, where: str) -> Secret:
    """A key goes into an HTTP header: printable ASCII only, or a clear error (never echoed)."""
    if not all("!" <= c <= "~" for c in value):
        raise AuthError(
            f"{where} does not hold an admin key (it has spaces, control or non-ASCII "
            "characters); copy the key again from the Console (Settings > Admin keys)"
        )
    return Secret(value)


def resolve_admin_key(config: Config) -> Secret:
    """The admin key from ``ANTHROPIC_ADMIN_KEY`` or the config's ``env:``/``file:``/store ref."""
    ref = config.admin_key_ref
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name, "").strip()
        if not value and ref == DEFAULT_ADMIN_KEY_REF:
            # An ``org:admin`` OAuth token (``ant auth login --scope org:admin``) also serves.
            value = os.environ.get("ANTHROPIC_AUTH_TOKEN", "").strip()
        if not value:
            raise AuthError(
                f"no admin key: ${name} is empty. Create an admin key in the Console "
                f"(Settings > Admin keys) and export {name}, or set [anthropic] admin_key"
                + (
                    " (an org:admin OAuth token in ANTHROPIC_AUTH_TOKEN also serves)"
                    if ref == DEFAULT_ADMIN_KEY_REF
                    else ""
                )
            )
        return _admin_key(value, f"${name}")
    if ref.startswith("file:"):
        path = Path(ref[5:]).expanduser()
        if not path.is_absolute():
            path = config.root / path
        try:
            value = path.read_bytes().decode("ascii").strip()
        except OSError as exc:
            raise AuthError(f"cannot read the admin key file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            value = "\x00"  # refused below, without repeating the file's bytes
        if not value:
            raise AuthError(f"the admin key file {path} is empty")
        return _admin_key(value, f"the admin key file {path}")
    from keyguard.stores import open_store

    secret = open_store(_absolute_store(ref, config.root)).get()
    if secret is None:
        raise AuthError(f"the admin key store {ref} holds no current key")
    return secret
