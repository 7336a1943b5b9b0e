"""Finding keys in a byte stream: C-speed prefilters, then exact checks only around hits."""

from __future__ import annotations

import binascii
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from keyguard.scanner import accel
from keyguard.scanner.needles import (
    B64_NEEDLES,
    FIND_NEEDLES,
    MARK,
    NEEDLES,
    PREFIX,
    SPLIT_MARK_RE,
    sniff,
)
from keyguard.scanner.rules import KEY_BYTES, Rule, classify

#: Bytes read per round: small enough that the four prefilter passes hit the CPU cache
#: (measured: 512 KiB rounds scan ~1.7x faster than 1 MiB ones).
CHUNK = 1 << 19
#: Context kept before a round's new bytes (escapes, the line for `keyguard: allow`).
LEFT = 4096
#: Bytes that must follow a hit before it is judged (the key, its encodings, joined literals).
RIGHT = 4096
#: Longest run of key characters worth classifying.
MAX_RUN = 600

_LONGEST = max(len(needle) for needle in NEEDLES)

_RUN = re.compile(rb"[A-Za-z0-9_-]*")
_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]*")
_B64_URLSAFE = bytes.maketrans(b"-_", b"+/")
_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-")
#: A base64 line's end, and the indentation of the line after it.
_B64_BREAK = re.compile(rb"=*\r?\n[ \t]*")
#: Base64 characters looked at around a needle, and after it (a key is ~144 of them).
_B64_BEFORE = 16
_B64_AFTER = 4 * MAX_RUN // 3 + 16
# The glue between adjacent string literals that a language concatenates: Python/C/C++
# implicit concatenation, `+` (JS, Java, C#, Python), `.` (PHP, Perl), `&` (VB), `||` (SQL),
# a backslash line continuation, with any whitespace or newlines around it.
_JOIN = re.compile(
    rb"""["'`](?:\s|\\\r?\n)*(?:(?:\+|\.|&|\|\|)(?:\s|\\\r?\n)*)?[rRbBuUfF]{0,2}["'`]"""
)
#: A literal that ends inside ``sk-ant``, the glue, and a literal that starts with the rest of
#: it, ending where a family mark starts.
_PREFIX_SPLIT = re.compile(
    b"(?:"
    + b"|".join(
        re.escape(PREFIX[:cut]) + _JOIN.pattern + re.escape(PREFIX[cut:-1]) for cut in range(1, 7)
    )
    + rb")\Z"
)
_ALLOW = re.compile(rb"keyguard:\s?allow")
_HEX = frozenset(b"0123456789abcdefABCDEF")
#: The two strict key shapes, exactly, for binary content where no boundary can be trusted.
_EXACT = re.compile(rb"sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{93}AA")
#: Like git and grep, content is binary when its first bytes hold a NUL.
BINARY_SNIFF = 8000

Reader = Callable[[memoryview], int | None]


@dataclass(slots=True)
class Hit:
    """One key found in a stream. ``key`` is the plaintext: memory only, never output."""

    offset: int
    line: int
    column: int
    rule: Rule
    key: bytes
    encoding: str  # plain | base64 | concatenated
    allowed: bool  # an inline `keyguard: allow` comment on its line


class ArchiveDetected(Exception):
    """The stream starts like an archive; ``head`` holds the bytes already consumed."""

    def __init__(self, kind: str, head: bytes) -> None:
        super().__init__(kind)
        self.kind = kind
        self.head = head


def _left_ok(buf: bytearray | bytes, p: int) -> bool:
    """True when nothing before ``p`` continues the key: a boundary or an escape sequence."""
    if p == 0 or buf[p - 1] not in KEY_BYTES:
        return True
    if p >= 2 and buf[p - 2] == 0x5C:  # \n \t \r and friends
        return True
    if p >= 3 and buf[p - 3] == 0x25 and buf[p - 2] in _HEX and buf[p - 1] in _HEX:  # %22
        return True
    if p >= 4 and buf[p - 4] == 0x5C and buf[p - 3] in b"xX":  # \x22
        return True
    return p >= 6 and buf[p - 6] == 0x5C and buf[p - 5] in b"uU"  # \u0022


def is_binary(head: bytes | bytearray | memoryview) -> bool:
    """True when content starting with ``head`` is binary (a NUL in its first bytes)."""
    return b"\0" in bytes(head[:BINARY_SNIFF])


