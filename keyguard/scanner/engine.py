"""Running a scan: read every target (in a process pool when it pays), then suppress and verify."""

from __future__ import annotations

import bisect
import io
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO

from keyguard.keys import Secret, redact
from keyguard.scanner import accel
from keyguard.scanner.archives import ItemResult, scan_item
from keyguard.scanner.blobs import TargetResult, scan_blobs
from keyguard.scanner.detect import Hit, scan_bytes
from keyguard.scanner.needles import (
    ARCHIVE_FIRST_BYTES,
    FIND_NEEDLES,
    NEEDLES,
    SPLIT_MARK_RE,
    sniff,
)
from keyguard.scanner.parallel import (
    OPEN_FLAGS,
    Range,
    RangeHits,
    Unit,
    join_ranges,
    read_range,
    stream_plan,
)
from keyguard.scanner.rules import RULES_BY_ID, Rule
from keyguard.scanner.sources import Target
from keyguard.scanner.unread import Unread

#: Below this many bytes a pool costs more than it saves. (Measured CPU on a 54 MB tree: 0.12 s
#: of start-up and imports, 0.2 s of scanning; on two idle cores the pool halves the second.)
POOL_MIN_BYTES = 24 << 20
#: Files up to this size are read into one shared buffer and searched together.
SMALL_BYTES = 256 << 10
#: Bytes of small files searched per pass.
PACK_BYTES = 1 << 20

#: The ``--verify`` seam: classifies a key as "live", "revoked" or "unknown".
Verifier = Callable[[Secret], str]


@dataclass
class Finding:
    """A key at a place. ``secret`` never leaves memory; outputs use ``redacted``."""

    rule: Rule
    path: str
    line: int
    column: int
    secret: Secret = field(repr=False)
    encoding: str = "plain"
    commit: str | None = None
    allowed: bool = False
    verdict: str | None = None

    @property
    def redacted(self) -> str:
        return self.secret.redacted

    @property
    def fingerprint(self) -> str:
        return self.secret.fingerprint


@dataclass
class ScanResult:
    """Findings after suppressions, plus what was scanned and what was suppressed or skipped."""

    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    unread: list[Unread] = field(default_factory=list)
    allowed: int = 0
    baselined: int = 0
    excluded: int = 0

    def note(self, notes: Iterable[str | Unread]) -> None:
        """Add notes, keeping what was not read apart."""
        for n in notes:
            (self.unread if isinstance(n, Unread) else self.notes).append(n)  # type: ignore[arg-type]


# A finding as it crosses from a worker process: plain data, the key as text.
_Row = tuple[str, str, int, int, str, str, str | None, bool]


def _rows(target: Target, item: ItemResult) -> list[_Row]:
    rows: list[_Row] = []
    for member, hit in item.hits:
        path = f"{target.path}!{member}" if member else target.path
        if target.tree:  # a key in the name of an entry of a git tree
            path = f"{target.path}/{member}" if target.path else member
        rows.append(_row(path, hit, target.commit))
    return rows


def _name_rows(target: Target) -> list[_Row]:
    """Keys in a target's path, reported at line 0 of the file or folder whose name holds them
    (so a folder's key is one finding, whatever the files under it)."""
    path = target.path
    if "ant" not in path:
        return []
    rows: list[_Row] = []
    for hit in scan_bytes(os.fsencode(path)):
        end = path.find("/", len(os.fsdecode(os.fsencode(path)[: hit.offset + len(hit.key)])))
        hit.line, hit.encoding = 0, "file name"
        rows.append(_row(path if end < 0 else path[:end], hit, target.commit))
    return rows


def _row(path: str, hit: Hit, commit: str | None) -> _Row:
    key = hit.key.decode("ascii")
    return (hit.rule.id, path, hit.line, hit.column, key, hit.encoding, commit, hit.allowed)


def _cannot(target: Target, exc: OSError, what: str = "cannot read") -> Unread:
    return Unread(target.path, "unreadable", f"{what} ({exc.strerror})")


def _scan_file(target: Target) -> tuple[ItemResult | None, Unread | None]:
    assert target.fs_path is not None
    try:
        fd = os.open(target.fs_path, OPEN_FLAGS)
    except OSError as exc:
        return None, _cannot(target, exc)
    with open(fd, "rb", buffering=0) as f:
        try:
            return scan_item(f, target.path, os.fstat(fd).st_size, fd=fd), None
        except OSError as exc:
            return None, _cannot(target, exc, "read failed")


