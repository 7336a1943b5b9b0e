"""Key rotation: create -> update -> verify -> revoke per environment, resumable.

``context`` is what every step shares; ``create``, ``update`` (and verify), ``revoke``,
``recover``, ``rollback`` and ``status`` are the steps; ``engine`` orders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from keyguard.config import Config
from keyguard.journal import RotationJournal
from keyguard.models import Say
from keyguard.rotation.context import Admin, Clock, utcnow
from keyguard.rotation.engine import RotationEngine
from keyguard.rotation.rollback import RollbackRefused, rollback
from keyguard.rotation.state import KeyRef, RotationState
from keyguard.rotation.status import plan, rotation_request, status
from keyguard.rotation.update import VerificationError
from keyguard.stores import open_store
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
    env = config.environment(environment)

    def peers() -> list[tuple[str, list[SecretStore]]]:
        others = [other for name, other in sorted(config.environments.items()) if name != env.name]
        return [(other.name, [open_store(uri) for uri in other.stores]) for other in others]

    return RotationEngine(
        env,
        admin=admin,
        stores=list(stores) if stores is not None else [open_store(uri) for uri in env.stores],
        journal=RotationJournal(config.state_dir, env.name),
        clock=clock,
        grace=grace,
        force=force,
        say=say,
        recover=recover,
        peers=peers,
    )
