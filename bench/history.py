"""Git repositories with thousands of commits, built in seconds with ``git fast-import``.

Two repositories share one set of blobs: ``hist-1x`` has C commits that each change one or two
files; ``hist-10x`` has those plus 9*C commits that only move files back to earlier versions
(no new blob). Commits x files grows tenfold, distinct blobs do not: a scanner whose cost follows
distinct blobs takes about as long on both.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.keys import make_key, sha1, sha256
from bench.text import insert_lines, make_pools, slice_lines

VERSION = 2
_WHO = "Bench <bench@example.invalid>"


@dataclass
class HistoryManifest:
    """What one history repository holds."""

    seed: int
    commits: int
    files: int
    blobs: int = 0
    blob_bytes: int = 0
    version: int = VERSION
    plants: list[dict[str, str]] = field(default_factory=list)


class _Stream:
    """Writes a fast-import stream: blobs and commits with marks."""

    def __init__(self, fh: object) -> None:
        self.fh = fh
        self.mark = 0
        self.time = 1_600_000_000

    def _w(self, data: bytes) -> None:
        self.fh.write(data)  # type: ignore[attr-defined]

    def blob(self, data: bytes) -> int:
        self.mark += 1
        self._w(b"blob\nmark :%d\ndata %d\n" % (self.mark, len(data)) + data + b"\n")
        return self.mark

    def commit(self, message: str, changes: list[tuple[str, int | None]]) -> None:
        self.mark += 1
        self.time += 600
        msg = message.encode()
        head = (
            f"commit refs/heads/main\nmark :{self.mark}\n"
            f"author {_WHO} {self.time} +0000\ncommitter {_WHO} {self.time} +0000\n"
        ).encode()
        self._w(head + b"data %d\n" % len(msg) + msg + b"\n")
        for path, mark in changes:
            self._w(f"M 100644 :{mark} {path}\n".encode() if mark else f"D {path}\n".encode())
        self._w(b"\n")


def _path(i: int) -> str:
    ext = ("py", "js", "md", "yaml", "txt")[i % 5]
    return f"svc{i % 23:02d}/mod{i % 7}/f{i:04d}.{ext}"


def build(
    out: Path, seed: int, commits: int, files: int = 400, factor: int = 10
) -> dict[str, HistoryManifest]:
    """Build ``out/hist-1x`` and ``out/hist-{factor}x``; reuse them when already built."""
    names = ("hist-1x", f"hist-{factor}x")
    meta = out / "history.manifest.json"
    if meta.exists() and all((out / n).is_dir() for n in names):
        raw = json.loads(meta.read_text())
        if all(
            raw.get(n, {}).get("version") == VERSION
            and raw[n]["seed"] == seed
            and raw[n]["commits"] in (commits, commits * factor)
            for n in names
        ):
            return {n: HistoryManifest(**raw[n]) for n in names}
    rng = random.Random(seed)
    pools = make_pools(rng, 600_000)
    plants: list[dict[str, str]] = []
    stream_path = out / "history.fi"
    out.mkdir(parents=True, exist_ok=True)
    versions: dict[str, list[int]] = {}
    with open(stream_path, "wb") as fh:
        s = _Stream(fh)
        texts = {
            _path(i): slice_lines(
                rng, pools[("py", "js", "md", "yaml", "py")[i % 5]], rng.randint(1_500, 25_000)
            )
            for i in range(files)
        }
        first = []
        for path, text in texts.items():
            m = s.blob(text.encode())
            versions[path] = [m]
            first.append((path, m))
        s.commit("initial import", first)
        key_every = max(10, commits // 60)
        for c in range(1, commits):
            changes: list[tuple[str, int | None]] = []
            if c % key_every == 0:
                # A key committed by mistake; the next change to that file drops it again.
                path = rng.choice(list(texts))
                key = make_key(rng)
                line = f'client = Anthropic(api_key="{key}")'
                if c % (key_every * 3) == 0:
                    # In a binary blob: `git log -p` shows only "Binary files differ".
                    bpath = f"assets/blob{c}.bin"
                    changes.append(
                        (bpath, s.blob(rng.randbytes(3000) + b"\x00" + key.encode() + b"\x00"))
                    )
                    plants.append(
                        {
                            "category": "history-binary",
                            "path": bpath,
                            "sha256": sha256(key),
                            "sha1": sha1(key),
                        }
                    )
                else:
                    changes.append((path, s.blob(insert_lines(rng, texts[path], [line]).encode())))
                    plants.append(
                        {
                            "category": "history-text",
                            "path": path,
                            "sha256": sha256(key),
                            "sha1": sha1(key),
                        }
                    )
            else:
                for path in rng.sample(list(texts), rng.randint(1, 2)):
                    lang = ("py", "js", "md", "yaml")[rng.randrange(4)]
                    texts[path] = insert_lines(
                        rng, texts[path], [slice_lines(rng, pools[lang], 300).rstrip("\n")]
                    )
                    m = s.blob(texts[path].encode())
                    versions[path].append(m)
                    changes.append((path, m))
            s.commit(f"change {c}", changes)
        base_mark = s.mark
    with open(out / "history-extra.fi", "wb") as fh:
        s2 = _Stream(fh)
        s2.mark, s2.time = base_mark, s.time
        paths = list(versions)
        for c in range(commits * (factor - 1)):
            # Move a file back to an earlier version: a new commit, no new blob.
            picked = rng.sample(paths, rng.randint(1, 2))
            s2.commit(f"revert {c}", [(p, rng.choice(versions[p])) for p in picked])
    result: dict[str, HistoryManifest] = {}
    for name, streams in (
        (names[0], [stream_path]),
        (names[1], [stream_path, out / "history-extra.fi"]),
    ):
        repo = out / name
        if repo.exists():
            shutil.rmtree(repo)
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        data = b"".join(p.read_bytes() for p in streams)
        subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=data, check=True)
        subprocess.run(["git", "-C", str(repo), "checkout", "-q", "-f", "main"], check=True)
        check = subprocess.run(
            [
                "git",
                "-C",
                str(repo),
                "cat-file",
                "--batch-all-objects",
                "--batch-check=%(objecttype) %(objectsize)",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
        sizes = [int(line.split()[1]) for line in check if line.startswith("blob ")]
        n_commits = commits if name == names[0] else commits * factor
        result[name] = HistoryManifest(
            seed, n_commits, files, len(sizes), sum(sizes), plants=plants
        )
    meta.write_text(json.dumps({n: asdict(m) for n, m in result.items()}, indent=1))
    return result