class _Pack:
    """Small files read back to back into one buffer (a NUL between them, so no key or
    encoding runs across two), searched with one pass per needle; only a file that holds a
    needle is scanned on its own. Most files hold none, so they cost a read and are only
    counted."""

    def __init__(self, out: list[TargetResult]) -> None:
        self.buf = bytearray(PACK_BYTES + SMALL_BYTES + 2)
        self.view = memoryview(self.buf)
        self.pos = 0
        self.starts: list[int] = []
        self.files: list[Target] = []
        self.out = out
        self.clean_files = 0  # files that held no needle: counted, never listed
        self.clean_bytes = 0

    def add(self, target: Target) -> bool:
        """Read a small file into the pack; False when it must be scanned on its own."""
        assert target.fs_path is not None
        try:
            fd = os.open(target.fs_path, OPEN_FLAGS)
        except OSError as exc:
            self.out.append((target, None, _cannot(target, exc)))
            return True
        try:
            n = os.readv(fd, [self.view[self.pos : self.pos + target.size + 1]])
        except OSError as exc:
            self.out.append((target, None, _cannot(target, exc, "read failed")))
            return True
        finally:
            os.close(fd)
        # Only a file whose first byte (or byte 257, tar's "ustar") could start an archive is
        # sniffed: most are not, and this runs once per small file.
        if n > target.size or (
            n
            and (self.buf[self.pos] in ARCHIVE_FIRST_BYTES or self.buf[self.pos + 257] == 0x75)
            and sniff(self.view[self.pos : self.pos + min(n, 512)]) is not None
        ):
            return False  # it grew, or it is an archive: the full path handles both
        self.starts.append(self.pos)
        self.files.append(target)
        self.buf[self.pos + n] = 0
        self.pos += n + 1
        if self.pos >= PACK_BYTES:
            self.flush()
        return True

    def flush(self) -> None:
        buf, end, starts = self.buf, self.pos, self.starts
        suspects: set[int] = set()
        fast = accel.finder(NEEDLES)
        if fast is not None:
            with self.view[:end] as window:
                for _, i in fast.find(window):
                    suspects.add(bisect.bisect_right(starts, i) - 1)
        for needle in () if fast is not None else (*FIND_NEEDLES, None):
            i = _first(buf, needle, 0, end)
            while i != -1:
                k = bisect.bisect_right(starts, i) - 1
                suspects.add(k)
                nxt = starts[k + 1] if k + 1 < len(starts) else end
                i = _first(buf, needle, nxt, end)
        suspect_bytes = 0
        for k in sorted(suspects):
            lo = starts[k]
            hi = (starts[k + 1] if k + 1 < len(starts) else end) - 1
            data = bytes(buf[lo:hi])
            suspect_bytes += len(data)
            item = scan_item(io.BytesIO(data), self.files[k].path, len(data))
            self.out.append((self.files[k], item, None))
        # The rest are only counted; each file's bytes are followed by one NUL in the pack.
        self.clean_files += len(starts) - len(suspects)
        self.clean_bytes += end - len(starts) - suspect_bytes
        self.pos = 0
        self.starts, self.files = [], []


def _first(buf: bytearray, needle: bytes | None, start: int, end: int) -> int:
    """Where ``needle`` (None: any family mark) first starts in ``buf[start:end]``, or -1."""
    if needle is not None:
        return buf.find(needle, start, end)
    m = SPLIT_MARK_RE.search(buf, start, end)
    return -1 if m is None else m.start()


def _scan_batch(targets: list[Target]) -> tuple[list[_Row], int, int, list[str | Unread]]:
    """Scan a batch of targets; returns (finding rows, files, bytes, notes)."""
    rows: list[_Row] = []
    files = nbytes = 0
    notes: list[str | Unread] = []
    results: list[TargetResult] = []
    pack = _Pack(results)
    blobs: list[Target] = []
    for t in targets:
        rows.extend(_name_rows(t))
        if t.fs_path is None:
            blobs.append(t)
        elif t.size > SMALL_BYTES or not pack.add(t):
            results.append((t, *_scan_file(t)))
    pack.flush()
    files, nbytes = pack.clean_files, pack.clean_bytes
    if blobs:
        results.extend(scan_blobs(blobs))
    for target, item, note in results:
        if note is not None:
            notes.append(note)
        if item is None:
            continue
        if target.tree:
            rows.extend(_rows(target, item))
            continue
        files += 1
        nbytes += item.bytes
        notes.extend(item.notes)
        notes.extend(item.unread)
        rows.extend(_rows(target, item))
    return rows, files, nbytes, notes


_Output = tuple[list[_Row], int, int, list[str | Unread], tuple[Range, RangeHits] | None]


def _work(unit: Unit) -> _Output:
    """One unit of work in a pool worker."""
    if isinstance(unit, Range):
        hits, newlines, last, note = read_range(unit)
        notes: list[str | Unread] = [note] if note is not None and unit.start == 0 else []
        ok = note is None
        first = int(ok and unit.start == 0)
        part = RangeHits(unit.start, hits, newlines, last)
        return (
            _name_rows(unit.target) if unit.start == 0 else [],
            first,
            (unit.end - unit.start) if ok else 0,
            notes,
            (unit, part),
        )
    return (*_scan_batch(unit), None)


