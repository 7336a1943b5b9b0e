"""Sharing a scan among workers: split large files and packed small files find what one
sequential read finds, at the same lines and columns."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyguard.keys import generate_key
from keyguard.scanner import detect, engine, parallel
from tests.scanner.conftest import Scan, write

#: Every test here runs under both scan engines (stdlib, and hyperscan + isal).
pytestmark = pytest.mark.usefixtures("scan_engine")

RANGE = 1 << 16


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split every file of 4 ranges or more into 64 KiB ranges, and always use the pool."""
    monkeypatch.setattr(engine, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "SPLIT_BYTES", 4 * RANGE)
    monkeypatch.setattr(parallel, "RANGE_BYTES", RANGE)


def _where(report: dict[str, object]) -> list[tuple[str, int, int, str]]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return sorted((f["path"], f["line"], f["column"], f["fingerprint"]) for f in findings)


@pytest.mark.parametrize("binary", [False, True])
def test_split_file_gives_the_lines_and_columns_of_a_whole_read(
    plain_dir: Path, scan_json: Scan, small_ranges: None, binary: bool
) -> None:
    keys = [generate_key().reveal().encode() for _ in range(7)]
    data = bytearray((b"\x00" if binary else b"") + b"log line of text\n" * 40_000)
    spots = [
        RANGE - 60,  # straddles the first range's end
        2 * RANGE - 1,  # starts at a range's last byte
        3 * RANGE,  # starts a range
        3 * RANGE + 200,
        5 * RANGE - detect.RIGHT + 7,
    ]
    for spot, key in zip(spots, keys, strict=False):
        data[spot - 1 : spot + len(key) + 1] = b" " + key + b" "
    b64 = base64.b64encode(b"u:" + keys[5]) + b"\n"
    data[7 * RANGE - 20 : 7 * RANGE - 20 + len(b64)] = b64  # base64 group across a range end
    data += b"x" * (3 * RANGE) + b" " + keys[6]  # a long last line spanning ranges
    write(plain_dir / "big.log", bytes(data))
    assert len(data) > 10 * RANGE

    code_seq, seq, _ = scan_json("big.log", "--jobs", "1")
    code_par, par, _ = scan_json("big.log", "--jobs", "2")
    assert code_seq == code_par == 1
    assert len(seq["findings"]) == 7
    assert _where(par) == _where(seq)
    assert par["stats"]["bytes"] == seq["stats"]["bytes"] == len(data)
    assert par["stats"]["files"] == 1


def test_archives_are_not_split(plain_dir: Path, scan_json: Scan, small_ranges: None) -> None:
    import gzip

    key = generate_key().reveal()
    text = (b"filler line\n" * 60_000) + key.encode() + b"\n"
    write(plain_dir / "app.log.gz", gzip.compress(bytes(range(256)) * 2000 + text, 0))
    code, report, _ = scan_json(".", "--jobs", "2")
    assert code == 1
    assert [f["path"] for f in report["findings"]] == ["app.log.gz!app.log"]


def test_packed_small_files_never_join_across_files(plain_dir: Path, scan_json: Scan) -> None:
    key = generate_key().reveal()
    half = len(key) // 2
    write(plain_dir / "a.txt", "end of a " + key[:half])
    write(plain_dir / "b.txt", key[half:] + " start of b")
    write(plain_dir / "c.txt", "x = '" + key + "'")
    write(plain_dir / "d.txt", "no key here, " + "sk-" + "ant-" + " but its prefix")
    code, report, _ = scan_json(".")
    assert code == 1
    assert [(f["path"], f["line"], f["column"]) for f in report["findings"]] == [("c.txt", 1, 6)]
    assert report["stats"]["files"] == 4


def test_stream_plan_hands_out_every_target_once_and_ends_with_small_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Units go out while the listing is still being read: each file in exactly one unit,
    a large one alone, blobs and the files left at the end planned largest first."""
    mib = 1 << 20
    monkeypatch.setattr(parallel, "BATCH_BYTES", 4 * mib)
    monkeypatch.setattr(parallel, "SPLIT_BYTES", 1 << 40)
    sizes = [m * mib // 10 for m in (30, 20, 500, 40, 10, 250, 5, 35, 1, 2, 3)]
    files = [
        parallel.Target(f"f{i}", size, fs_path=str(tmp_path / f"f{i}"))
        for i, size in enumerate(sizes)
    ]
    blobs = [parallel.Target(f"b{i}", mib + i, oid=f"{i:040x}", repo=".") for i in range(3)]
    pulled: list[str] = []

    def listing() -> Iterator[parallel.Target]:
        for t in [*files[:4], *blobs, *files[4:]]:
            pulled.append(t.path)
            yield t

    seen_when: list[int] = []
    units = []
    for unit in parallel.stream_plan(listing(), 2):
        seen_when.append(len(pulled))
        units.append(unit)
    flat = [t.path for u in units for t in (u if isinstance(u, list) else [u.target])]
    assert sorted(flat) == sorted(t.path for t in [*files, *blobs])
    assert seen_when[0] < len(pulled)  # the first unit left before the listing ended
    assert ["f2"] in [[t.path for t in u] for u in units if isinstance(u, list)]  # alone
    sized = [sum(t.size for t in u) if isinstance(u, list) else 0 for u in units]
    tail = sized[-3:]
    assert tail == sorted(tail, reverse=True) and tail[-1] <= mib  # small units last
