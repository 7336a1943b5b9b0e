"""One huge file (default 2 GB): log lines, then a 256 MB stretch with no newline, keys planted.

Keys sit near the start, inside the newline-free stretch, straddling the middle (every
power-of-two chunk size up to half the file splits it) and at the very end with no trailing newline.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from bench.keys import make_key, sha256
from bench.text import make_pools

VERSION = 1
_BLOCK = 8 << 20


def generate(path: Path, size: int, seed: int = 2) -> list[str]:
    """Write ``path`` (``size`` bytes); return the SHA-256 of each planted key (cached)."""
    meta = path.with_suffix(".manifest.json")
    if meta.exists() and path.exists():
        raw = json.loads(meta.read_text())
        if raw["version"] == VERSION and raw["size"] == size and raw["seed"] == seed:
            return list(raw["plants"])
    rng = random.Random(seed)
    pools = make_pools(rng, _BLOCK // 4)
    lines = (pools["log"] + pools["py"] + pools["md"] + pools["yaml"]).encode()[:_BLOCK]
    lines += b"\n" * (_BLOCK - len(lines))
    flat = (pools["minjs"].replace("\n", "") * 8).encode()[:_BLOCK]
    flat += b";" * (_BLOCK - len(flat))
    giant = (size // 2, min(size // 2 + (256 << 20), size - _BLOCK))
    keys = [make_key(rng) for _ in range(4)]
    spots = [
        (1000, b"\n" + keys[0].encode() + b"\n"),
        ((giant[0] + giant[1]) // 2, b'"' + keys[1].encode() + b'"'),
        # size // 2 is a multiple of every power of two up to it (for power-of-two sizes).
        (size // 2 - 50, b" " + keys[2].encode() + b" "),
        (size - len(keys[3]) - 1, b" " + keys[3].encode()),
    ]
    with open(path, "wb") as fh:
        for start in range(0, size, _BLOCK):
            end = min(start + _BLOCK, size)
            block = bytearray(flat if giant[0] <= start < giant[1] else lines)[: end - start]
            for off, data in spots:
                lo, hi = max(off, start), min(off + len(data), end)
                if lo < hi:
                    block[lo - start : hi - start] = data[lo - off : hi - off]
            fh.write(block)
    plants = [sha256(k) for k in keys]
    meta.write_text(json.dumps({"version": VERSION, "size": size, "seed": seed, "plants": plants}))
    return plants
