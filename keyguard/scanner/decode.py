"""What a needle hit is: a key in plain text (escaped, or split across joined string
literals), in base64 (wrapped lines too) or in UTF-16. Each function looks only around one hit
and returns the rule, the key and how it was written, or None."""

from __future__ import annotations

import binascii
import re

from keyguard.scanner.needles import B64_NEEDLES, PREFIX
from keyguard.scanner.rules import KEY_BYTES, Rule, classify

#: Longest run of key characters worth classifying.
MAX_RUN = 600

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
_HEX = frozenset(b"0123456789abcdefABCDEF")
#: The two strict key shapes, exactly, for binary content where no boundary can be trusted.
_EXACT = re.compile(rb"sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{93}AA")

#: What a hit is: (the rule it matches, the key, how it was written).
Found = tuple[Rule, bytes, str]


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


def plain(buf: bytearray, p: int, n: int, binary: bool) -> Found | None:
    """A key starting at ``p`` (the prefix): whole, escaped or joined; in binary, exact."""
    found = _text(buf, p, n)
    if found is None and binary:
        found = _exact(buf, p, n)
    return found


def _exact(buf: bytearray, p: int, n: int) -> Found | None:
    """A strict key shape with no boundary rules: in binary content the byte before a key is
    a length or type byte and the byte after may be the next field's first byte."""
    m = _EXACT.match(buf, p, n)
    if m is None:
        return None
    run = m.group()
    rule = classify(run)
    return (rule, run, "plain") if rule is not None else None


def _text(buf: bytearray, p: int, n: int) -> Found | None:
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


def _joined(buf: bytearray, run: bytes, e: int, n: int) -> Found | None:
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


def prefix_split(buf: bytearray, i: int, n: int) -> tuple[int, Found] | None:
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


def base64_at(buf: bytearray, i: int, n: int) -> list[tuple[int, Found]]:
    """Keys in the base64 around the needle half found at ``i``, following line wraps:
    (where the base64 starts, what it holds)."""
    # The logical text: a few characters before ``i`` (from the line before when ``i`` opens a
    # wrapped line), then the rest, wrapped lines joined. ``where`` maps it back to ``buf``.
    start = i
    while start > 0 and i - start < _B64_BEFORE and buf[start - 1] in _B64_CHARS:
        start -= 1
    pieces: list[tuple[int, bytes]] = []
    if i - start < _B64_BEFORE and start > 0:
        newline = start - 1
        while newline > 0 and buf[newline] in b" \t":
            newline -= 1
        e = newline - 1 if newline > 0 and buf[newline - 1] == 0x0D else newline
        if buf[newline] == 0x0A and e > 0 and _wrapped(buf, e, n) == start:
            piece_start = max(_line_start(buf, e), e - _B64_BEFORE)
            pieces.append((piece_start, bytes(buf[piece_start:e])))
    pos, total = start, 0
    while total < _B64_BEFORE + _B64_AFTER:
        r = _B64_RUN.match(buf, pos, min(n, pos + _B64_AFTER))
        assert r is not None
        pieces.append((pos, bytes(buf[pos : r.end()])))
        total += r.end() - pos
        next_start = _wrapped(buf, r.end(), n) if r.end() < n else None
        if next_start is None:
            break
        pos = next_start
    text = b"".join(piece for _, piece in pieces)
    where: list[int] = []
    for at, piece in pieces:
        where.extend(range(at, at + len(piece)))
    found: list[tuple[int, Found]] = []
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


def utf16(buf: bytearray, i: int, n: int) -> tuple[int, Found] | None:
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


def _base64(buf: bytearray | bytes, g: int, align: int, n: int) -> Found | None:
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
