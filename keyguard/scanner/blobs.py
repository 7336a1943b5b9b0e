"""Reading git objects for a scan: blobs (and trees, for the names in them) through one
``git cat-file --batch``, each scanned as it streams by; a corrupt or missing object is named
as not read, and the rest is still read."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Generator, Iterator
from typing import IO, Any

from keyguard.scanner.archives import ItemResult, scan_item
from keyguard.scanner.detect import scan_bytes
from keyguard.scanner.sources import Target, git_env
from keyguard.scanner.unread import Unread

#: What reading one target gave: what it holds, or why it was not read (or both).
TargetResult = tuple[Target, "ItemResult | None", "Unread | None"]


class _BlobReader:
    """Exactly ``size`` bytes of a blob from ``git cat-file --batch``'s output."""

    def __init__(self, out: IO[bytes], size: int) -> None:
        self._out = out
        self.left = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(b)[: self.left]
        got = self._out.readinto(view)  # type: ignore[attr-defined]
        self.left -= got
        return int(got)

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self._out.read(n) if n else b""
        self.left -= len(data)
        return data

    def drain(self) -> None:
        while self.left > 0:
            if not self.read(1 << 20):
                break


def scan_blobs(targets: list[Target]) -> Iterator[TargetResult]:
    """Each blob read by ``git cat-file --batch``; a corrupt blob stops git, so it is named
    as not read and a new ``cat-file`` goes on with the rest."""
    todo = targets
    while todo:
        done = yield from _cat_file(todo)
        todo = todo[done:]


def _cat_file(targets: list[Target]) -> Generator[TargetResult, None, int]:
    """Results of ``targets`` in order until git stops; returns how many were handled."""
    repo = targets[0].repo
    proc = subprocess.Popen(
        ["git", "cat-file", "--batch"],
        env=git_env(),  # a replaced blob would show other content
        cwd=repo,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def feed() -> None:
        try:
            for t in targets:
                stdin.write(f"{t.oid}\n".encode())
            stdin.close()
        except OSError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    handled = 0
    try:
        for target in targets:
            handled += 1
            raw = proc.stdout.readline()
            header = raw.split()
            if not raw:
                yield target, None, _bad_blob(target, "corrupt: git could not read it")
                break
            if target.tree and len(header) == 3 and header[1] == b"tree":
                data = proc.stdout.read(int(header[2]) + 1)
                yield target, _tree_names(data[:-1]), None
                continue
            if len(header) != 3 or header[1] != b"blob":
                yield target, None, _bad_blob(target, "missing from the repository")
                continue
            reader = _BlobReader(proc.stdout, int(header[2]))
            item = scan_item(reader, target.path, int(header[2]))  # type: ignore[arg-type]
            reader.drain()
            if reader.left > 0 or proc.stdout.read(1) != b"\n":
                yield target, item, _bad_blob(target, "corrupt: git stopped inside it")
                break
            yield target, item, None
    finally:
        proc.kill()
        writer.join()
        proc.stdout.close()
        proc.wait()
    return handled


def _tree_names(data: bytes) -> ItemResult:
    """Keys in the entry names of a raw git tree (``MODE NAME\\0`` + 20-byte id, repeated)."""
    item = ItemResult()
    if b"ant" not in data:
        return item
    pos = 0
    while pos < len(data):
        nul = data.find(b"\0", pos)
        if nul < 0:
            break
        name = data[data.find(b" ", pos, nul) + 1 : nul]
        pos = nul + 21
        if b"ant" in name:
            for hit in scan_bytes(name):
                hit.line, hit.encoding = 0, "file name"
                item.hits.append((os.fsdecode(name), hit))
    return item


def _bad_blob(target: Target, why: str) -> Unread:
    return Unread(target.path, "missing-blob", f"blob {target.oid} {why}")
