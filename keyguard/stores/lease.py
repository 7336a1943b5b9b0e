"""Lease records shared by the backends: who holds a store, until when, and is the holder alive.

A backend stores the record with its own conditional write (a file lock, an AWS idempotency
token, a GCP etag, ...) and gives :func:`hold_lease` two functions: read and compare-and-set.

Expiry is the holder's clock plus the ttl, read against the reader's clock: a reader whose
clock runs ahead by more than what is left takes a live lease. So the holder never trusts time
to know it still holds the lease: :meth:`HeldLease.renew` reads the record back and finds its
own owner name (a random token each run) there, or stops; it extends the record by
compare-and-set once half the ttl is gone. A write that follows a renewal thus rests on a
record with at least half a ttl left: only a clock that far ahead takes it, and the holder
then stops at its next renewal.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from keyguard.errors import KeyguardError, LeaseHeldError

T = TypeVar("T")


def clock() -> float:
    """The local clock in epoch seconds: every lease expiry is written and compared with it."""
    return time.time()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _boot_id() -> str | None:
    """This kernel's boot id: the same for every container on one host, new at each boot."""
    return _read("/proc/sys/kernel/random/boot_id")


def _pid_namespace() -> str | None:
    """The inode of our PID namespace: pids mean the same thing only inside one namespace."""
    try:
        link = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    digits = "".join(c for c in link if c.isdigit())
    return digits or None


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot); None when there is no such pid."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of proc(5); 3 is fields[0]


def new_owner(pid: int | None = None) -> str:
    """Who holds a lease: ``host:pid:token boot=... pidns=... start=...``.

    The token is random, so two holders never share a name. Boot id, PID namespace and the
    process's start time let another run tell a dead holder from a live one: a pid is looked
    at only when both runs share the kernel boot and the PID namespace (two containers with
    the same host name and a shared volume do not), and a reused pid has another start time.
    ``pid`` names another process (tests); by default this one.
    """
    pid = os.getpid() if pid is None else pid
    parts = {"boot": _boot_id(), "pidns": _pid_namespace(), "start": _start_time(pid)}
    tail = "".join(f" {name}={value}" for name, value in parts.items() if value)
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex}{tail}"


def _identity(owner: str) -> tuple[str, str, dict[str, str]] | None:
    """``(host, pid, {boot, pidns, start})`` of an owner name; None if it is not one."""
    head, *rest = owner.split(" ")
    host, sep, remainder = head.partition(":")
    pid_text, sep2, _ = remainder.partition(":")
    if not sep or not sep2 or not (pid_text.isascii() and pid_text.isdigit()):
        return None
    facts = dict(part.split("=", 1) for part in rest if "=" in part)
    return host, pid_text, facts


def holder_gone(owner: str) -> bool:
    """True only when ``owner`` is provably dead: same host, boot and PID namespace as this
    process, and its pid no longer runs (or now runs another process, started later).

    Anything that cannot be proved (another host or container, an owner without boot id or
    namespace, a platform without ``/proc``) is left to the lease's expiry.
    """
    parsed = _identity(owner)
    if parsed is None:
        return False
    host, pid_text, facts = parsed
    if host != socket.gethostname():
        return False
    boot, pidns = _boot_id(), _pid_namespace()
    if boot is None or pidns is None or facts.get("boot") != boot or facts.get("pidns") != pidns:
        return False
    started = _start_time(int(pid_text))
    if started is None:
        return True  # no such process in our (shared) namespace
    recorded = facts.get("start")
    return recorded is not None and recorded != started


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
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            return None
        if not isinstance(data, dict):
            return None
        return cls.from_fields(data.get("owner"), data.get("expires"))

    @classmethod
    def from_fields(cls, owner: object, expires: object) -> LeaseRecord | None:
        """The record stored as two fields (JSON values, tags, ...); None if they are not one."""
        if not isinstance(owner, str) or not owner:
            return None
        if not isinstance(expires, int | float | str) or isinstance(expires, bool):
            return None
        try:
            moment = float(expires)
        except ValueError:
            return None
        if not math.isfinite(moment):  # no moment: an expiry at infinity is no record
            return None
        return cls(owner, moment)

    @classmethod
    def starting_now(cls, owner: str, ttl_seconds: float) -> LeaseRecord:
        """``owner``'s record, expiring ``ttl_seconds`` from now by the local clock."""
        return cls(owner, clock() + ttl_seconds)

    def live(self, now: float | None = None) -> bool:
        """Still binding: not expired and its holder not seen gone."""
        moment = clock() if now is None else now
        return self.expires > moment and not holder_gone(self.owner)

    def describe(self) -> str:
        left = max(0, int(self.expires - clock()))
        return f"held by {self.owner} for another {left}s"


