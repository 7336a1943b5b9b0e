"""Render one corpus file of a given kind, with keys planted the way they really leak."""

from __future__ import annotations

import base64
import gzip
import importlib.util
import io
import json
import marshal
import os
import random
import sqlite3
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable

from bench.text import base64_blob, insert_lines, slice_lines

Pools = dict[str, str]
Plants = list[tuple[str, str]]  # (category, key)


def snippet(category: str, key: str) -> str:
    """The text around a key, per category (one or more lines)."""
    b64 = base64.b64encode(key.encode()).decode()
    auth = base64.b64encode(f"claude-bot:{key}".encode()).decode()
    half = 40
    return {
        "py-assign": f'ANTHROPIC_API_KEY = "{key}"',
        "py-split-literal": f'CLAUDE_KEY = (\n    "{key[:half]}"\n    "{key[half:]}"\n)',
        "js-split-prefix": f'const claudeKey = "{key[:3]}" +\n  "{key[3:]}";',
        "js-header": f"  headers: {{ 'x-api-key': process.env.KEY || '{key}' }},",
        "dotenv": f"ANTHROPIC_API_KEY={key}",
        "yaml-value": f"  anthropic_api_key: {key}",
        "k8s-secret-base64": (
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: claude\ntype: Opaque\n"
            f"data:\n  ANTHROPIC_API_KEY: {b64}\n---"
        ),
        "md-url-ampersand": f'curl "https://gateway.internal/v1/messages?key={key}&stream=1"',
        "md-url-fragment": f"Open https://console.internal/keys?k={key}#usage to check.",
        "md-brackets": f"The old key [{key}] was rotated.",
        "sh-admin-key": f"export ANTHROPIC_ADMIN_KEY={key}",
        "log-header": f"2025-03-11T10:11:12Z DEBUG http headers={{'x-api-key': '{key}'}}",
        "log-basic-auth-base64": f"2025-03-11T10:11:13Z DEBUG Authorization: Basic {auth}",
        "minified-js": f',apiKey:"{key}",',
        "minified-js-url": f';fetch("https://gw.internal/v1?k={key}&m=claude");',
    }[category]


def _text(
    ext: str, rng: random.Random, pools: Pools, size: int, plants: Plants, extra: list[str]
) -> bytes:
    lang = {"py": "py", "js": "js", "yaml": "yaml", "md": "md", "log": "log"}.get(ext, "yaml")
    if ext == "env":
        body = "".join(
            f"{w.upper()}_SETTING={w}\n" for w in slice_lines(rng, pools["md"], size).split()[:40]
        )
    elif ext == "sh":
        body = "#!/bin/sh\nset -eu\n" + "".join(
            f"echo {line}\n" for line in slice_lines(rng, pools["md"], size).splitlines()
        )
    else:
        body = slice_lines(rng, pools[lang], size)
    lines = [snippet(c, k) for c, k in plants] + [
        f"Set ANTHROPIC_API_KEY={d} first." for d in extra
    ]
    return insert_lines(rng, body, lines).encode()


def _notebook(rng: random.Random, pools: Pools, size: int, plants: Plants) -> bytes:
    cells: list[dict[str, object]] = []
    approx = 0
    while approx < size:
        src = slice_lines(rng, pools["py"], rng.randint(200, 3000)).splitlines(keepends=True)
        cell: dict[str, object] = {
            "cell_type": "code",
            "execution_count": len(cells),
            "metadata": {},
            "source": src,
            "outputs": [],
        }
        approx += sum(map(len, src)) + 120
        if rng.random() < 0.3:
            png = base64_blob(rng, rng.randint(5_000, 120_000))
            cell["outputs"] = [
                {"output_type": "display_data", "data": {"image/png": png}, "metadata": {}}
            ]
            approx += len(png)
        cells.append(cell)
    for category, key in plants:
        if category == "notebook-source":
            src = [
                "import anthropic\n",
                f'client = anthropic.Anthropic(api_key="{key}")\n',
                "client.models.list()",
            ]
            cells.insert(
                rng.randrange(len(cells) + 1),
                {
                    "cell_type": "code",
                    "execution_count": 1,
                    "metadata": {},
                    "source": src,
                    "outputs": [],
                },
            )
        else:
            out = {"output_type": "stream", "name": "stdout", "text": ["key loaded:\n", f"{key}\n"]}
            cells.insert(
                rng.randrange(len(cells) + 1),
                {
                    "cell_type": "code",
                    "execution_count": 2,
                    "metadata": {},
                    "source": ["print(os.environ['KEY'])"],
                    "outputs": [out],
                },
            )
    nb = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1).encode()


