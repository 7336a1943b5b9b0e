"""Lease records shared by the backends: who holds a store, until when, and is the holder alive.

A backend stores the record with its own conditional write (a file lock, an AWS idempotency
token, a GCP etag, ...) and gives :func:`hold_lease` two functions: read and compare-and-set.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from keyguard.errors import KeyguardError, LeaseHeldError

T = TypeVar("T")


def new_owner() -> str:
    """A lease owner name: ``host:pid:uuid`` (host and pid let others see a dead holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


def holder_gone(owner: str) -> bool:
    """True when ``owner`` ran on this host and its process no longer exists."""
    host, sep, rest = owner.partition(":")
    pid_text, sep2, _ = rest.partition(":")
    if not sep or not sep2 or host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False


@dataclass(frozen=True)
class LeaseRecord:
    """Who holds a store lease and until when (epoch seconds)."""

    owner: str
    expires: float

    def encode(self) -> str:
        return json.dumps({"owner": self.owner, "expires": self.expires}, sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> LeaseRecord | None:
        """The record in ``text``, or None for an empty, released or unreadable one."""
        if not text:
            return None
        try:
            data = json.loads(text)
            owner, expires = data["owner"], float(data["expires"])
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(owner, str) or not owner:
            return None
        return cls(owner, expires)

    def live(self, now: float | None = None) -> bool:
        """Still binding: not expired and its holder not seen gone."""
        moment = time.time() if now is None else now
        return self.expires > moment and not holder_gone(self.owner)

    def describe(self) -> str:
        left = max(0, int(self.expires - time.time()))
        return f"held by {self.owner} for another {left}s"


@contextmanager
def hold_lease(
    read: Callable[[], tuple[LeaseRecord | None, T]],
    write_if: Callable[[T, LeaseRecord | None], bool],
    owner: str,
    ttl_seconds: float,
    where: str,
) -> Iterator[None]:
    """Take the lease with compare-and-set, hold it for the block, release it after.

    ``read`` returns the record and a CAS token (etag, generation, ...); ``write_if`` stores a
    record (None releases) only if the token still matches, returning False if it did not.
    """
    record, token = read()
    if record is not None and record.owner != owner and record.live():
        raise LeaseHeldError(
            f"store {where} is leased: {record.describe()}; another rotation is running. "
            "Wait for it, or run again after the lease expires"
        )
    mine = LeaseRecord(owner, time.time() + ttl_seconds)
    if not write_if(token, mine):
        raise LeaseHeldError(
            f"store {where}: another run took the lease at the same moment; run again later"
        )
    try:
        yield
    finally:
        # A failed release only delays the next run until the lease expires.
        with contextlib.suppress(KeyguardError):
            record, token = read()
            if record is not None and record.owner == owner:
                write_if(token, None)
