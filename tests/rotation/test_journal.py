"""The journal: durable lines, 0600, never a key, a torn last line survived."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyguard.errors import ConfigError
from keyguard.journal import RotationJournal
from keyguard.keys import generate_key

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def test_entries_round_trip_with_store_points(tmp_path: Path) -> None:
    j = RotationJournal(tmp_path / "state", "prod")
    j.append("t1", "create", "before", NOW, key={"fingerprint": "f", "hint": "h"})
    j.append("t1", "create", "after", NOW, store_index=1, store="file:x")
    points = [e.point for e in j.entries()]
    assert points == ["create:before", "create:1:after"]
    assert (j.path.stat().st_mode & 0o777) == 0o600


def test_refuses_to_write_a_key(tmp_path: Path) -> None:
    j = RotationJournal(tmp_path, "prod")
    with pytest.raises(ValueError, match="refusing"):
        j.append("t1", "create", "before", NOW, note=generate_key().reveal())
    assert not j.path.exists() or generate_key().reveal() not in j.path.read_text()


def test_torn_last_line_is_ignored_but_a_damaged_middle_is_reported(tmp_path: Path) -> None:
    j = RotationJournal(tmp_path, "prod")
    j.append("t1", "create", "before", NOW, key={"fingerprint": "f"})
    with j.path.open("a") as fh:
        fh.write('{"ts": "2026-11-25T00:00:00+00:00", "rot')
    assert len(j.entries()) == 1
    j.append("t1", "create", "after", NOW)  # the next write cuts the torn fragment
    assert [e.point for e in j.entries()] == ["create:before", "create:after"]
    j.path.write_text("garbage\n" + j.path.read_text().splitlines()[0] + "\n")
    with pytest.raises(ConfigError, match=r"prod.journal.jsonl:1: .*damaged"):
        j.entries()
