"""What keyguard made for an environment's federation, kept at ``<state dir>/wif/ENV.json``.

Ids only (no token, no key): ``apply`` records each id as soon as it exists, so a crash
part-way is finished by a rerun; ``retire-key`` records the static key it deactivated.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keyguard.atomic import write_atomic
from keyguard.errors import ConfigError


@dataclass
class WifRecord:
    environment: str
    organization_id: str | None = None
    service_account_id: str | None = None
    issuer_id: str | None = None
    rule_id: str | None = None
    workspace_id: str | None = None
    applied_at: str | None = None
    retired: dict[str, Any] = field(default_factory=dict)  # key_id, hint, at, stores

    @property
    def applied(self) -> bool:
        return bool(self.rule_id and self.service_account_id and self.applied_at)


def record_path(state_dir: Path, env: str) -> Path:
    return Path(state_dir) / "wif" / f"{env}.json"


def load_record(state_dir: Path, env: str) -> WifRecord:
    path = record_path(state_dir, env)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return WifRecord(env)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); move it away and rerun apply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; move it away and rerun apply")
    known = {k: v for k, v in data.items() if k in WifRecord.__dataclass_fields__}
    known["environment"] = env
    return WifRecord(**known)


def save_record(state_dir: Path, record: WifRecord) -> None:
    """Atomically (temp file, fsync, rename), mode 0600."""
    path = record_path(state_dir, record.environment)
    write_atomic(path, json.dumps(asdict(record), indent=1), mode=0o600)
