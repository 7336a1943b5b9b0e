"""Scanning one item whatever it holds: plain bytes, or zip / gzip / bz2 / xz / tar members.

Members are decompressed as streams, one buffer at a time, so memory stays bounded; a zip that
is not seekable (a git blob, a member of a tar) is spooled to a temporary file first. What a
bomb can cost is bounded by its own size: at most ``EXPANSION`` times the item's bytes (plus
``EXPANDED_FLOOR``) are decompressed; past that the rest is named as not read. Member names
and zip comments are scanned too: a key can hide there.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import IO, Any

from keyguard.scanner import accel
from keyguard.scanner.detect import ArchiveDetected, Hit, scan_bytes, scan_stream
from keyguard.scanner.unread import Unread

#: Nesting deeper than this is scanned as plain bytes (and named as not read).
MAX_DEPTH = 4
#: Decompressed bytes allowed per byte of the outer item (deflate's own maximum is ~1032).
EXPANSION = 200
#: Decompressed bytes every item may use whatever its size.
EXPANDED_FLOOR = 16 << 20
#: The budget of a stream of unknown size (standard input).
MAX_EXPANDED = 4 << 30
#: zipfile.ZIP_DEFLATED, without importing zipfile for every scan.
_DEFLATED = 8
#: A non-seekable zip larger than this in memory spills to disk while it is read.
SPOOL_MEMORY = 16 << 20


@dataclass
class ItemResult:
    """What scanning one item found: hits per member (``""`` = the item itself) and notes."""

    hits: list[tuple[str, Hit]] = field(default_factory=list)
    bytes: int = 0
    notes: list[str] = field(default_factory=list)
    unread: list[Unread] = field(default_factory=list)
    expanded: int = 0  # bytes decompressed out of archives


class _Exhausted(Exception):
    """The item's decompression budget is spent: stop reading it."""


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
    def __init__(self, size: int | None) -> None:
        self.total = MAX_EXPANDED if size is None else EXPANDED_FLOOR + EXPANSION * size
        self.left = self.total

    def take(self, n: int) -> None:
        self.left -= n


def scan_item(
    stream: IO[bytes], label: str, size: int | None = None, *, fd: int | None = None
) -> ItemResult:
    """Scan one file or blob; archive members are reported as ``label!member``. ``fd``: the
    stream is that file, unread so far (see ``scan_stream``)."""
    result = ItemResult()
    budget = _Budget(size)
    with contextlib.suppress(_Exhausted):
        _scan_any(stream, "", label, 0, size, result, budget, top=True, fd=fd)
    result.expanded = budget.total - budget.left
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
    if not top and budget.left <= 0:
        _exhausted(member, label, result, budget)
    deep: list[str] = []
    try:
        hits, nbytes, truncated = scan_stream(
            read,
            size=size,
            detect_archives=depth < MAX_DEPTH,
            limit=None if top else budget.left,
            fd=fd,
            sniffed=None if depth < MAX_DEPTH else deep,
        )
    except ArchiveDetected as archive:
        _scan_archive(stream, archive, member, label, depth, result, budget)
        return
    if top:
        result.bytes += nbytes
    else:
        budget.take(nbytes)
    result.hits.extend((member, hit) for hit in hits)
    if deep:
        result.unread.append(
            Unread(
                _where(label, member),
                "too-deep",
                f"{deep[0]} archive nested more than {MAX_DEPTH} deep; its members were not "
                "unpacked (scanned as raw bytes)",
            )
        )
    if truncated:
        _exhausted(member, label, result, budget)


def _where(label: str, member: str) -> str:
    return f"{label}!{member}" if member else label


def _exhausted(member: str, label: str, result: ItemResult, budget: _Budget) -> None:
    """Name the member where the budget ran out, and stop reading the item."""
    result.unread.append(
        Unread(
            _where(label, member),
            "budget",
            f"decompression budget of {budget.total >> 20} MiB ({EXPANSION}x the file) spent; "
            "the rest of the archive was not read: unpack it and scan the files",
        )
    )
    raise _Exhausted