def _minjs(rng: random.Random, pools: Pools, size: int, plants: Plants) -> str:
    pool = pools["minjs"] * (1 + size // len(pools["minjs"]))
    start = rng.randrange(0, max(1, len(pool) - size))
    text = pool[start : start + size].replace("\n", "")
    for category, key in plants:
        pos = text.find(";", rng.randrange(len(text))) + 1
        text = text[:pos] + snippet(category, key) + text[pos:]
    return "!function(){" + text + "}();\n"


def _binary(rng: random.Random, size: int, plants: Plants) -> bytes:
    data = bytearray(rng.randbytes(size))
    for _, key in plants:
        pos = rng.randrange(len(data))
        data[pos:pos] = b"\x00" + key.encode() + b"\x00"
    return bytes(data)


def _pyc(rng: random.Random, pools: Pools, size: int, plants: Plants) -> bytes:
    consts: list[object] = [w for w in slice_lines(rng, pools["py"], size // 2).split()]
    for _, key in plants:
        consts.insert(rng.randrange(len(consts) + 1), key)
    header = importlib.util.MAGIC_NUMBER + b"\x00" * 12
    return header + marshal.dumps(tuple(consts))


def _sqlite(rng: random.Random, pools: Pools, size: int, plants: Plants) -> bytes:
    fd, tmp = tempfile.mkstemp(suffix=".sqlite")
    os.close(fd)
    try:
        db = sqlite3.connect(tmp)
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
        db.execute("CREATE TABLE settings (id INTEGER PRIMARY KEY, value TEXT)")
        text = slice_lines(rng, pools["md"], size)
        rows = [(line[:30], line) for line in text.splitlines()]
        db.executemany("INSERT INTO notes (title, body) VALUES (?, ?)", rows)
        db.executemany("INSERT INTO settings (value) VALUES (?)", [(k,) for _, k in plants])
        db.commit()
        db.close()
        with open(tmp, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(tmp)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(rng: random.Random, size: int, plants: Plants) -> bytes:
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 512, 512, 8, 6, 0, 0, 0))
    for _, key in plants:
        out += _chunk(b"tEXt", b"Comment\x00api_key=" + key.encode() + b"\n")
    return out + _chunk(b"IDAT", rng.randbytes(size)) + _chunk(b"IEND", b"")


def _members(
    rng: random.Random, pools: Pools, size: int, plants: Plants
) -> list[tuple[str, bytes]]:
    """Archive members: mostly text (it compresses ~4x), some binary, keys in a .env member."""
    members: list[tuple[str, bytes]] = []
    raw = 0
    while raw < size * 3:
        lang = rng.choice(("py", "js", "md", "log"))
        data = slice_lines(rng, pools[lang], rng.randint(5_000, 300_000)).encode()
        if rng.random() < 0.15:
            data = rng.randbytes(rng.randint(1_000, 60_000))
        members.append((f"src/m{len(members):04d}.{lang}", data))
        raw += len(data)
    for i, (_, key) in enumerate(plants):
        members.insert(
            rng.randrange(len(members) + 1),
            (f"deploy/{i}/.env", f"ANTHROPIC_API_KEY={key}\n".encode()),
        )
    return members


def _archive(ext: str, rng: random.Random, pools: Pools, size: int, plants: Plants) -> bytes:
    members = _members(rng, pools, size, plants)
    buf = io.BytesIO()
    if ext == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for name, data in members:
                zf.writestr(name, data)
    elif ext == "log.gz":
        lines = [snippet("log-header", k) for _, k in plants]
        text = insert_lines(rng, slice_lines(rng, pools["log"], size * 4), lines)
        return gzip.compress(text.encode(), compresslevel=6, mtime=0)
    else:
        mode = "w:gz" if ext == "tar.gz" else "w"
        with tarfile.open(
            fileobj=buf, mode=mode, **({"compresslevel": 6} if ext == "tar.gz" else {})
        ) as tf:  # type: ignore[call-overload]
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 1_700_000_000
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def render(
    ext: str, rng: random.Random, pools: Pools, size: int, plants: Plants, extra: list[str]
) -> bytes:
    """The bytes of one file of kind ``ext`` holding ``plants`` (and decoy lines ``extra``)."""
    handlers: dict[str, Callable[[], bytes]] = {
        "ipynb": lambda: _notebook(rng, pools, size, plants),
        "min.js": lambda: _minjs(rng, pools, size, plants).encode(),
        "bin": lambda: _binary(rng, size, plants),
        "pyc": lambda: _pyc(rng, pools, size, plants),
        "sqlite": lambda: _sqlite(rng, pools, size, plants),
        "png": lambda: _png(rng, size, plants),
    }
    if ext in handlers:
        return handlers[ext]()
    if ext in ("zip", "log.gz", "tar", "tar.gz"):
        return _archive(ext, rng, pools, size, plants)
    return _text(ext, rng, pools, size, plants, extra)
