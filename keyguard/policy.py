"""Rotation policy: when a key is due, when it is a violation, grace, drain lag, prices."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from keyguard.errors import ConfigError

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 1}

BUILTIN_POLICIES = ("default", "strict")


def parse_duration(text: str | int | float) -> timedelta:
    """``0``, ``90s``, ``10m``, ``24h``, ``7d``, ``2w`` -> timedelta; ConfigError otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return timedelta(seconds=float(text))
    m = _DURATION_RE.match(str(text))
    if not m:
        raise ConfigError(
            f"{text!r} is not a duration: write a number with a unit, like 0, 90s, 10m, 24h or 7d"
        )
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def format_duration(delta: timedelta) -> str:
    """The shortest exact spelling of ``delta`` (``24h``, ``7d``, ``90s``)."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_read: float | None = None  # default: 10% of input
    cache_write: float | None = None  # default: 125% of input


@dataclass(frozen=True)
class Policy:
    name: str = "default"
    due_after: timedelta = timedelta(days=80)
    max_age: timedelta = timedelta(days=90)
    grace: timedelta = timedelta(hours=24)
    archive_after: timedelta = timedelta(days=7)
    usage_lag: timedelta = timedelta(minutes=5)
    expiry_warning: timedelta = timedelta(days=14)
    key_name: str = "{env}-{date:%Y%m%d}"
    one_key_per_environment: bool = True
    #: Audit verdicts ("ok", "warning", "violation") for a personal key serving an
    #: environment (it dies when its person leaves) and for a key that never expires.
    personal_key: str = "warning"
    never_expires: str = "warning"
    prices: dict[str, Price] = field(default_factory=dict)

    def price_for(self, model: str | None) -> Price | None:
        """The price of the longest configured model prefix matching ``model``."""
        if not self.prices:
            return None
        if model:
            matches = [k for k in self.prices if model.startswith(k)]
            if matches:
                return self.prices[max(matches, key=len)]
        return self.prices.get("default")

    def with_overrides(self, data: dict[str, Any], source: str) -> Policy:
        """A copy with an environment's ``[environments.X.policy]`` table applied."""
        return _apply(self, data, source)


_DURATION_FIELDS = {
    "due_after": "due_after",
    "max_age": "max_age",
    "grace": "grace",
    "archive_after": "archive_after",
    "usage_lag": "usage_lag",
    "expiry_warning": "expiry_warning",
}


_VERDICT_FIELDS = ("personal_key", "never_expires")


def _apply(policy: Policy, data: dict[str, Any], source: str) -> Policy:
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key in _DURATION_FIELDS:
            try:
                changes[_DURATION_FIELDS[key]] = parse_duration(value)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {key}: {exc}") from None
        elif key == "name":
            changes["name"] = str(value)
        elif key == "key_name":
            changes["key_name"] = str(value)
        elif key == "one_key_per_environment":
            changes["one_key_per_environment"] = bool(value)
        elif key in _VERDICT_FIELDS:
            if value not in ("ok", "warning", "violation"):
                raise ConfigError(f"{source}: {key}: use ok, warning or violation, not {value!r}")
            changes[key] = value
        elif key == "prices":
            changes["prices"] = {**policy.prices, **_parse_prices(value, source)}
        else:
            settings = [*_DURATION_FIELDS, "key_name", "one_key_per_environment"]
            known = ", ".join([*settings, *_VERDICT_FIELDS, "prices"])
            raise ConfigError(f"{source}: unknown policy setting {key!r}; known settings: {known}")
    new = replace(policy, **changes)
    if new.due_after > new.max_age:
        raise ConfigError(
            f"{source}: due_after ({format_duration(new.due_after)}) is later than max_age "
            f"({format_duration(new.max_age)}): a key must fall due before it is a violation"
        )
    return new


def _parse_prices(value: Any, source: str) -> dict[str, Price]:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: prices must be a table of model = {{input, output}}")
    out: dict[str, Price] = {}
    for model, p in value.items():
        if not isinstance(p, dict) or "input" not in p or "output" not in p:
            raise ConfigError(
                f"{source}: prices.{model} needs input and output (USD per million tokens)"
            )
        out[model] = Price(
            input=float(p["input"]),
            output=float(p["output"]),
            cache_read=float(p["cache_read"]) if "cache_read" in p else None,
            cache_write=float(p["cache_write"]) if "cache_write" in p else None,
        )
    return out


def load_policy(name_or_path: str | Path | None = None) -> Policy:
    """A built-in policy by name (``default``, ``strict``) or a TOML file by path."""
    ref = str(name_or_path or "default")
    if ref in BUILTIN_POLICIES:
        text = resources.files("keyguard.policies").joinpath(f"{ref}.toml").read_text("utf-8")
        source = f"built-in policy {ref!r}"
    else:
        path = Path(ref)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read policy file {path}: {exc.strerror}; "
                f"name a TOML file or one of {', '.join(BUILTIN_POLICIES)}"
            ) from None
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return _apply(Policy(), data, source)