def _scan_archive(
    stream: IO[bytes],
    archive: ArchiveDetected,
    member: str,
    label: str,
    depth: int,
    result: ItemResult,
    budget: _Budget,
) -> None:
    where = _where(label, member)
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
        result.unread.append(
            Unread(where, "corrupt-archive", f"not a readable {archive.kind} archive ({exc})")
        )
        if _seekable(stream):
            stream.seek(0)
            raw = stream
        else:
            raw = io.BufferedReader(_Chain(archive.head, stream), 1 << 16)
        hits, _, _ = scan_stream(raw.readinto)  # type: ignore[attr-defined]
        result.hits.extend((member, hit) for hit in hits)


def _unreadable() -> tuple[type[Exception], ...]:
    """What reading a damaged archive raises (a corrupt deflate stream is no OSError)."""
    import tarfile
    import zipfile

    fixed = (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, ValueError)
    return (*fixed, *accel.inflate_errors())


def _child(member: str, name: str) -> str:
    return f"{member}!{name}" if member else name


def _zip(
    stream: IO[bytes], member: str, label: str, depth: int, result: ItemResult, budget: _Budget
) -> None:
    import tempfile
    import zipfile

    source: IO[bytes] = stream
    spool = None
    if not _seekable(stream):
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
        while chunk := stream.read(1 << 20):
            spool.write(chunk)
            budget.take(len(chunk))  # spooling an inner zip costs like scanning it
            if budget.left <= 0:
                _exhausted(member, label, result, budget)
        spool.seek(0)
        source = spool
    try:
        with zipfile.ZipFile(source) as zf:
            _metadata(zf.comment, member, "comment", result)
            for info in zf.infolist():
                name = _child(member, info.filename)
                _metadata(_encoded(info.filename), name, "member name", result)
                _metadata(info.comment, name, "comment", result)
                if info.is_dir():
                    continue
                if info.flag_bits & 0x1:
                    result.unread.append(
                        Unread(f"{label}!{name}", "encrypted", "encrypted zip member")
                    )
                    continue
                with zf.open(info) as inner:
                    _read_fast(inner, info)
                    _scan_any(inner, name, label, depth + 1, info.file_size, result, budget)
    finally:
        if spool is not None:
            spool.close()


def _metadata(data: bytes, member: str, encoding: str, result: ItemResult) -> None:
    """Keys in a member name or a comment: reported at line 0 of ``member``."""
    if not data or b"ant" not in data:
        return
    for hit in scan_bytes(data):
        hit.line, hit.encoding = 0, encoding
        result.hits.append((member, hit))


def _encoded(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _read_fast(inner: Any, info: Any) -> None:
    """Before anything is read: swap a deflated member's zlib decompressor for isal's (same
    API, about twice as fast), and skip the CRC check (a scan reads, it does not extract: a
    member whose checksum is wrong is still worth scanning, and the check costs a pass)."""
    inflater = accel.raw_inflater() if info.compress_type == _DEFLATED else None
    if inflater is not None and getattr(inner, "_decompressor", None) is not None:
        inner._decompressor = inflater
    if hasattr(inner, "_expected_crc"):
        inner._expected_crc = None


def _tar(
    stream: IO[bytes], member: str, label: str, depth: int, result: ItemResult, budget: _Budget
) -> None:
    import tarfile

    with tarfile.open(fileobj=stream, mode="r|") as tf:
        for info in tf:
            name = _child(member, info.name)
            _metadata(_encoded(info.name), name, "member name", result)
            if info.linkname:
                _metadata(_encoded(info.linkname), name, "link target", result)
            if not info.isfile():
                continue
            inner = tf.extractfile(info)
            if inner is None:
                continue
            _scan_any(inner, name, label, depth + 1, info.size, result, budget)


def _gzip_header(stream: IO[bytes], member: str, result: ItemResult) -> None:
    """Keys in a gzip header's original file name or comment (RFC 1952, FNAME / FCOMMENT)."""
    if _seekable(stream):
        at = stream.tell()
        head = stream.read(1 << 12)
        stream.seek(at)
    else:
        peek = getattr(stream, "peek", None)
        head = bytes(peek(1 << 12)[: 1 << 12]) if peek is not None else b""
    if len(head) < 10 or not head[3] & 0x18:
        return
    pos = 10
    if head[3] & 0x04:  # FEXTRA
        pos += 2 + int.from_bytes(head[10:12], "little")
    for flag, what in ((0x08, "member name"), (0x10, "comment")):
        if head[3] & flag:
            end = head.find(b"\0", pos)
            if end < 0:
                return
            _metadata(head[pos:end], member, what, result)
            pos = end + 1


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
        _gzip_header(stream, member, result)
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
