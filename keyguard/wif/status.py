"""``wif status``: every environment, static, in migration or federated, and what it waits for.

Read from the configuration and the local records; the Admin API and the stores only for an
environment whose record says its static key was retired, since that word alone proves nothing
(``keyguard.rotation.status.retirement``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keyguard.config import Config
from keyguard.rotation import Admin, open_engine
from keyguard.rotation.status import retirement
from keyguard.wif.record import load_record


@dataclass
class EnvState:
    environment: str
    state: str  # static | in migration | federated
    waiting_for: str | None

    def to_json(self) -> dict[str, str | None]:
        return {
            "environment": self.environment,
            "state": self.state,
            "waiting_for": self.waiting_for,
        }


def states(config: Config, open_admin: Callable[[], Admin]) -> list[EnvState]:
    """Each environment's state; ``open_admin`` is called (once) only to check a retirement."""
    admins: list[Admin] = []
    out = []
    for name, env in sorted(config.environments.items()):
        if env.federation is None:
            out.append(EnvState(name, "static", None))
            continue
        record = load_record(config.state_dir, name)
        note = ""
        if record.retired:
            admins = admins or [open_admin()]
            retired = retirement(open_engine(config, name, admins[0]))
            if retired is not None and retired.proven:
                out.append(EnvState(name, "federated", None))
                continue
            if retired is not None:
                note = f"; note: {retired.message}"
        if not record.applied:
            out.append(EnvState(name, "in migration", f"`keyguard wif apply {name}`{note}"))
        else:
            out.append(
                EnvState(
                    name,
                    "in migration",
                    "traffic from the service account, then the static key to drain: "
                    f"`keyguard wif verify {name}`, then `keyguard wif retire-key {name}`{note}",
                )
            )
    return out
