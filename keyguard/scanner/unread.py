"""What a scan did not read, by kind. Never silent: the summary, JSON and SARIF name each one."""

from __future__ import annotations

from typing import NamedTuple

#: Kind -> what it is, as the summary counts it.
KINDS = {
    "unreadable": "unreadable",
    "missing-blob": "corrupt or missing blob",
    "too-deep": "archive nested past the depth limit",
    "budget": "decompression budget exhausted",
    "corrupt-archive": "unreadable archive, scanned raw",
    "encrypted": "encrypted archive member",
    "names": "file names in history not scanned",
}


class Unread(NamedTuple):
    """A file, blob or archive member that was not (fully) read, and why."""

    path: str
    kind: str  # a key of KINDS
    detail: str


def shown(text: str) -> str:
    """``text`` for a terminal: control, format and undecodable characters escaped."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c.isprintable():
            out.append(c)
        elif 0xDC80 <= ord(c) <= 0xDCFF:  # an undecodable byte kept by os.fsdecode
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
    return "".join(out)