def _plain(buf: bytearray, p: int, n: int, binary: bool) -> tuple[Rule, bytes, str] | None:
    found = _text(buf, p, n)
    if found is None and binary:
        found = _exact(buf, p, n)
    return found


def _exact(buf: bytearray, p: int, n: int) -> tuple[Rule, bytes, str] | None:
    """A strict key shape with no boundary rules: in binary content the byte before a key is
    a length or type byte and the byte after may be the next field's first byte."""
    m = _EXACT.match(buf, p, n)
    if m is None:
        return None
    run = m.group()
    rule = classify(run)
    return (rule, run, "plain") if rule is not None else None


def _text(buf: bytearray, p: int, n: int) -> tuple[Rule, bytes, str] | None:
    if not _left_ok(buf, p):
        return None
    m = _RUN.match(buf, p, min(n, p + MAX_RUN + 1))
    assert m is not None
    e = m.end()
    if e - p > MAX_RUN:
        return None
    run = bytes(buf[p:e])
    rule = classify(run)
    if rule is not None:
        return rule, run, "plain"
    return _joined(buf, run, e, n)


def _joined(buf: bytearray, run: bytes, e: int, n: int) -> tuple[Rule, bytes, str] | None:
    """A key split across adjacent string literals, joined the way the language would."""
    pieces = [run]
    total = len(run)
    for _ in range(64):
        m = _JOIN.match(buf, e, min(n, e + 512))
        if m is None:
            break
        r = _RUN.match(buf, m.end(), min(n, m.end() + MAX_RUN))
        assert r is not None
        e = r.end()
        pieces.append(bytes(buf[m.end() : e]))
        total += e - m.end()
        if total > MAX_RUN:
            return None
    if len(pieces) == 1:
        return None
    joined = b"".join(pieces)
    rule = classify(joined)
    return (rule, joined, "concatenated") if rule is not None else None


def _prefix_split(buf: bytearray, i: int, n: int) -> tuple[int, tuple[Rule, bytes, str]] | None:
    """A key whose ``sk-ant`` is split across literals, the family mark at ``i``: (where the
    key starts, what it is)."""
    m = _PREFIX_SPLIT.search(buf, max(0, i - 600), i)
    if m is None or not _left_ok(buf, m.start()):
        return None
    r = _RUN.match(buf, i, min(n, i + MAX_RUN + 1))
    assert r is not None
    if r.end() - i > MAX_RUN:
        return None
    run = PREFIX[:-1] + bytes(buf[i : r.end()])
    rule = classify(run)
    found = (rule, run, "concatenated") if rule is not None else _joined(buf, run, r.end(), n)
    return (m.start(), found) if found is not None else None


def _line_start(buf: bytearray, e: int) -> int:
    """Where the base64 of the line ending at ``e`` starts (after indentation), or -1 when
    that line is not all base64."""
    s = e
    while s > 0 and e - s <= 1024 and buf[s - 1] in _B64_CHARS:
        s -= 1
    i = s
    while i > 0 and buf[i - 1] in b" \t":
        i -= 1
    return s if i == 0 or buf[i - 1] == 0x0A else -1


def _wrapped(buf: bytearray, e: int, n: int) -> int | None:
    """Where the next line's base64 starts when the line ending at ``e`` is one line of a
    wrapped block: it is all base64, whole groups, and so is the next line."""
    m = _B64_BREAK.match(buf, e, n)
    if m is None or buf[e] == 0x3D:  # padding ends the block
        return None
    s = _line_start(buf, e)
    if s < 0 or (e - s) % 4 or e - s < 16:
        return None
    r = _B64_RUN.match(buf, m.end(), min(n, m.end() + 1024))
    assert r is not None
    after = _B64_BREAK.match(buf, r.end(), n)
    if r.end() == m.end() or (r.end() < n and after is None and buf[r.end()] != 0x3D):
        return None
    return m.end()


