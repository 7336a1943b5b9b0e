"""The ``azure-kv`` lease: claim versions in the companion secret ``NAME-lease``.

Key Vault has no compare-and-set (no ETag or If-Match on secrets), so each contender writes a
claim version (owner and expiry in tags), then lists the claims. It holds the lease only if no
*other* live claim (enabled, not expired, holder not seen gone) was created at or before its
own; a loser disables its claim at once. Reads after a write are consistent, so of two claims
the later one always sees the earlier: at most one contender wins. Creation times have
one-second resolution, so two claims in the same second may both lose (both runs stop with
exit 5 and can be run again). A winner disables the lapsed claims it beat: their holders'
renewals then find their claim disabled and stop. Should one of those disables fail, the
contender has not won: it disables its own claim and stops (exit 5), so the lapsed holder, whom
no other run ever replaced, may renew and go on. Winning while a beaten claim stays enabled
would let that holder renew once the winner released: two runs writing the store in turn.

A renewal extends its own claim's tags first, then lists: it stops when its claim is disabled
or any other live claim is enabled (the winner that took over, or a contender about to find
that it lost: stopping then is the safe side). The races we accept: expiry uses the claimant's
clock, so a host whose clock is far off can overlap the holder until the holder's next
renewal; and a loser whose release fails blocks others until its own claim expires.

Why a renewal does not also stop on every claim created after its own, enabled or not: every
refused contender leaves such a claim (disabled), so a second run started by mistake would stop
the healthy run too; and Key Vault cannot tell a loser's disabled claim from a released
winner's. Comparing creation times with the holder's lapse would rest on the vault's and the
local clock agreeing. Disabling every beaten claim, or not winning, needs neither.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keyguard.errors import KeyguardError, LeaseHeldError
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
                lapsed.append((claim, rival))
        for claim, rival in lapsed:  # their holders' renewals must find that they lost the lease
            try:
                vault.disable(name, claim)
            except KeyguardError as exc:  # still enabled: its holder could renew after us
                raise LeaseHeldError(
                    f"store {where}: the lapsed lease of {rival.owner} could not be ended "
                    f"({exc}), so this run did not take it over; run it again"
                ) from None
    except BaseException:
        with contextlib.suppress(Exception):
            vault.disable(name, mine)
        raise
    try:
        yield _ClaimLease(vault, name, where, mine, record, ttl_seconds)
    finally:
        vault.disable(name, mine)
