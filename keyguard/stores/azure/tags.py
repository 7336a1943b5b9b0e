"""How the ``azure-kv`` store marks versions: its tag names and the metadata codec (no SDK).

Key Vault allows 15 tags per version, each value at most 256 characters.
"""

from __future__ import annotations

from typing import Any

from keyguard.stores.interface import VersionMeta

STAGE = "keyguard-stage"
PREVIOUS = "keyguard-previous"
ROLLBACK_OF = "keyguard-rollback-of"
# On the version a #FIELD withdraw writes: the id of the withdrawn (disabled) version.
WITHDRAWAL_OF = "keyguard-withdrawal-of"
LEASE_OWNER = "keyguard-lease-owner"
LEASE_EXPIRES = "keyguard-lease-expires"
META_TAGS = {
    "key_id": "keyguard-key-id",
    "hint": "keyguard-hint",
    "fingerprint": "keyguard-fingerprint",
    "stored_at": "keyguard-stored-at",
    "token": "keyguard-token",
    "environment": "keyguard-environment",
}
TOKEN = META_TAGS["token"]


def tags_of(properties: Any) -> dict[str, str]:
    """A copy of a version's tags (empty for no version)."""
    return dict(properties.tags or {}) if properties is not None else {}


def meta_tags(meta: VersionMeta) -> dict[str, str]:
    """``VersionMeta`` as Key Vault tags (empty fields left out; a tag holds 256 characters)."""
    return {name: value[:256] for name, value in meta.to_fields(META_TAGS).items()}


def meta_from_tags(tags: dict[str, str] | None) -> VersionMeta:
    return VersionMeta.from_fields(tags, META_TAGS)
