"""What keyguard made for an environment's federation, kept at ``<state dir>/wif/ENV.json``.

Ids only (no token, no key): ``apply`` records each id as soon as it exists, so a crash
part-way is finished by a rerun; ``retire-key`` records the static key it deactivated.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from keyguard.atomic import write_atomic
from keyguard.errors import ConfigError


@dataclass
class WifRecord:
    environment: str
    organization_id: str | None = None
    service_account_id: str | None = None
    issuer_id: str | None = None
    rule_id: str | None = None
    workspace_id: str | None = None
    applied_at: str | None = None
    retired: dict[str, Any] = field(default_factory=dict)  # key_id, hint, at, stores

    @property
    def applied(self) -> bool:
        return bool(self.rule_id and self.service_account_id and self.applied_at)


def record_path(state_dir: Path, env: str) -> Path:
    return Path(state_dir) / "wif" / f"{env}.json"


def load_record(state_dir: Path, env: str) -> WifRecord:
    path = record_path(state_dir, env)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return WifRecord(env)
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); move it away and rerun apply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; move it away and rerun apply")
    known = {k: v for k, v in data.items() if k in _TYPES}
    for name, value in known.items():
        _check(path, name, value, _TYPES[name], strings=False)
    _check_time(path, "applied_at", known.get("applied_at"))
    for name, value in known.get("retired", {}).items():
        if name in _RETIRED:
            _check(path, f"retired.{name}", value, *_RETIRED[name])
    _check_time(path, "retired.at", known.get("retired", {}).get("at"))
    known["environment"] = env
    return WifRecord(**known)


def _check_time(path: Path, name: str, value: str | None) -> None:
    """ConfigError naming ``path`` and ``name`` unless ``value`` (None: absent) is an ISO 8601
    time with its time zone: keyguard writes UTC, and a time without one cannot be compared."""
    if value is None:
        return
    try:
        if datetime.fromisoformat(value).utcoffset() is not None:
            return
        why = "a time without its time zone (keyguard writes UTC: +00:00)"
    except ValueError:
        why = "not an ISO 8601 time"
    raise ConfigError(
        f"{path}: {name!r} is {why} (the file was damaged or edited); move it away and rerun apply"
    )


def _check(path: Path, name: str, value: Any, wanted: tuple[type, ...], strings: bool) -> None:
    """ConfigError naming ``path`` and ``name`` unless ``value`` has a ``wanted`` type (and,
    with ``strings``, is a list of strings)."""
    if isinstance(value, list) and strings:
        if all(isinstance(element, str) for element in value):
            return
    elif isinstance(value, wanted):
        return
    expected = " or ".join(_JSON[t] for t in wanted) + (" of strings" if strings else "")
    found = _JSON.get(type(value), "a JSON value")
    if isinstance(value, list) and strings:
        found = "a list holding something else than strings"
    raise ConfigError(
        f"{path}: {name!r} is {found}, not {expected} (the file was damaged or edited); "
        "move it away and rerun apply"
    )


def _runtime_types(hint: Any) -> tuple[type, ...]:
    """``str | None`` -> (str, NoneType); ``dict[str, Any]`` -> (dict,)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _runtime_types(arg))
    return (typing.get_origin(hint) or hint,)


#: The type each field read back must have: the dataclass's own annotations. ``environment``
#: comes from the file's name, never from its content.
_TYPES: dict[str, tuple[type, ...]] = {
    name: _runtime_types(hint)
    for name, hint in typing.get_type_hints(WifRecord).items()
    if name != "environment"
}
#: What ``retire-key`` writes into ``retired`` (other entries are kept as they are).
_RETIRED: dict[str, tuple[tuple[type, ...], bool]] = {
    "key_ids": ((list,), True),
    "hint": ((str, type(None)), False),
    "at": ((str, type(None)), False),
    "stores": ((list,), True),
}
_JSON = {
    str: "a string",
    dict: "an object",
    list: "a list",
    bool: "true/false",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def save_record(state_dir: Path, record: WifRecord) -> None:
    """Atomically (temp file, fsync, rename), mode 0600."""
    path = record_path(state_dir, record.environment)
    write_atomic(path, json.dumps(asdict(record), indent=1), mode=0o600)
