"""The ``azure-kv`` lease: claim versions in the companion secret ``NAME-lease``.

Key Vault has no compare-and-set (no ETag or If-Match on secrets), so each contender writes a
claim version (owner and expiry in tags), then lists the claims. It holds the lease only if no
*other* live claim (enabled, not expired, holder not seen gone) was created at or before its
own; a loser disables its claim at once. Reads after a write are consistent, so of two claims
the later one always sees the earlier: at most one contender wins. Creation times have
one-second resolution, so two claims in the same second may both lose (both runs stop with
exit 5 and can be run again). A winner disables the lapsed claims it beat: their holders'
renewals then find their claim disabled and stop.

A renewal extends its own claim's tags first, then lists: it stops when its claim is disabled
or any other live claim is enabled (the winner that took over, or a contender about to find
that it lost: stopping then is the safe side). The races we accept: expiry uses the claimant's
clock, so a host whose clock is far off can overlap the holder until the holder's next
renewal; and a loser whose release fails blocks others until its own claim expires.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keyguard.errors import KeyguardError
from keyguard.stores.azure import tags as tag
from keyguard.stores.azure.tags import tags_of
from keyguard.stores.lease import HeldLease, LeaseRecord, lease_held, lease_lost

if TYPE_CHECKING:
    from keyguard.stores.azure._sdk import SecretProperties, Vault

_NEVER = datetime.max.replace(tzinfo=UTC)


def _record(claim: SecretProperties) -> LeaseRecord | None:
    claim_tags = tags_of(claim)
    return LeaseRecord.from_fields(
        claim_tags.get(tag.LEASE_OWNER), claim_tags.get(tag.LEASE_EXPIRES)
    )


def _tags(record: LeaseRecord) -> dict[str, str]:
    return {tag.LEASE_OWNER: record.owner[:256], tag.LEASE_EXPIRES: repr(record.expires)}


class _ClaimLease(HeldLease):
    def __init__(
        self,
        vault: Vault,
        name: str,
        where: str,
        claim: SecretProperties,
        record: LeaseRecord,
        ttl_seconds: float,
    ) -> None:
        super().__init__(where, record.owner, ttl_seconds, record.expires)
        self._vault, self._name, self._claim = vault, name, claim

    def _check(self, extend: bool) -> float:
        expires = self.expires
        if extend:
            record = LeaseRecord.starting_now(self.owner, self.ttl_seconds)
            self._vault.set_tags(self._name, self._claim, _tags(record))
            expires = record.expires
        mine = False
        for claim in self._vault.versions(self._name):
            if claim.version == self._claim.version:
                if not claim.enabled:
                    raise lease_lost(self.where, None)
                mine = True
                continue
            rival = _record(claim)
            if claim.enabled and rival is not None and rival.live():
                raise lease_lost(self.where, rival)
        if not mine:
            raise lease_lost(self.where, None)
        return expires


@contextlib.contextmanager
def hold_claim(
    vault: Vault, name: str, where: str, owner: str, ttl_seconds: float
) -> Iterator[HeldLease]:
    """Hold the lease by a claim version of ``name``; disable it after."""
    record = LeaseRecord.starting_now(owner, ttl_seconds)
    mine = vault.write(name, record.encode(), _tags(record), "application/json")
    try:
        my_time = mine.created_on or _NEVER
        lapsed = []
        for claim in vault.versions(name):
            if claim.version == mine.version or not claim.enabled:
                continue
            rival = _record(claim)
            if rival is not None and rival.live():
                if (claim.created_on or _NEVER) <= my_time:
                    raise lease_held(where, rival)
            elif rival is not None:
                lapsed.append(claim)
        for claim in lapsed:  # their holders' renewals must find that they lost the lease
            with contextlib.suppress(KeyguardError):  # they still see this live claim
                vault.disable(name, claim)
    except BaseException:
        with contextlib.suppress(Exception):
            vault.disable(name, mine)
        raise
    try:
        yield _ClaimLease(vault, name, where, mine, record, ttl_seconds)
    finally:
        vault.disable(name, mine)
