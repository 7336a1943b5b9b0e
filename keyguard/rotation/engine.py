"""The rotation state machine: create -> update -> verify -> revoke, resumable at every step.

This module only orders the steps; each lives in its own module and shares the run's context
(``context.RotationRun``), never this one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from keyguard.keys import Secret
from keyguard.rotation.context import Outcome, RotationRun
from keyguard.rotation.create import create, resume_create
from keyguard.rotation.recover import hold_leases
from keyguard.rotation.revoke import archive_due, revoke_step
from keyguard.rotation.state import RotationState
from keyguard.rotation.update import new_key_value, promote, verify
from keyguard.words import plural


class RotationEngine(RotationRun):
    """Rotates the key of one environment across all its stores, journaling every step."""

    def leased(self, delivered: Secret | None = None) -> AbstractContextManager[None]:
        """Hold every store's lease for the whole run (see ``recover.hold_leases``)."""
        return hold_leases(self, delivered)

    def deliver(self, key: Secret) -> Outcome:
        """The create step alone: check the key and store it as pending everywhere."""
        with self.leased(key):
            state = create(self, key)
        return Outcome(
            self.env.name,
            True,
            f"{self.env.name}: new key {state.new.label()} stored as pending in "
            f"{plural(len(self.stores), 'store')}; "
            f"`keyguard rotate {self.env.name}` puts it in service",
        )

    def rotate(self, key: Secret | None = None) -> Outcome:
        """Create (if a key is given), then continue as far as the clock and traffic allow."""
        with self.leased(key):
            archive_due(self)
            state = self.latest()
            if key is not None:
                state = create(self, key)
            elif state is not None and state.phase == "creating":
                resumed = resume_create(self, state)
                if resumed is None:
                    return Outcome(
                        self.env.name,
                        False,
                        f"{self.env.name}: the delivered key {state.new.hint} is not stored "
                        f"anywhere yet; deliver it again with `keyguard deliver {self.env.name}`",
                        "key",
                    )
                state = resumed
            if state is None or not state.in_flight:
                return Outcome(
                    self.env.name,
                    False,
                    f"{self.env.name}: waiting for a new key: " + self.request_text(),
                    "key",
                )
            return self._continue(state)

    def _continue(self, state: RotationState) -> Outcome:
        key = new_key_value(self, state)
        if state.updated_at is None:
            self.renew_leases("the update")
            promote(self, state)
            state = self.state_of(state.token)
        if state.verified_at is None:
            self.renew_leases("the verify step")
            verify(self, state, key)
            state = self.state_of(state.token)
        self.renew_leases("the revoke step")
        return revoke_step(self, state)
