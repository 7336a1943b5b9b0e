"""The hook's quick pass: prove a staged scan clean with the least work, or hand it over.

A commit almost never holds a key, and the hook runs on every one of them, so it should cost
little more than starting Python. This pass lists the staged blobs, reads them through one
``git cat-file --batch`` and runs the scanner's own needle search (``needles.py``) over each
blob and its path. Every key the full scanner can find starts from one of those needles, or
sits in an archive, so a blob without any needle that is no archive holds no key. It never
decides that something *is* a key: at the first needle, archive, missing blob or surprise it
returns None and the full scanner does the whole scan again. It imports os, subprocess and
the needle table only (no dataclasses, typing, hashlib, json, archives or pool).
"""

from __future__ import annotations

import os
import subprocess
import time

from keyguard.scanner.needles import ARCHIVE_FIRST_BYTES, FIND_NEEDLES, SPLIT_MARK_RE, sniff

#: Above this many staged bytes the full scanner (with its pool) is worth its start-up.
MAX_BYTES = 64 << 20


def _clean(data: bytes) -> bool:
    """True when ``data`` holds no needle and does not start like an archive."""
    if data and (data[0] in ARCHIVE_FIRST_BYTES or data[257:258] == b"u") and sniff(data[:512]):
        return False
    return not any(needle in data for needle in FIND_NEEDLES) and not SPLIT_MARK_RE.search(data)


#: A replaced blob (``git replace``) would show other content than the one committed.
_GIT_ENV = {**os.environ, "GIT_NO_REPLACE_OBJECTS": "1"}


def staged_clean() -> tuple[int, int, float] | None:
    """(files, bytes, seconds) when the staged content is certainly clean, else None."""
    started = time.perf_counter()
    try:
        diff = subprocess.run(
            ["git", "diff", "--cached", "--raw", "-z", "--no-abbrev", "--no-renames"],
            env=_GIT_ENV,
            capture_output=True,
            check=False,
        )
    except OSError:
        return None
    if diff.returncode != 0:
        return None
    parts = diff.stdout.split(b"\0")
    oids: list[bytes] = []
    for i in range(0, len(parts) - 1, 2):
        fields = parts[i][1:].split(b" ")
        if not parts[i].startswith(b":") or len(fields) < 5:
            return None
        if fields[1] not in (b"100644", b"100755", b"120000") or not fields[3].strip(b"0"):
            continue  # a deletion or a submodule: nothing to read
        if not _clean(parts[i + 1]):
            return None  # a needle in the path
        oids.append(fields[3])
    if not oids:
        return 0, 0, time.perf_counter() - started
    seen = _read_blobs(oids)
    if seen is None:
        return None
    return len(oids), seen, time.perf_counter() - started


def _read_blobs(oids: list[bytes]) -> int | None:
    """Total bytes of the blobs when each is clean; None at the first doubt."""
    import threading

    try:
        proc = subprocess.Popen(
            ["git", "cat-file", "--batch"],
            env=_GIT_ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def feed() -> None:
        try:
            stdin.write(b"\n".join(oids) + b"\n")
            stdin.close()
        except OSError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    total = 0
    try:
        for oid in oids:
            header = stdout.readline().split(b" ")
            if len(header) != 3 or header[0] != oid or header[1] != b"blob":
                return None  # missing or corrupt: the full scanner names it
            size = int(header[2])
            total += size
            if total > MAX_BYTES:
                return None
            data = stdout.read(size + 1)
            if len(data) != size + 1 or not _clean(data[:size]):
                return None
        return total
    finally:
        proc.kill()
        writer.join()
        stdout.close()
        proc.wait()
