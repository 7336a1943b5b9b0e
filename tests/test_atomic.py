from __future__ import annotations

import stat
from pathlib import Path

import pytest

from keyguard.atomic import write_atomic


def test_a_private_write_is_0600_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "record.json"
    write_atomic(target, "one", mode=0o600)
    write_atomic(target, "two", mode=0o600)
    assert target.read_text("utf-8") == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]


def test_a_crash_before_the_rename_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_atomic(target, "old")

    def crash(src: str, dst: str) -> None:
        raise OSError(5, "simulated crash")

    with pytest.raises(OSError, match="simulated crash"):
        write_atomic(target, "new", replace=crash)
    assert target.read_text("utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_symlink_is_written_through_only_when_asked(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old", "utf-8")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_atomic(link, "through", follow_symlinks=True)
    assert link.is_symlink() and real.read_text("utf-8") == "through"
    write_atomic(link, "replaced")
    assert not link.is_symlink() and real.read_text("utf-8") == "through"