def _base64_at(buf: bytearray, i: int, n: int) -> list[tuple[int, tuple[Rule, bytes, str]]]:
    """Keys in the base64 around the needle half found at ``i``, following line wraps:
    (where the base64 starts, what it holds)."""
    # The logical text: a few characters before ``i`` (from the line before when ``i`` opens a
    # wrapped line), then the rest, wrapped lines joined. ``where`` maps it back to ``buf``.
    start = i
    while start > 0 and i - start < _B64_BEFORE and buf[start - 1] in _B64_CHARS:
        start -= 1
    pieces: list[tuple[int, bytes]] = []
    if i - start < _B64_BEFORE and start > 0:
        nl = start - 1
        while nl > 0 and buf[nl] in b" \t":
            nl -= 1
        e = nl - 1 if nl > 0 and buf[nl - 1] == 0x0D else nl
        if buf[nl] == 0x0A and e > 0 and _wrapped(buf, e, n) == start:
            ps = max(_line_start(buf, e), e - _B64_BEFORE)
            pieces.append((ps, bytes(buf[ps:e])))
    pos, total = start, 0
    while total < _B64_BEFORE + _B64_AFTER:
        r = _B64_RUN.match(buf, pos, min(n, pos + _B64_AFTER))
        assert r is not None
        pieces.append((pos, bytes(buf[pos : r.end()])))
        total += r.end() - pos
        nxt = _wrapped(buf, r.end(), n) if r.end() < n else None
        if nxt is None:
            break
        pos = nxt
    text = b"".join(piece for _, piece in pieces)
    where: list[int] = []
    for at, piece in pieces:
        where.extend(range(at, at + len(piece)))
    found: list[tuple[int, tuple[Rule, bytes, str]]] = []
    for needle, first, align in B64_NEEDLES:
        j = text.find(needle)
        while j != -1:
            # Only the first whole half of the needle reports the key (each half is a
            # candidate of its own, perhaps in another round).
            half = (len(needle) + 1) // 2
            whole = where[j + half - 1] - where[j] == half - 1
            anchor = where[j] if whole else where[j + half - 1]
            g = j - first
            result = _base64(text, g, align, len(text)) if g >= 0 and anchor == i else None
            if result is not None:
                found.append((where[g], result))
            j = text.find(needle, j + 1)
    return found


