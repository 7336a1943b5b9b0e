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
from keyguard.policy import Policy, load_policy
from keyguard.stores import scheme_of

CONFIG_NAME = "keyguard.toml"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_ADMIN_KEY_REF = "env:ANTHROPIC_ADMIN_KEY"
_ENV_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

_SECTIONS = {"anthropic", "policy", "environments", "scan", "notify", "state"}
_ANTHROPIC_KEYS = {"base_url", "admin_key"}
_ENV_KEYS = {"stores", "workspace", "key_name", "check", "policy", "service"}


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

    def key_name_template(self) -> str:
        return self.key_name or self.policy.key_name


@dataclass(frozen=True)
class Config:
    path: Path | None
    root: Path  # the config file's folder; relative paths resolve against it
    base_url: str = DEFAULT_BASE_URL
    admin_key_ref: str = DEFAULT_ADMIN_KEY_REF
    policy: Policy = field(default_factory=Policy)
    environments: dict[str, Environment] = field(default_factory=dict)
    scan_exclude: tuple[str, ...] = ()
    webhook: str | None = None
    state_dir: Path = Path(".keyguard")

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

    def string(self, data: dict[str, Any], key: str, table: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"[{table}] {key} must be a non-empty string")
        return value


def load_config(path: Path | None = None) -> Config:
    """Load and validate a config file; no file gives the embedded defaults."""
    if path is None:
        return Config(path=None, root=Path.cwd(), base_url=_base_url(None))
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}; pass --config PATH or create "
            f"{CONFIG_NAME} with `keyguard init`"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}; fix the TOML syntax there") from None
    return _build(_Loader(path, text), data)


def _base_url(configured: str | None) -> str:
    return (os.environ.get("ANTHROPIC_BASE_URL") or configured or DEFAULT_BASE_URL).rstrip("/")


def _build(ld: _Loader, data: dict[str, Any]) -> Config:
    root = ld.path.parent.resolve()
    ld.unknown("top level", data, _SECTIONS)
    anthropic = data.get("anthropic", {})
    ld.unknown("anthropic", anthropic, _ANTHROPIC_KEYS)
    base_url = _base_url(ld.string(anthropic, "base_url", "anthropic"))
    if not base_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ld.fail(
            "base_url",
            f"base_url {base_url!r} must be https:// (plain http only for 127.0.0.1/localhost)",
        )
    admin_ref = ld.string(anthropic, "admin_key", "anthropic") or DEFAULT_ADMIN_KEY_REF

    policy_table = data.get("policy", {})
    policy_file = ld.string(policy_table, "file", "policy")
    ref: str | Path | None = policy_file
    if policy_file and policy_file not in ("default", "strict"):
        ref = root / policy_file
    policy = load_policy(ref)
    overrides = {k: v for k, v in policy_table.items() if k != "file"}
    if overrides:
        policy = _overrides(ld, policy, overrides, "policy")

    envs: dict[str, Environment] = {}
    for name, table in data.get("environments", {}).items():
        envs[name] = _environment(ld, name, table, policy, root)

    scan = data.get("scan", {})
    ld.unknown("scan", scan, {"exclude"})
    exclude = scan.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
        raise ld.fail("exclude", "[scan] exclude must be a list of path globs")
    notify = data.get("notify", {})
    ld.unknown("notify", notify, {"webhook"})
    state = data.get("state", {})
    ld.unknown("state", state, {"dir"})
    state_dir = root / (ld.string(state, "dir", "state") or ".keyguard")
    return Config(
        path=ld.path,
        root=root,
        base_url=base_url,
        admin_key_ref=admin_ref,
        policy=policy,
        environments=envs,
        scan_exclude=tuple(exclude),
        webhook=ld.string(notify, "webhook", "notify"),
        state_dir=state_dir,
    )


def _environment(ld: _Loader, name: str, table: Any, policy: Policy, root: Path) -> Environment:
    if not _ENV_NAME_RE.match(name):
        raise ld.fail(name, f"environment name {name!r}: use letters, digits, '-', '_' or '.'")
    if not isinstance(table, dict):
        raise ld.fail(name, f"environments.{name} must be a table")
    ld.unknown(f"environments.{name}", table, _ENV_KEYS)
    stores = table.get("stores")
    if not isinstance(stores, list) or not stores or not all(isinstance(s, str) for s in stores):
        raise ld.fail(
            name,
            f'[environments.{name}] needs stores = ["file:.keyguard/{name}.json", ...] '
            "(one or more store URIs)",
        )
    for uri in stores:
        try:
            scheme_of(uri)
        except ConfigError as exc:
            raise ld.fail(name, f"[environments.{name}] stores: {exc}") from None
    env_policy = policy
    if "policy" in table:
        if not isinstance(table["policy"], dict):
            raise ld.fail(name, f"[environments.{name}.policy] must be a table")
        env_policy = _overrides(ld, policy, table["policy"], f"environments.{name}.policy")
    return Environment(
        name=name,
        stores=tuple(_absolute_store(uri, root) for uri in stores),
        policy=env_policy,
        workspace=ld.string(table, "workspace", f"environments.{name}"),
        key_name=ld.string(table, "key_name", f"environments.{name}"),
        check=ld.string(table, "check", f"environments.{name}"),
        service=ld.string(table, "service", f"environments.{name}"),
    )


def _overrides(ld: _Loader, policy: Policy, data: dict[str, Any], table: str) -> Policy:
    """``policy`` with a table's settings; an error names the line of the bad setting."""
    try:
        return policy.with_overrides(data, f"[{table}]")
    except ConfigError as exc:
        bad = table.rsplit(".", 1)[-1]
        for key, value in data.items():
            try:
                policy.with_overrides({key: value}, "")
            except ConfigError:
                bad = key
                break
        raise ld.fail(bad, str(exc)) from None


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


def resolve_admin_key(config: Config) -> Secret:
    """The admin key from ``ANTHROPIC_ADMIN_KEY`` or the config's ``env:``/``file:``/store ref."""
    ref = config.admin_key_ref
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name, "").strip()
        if not value:
            raise AuthError(
                f"no admin key: ${name} is empty. Create an admin key in the Console "
                f"(Settings > Admin keys) and export {name}, or set [anthropic] admin_key"
            )
        return Secret(value)
    if ref.startswith("file:"):
        path = Path(ref[5:]).expanduser()
        if not path.is_absolute():
            path = config.root / path
        try:
            value = path.read_text("utf-8").strip()
        except OSError as exc:
            raise AuthError(f"cannot read the admin key file {path}: {exc.strerror}") from None
        if not value:
            raise AuthError(f"the admin key file {path} is empty")
        return Secret(value)
    from keyguard.stores import open_store

    secret = open_store(_absolute_store(ref, config.root)).get()
    if secret is None:
        raise AuthError(f"the admin key store {ref} holds no current key")
    return secret
