"""Scanning one item whatever it holds: plain bytes, or zip / gzip / bz2 / xz / tar members.

Members are decompressed as streams, one buffer at a time, so memory stays bounded; a zip that
is not seekable (a git blob, a member of a tar) is spooled to a temporary file first.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any

from keyguard.scanner import accel
from keyguard.scanner.detect import ArchiveDetected, Hit, scan_stream

#: Nesting deeper than this is scanned as plain bytes.
MAX_DEPTH = 4
#: Decompressed bytes scanned per outer item before giving up (archive bombs).
MAX_EXPANDED = 4 << 30
#: A non-seekable zip larger than this in memory spills to disk while it is read.
SPOOL_MEMORY = 16 << 20


@dataclass
class ItemResult:
    """What scanning one item found: hits per member (``""`` = the item itself) and notes."""

    hits: list[tuple[str, Hit]] = field(default_factory=list)
    bytes: int = 0
    notes: list[str] = field(default_factory=list)


class _Chain(io.RawIOBase):
    """Bytes already read (the sniffed head) followed by the rest of the stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            k = min(len(b), len(self._head))
            b[:k] = self._head[:k]
            self._head = self._head[k:]
            return k
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_EXPANDED


def scan_item(
    stream: IO[bytes], label: str, size: int | None = None, *, fd: int | None = None
) -> ItemResult:
    """Scan one file or blob; archive members are reported as ``label!member``. ``fd``: the
    stream is that file, unread so far (see ``scan_stream``)."""
    result = ItemResult()
    _scan_any(stream, "", label, 0, size, result, _Budget(), top=True, fd=fd)
    if size is not None:
        result.bytes = size
    return result


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _scan_any(
    stream: IO[bytes],
    member: str,
    label: str,
    depth: int,
    size: int | None,
    result: ItemResult,
    budget: _Budget,
    *,
    top: bool = False,
    fd: int | None = None,
) -> None:
    read = stream.readinto  # type: ignore[attr-defined]
    try:
        hits, nbytes, truncated = scan_stream(
            read,
            size=size,
            detect_archives=depth < MAX_DEPTH,
            limit=None if top else budget.left,
            fd=fd,
        )
    except ArchiveDetected as archive:
        _scan_archive(stream, archive, member, label, depth, result, budget)
        return
    if top:
        result.bytes += nbytes
    else:
        budget.left -= nbytes
    result.hits.extend((member, hit) for hit in hits)
    if truncated:
        result.notes.append(
            f"{label}: stopped after {MAX_EXPANDED >> 30} GiB of decompressed data in "
            f"{member or 'the archive'}; scan its members separately"
        )


def _scan_archive(
    stream: IO[bytes],
    archive: ArchiveDetected,
    member: str,
    label: str,
    depth: int,
    result: ItemResult,
    budget: _Budget,
) -> None:
    where = f"{label}!{member}" if member else label
    source: IO[bytes]
    if _seekable(stream):
        stream.seek(0)
        source = stream
    else:
        source = io.BufferedReader(_Chain(archive.head, stream), 1 << 16)
    try:
        if archive.kind == "zip":
            _zip(source, member, label, depth, result, budget)
        elif archive.kind == "tar":
            _tar(source, member, label, depth, result, budget)
        else:
            _compressed(source, archive.kind, member, label, depth, result, budget)
    except _unreadable() as exc:
        result.notes.append(f"{where}: not a readable {archive.kind} archive ({exc}); scanned raw")
        if _seekable(stream):
            stream.seek(0)
            raw = stream
        else:
            raw = io.BufferedReader(_Chain(archive.head, stream), 1 << 16)
        hits, _, _ = scan_stream(raw.readinto)  # type: ignore[attr-defined]
        result.hits.extend((member, hit) for hit in hits)


def _unreadable() -> tuple[type[Exception], ...]:
    """What reading a damaged archive raises (a corrupt deflate stream is no OSError)."""
    fixed = (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, ValueError)
    return (*fixed, *accel.inflate_errors())


def _child(member: str, name: str) -> str:
    return f"{member}!{name}" if member else name


def _zip(
    stream: IO[bytes], member: str, label: str, depth: int, result: ItemResult, budget: _Budget
) -> None:
    source: IO[bytes] = stream
    spool = None
    if not _seekable(stream):
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
        while chunk := stream.read(1 << 20):
            spool.write(chunk)
        spool.seek(0)
        source = spool
    try:
        with zipfile.ZipFile(source) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                name = _child(member, info.filename)
                if info.flag_bits & 0x1:
                    result.notes.append(f"{label}!{name}: encrypted zip member, not scanned")
                    continue
                with zf.open(info) as inner:
                    _read_fast(inner, info)
                    _scan_any(inner, name, label, depth + 1, info.file_size, result, budget)
    finally:
        if spool is not None:
            spool.close()


def _read_fast(inner: Any, info: zipfile.ZipInfo) -> None:
    """Before anything is read: swap a deflated member's zlib decompressor for isal's (same
    API, about twice as fast), and skip the CRC check (a scan reads, it does not extract: a
    member whose checksum is wrong is still worth scanning, and the check costs a pass)."""
    inflater = accel.raw_inflater() if info.compress_type == zipfile.ZIP_DEFLATED else None
    if inflater is not None and getattr(inner, "_decompressor", None) is not None:
        inner._decompressor = inflater
    if hasattr(inner, "_expected_crc"):
        inner._expected_crc = None


def _tar(
    stream: IO[bytes], member: str, label: str, depth: int, result: ItemResult, budget: _Budget
) -> None:
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        for info in tf:
            if not info.isfile():
                continue
            inner = tf.extractfile(info)
            if inner is None:
                continue
            name = _child(member, info.name)
            _scan_any(inner, name, label, depth + 1, info.size, result, budget)


def _compressed(
    stream: IO[bytes],
    kind: str,
    member: str,
    label: str,
    depth: int,
    result: ItemResult,
    budget: _Budget,
) -> None:
    inner: Any
    if kind == "gzip":
        inner = accel.gzip_file(stream)
    elif kind == "bz2":
        import bz2

        inner = bz2.BZ2File(stream, mode="rb")
    else:
        import lzma

        inner = lzma.LZMAFile(stream, mode="rb")  # noqa: SIM115 - closed by the `with` below
    base = (member or label).rsplit("/", 1)[-1]
    for suffix, replacement in ((".tgz", ".tar"), (".gz", ""), (".bz2", ""), (".xz", "")):
        if base.endswith(suffix):
            base = base[: -len(suffix)] + replacement
            break
    name = _child(member, base) if member else base
    with inner:
        _scan_any(inner, name, label, depth + 1, None, result, budget)