def _utf16(buf: bytearray, i: int, n: int) -> tuple[int, tuple[Rule, bytes, str]] | None:
    """A key in UTF-16 text (either byte order), ``-ant-`` at ``i``: (where it starts, what)."""
    s = i - 4
    if s < 0 or buf[s : s + 4] != b"s\0k\0":
        return None
    a = s - 2 * min(16, s // 2)
    b = min(n, s + 2 * (MAX_RUN + 600))
    chars, highs = buf[a:b:2], buf[a + 1 : b + 1 : 2]
    # Characters outside ASCII become "?", which no key holds.
    text = bytearray(c if h == 0 else 0x3F for c, h in zip(chars, highs, strict=False))
    found = _text(text, (s - a) // 2, len(text))
    return (s, (found[0], found[1], "utf-16")) if found is not None else None


def _base64(buf: bytearray | bytes, g: int, align: int, n: int) -> tuple[Rule, bytes, str] | None:
    """Decode the base64 run starting at group boundary ``g`` and classify what it holds."""
    m = _B64_RUN.match(buf, g, min(n, g + 4 * MAX_RUN // 3 + 16))
    assert m is not None
    chars = bytes(buf[g : m.end()]).translate(_B64_URLSAFE)
    usable = len(chars) - len(chars) % 4
    if len(chars) % 4 >= 2:
        chars = chars + b"=" * (4 - len(chars) % 4)
        usable = len(chars)
    try:
        decoded = binascii.a2b_base64(chars[:usable])
    except binascii.Error:
        return None
    if decoded[align : align + len(PREFIX)] != PREFIX:
        return None
    if align and decoded[align - 1] in KEY_BYTES:
        return None
    r = _RUN.match(decoded, align)
    assert r is not None
    rule = classify(decoded[align : r.end()])
    return (rule, decoded[align : r.end()], "base64") if rule is not None else None


class _Lines:
    """Newline bookkeeping across rounds, so a hit gets its 1-based line and column.

    With ``fd`` (the stream is that file from offset 0) counting is lazy: rounds without a hit
    count nothing, and the bytes already dropped from the buffer are read back from the file
    when a hit needs its line. Most files hold no key, so most bytes are never counted."""

    __slots__ = ("count", "done", "fd", "last_nl")

    def __init__(self, done: int = 0, fd: int | None = None) -> None:
        self.count = 0  # newlines before absolute offset ``done``
        self.last_nl = done - 1  # absolute offset of the last newline before ``done``
        self.done = done
        self.fd = fd

    def catch_up(self, buf: bytearray, lo: int, base: int) -> None:
        """Make ``count`` and ``last_nl`` exact up to the round's first byte (``base + lo``)."""
        if self.done < base and self.fd is not None:
            count, last = _newlines_in_file(self.fd, self.done, base)
            self.count += count
            if last >= 0:
                self.last_nl = last
            self.done = base
        if self.done < base + lo:
            self._count(buf, self.done - base, lo, base)

    def locate(self, buf: bytearray, lo: int, p: int, base: int) -> tuple[int, int]:
        if p >= lo:
            line = self.count + buf.count(b"\n", lo, p) + 1
            nl = buf.rfind(b"\n", lo, p)
            last = base + nl if nl >= 0 else self.last_nl
        else:  # a base64 group that starts just before the round
            line = self.count - buf.count(b"\n", p, lo) + 1
            nl = buf.rfind(b"\n", 0, p)
            last = base + nl if nl >= 0 else self.last_nl
        return line, base + p - last

    def advance(self, buf: bytearray, lo: int, hi: int, base: int) -> None:
        """The round ``buf[lo:hi]`` is done: count it now, unless counting is lazy."""
        if self.fd is None:
            self._count(buf, lo, hi, base)

    def _count(self, buf: bytearray, lo: int, hi: int, base: int) -> None:
        self.count += buf.count(b"\n", lo, hi)
        nl = buf.rfind(b"\n", lo, hi)
        if nl >= 0:
            self.last_nl = base + nl
        self.done = base + hi


def _newlines_in_file(fd: int, start: int, end: int) -> tuple[int, int]:
    """(newlines, absolute offset of the last one or -1) in ``[start, end)`` of the file."""
    count, last = 0, -1
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(1 << 20, end - pos), pos)
        if not chunk:
            break
        count += chunk.count(b"\n")
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            last = pos + nl
        pos += len(chunk)
    return count, last


def _candidates(buf: bytearray, lo: int, hi: int, n: int) -> list[tuple[int, int]]:
    """(needle index, start) of every needle starting in ``buf[lo:hi]``; index 0 is the
    prefix, 1-3 the entries of ``B64_NEEDLES``, ``MARK`` and up a family mark."""
    fast = accel.finder(NEEDLES)
    if fast is not None:
        end = min(n, hi + _LONGEST - 1)
        with memoryview(buf) as mv, mv[lo:end] as window:
            return [(k, i) for k, i in fast.find(window, lo) if i < hi]
    out: list[tuple[int, int]] = []
    for k, needle in enumerate(FIND_NEEDLES):
        end = min(n, hi + len(needle) - 1)
        i = buf.find(needle, lo, end)
        while i != -1:
            out.append((k, i))
            i = buf.find(needle, i + 1, end)
    out.extend((MARK, m.start()) for m in SPLIT_MARK_RE.finditer(buf, lo, min(n, hi + _LONGEST)))
    return [(k, i) for k, i in out if i < hi]


def _round(
    buf: bytearray, lo: int, hi: int, n: int, base: int, lines: _Lines, binary: bool
) -> list[Hit]:
    """Every key whose first byte lies in ``buf[lo:hi]``."""
    found: list[tuple[int, tuple[Rule, bytes, str] | None]] = []
    for k, i in _candidates(buf, lo, hi, n):
        if k == 0:
            found.append((i, _plain(buf, i, n, binary)))
        elif k < MARK:
            found.extend(_base64_at(buf, i, n))
        elif buf[i + 1] == 0:
            found.append(_utf16(buf, i, n) or (i, None))
        else:
            found.append(_prefix_split(buf, i, n) or (i, None))
    hits: list[Hit] = []
    done: set[int] = set()
    for p, result in sorted(found, key=lambda item: item[0]):
        if result is None or p in done:
            continue
        done.add(p)
        if not hits:
            lines.catch_up(buf, lo, base)
        rule, key, encoding = result
        line, column = lines.locate(buf, lo, p, base)
        ls = buf.rfind(b"\n", max(0, p - LEFT), p) + 1
        le = buf.find(b"\n", p, min(n, p + RIGHT))
        allowed = _ALLOW.search(buf, ls, le if le >= 0 else min(n, p + RIGHT)) is not None
        hits.append(Hit(base + p, line, column, rule, key, encoding, allowed))
    return hits


_POOL: list[bytearray] = []


@dataclass(slots=True)
class _Span:
    """Where a scan starts and stops: the whole stream, or one range of a large file."""

    origin: int = 0  # absolute offset of the first byte ``read`` yields
    skip: int = 0  # leading bytes that are context only (before the range)
    stop: int | None = None  # hits at or past this absolute offset belong to the next range
    binary: bool | None = None  # None: decide from the first bytes
    fd: int | None = None  # the stream is this file from offset 0: lines are counted lazily
    sniffed: list[str] | None = None  # the container kind found when not detecting archives


def scan_stream(
    read: Reader,
    *,
    size: int | None = None,
    detect_archives: bool = False,
    limit: int | None = None,
    fd: int | None = None,
    sniffed: list[str] | None = None,
) -> tuple[list[Hit], int, bool]:
    """Scan everything ``read`` yields; returns (hits, bytes read, truncated by ``limit``).

    Memory stays at one buffer of ``CHUNK`` plus context, however large the stream. With
    ``detect_archives`` the first bytes are sniffed and ``ArchiveDetected`` is raised. ``fd``
    says the stream is that file read from its start: bytes already scanned can be read back
    with ``pread``, so newlines are counted only when a hit needs its line. ``sniffed``: without
    ``detect_archives``, the container kind the stream starts like is appended to it.
    """
    buf = _POOL.pop() if _POOL else bytearray(LEFT + CHUNK + RIGHT)
    try:
        span = _Span(fd=fd, sniffed=sniffed)
        hits, total, truncated, _ = _scan(buf, read, size, detect_archives, limit, span)
        return hits, total, truncated
    finally:
        _POOL.append(buf)


@dataclass(slots=True)
class RangeResult:
    """Hits of one range, with lines counted from the range's start (line 1 = its first line,
    column counted from ``start - 1`` when no newline precedes the hit inside the range)."""

    hits: list[Hit]
    newlines: int  # newlines in [start, end)
    last_newline: int  # absolute offset of the last one, or -1


def scan_range(read: Reader, *, start: int, end: int, context: int, binary: bool) -> RangeResult:
    """Scan the range ``[start, end)`` of a large file; ``read`` yields from ``start - context``
    up to ``end + RIGHT`` (or the end of the file), so keys straddling ``end`` are judged whole
    by the range they start in."""
    buf = _POOL.pop() if _POOL else bytearray(LEFT + CHUNK + RIGHT)
    try:
        span = _Span(start - context, context, end, binary)
        hits, _, _, lines = _scan(buf, read, None, False, None, span)
    finally:
        _POOL.append(buf)
    last = lines.last_nl if lines.last_nl >= start else -1
    return RangeResult([h for h in hits if start <= h.offset < end], lines.count, last)


def _scan(
    buf: bytearray,
    read: Reader,
    size: int | None,
    detect: bool,
    limit: int | None,
    span: _Span,
) -> tuple[list[Hit], int, bool, _Lines]:
    mv = memoryview(buf)
    cap = len(buf)
    hits: list[Hit] = []
    lines = _Lines(span.origin + span.skip, span.fd)
    base = span.origin
    lo = span.skip
    n = total = 0
    eof = truncated = False
    first = True
    binary = bool(span.binary)
    try:
        while True:
            while n < cap and not eof:
                got = read(mv[n:] if limit is None else mv[n : n + min(cap - n, limit - total)])
                if not got:
                    eof = True
                    break
                n += got
                total += got
                if size is not None and total >= size:
                    eof = True
                if limit is not None and total >= limit:
                    eof = truncated = True
            if first:
                first = False
                kind = sniff(mv[:n]) if detect or span.sniffed is not None else None
                if kind is not None and detect:
                    raise ArchiveDetected(kind, bytes(mv[:n]))
                if kind is not None and span.sniffed is not None:
                    span.sniffed.append(kind)
                if span.binary is None:
                    binary = is_binary(mv[:n])
            hi = n if eof else n - RIGHT
            hits.extend(_round(buf, lo, hi, n, base, lines, binary))
            if eof:
                if span.stop is not None:
                    lines.advance(buf, lo, max(lo, min(hi, span.stop - base)), base)
                return hits, total, truncated, lines
            lines.advance(buf, lo, hi, base)
            keep = max(0, hi - LEFT)
            mv[: n - keep] = mv[keep:n]
            base += keep
            lo = hi - keep
            n -= keep
    finally:
        mv.release()


def scan_bytes(data: bytes) -> list[Hit]:
    """Scan an in-memory buffer (tests, small inputs)."""
    view = memoryview(data)
    pos = 0

    def read(into: memoryview) -> int:
        nonlocal pos
        k = min(len(into), len(view) - pos)
        into[:k] = view[pos : pos + k]
        pos += k
        return k

    return scan_stream(read)[0]
