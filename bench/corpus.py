"""The working-tree corpus: source, notebooks, minified JS, binaries and archives, keys planted.

Deterministic for a given (seed, size): every file gets its own RNG seeded from the corpus seed
and its index. The manifest records each planted key's fingerprints (SHA-256 for keyguard,
SHA-1 for detect-secrets), never the key itself.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import formats
from bench.keys import decoys, make_key, sha1, sha256
from bench.text import make_pools

#: Bump when the generator changes, so a cached corpus is rebuilt.
VERSION = 3

#: extension -> (share of the corpus bytes, smallest file, largest file)
SHARES: dict[str, tuple[float, int, int]] = {
    "py": (0.12, 2_000, 80_000),
    "js": (0.06, 2_000, 80_000),
    "yaml": (0.03, 500, 20_000),
    "md": (0.05, 1_000, 60_000),
    "log": (0.07, 20_000, 1_500_000),
    "env": (0.002, 200, 2_000),
    "sh": (0.008, 300, 6_000),
    "ipynb": (0.12, 30_000, 2_500_000),
    "min.js": (0.13, 100_000, 3_000_000),
    "bin": (0.06, 20_000, 6_000_000),
    "pyc": (0.02, 5_000, 400_000),
    "sqlite": (0.03, 50_000, 3_000_000),
    "png": (0.04, 20_000, 2_000_000),
    "zip": (0.09, 50_000, 6_000_000),
    "log.gz": (0.05, 50_000, 4_000_000),
    "tar": (0.04, 50_000, 6_000_000),
    "tar.gz": (0.03, 50_000, 4_000_000),
}

#: planted category -> extension of the files that carry it. Each is a way keys really leak.
CATEGORIES: dict[str, str] = {
    "py-assign": "py",
    "py-split-literal": "py",
    "js-split-prefix": "js",
    "js-header": "js",
    "dotenv": "env",
    "yaml-value": "yaml",
    "k8s-secret-base64": "yaml",
    "md-url-ampersand": "md",
    "md-url-fragment": "md",
    "md-brackets": "md",
    "sh-admin-key": "sh",
    "log-header": "log",
    "log-basic-auth-base64": "log",
    "notebook-source": "ipynb",
    "notebook-output": "ipynb",
    "minified-js": "min.js",
    "minified-js-url": "min.js",
    "binary-raw": "bin",
    "pyc-const": "pyc",
    "sqlite-row": "sqlite",
    "png-text-chunk": "png",
    "zip-member": "zip",
    "gzip-log": "log.gz",
    "tar-member": "tar",
    "tar-gz-member": "tar.gz",
}
ADMIN_CATEGORIES = {"sh-admin-key"}


@dataclass(frozen=True)
class Plant:
    """One planted key: where, how, and its fingerprints."""

    category: str
    path: str
    sha256: str
    sha1: str


@dataclass
class Manifest:
    """What the generator made: enough to score any tool's recall."""

    seed: int
    size_mb: float
    version: int = VERSION
    files: int = 0
    bytes: int = 0
    decoys: int = 0
    plants: list[Plant] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Manifest:
        raw = json.loads(path.read_text())
        raw["plants"] = [Plant(**p) for p in raw["plants"]]
        return cls(**raw)


def plants_per_category(size_mb: float) -> int:
    """How many keys each category gets: about one per 20 MB of corpus, at least one."""
    return max(1, round(size_mb / 20))


def _plan(rng: random.Random, total: int) -> list[tuple[str, int]]:
    """(extension, target size) for every file, each extension filling its share."""
    files: list[tuple[str, int]] = []
    for ext, (share, lo, hi) in SHARES.items():
        budget = int(total * share)
        got = 0
        while got < budget or not any(e == ext for e, _ in files):
            # Log-uniform sizes: many small files, a few big ones, like a real repo.
            size = int(lo * (hi / lo) ** rng.random())
            size = max(lo, min(size, budget - got)) if budget - got > lo else lo
            files.append((ext, size))
            got += size
    rng.shuffle(files)
    return files


def generate(out: Path, size_mb: float, seed: int = 20251125) -> Manifest:
    """Write the corpus under ``out/`` and return its manifest (reused when already built)."""
    manifest_path = out.with_name(out.name + ".manifest.json")
    if manifest_path.exists() and out.is_dir():
        old = Manifest.load(manifest_path)
        if (old.seed, old.size_mb, old.version) == (seed, size_mb, VERSION):
            return old
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = random.Random(seed)
    pools = make_pools(rng, pool_bytes=2_000_000)
    files = _plan(rng, int(size_mb * 1_000_000))
    n = plants_per_category(size_mb)
    by_ext: dict[str, list[int]] = {}
    for i, (ext, _) in enumerate(files):
        by_ext.setdefault(ext, []).append(i)
    keyed: dict[int, list[tuple[str, str]]] = {}
    for category, ext in CATEGORIES.items():
        kind = "admin" if category in ADMIN_CATEGORIES else "api"
        for _ in range(n):
            keyed.setdefault(rng.choice(by_ext[ext]), []).append((category, make_key(rng, kind)))
    decoy_every = max(1, len(by_ext["md"]) // max(1, round(size_mb / 20)))
    manifest = Manifest(seed=seed, size_mb=size_mb)
    for i, (ext, size) in enumerate(files):
        frng = random.Random(f"{seed}:{i}")
        rel = Path(f"proj{i % 17:02d}/pkg{i % 101:03d}/f{i:05d}.{ext}")
        extra: list[str] = []
        if ext == "md" and by_ext["md"].index(i) % decoy_every == 0:
            extra = decoys(frng)
            manifest.decoys += len(extra)
        plants = keyed.get(i, [])
        data = formats.render(ext, frng, pools, size, plants, extra)
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        manifest.files += 1
        manifest.bytes += len(data)
        for category, key in plants:
            manifest.plants.append(Plant(category, str(rel), sha256(key), sha1(key)))
    manifest.save(manifest_path)
    return manifest
