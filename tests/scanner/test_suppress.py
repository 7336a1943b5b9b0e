"""Suppressions: inline allow comments, fingerprint baselines, [scan] exclude globs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyguard.keys import generate_key
from keyguard.scanner import engine
from tests.scanner.conftest import Scan, write


def test_inline_allow_comment_suppresses_only_its_line(plain_dir: Path, scan_json: Scan) -> None:
    a, b = generate_key().reveal(), generate_key().reveal()
    write(plain_dir / "t.py", f"A = '{a}'  # keyguard: allow (test fixture)\nB = '{b}'\n")
    code, report, err = scan_json(".")
    assert code == 1
    assert [f["line"] for f in report["findings"]] == [2]
    assert "1 allowed inline" in err


def test_baseline_holds_fingerprints_only_and_survives_moves(
    plain_dir: Path, scan_json: Scan
) -> None:
    key = generate_key().reveal()
    write(plain_dir / "old.txt", f"x\n{key}\n")
    code, _, err = scan_json(".", "--baseline", "kg-baseline.json", "--update-baseline")
    assert code == 0 and "wrote 1 fingerprint" in err
    text = (plain_dir / "kg-baseline.json").read_text()
    entry = json.loads(text)["fingerprints"][0]
    assert set(entry) == {"fingerprint", "rule", "redacted"}  # no line numbers, no path
    assert key not in text

    (plain_dir / "old.txt").rename(plain_dir / "new.txt")
    write(plain_dir / "new.txt", f"moved\n\n\n{key}\n")
    code, report, err = scan_json(".", "--baseline", "kg-baseline.json")
    assert (code, report["findings"]) == (0, [])
    assert "1 in the baseline" in err

    write(plain_dir / "fresh.txt", generate_key().reveal())
    code, report, _ = scan_json(".", "--baseline", "kg-baseline.json")
    assert code == 1 and [f["path"] for f in report["findings"]] == ["fresh.txt"]


def test_broken_baseline_is_a_usage_error(plain_dir: Path, scan_json: Scan) -> None:
    write(plain_dir / "b.json", "{not json")
    code, _, err = scan_json(".", "--baseline", "b.json")
    assert code == 2 and "not a keyguard baseline" in err


@pytest.mark.parametrize("pooled", [False, True], ids=["one-process", "pool"])
def test_config_excludes_are_path_globs(
    plain_dir: Path, scan_json: Scan, monkeypatch: pytest.MonkeyPatch, pooled: bool
) -> None:
    if pooled:  # excluded while the walk feeds the workers: still counted and said
        monkeypatch.setattr(engine, "POOL_MIN_BYTES", 0)
    write(plain_dir / "keyguard.toml", '[scan]\nexclude = ["fixtures/", "*.snap"]\n')
    for name in ("fixtures/deep/a.txt", "ui/x.snap", "src/real.py"):
        write(plain_dir / name, generate_key().reveal())
    code, report, err = scan_json(".", "--jobs", "2")
    assert code == 1
    assert [f["path"] for f in report["findings"]] == ["src/real.py"]
    assert "2 files excluded by config" in err