def lease_held(where: str, record: LeaseRecord) -> LeaseHeldError:
    """The error for a store that another live holder leases."""
    return LeaseHeldError(
        f"store {where} is leased: {record.describe()}; another rotation is running. "
        "Wait for it, or run again after the lease expires"
    )


def lease_lost(where: str, record: LeaseRecord | None) -> LeaseHeldError:
    """The error for a holder that finds its lease gone: taken over, or released by another."""
    now_held = f"it is now {record.describe()}" if record else "released or taken over meanwhile"
    return LeaseHeldError(
        f"store {where}: this run no longer holds its lease ({now_held}); another run may have "
        "changed the store since"
    )


class HeldLease:
    """A lease this run holds; :meth:`renew` proves it still does before a write."""

    def __init__(self, where: str, owner: str, ttl_seconds: float, expires: float) -> None:
        self.where = where
        self.owner = owner
        self.ttl_seconds = ttl_seconds
        self.expires = expires

    def renew(self) -> None:
        """``LeaseHeldError`` unless the store still names this run as the holder; extended
        (by compare-and-set on this run's own record) once less than half the ttl is left.

        It extends only then because each extension is a write (a new version on AWS).
        """
        extend = self.expires - clock() < self.ttl_seconds / 2
        self.expires = self._check(extend)

    def _check(self, extend: bool) -> float:  # pragma: no cover - each backend's own
        """Raise ``lease_lost`` unless still held; extend if asked; the expiry now stored."""
        raise NotImplementedError


class _SwapLease(HeldLease, Generic[T]):
    """A lease on a backend with compare-and-set: ``read`` and ``write_if``."""

    def __init__(
        self,
        where: str,
        record: LeaseRecord,
        read: Callable[[], tuple[LeaseRecord | None, T]],
        write_if: Callable[[T, LeaseRecord | None], bool],
        ttl_seconds: float,
    ) -> None:
        super().__init__(where, record.owner, ttl_seconds, record.expires)
        self._read, self._write_if = read, write_if

    def _check(self, extend: bool) -> float:
        record, token = self._read()
        if record is None or record.owner != self.owner:
            raise lease_lost(self.where, record)  # never re-taken, even when free again
        if not extend:
            return record.expires
        mine = LeaseRecord.starting_now(self.owner, self.ttl_seconds)
        if not self._write_if(token, mine):
            record, _ = self._read()
            raise lease_lost(self.where, record)
        return mine.expires


@contextmanager
def hold_lease(
    read: Callable[[], tuple[LeaseRecord | None, T]],
    write_if: Callable[[T, LeaseRecord | None], bool],
    owner: str,
    ttl_seconds: float,
    where: str,
) -> Iterator[HeldLease]:
    """Take the lease with compare-and-set, hold it for the block, release it after.

    ``read`` returns the record and a CAS token (etag, generation, ...); ``write_if`` stores a
    record (None releases) only if the token still matches, returning False if it did not.
    """
    record, token = read()
    if record is not None and record.owner != owner and record.live():
        raise lease_held(where, record)
    mine = LeaseRecord.starting_now(owner, ttl_seconds)
    if not write_if(token, mine):
        raise LeaseHeldError(
            f"store {where}: another run took the lease at the same moment; run again later"
        )
    try:
        yield _SwapLease(where, mine, read, write_if, ttl_seconds)
    finally:
        # A failed release only delays the next run until the lease expires.
        with contextlib.suppress(KeyguardError):
            record, token = read()
            if record is not None and record.owner == owner:
                write_if(token, None)
