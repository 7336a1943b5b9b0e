"""``wif status``: every environment, static, in migration or federated, and what it waits for.

Read from the configuration and the local records only: no network, so it always answers."""

from __future__ import annotations

from dataclasses import dataclass

from keyguard.config import Config
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


def states(config: Config) -> list[EnvState]:
    out = []
    for name, env in sorted(config.environments.items()):
        if env.federation is None:
            out.append(EnvState(name, "static", None))
            continue
        record = load_record(config.state_dir, name)
        if record.retired:
            out.append(EnvState(name, "federated", None))
        elif not record.applied:
            out.append(EnvState(name, "in migration", f"`keyguard wif apply {name}`"))
        else:
            out.append(
                EnvState(
                    name,
                    "in migration",
                    "traffic from the service account, then the static key to drain: "
                    f"`keyguard wif verify {name}`, then `keyguard wif retire-key {name}`",
                )
            )
    return out
