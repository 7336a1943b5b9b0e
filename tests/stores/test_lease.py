"""``hold_lease``'s renewal, unit-tested over an in-memory compare-and-set cell."""

from __future__ import annotations

import pytest

from keyguard.errors import LeaseHeldError
from keyguard.stores.lease import LeaseRecord, hold_lease, new_owner
from tests.stores.lease_clock import LeaseClock


class Cell:
    """One lease record with a version number: the compare-and-set every backend offers.

    ``race`` is a record another run writes between our read and our write, once.
    """

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.race: LeaseRecord | None = None
        self.writes = 0

    def read(self) -> tuple[LeaseRecord | None, int]:
        seen = (self.record, self.version)
        if self.race is not None:
            self.record, self.version, self.race = self.race, self.version + 1, None
        return seen

    def write_if(self, seen: int, record: LeaseRecord | None) -> bool:
        if seen != self.version:
            return False
        self.record, self.version = record, self.version + 1
        self.writes += 1
        return True


def test_renewal_writes_only_when_half_the_lease_is_gone(lease_clock: LeaseClock) -> None:
    cell = Cell()
    with hold_lease(cell.read, cell.write_if, new_owner(), 600, "cell") as held:
        assert cell.record is not None
        first = cell.record.expires
        held.renew()
        assert (cell.writes, cell.record.expires) == (1, first), "a fresh lease is only read"
        lease_clock.advance(400)
        held.renew()
        assert cell.writes == 2 and cell.record.expires == pytest.approx(first + 400, abs=5)
    assert cell.record is None, "released"


def test_renewal_loses_to_a_run_that_writes_between_its_read_and_its_write(
    lease_clock: LeaseClock,
) -> None:
    cell = Cell()
    with hold_lease(cell.read, cell.write_if, new_owner(), 600, "cell") as held:
        lease_clock.advance(700)  # lapsed: the next renewal extends by compare-and-set
        thief = LeaseRecord(new_owner(), lease_clock() + 600)
        cell.race = thief
        with pytest.raises(LeaseHeldError, match="no longer holds its lease"):
            held.renew()
        assert cell.record == thief, "the compare-and-set never overwrote the other run"
    assert cell.record == thief, "nor did the release"


@pytest.mark.parametrize(
    "text",
    [
        '{"owner": "ci@otherhost pid=1", "expires": 1e999}',
        '{"owner": "ci@otherhost pid=1", "expires": NaN}',
        '{"owner": "ci@otherhost pid=1", "expires": "-inf"}',
        "[" * 100_000,
    ],
)
def test_a_lease_record_that_is_no_moment_is_unreadable_not_a_traceback(text: str) -> None:
    """A store document is hostile input: an expiry at infinity, or JSON nested past the
    parser's depth, is an unreadable record (as any garbage is), never an OverflowError."""
    assert LeaseRecord.decode(text) is None
