"""The optional accelerators (hyperscan, isal) change the speed of a scan, never its findings."""

from __future__ import annotations

import base64
import gzip
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bench import corpus
from keyguard.keys import generate_key
from keyguard.scanner import accel, detect, engine
from tests.scanner.conftest import Scan, write


def test_engine_choice_decides_which_search_and_inflater_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(accel.ENV, "stdlib")
    assert accel.finder(detect.NEEDLES) is None
    assert type(accel.gzip_file(io.BytesIO(b""))) is gzip.GzipFile
    for name in ("fast", "auto"):
        monkeypatch.setenv(accel.ENV, name)
        assert accel.finder(detect.NEEDLES) is not None
        assert type(accel.gzip_file(io.BytesIO(b""))).__module__.startswith("isal")
        assert accel.raw_inflater() is not None


def test_unknown_engine_is_a_usage_error(
    plain_dir: Path, scan_json: Scan, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(plain_dir / "a.txt", "nothing here\n")
    monkeypatch.setenv(accel.ENV, "turbo")
    code, _, err = scan_json(".")
    assert code == 2
    assert "KEYGUARD_SCAN_ENGINE='turbo'" in err and "stdlib" in err


def test_hyperscan_reports_every_overlapping_needle_like_repeated_find() -> None:
    fast = accel.Finder(__import__("hyperscan"), [b"aa", b"ab"])
    assert sorted(fast.find(b"aaab", 10)) == [(0, 10), (0, 11), (1, 12)]


@pytest.mark.usefixtures("scan_engine")
def test_corrupt_deflate_stream_is_scanned_raw_and_noted(plain_dir: Path, scan_json: Scan) -> None:
    key = generate_key().reveal()
    data = bytearray(gzip.compress(("filler " * 5000).encode()))
    data[12] ^= 0xFF  # an invalid block header: zlib.error / IsalError, not an OSError
    write(plain_dir / "broken.gz", bytes(data) + b"\n" + key.encode() + b"\n")
    code, report, err = scan_json(".")
    assert code == 1
    assert [f["path"] for f in report["findings"]] == ["broken.gz"]
    assert "not a readable gzip archive" in err


def _extras(root: Path) -> set[str]:
    """Keys where the two engines' code paths differ most: at the edges of search rounds and
    packs, at each base64 alignment, in large deflated members; returns their plaintexts."""
    keys: set[str] = set()
    # A round ends at k * CHUNK + LEFT: each key starts just before one such edge.
    edges = [k * detect.CHUNK + detect.LEFT for k in range(1, 7)]
    big = bytearray(b"x" * (8 * detect.CHUNK))
    for i, edge in enumerate(edges[:3]):
        key = generate_key("admin" if i == 1 else "api").reveal()
        keys.add(key)
        at = edge - 3 - 40 * i
        big[at : at + len(key) + 2] = b" " + key.encode() + b" "
    for align, edge in enumerate(edges[3:]):
        key = generate_key().reveal()
        keys.add(key)
        encoded = base64.b64encode(b": "[:align] + key.encode())
        at = edge - 5 - 3 * align
        big[at : at + len(encoded) + 2] = b" " + encoded + b" "
    write(root / "extras" / "rounds.log", bytes(big))
    # A key split inside its prefix whose family mark starts a round, and one that ends one.
    split = bytearray(b"z" * (4 * detect.CHUNK))
    for edge, shift in ((edges[0], 0), (edges[1], -1)):
        key = generate_key().reveal()
        keys.add(key)
        text = f' x = "{key[:3]}" +\n  "{key[3:]}" '.encode()
        at = edge + shift - text.index(b"-api0")
        split[at : at + len(text)] = text
    write(root / "extras" / "split.js", bytes(split))
    member = generate_key().reveal()
    keys.add(member)
    body = b"line\n" * 300_000 + member.encode() + b"\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("deep/app.log", body)
    write(root / "extras" / "bundle.zip", out.getvalue())
    tar = io.BytesIO()
    inner = generate_key().reveal()
    keys.add(inner)
    with tarfile.open(fileobj=tar, mode="w:gz") as tf:
        payload = b"y" * 700_000 + b"\n" + inner.encode() + b"\n"
        info = tarfile.TarInfo("var/log/x.log")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    write(root / "extras" / "logs.tar.gz", tar.getvalue())
    keys |= _dodges(root / "extras")
    return keys


def _dodges(root: Path) -> set[str]:
    """The ways around a plain-text search: UTF-16 in both byte orders (one across a round's
    edge), base64 wrapped at 64 and 76 columns, keys in a file name, a member name and a zip
    comment."""
    keys = [generate_key().reveal() for _ in range(7)]
    le = bytearray("z".encode("utf-16-le") * (detect.CHUNK // 2))
    at = detect.CHUNK + detect.LEFT - 11  # the UTF-16 "-ant-" starts a round
    text = f" {keys[0]} ".encode("utf-16-le")
    le[at - 2 : at - 2 + len(text)] = text
    write(root / "wide-le.txt", b"\xff\xfe" + bytes(le))
    write(root / "wide-be.txt", f"k={keys[1]}\n".encode("utf-16-be"))
    for width, key in ((64, keys[2]), (76, keys[3])):
        text = base64.b64encode(b"xy: " + key.encode() + b"\n" * 40).decode()
        lines = "\n".join(text[i : i + width] for i in range(0, len(text), width))
        write(root / f"wrapped-{width}.pem", f"-----BEGIN X-----\n{lines}\n-----END X-----\n")
    write(root / f"{keys[4]}.txt", "named\n")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(f"dir/{keys[5]}", b"member")
        zf.comment = keys[6].encode()
    write(root / "named.zip", out.getvalue())
    return set(keys)


def _findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    assert isinstance(report["findings"], list)
    return report["findings"]


def test_both_engines_report_identical_findings_on_a_mixed_corpus(
    tmp_path: Path, scan_json: Scan, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mixed"
    man = corpus.generate(root / "corpus", size_mb=16, seed=11)
    extras = _extras(root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    reports = {}
    for name in ("stdlib", "fast"):
        monkeypatch.setenv(accel.ENV, name)
        code, report, _ = scan_json(".", "--jobs", "1")
        assert code == 1
        reports[name] = report
    monkeypatch.setattr(engine, "POOL_MIN_BYTES", 0)
    _, reports["fast-pool"], _ = scan_json(".", "--jobs", "2")
    stdlib = _findings(reports["stdlib"])
    for name in ("fast", "fast-pool"):
        assert _findings(reports[name]) == stdlib, name
        assert reports[name]["stats"]["files"] == reports["stdlib"]["stats"]["files"]
    fingerprints = {f["fingerprint"] for f in stdlib}
    planted = {p.sha256 for p in man.plants} | {generate_key_fingerprint(k) for k in extras}
    assert fingerprints == planted


def generate_key_fingerprint(plaintext: str) -> str:
    from keyguard.keys import Secret

    return Secret(plaintext).fingerprint
