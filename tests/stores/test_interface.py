"""``VersionMeta`` to and from the flat string fields every backend stores."""

from __future__ import annotations

from datetime import UTC, datetime

from keyguard.stores.interface import VersionMeta

FULL = VersionMeta(
    key_id="apikey_1",
    hint="h",
    fingerprint="f" * 64,
    stored_at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
    token="tok",
    environment="prod",
)


def test_round_trip_with_and_without_renaming() -> None:
    assert VersionMeta.from_fields(FULL.to_fields()) == FULL
    names = {"fingerprint": "fp", "stored_at": "at"}
    stored = FULL.to_fields(names)
    assert stored["fp"] == "f" * 64 and "fingerprint" not in stored
    assert VersionMeta.from_fields(stored, names) == FULL


def test_empty_fields_are_left_out_and_bad_values_read_as_missing() -> None:
    assert VersionMeta(hint="h").to_fields() == {"hint": "h"}
    assert VersionMeta.from_fields({"stored_at": "yesterday", "hint": 3}) == VersionMeta()
    assert VersionMeta.from_fields(None) == VersionMeta()
