"""The rotation engine: create -> update -> verify -> revoke per environment, resumable."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from keyguard.config import Config
from keyguard.journal import RotationJournal
from keyguard.models import Say
from keyguard.rotation.engine import (
    Admin,
    Clock,
    RotationEngine,
    VerificationError,
    utcnow,
)
from keyguard.rotation.ops import plan, rotation_request, status
from keyguard.rotation.servable import RollbackRefused
from keyguard.rotation.state import KeyRef, RotationState
from keyguard.rotation.undo import rollback
from keyguard.stores.interface import SecretStore

__all__ = [
    "Admin",
    "KeyRef",
    "RollbackRefused",
    "RotationEngine",
    "RotationState",
    "VerificationError",
    "open_engine",
    "plan",
    "rollback",
    "rotation_request",
    "status",
]


def open_engine(
    config: Config,
    environment: str,
    admin: Admin,
    *,
    stores: Sequence[SecretStore] | None = None,
    clock: Clock = utcnow,
    grace: timedelta | None = None,
    force: bool = False,
    say: Say | None = None,
    recover: bool = False,
) -> RotationEngine:
    """An engine for one configured environment, its stores opened from their URIs."""
    from keyguard.stores import open_store

    env = config.environment(environment)

    def peers() -> list[tuple[str, list[SecretStore]]]:
        others = [e for name, e in sorted(config.environments.items()) if name != env.name]
        return [(e.name, [open_store(u) for u in e.stores]) for e in others]

    return RotationEngine(
        env,
        admin=admin,
        stores=list(stores) if stores is not None else [open_store(u) for u in env.stores],
        journal=RotationJournal(config.state_dir, env.name),
        clock=clock,
        grace=grace,
        force=force,
        say=say,
        recover=recover,
        peers=peers,
    )
