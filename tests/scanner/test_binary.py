"""Keys inside binary files: a .pyc constant, an SQLite row, a PNG text chunk."""

from __future__ import annotations

import py_compile
import sqlite3
import struct
import zlib
from pathlib import Path

import pytest

from keyguard.keys import generate_key
from keyguard.scanner.detect import scan_bytes
from keyguard.scanner.rules import KEY_BYTES
from tests.scanner.conftest import Scan, write

#: Every test here runs under both scan engines (stdlib, and hyperscan + isal).
pytestmark = pytest.mark.usefixtures("scan_engine")


def test_key_in_a_compiled_python_module_is_found(plain_dir: Path, scan_json: Scan) -> None:
    key = generate_key().reveal()
    source = write(plain_dir / "src" / "settings.py", f"ANTHROPIC_API_KEY = {key!r}\n")
    pyc = plain_dir / "settings.cpython.pyc"
    py_compile.compile(str(source), cfile=str(pyc), doraise=True)
    source.unlink()
    data = pyc.read_bytes()
    at = data.index(key.encode())
    assert data[at - 1] in KEY_BYTES  # marshal's length byte: the text rules reject this

    code, report, _ = scan_json(".")
    assert code == 1
    assert [(f["path"], f["rule"]) for f in report["findings"]] == [
        ("settings.cpython.pyc", "anthropic-api-key")
    ]


def test_key_in_an_sqlite_row_between_text_columns_is_found(
    plain_dir: Path, scan_json: Scan
) -> None:
    key = generate_key("admin").reveal()
    db = sqlite3.connect(plain_dir / "app.sqlite")
    db.execute("CREATE TABLE settings (name TEXT, value TEXT, note TEXT)")
    db.execute("INSERT INTO settings VALUES (?, ?, ?)", ("anthropic", key, "rotated monthly"))
    db.commit()
    db.close()
    data = (plain_dir / "app.sqlite").read_bytes()
    at = data.index(key.encode())
    assert data[at - 1 : at] == b"c" and data[at + len(key)] == ord("r")  # columns touch it

    code, report, _ = scan_json(".")
    assert code == 1
    assert [(f["path"], f["rule"]) for f in report["findings"]] == [
        ("app.sqlite", "anthropic-admin-key")
    ]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_key_in_a_png_text_chunk_followed_by_its_crc_is_found() -> None:
    while True:  # a key whose chunk CRC starts with a key character, as ~1 in 4 do
        key = generate_key().reveal().encode()
        text = _chunk(b"tEXt", b"api_key\x00" + key)
        if text[-4] in KEY_BYTES:
            break
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 6, 0, 0, 0))
    png = b"\x89PNG\r\n\x1a\n" + ihdr + text + _chunk(b"IEND", b"")
    assert [h.key for h in scan_bytes(png)] == [key]


def test_pieces_of_longer_runs_stay_rejected_in_text() -> None:
    key = generate_key().reveal().encode()
    assert scan_bytes(b"x" + key + b"q\n") == []
    assert [h.key for h in scan_bytes(b"\x00x" + key + b"q\n")] == [key]


def test_binary_content_still_rejects_wrong_lengths_suffixes_and_placeholders() -> None:
    key = generate_key().reveal().encode()
    placeholder = key[:13] + b"x" * 93 + b"AA"
    for data in (key[:-1], key[:-2] + b"AB", placeholder, key[:60]):
        assert scan_bytes(b"\x00\x01" + data + b"\x00") == []
