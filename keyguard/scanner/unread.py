"""What a scan did not read, by kind. Never silent: the summary, JSON and SARIF name each one."""

from __future__ import annotations

from typing import NamedTuple

from keyguard.words import shown as shown  # kept importable here, where it used to live

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
