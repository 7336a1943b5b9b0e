"""Rotation policy: when a key is due, when it is a violation, grace, drain lag, prices."""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from keyguard.errors import ConfigError

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 1}

BUILTIN_POLICIES = ("default", "strict")
#: The longest duration keyguard takes (100 years): anything longer is a typo, and
#: ``timedelta`` overflows not far beyond.
MAX_DURATION = timedelta(days=36500)
_DURATION_HELP = "write a number with a unit, like 0, 90s, 10m, 24h or 7d"


def parse_duration(text: object) -> timedelta:
    """``0``, ``90s``, ``10m``, ``24h``, ``7d``, ``2w`` -> timedelta; ConfigError otherwise.

    Negative, non-finite and absurdly long durations (``-1``, ``nan``, ``inf``, ``1e300``)
    are refused: a grace period of NaN compares false with everything.
    """
    shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + "..."
    try:
        if isinstance(text, int | float) and not isinstance(text, bool):
            seconds = float(text)
        elif isinstance(text, str) and (m := _DURATION_RE.match(text)):
            seconds = float(m.group(1)) * _UNITS[m.group(2)]
        else:
            raise ConfigError(f"{shown} is not a duration: {_DURATION_HELP}")
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(
            f"{shown} is not a duration: it must be a finite number of 0 or more; {_DURATION_HELP}"
        )
    if seconds > MAX_DURATION.total_seconds():
        raise ConfigError(
            f"{shown} is longer than {MAX_DURATION.days}d, the longest duration keyguard takes"
        )
    return timedelta(seconds=seconds)


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


def _field(key: str) -> str:
    return _DURATION_FIELDS.get(key, key)


def parse_setting(policy: Policy, key: str, value: Any, source: str) -> Any:
    """One setting's value, checked on its own; ConfigError naming ``source`` and ``key``."""
    if key in _DURATION_FIELDS:
        try:
            return parse_duration(value)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {key}: {exc}") from None
    if key in ("name", "key_name"):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: {key} must be a non-empty string")
        if key == "key_name":
            check_key_name(value, source)
        return value
    if key == "one_key_per_environment":
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false")
        return value
    if key in _VERDICT_FIELDS:
        if value not in ("ok", "warning", "violation"):
            raise ConfigError(f"{source}: {key}: use ok, warning or violation, not {value!r}")
        return value
    if key == "prices":
        return {**policy.prices, **_parse_prices(value, source)}
    settings = [*_DURATION_FIELDS, "key_name", "one_key_per_environment", *_VERDICT_FIELDS]
    known = ", ".join([*settings, "prices"])
    raise ConfigError(f"{source}: unknown policy setting {key!r}; known settings: {known}")


def _apply(policy: Policy, data: dict[str, Any], source: str) -> Policy:
    changes: dict[str, Any] = {}
    for key, value in data.items():
        changes[_field(key)] = parse_setting(policy, key, value, source)
    new = replace(policy, **changes)
    if new.due_after > new.max_age:
        raise ConfigError(
            f"{source}: due_after ({format_duration(new.due_after)}) is later than max_age "
            f"({format_duration(new.max_age)}): a key must fall due before it is a violation"
        )
    return new


_PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")


def check_key_name(template: str, source: str) -> None:
    """ConfigError unless ``template`` formats with ``{env}``, ``{service}`` and ``{date}``."""
    try:
        template.format(env="dev", service="api", date=datetime.now(UTC))
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(
            f"{source}: key_name template {template!r} is invalid ({type(exc).__name__}); "
            "use {env}, {service} and {date:%Y%m%d}"
        ) from None


def _parse_prices(value: Any, source: str) -> dict[str, Price]:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: prices must be a table of model = {{input, output}}")
    out: dict[str, Price] = {}
    for model, p in value.items():
        if not isinstance(p, dict) or "input" not in p or "output" not in p:
            raise ConfigError(
                f"{source}: prices.{model} needs input and output (USD per million tokens)"
            )
        numbers: dict[str, float] = {}
        for name, number in p.items():
            if name not in _PRICE_FIELDS:
                raise ConfigError(
                    f"{source}: prices.{model}: unknown field {name!r}; known: "
                    + ", ".join(_PRICE_FIELDS)
                )
            if (
                isinstance(number, bool)
                or not isinstance(number, int | float)
                or not math.isfinite(float(number))
                or number < 0
            ):
                raise ConfigError(
                    f"{source}: prices.{model}.{name} must be a number of 0 or more "
                    "(USD per million tokens)"
                )
            numbers[name] = float(number)
        out[model] = Price(**numbers)
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
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path}: byte {exc.start} is not UTF-8; save the policy file as UTF-8"
            ) from None
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        return _apply(Policy(), data, source)
    except ConfigError as exc:
        line = _line_of_first_bad(data, text)
        if line is None:
            raise
        raise ConfigError(str(exc).replace(f"{source}:", f"{source}:{line}:", 1)) from None


def _line_of_first_bad(data: dict[str, Any], text: str) -> int | None:
    """The line of the first setting that is refused on its own, for the error message."""
    for key, value in data.items():
        try:
            parse_setting(Policy(), key, value, "")
        except ConfigError:
            pattern = re.compile(rf"^\s*(\[\s*{re.escape(key)}\b|\"?{re.escape(key)}\"?\s*=)")
            for number, line in enumerate(text.splitlines(), 1):
                if pattern.search(line):
                    return number
            return None
    return None
