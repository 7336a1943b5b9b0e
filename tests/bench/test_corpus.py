"""The benchmark's generators plant exactly the keys their manifests claim (no timing here)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import re
import subprocess
import tarfile
import zipfile
from pathlib import Path

from bench import bigfile, corpus, history
from bench.keys import sha256

KEY = re.compile(rb"sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{93}AA")
# No left boundary: in a .pyc or SQLite file a length byte that is a letter precedes the key.
PLANTED = re.compile(KEY.pattern + rb"(?![A-Za-z0-9_-])")
B64 = re.compile(rb"[A-Za-z0-9+/]{140,}={0,2}")


def _payloads(path: Path) -> list[bytes]:
    """The file's bytes, plus every archive member's, decompressed."""
    data = path.read_bytes()
    out = [data]
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            out += [zf.read(n) for n in zf.namelist()]
    elif path.name.endswith((".tar", ".tar.gz")):
        with tarfile.open(path) as tf:
            out += [tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()]  # type: ignore[union-attr]
    elif path.name.endswith(".gz"):
        out.append(gzip.decompress(data))
    return out


def _keys_in(data: bytes) -> set[str]:
    """Key-shaped strings: plain, split over adjacent literals, or inside base64."""
    joined = data.replace(b'"\n    "', b"").replace(b'" +\n  "', b"")
    found = {m.decode() for m in PLANTED.findall(joined)}
    for token in B64.findall(data):
        with contextlib.suppress(binascii.Error, ValueError):
            found |= {
                m.decode()
                for m in PLANTED.findall(base64.b64decode(token + b"=="[: -len(token) % 4]))
            }
    # The all-x documentation placeholder is a decoy, not a plant.
    return {k for k in found if "x" * 20 not in k}


def test_corpus_plants_what_its_manifest_says(tmp_path: Path) -> None:
    man = corpus.generate(tmp_path / "corpus", size_mb=2, seed=7)
    assert len(man.plants) == corpus.plants_per_category(2) * len(corpus.CATEGORIES)
    assert {p.category for p in man.plants} == set(corpus.CATEGORIES)
    found: set[str] = set()
    files = [f for f in (tmp_path / "corpus").rglob("*") if f.is_file()]
    for f in files:
        for payload in _payloads(f):
            found |= {sha256(k) for k in _keys_in(payload)}
    assert {p.sha256 for p in man.plants} == found
    assert len(files) == man.files
    assert sum(f.stat().st_size for f in files) == man.bytes
    # Deterministic: the same seed gives the same corpus.
    again = corpus.generate(tmp_path / "again", size_mb=2, seed=7)
    assert [p.sha256 for p in again.plants] == [p.sha256 for p in man.plants]


def test_history_repos_share_blobs_but_not_commits(tmp_path: Path) -> None:
    repos = history.build(tmp_path, seed=3, commits=40, files=12, factor=10)
    small, large = repos["hist-1x"], repos["hist-10x"]
    assert (small.blobs, small.blob_bytes) == (large.blobs, large.blob_bytes)
    for name, want in (("hist-1x", 40), ("hist-10x", 400)):
        count = subprocess.run(
            ["git", "-C", str(tmp_path / name), "rev-list", "--count", "--all"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert int(count.stdout) == want
    log = subprocess.run(
        ["git", "-C", str(tmp_path / "hist-1x"), "log", "-p", "--all"],
        capture_output=True,
        check=True,
    ).stdout
    texts = {p["sha256"] for p in small.plants if p["category"] == "history-text"}
    assert texts and texts <= {sha256(k.decode()) for k in KEY.findall(log)}


def test_huge_file_holds_its_four_keys(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    plants = bigfile.generate(path, 32 << 20)
    assert path.stat().st_size == 32 << 20
    strict = re.compile(rb"(?<![A-Za-z0-9_-])" + KEY.pattern + rb"(?![A-Za-z0-9_-])")
    assert sorted(sha256(k.decode()) for k in strict.findall(path.read_bytes())) == sorted(plants)