def scan_targets(targets: Iterable[Target], *, jobs: int | None = None) -> ScanResult:
    """Read every target once. Past ``POOL_MIN_BYTES`` the rest goes to a pool of processes,
    one per core, while ``targets`` is still being produced (the folder walk runs alongside the
    scan); large files are split into ranges that different workers read."""
    result = ScanResult()
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    pending = iter(targets)
    head: list[Target] = []
    total = 0
    pooled = workers > 1 and _can_fork()
    for t in pending if pooled else ():
        head.append(t)
        total += t.size
        if total >= POOL_MIN_BYTES:
            break
    outputs: list[_Output]
    if pooled and total >= POOL_MIN_BYTES and head:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        units = stream_plan(itertools.chain(head, pending), workers)
        with ctx.Pool(workers) as pool:
            outputs = list(pool.imap_unordered(_work, units))
    else:
        head.extend(pending)
        outputs = [_work(head)] if head else []
    split: dict[Target, list[RangeHits]] = {}
    for rows, files, nbytes, notes, ranged in outputs:
        result.files += files
        result.bytes += nbytes
        result.note(notes)
        if ranged is not None:
            split.setdefault(ranged[0].target, []).append(ranged[1])
        for rule_id, path, line, column, key, encoding, commit, allowed in rows:
            result.findings.append(
                Finding(
                    RULES_BY_ID[rule_id], path, line, column, Secret(key), encoding, commit, allowed
                )
            )
    for target, parts in split.items():
        for hit in join_ranges(parts):
            rule_id, path, line, column, key, encoding, commit, allowed = _row(
                target.path, hit, target.commit
            )
            result.findings.append(
                Finding(
                    RULES_BY_ID[rule_id], path, line, column, Secret(key), encoding, commit, allowed
                )
            )
    return result


def _can_fork() -> bool:
    return sys.platform != "win32" and hasattr(os, "fork")


def scan_stdin(stream: IO[bytes], label: str = "<stdin>") -> ScanResult:
    """Scan a byte stream (``keyguard scan -``)."""
    item = scan_item(stream, label)
    result = ScanResult(files=1, bytes=item.bytes, notes=item.notes, unread=item.unread)
    target = Target(label, item.bytes)
    for rule_id, path, line, column, key, encoding, commit, allowed in _rows(target, item):
        result.findings.append(
            Finding(
                RULES_BY_ID[rule_id], path, line, column, Secret(key), encoding, commit, allowed
            )
        )
    return result


def masked(text: str) -> str:
    """``text`` (a path, a ref name, a note) with every key in it redacted: the bytes each key
    was found in (its base64, UTF-16 or split text as well as the plain key) become the key's
    redacted form, so nothing left decodes to the key."""
    data = os.fsencode(text)
    for _ in range(4):  # what a mask leaves is scanned again (two keys in one run, say)
        hits = scan_bytes(data)
        if not hits:
            break
        data = _mask_hits(data, hits)
    return os.fsdecode(data)


_B64_TEXT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")


def _mask_hits(data: bytes, hits: list[Hit]) -> bytes:
    out = bytearray()
    pos = 0
    for hit in sorted(hits, key=lambda h: h.offset):
        start, end = max(hit.offset, pos), _hit_end(data, hit)
        if end <= start:
            continue
        out += data[pos:start] + os.fsencode(redact(os.fsdecode(hit.key)))
        pos = end
    return bytes(out + data[pos:])


def _hit_end(data: bytes, hit: Hit) -> int:
    """Where the text holding ``hit`` ends; when unsure, the end of its line (too much masked
    is a shorter path, too little a leak)."""
    at = hit.offset
    if hit.encoding == "plain" and data.startswith(hit.key, at):
        return at + len(hit.key)
    if hit.encoding == "base64":
        end = at
        while end < len(data) and data[end] in _B64_TEXT:
            end += 1
        return end
    if hit.encoding == "utf-16":
        return min(len(data), at + 2 * len(hit.key))
    newline = data.find(b"\n", at)
    return len(data) if newline < 0 else newline


def finish(
    result: ScanResult,
    *,
    baseline: set[str] | None = None,
    verify: Verifier | None = None,
    started: float | None = None,
) -> ScanResult:
    """Drop allowed and baselined findings, sort most severe first, classify keys if asked."""
    kept: list[Finding] = []
    seen: set[tuple[str, str, int, int]] = set()
    for f in result.findings:
        if f.allowed:
            result.allowed += 1
            continue
        if baseline and f.fingerprint in baseline:
            result.baselined += 1
            continue
        where = (f.fingerprint, f.path, f.line, f.column)
        if where in seen:
            continue
        seen.add(where)
        kept.append(f)
    kept.sort(key=lambda f: (f.rule.rank, f.path, f.line, f.column))
    # A key in a file or member name must not be printed by printing the name.
    for f in kept:
        f.path = masked(f.path)
    result.unread = [u._replace(path=masked(u.path)) for u in result.unread]
    result.notes = [masked(n) for n in result.notes]
    if verify is not None:
        verdicts: dict[str, str] = {}
        for f in kept:
            if f.fingerprint not in verdicts:
                verdicts[f.fingerprint] = verify(f.secret)
            f.verdict = verdicts[f.fingerprint]
    result.findings = kept
    if started is not None:
        result.seconds = time.perf_counter() - started
    return result
