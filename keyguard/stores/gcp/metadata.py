"""How the ``gcp-sm`` store keeps stages and metadata on a Secret: aliases and annotations.

Pure functions over the SDK's ``Secret`` message (no SDK import here): version aliases map
stages to version numbers; annotation ``keyguard-v<N>`` holds version N's metadata as compact
JSON; ``keyguard-lease`` holds the lease record.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from keyguard.keys import Secret
from keyguard.stores.interface import Stage, VersionMeta

META_PREFIX = "keyguard-v"
LEASE = "keyguard-lease"
KEEP_META = 20  # metadata of older, unstaged versions is pruned (annotations cap: 16 KiB)
ALIASES = {stage: stage.value for stage in Stage}


def aliases_of(secret: Any) -> dict[str, int]:
    return {
        alias: int(number)
        for alias, number in secret.version_aliases.items()
        if alias in ALIASES.values()
    }


def meta_key(number: int) -> str:
    return f"{META_PREFIX}{number}"


def meta_number(key: str) -> int | None:
    """N of an annotation ``keyguard-v<N>``; None for any other key (edited by hand or not)."""
    suffix = key[len(META_PREFIX) :]
    if key.startswith(META_PREFIX) and suffix.isascii() and suffix.isdigit():
        return int(suffix)
    return None


def metas_of(secret: Any) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for key, raw in secret.annotations.items():
        number = meta_number(key)
        if number is not None:
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):  # nested past the parser's depth
                continue
            if isinstance(data, dict):
                out[number] = data
    return out


def token_version(secret: Any, token: str) -> int | None:
    for number, data in metas_of(secret).items():
        if data.get("token") == token:
            return number
    return None


#: Short annotation field names: a secret's annotations share one 16 KiB budget.
_NAMES = {"fingerprint": "fp", "stored_at": "at", "environment": "env"}


def encode_meta(meta: VersionMeta, value: Secret) -> str:
    filled = replace(
        meta,
        hint=meta.hint or value.hint,
        fingerprint=meta.fingerprint or value.fingerprint,
        stored_at=meta.stored_at or datetime.now(UTC),
    )
    return json.dumps(filled.to_fields(_NAMES), separators=(",", ":"))


def meta_of(data: dict[str, Any] | None) -> VersionMeta:
    return VersionMeta.from_fields(data, _NAMES)


def pruned(annotations: dict[str, str], aliases: dict[str, int]) -> dict[str, str]:
    """Drop metadata of old unstaged versions so the annotations stay under their 16 KiB cap."""
    numbers = sorted(
        (number for name in annotations if (number := meta_number(name)) is not None),
        reverse=True,
    )
    keep = set(numbers[:KEEP_META]) | set(aliases.values())
    return {
        name: value for name, value in annotations.items() if meta_number(name) in (keep | {None})
    }
