"""Sharing a scan among processes: units of work by size, large files split into ranges."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from keyguard.scanner.detect import BINARY_SNIFF, LEFT, RIGHT, Hit, is_binary, scan_range
from keyguard.scanner.needles import sniff
from keyguard.scanner.sources import Target
from keyguard.scanner.unread import Unread

#: Files at least this large are split into ranges that different workers scan.
SPLIT_BYTES = 64 << 20
#: Bytes per range of a split file.
RANGE_BYTES = 32 << 20
#: Target bytes per batch of whole files; the last batches are smaller so workers end together.
BATCH_BYTES = 8 << 20
BATCH_FILES = 1024

OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


@dataclass(frozen=True)
class Range:
    """``[start, end)`` of a large plain file, with its binary verdict taken from its head."""

    target: Target
    start: int
    end: int
    binary: bool


#: A unit of work: a batch of whole targets, or one range of a large file.
Unit = list[Target] | Range


def _head(target: Target) -> bytes | None:
    assert target.fs_path is not None
    try:
        fd = os.open(target.fs_path, OPEN_FLAGS)
    except OSError:
        return None
    try:
        return os.pread(fd, BINARY_SNIFF, 0)
    except OSError:
        return None
    finally:
        os.close(fd)


def _split(target: Target) -> list[Range] | None:
    """Ranges of a large plain file; None for an archive or an unreadable head (read whole)."""
    head = _head(target)
    if head is None or sniff(head) is not None:
        return None
    binary = is_binary(head)
    starts = range(0, target.size, RANGE_BYTES)
    return [Range(target, s, min(s + RANGE_BYTES, target.size), binary) for s in starts]


def plan(targets: list[Target], workers: int) -> list[Unit]:
    """Units of work, largest first, so that the last ones to finish are small."""
    units: list[Unit] = []
    rest: list[Target] = []
    for t in targets:
        ranges = _split(t) if t.fs_path is not None and t.size >= SPLIT_BYTES else None
        if ranges is None:
            rest.append(t)
        else:
            units.extend(ranges)
    total = sum(t.size for t in rest)
    per = max(1 << 20, min(BATCH_BYTES, total // (workers * 6) + 1))
    current: list[Target] = []
    size = 0
    done = 0
    for t in sorted(rest, key=lambda t: -t.size):
        current.append(t)
        size += t.size
        # Shrink batches towards the end, so no worker is left alone with a big one.
        limit = max(1 << 18, min(per, (total - done) // (workers * 4)))
        if size >= limit or len(current) >= BATCH_FILES:
            units.append(current)
            done += size
            current, size = [], 0
    if current:
        units.append(current)
    return units


def stream_plan(targets: Iterable[Target], workers: int) -> Iterator[Unit]:
    """Units of work while ``targets`` is still being listed, so workers scan while the walk
    goes on: files in batches of about ``BATCH_BYTES`` as they are found, a large file
    alone (or split into ranges). Blobs and the files left when the listing ends are planned
    largest first, so the last units to finish are small ones."""
    held: list[Target] = []
    batch: list[Target] = []
    size = 0
    for t in targets:
        if t.fs_path is None:
            held.append(t)
        elif t.size >= BATCH_BYTES:
            yield from plan([t], workers)
        else:
            batch.append(t)
            size += t.size
            if size >= BATCH_BYTES or len(batch) >= BATCH_FILES:
                yield batch
                batch, size = [], 0
    yield from plan(held + batch, workers)


def read_range(r: Range) -> tuple[list[Hit], int, int, Unread | None]:
    """Scan one range: (hits with range-relative lines, newlines, last newline, note)."""
    assert r.target.fs_path is not None
    try:
        fd = os.open(r.target.fs_path, OPEN_FLAGS)
    except OSError as exc:
        return [], 0, -1, Unread(r.target.path, "unreadable", f"cannot read ({exc.strerror})")
    context = min(LEFT, r.start)
    pos = r.start - context
    stop = r.end + RIGHT

    def read(into: memoryview) -> int:
        nonlocal pos
        k = min(len(into), stop - pos)
        if k <= 0:
            return 0
        got = os.preadv(fd, [into[:k]], pos)
        pos += got
        return got

    try:
        found = scan_range(read, start=r.start, end=r.end, context=context, binary=r.binary)
    except OSError as exc:
        return [], 0, -1, Unread(r.target.path, "unreadable", f"read failed ({exc.strerror})")
    finally:
        os.close(fd)
    return found.hits, found.newlines, found.last_newline, None


@dataclass
class RangeHits:
    """What one range of a split file found, before its lines are made file-absolute."""

    start: int
    hits: list[Hit]
    newlines: int
    last_newline: int


def join_ranges(parts: list[RangeHits]) -> list[Hit]:
    """Hits of all ranges of one file with file-absolute lines and columns."""
    out: list[Hit] = []
    lines_before = 0
    last_nl = -1
    for part in sorted(parts, key=lambda p: p.start):
        for hit in part.hits:
            if hit.line == 1:  # no newline between the range's start and the hit
                hit.column += part.start - 1 - last_nl
            hit.line += lines_before
            out.append(hit)
        lines_before += part.newlines
        if part.last_newline >= 0:
            last_nl = part.last_newline
    return out
