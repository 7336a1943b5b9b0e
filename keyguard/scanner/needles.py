"""What the scanner searches for, and the archive kinds it opens: constants only, so that the
hook's quick pass (``quick.py``) and the full scanner (``detect.py``) share them cheaply."""

from __future__ import annotations

import re

#: Every Anthropic credential starts with this; the scanner's C-speed prefilter.
PREFIX = b"sk-ant-"
#: ``sk-ant-`` in base64 at each of the three byte alignments: (needle, first char index,
#: alignment). Only the characters that depend on the prefix alone are searched.
B64_NEEDLES = ((b"c2stYW50L", 0, 0), (b"NrLWFudC", 2, 1), (b"zay1hbnQt", 3, 2))
#: What is searched for base64: each needle's two halves, overlapping by one character, so
#: that a line break anywhere inside a needle (base64 wrapped at 64 or 76 columns: PEM, MIME,
#: ``base64`` output) leaves one half whole.
B64_HALVES = tuple(
    half
    for needle, _, _ in B64_NEEDLES
    for half in (needle[: (len(needle) + 1) // 2], needle[(len(needle) + 1) // 2 - 1 :])
)
#: The family marks that follow ``sk-ant``, dash included. A key split inside its prefix
#: (``"sk-" "ant-api03-..."``) has no ``sk-ant-`` anywhere, but always one of these.
SPLIT_MARKS = (b"-api0", b"-admin01-", b"-oat01-", b"-ort01-", b"-sid01-")
#: ``-ant-`` in UTF-16: the same bytes in little- and big-endian text (``s\0k\0`` before it).
UTF16_MARK = "-ant-".encode("utf-16-le")[:-1]
#: Everything a search pass looks for: the prefix, its base64 forms, then the marks.
NEEDLES = (PREFIX, *B64_HALVES, *SPLIT_MARKS, UTF16_MARK)
#: Needles the stdlib engine finds with ``bytes.find``, one pass each; the marks take one
#: regular-expression pass together (more ``find`` passes would cost more than the rest).
FIND_NEEDLES = NEEDLES[: 1 + len(B64_HALVES)]
MARK = len(FIND_NEEDLES)  # the needle index every mark is reported under
SPLIT_MARK_RE = re.compile(b"|".join(re.escape(mark) for mark in (*SPLIT_MARKS, UTF16_MARK)))
#: The first byte of every container ``sniff`` knows, except tar (whose mark is at 257).
ARCHIVE_FIRST_BYTES = frozenset(b"P\x1fB\xfd")


def sniff(head: bytes | bytearray | memoryview) -> str | None:
    """The container kind a stream's first bytes announce, if any."""
    start = bytes(head[:6])
    if start.startswith(b"PK\x03\x04"):
        return "zip"
    if start.startswith(b"\x1f\x8b"):
        return "gzip"
    if start.startswith(b"BZh"):
        return "bz2"
    if start.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(head) >= 262 and bytes(head[257:262]) == b"ustar":
        return "tar"
    return None
