"""Build a demo organization for ``keyguard audit``: sandbox state, file stores, keyguard.toml.

Usage: ``python examples/audit_demo.py DIR``, then serve ``DIR/sandbox.json`` with
``keyguard sandbox --state DIR/sandbox.json`` and run ``keyguard --config DIR/keyguard.toml
audit``. Every key is made up by the local sandbox; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from keyguard.admin.sandbox import Sandbox
from keyguard.stores.file import FileStore
from keyguard.stores.interface import VersionMeta

NOW = datetime.now(UTC)

#: environment -> (key age in days, expires in days or None, number of stores)
ENVIRONMENTS = {
    "dev": (12, None, 1),
    "staging": (84, None, 1),
    "prod": (31, None, 2),
    "batch": (123, None, 1),
    "reports": (20, 5, 1),
}


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "kg-audit-demo").resolve()
    (root / "stores").mkdir(parents=True, exist_ok=True)
    # Start from an empty organization each time: the sandbox reloads an existing state file.
    for old in [root / "sandbox.json", *(root / "stores").glob("*.json")]:
        old.unlink(missing_ok=True)
    # No base_url: the sandbox's printed lines set ANTHROPIC_BASE_URL, on whatever port it got.
    config = ["# A demo organization for `keyguard audit`, served by `keyguard sandbox`.", ""]
    with Sandbox(state_file=root / "sandbox.json") as sb:
        prod_ws = sb.add_workspace("production", tags={"env": "prod"})
        for env, (age, expires, stores) in ENVIRONMENTS.items():
            ws = prod_ws if env == "prod" else None
            key_id, secret = sb.mint_key(
                f"{env}-{(NOW - timedelta(days=age)):%Y%m%d}",
                workspace_id=ws,
                created_at=NOW - timedelta(days=age),
                expires_at=NOW + timedelta(days=expires) if expires else None,
            )
            uris = [f"file:{root / 'stores' / f'{env}-{i}.json'}" for i in range(stores)]
            for uri in uris:
                token = uuid.uuid4().hex
                store = FileStore.from_uri(uri)
                meta = VersionMeta(
                    key_id=key_id,
                    hint=secret.hint,
                    fingerprint=secret.fingerprint,
                    stored_at=NOW - timedelta(days=age),
                    token=token,
                    environment=env,
                )
                store.put_pending(secret, meta)
                store.promote(token)
            for hours in (2, 30, 100):
                sb.record_usage(key_id, at=NOW - timedelta(hours=hours), input_tokens=1200)
            config += [f"[environments.{env}]", "stores = [" + ", ".join(f'"{u}"' for u in uris)]
            config[-1] += "]"
            if ws:
                config.append(f'workspace = "{ws}"')
            config.append("")
        # Keys someone made in the Console and never handed to keyguard.
        laptop, _ = sb.mint_key("laptop-test", created_at=NOW - timedelta(days=200))
        sb.record_usage(laptop, at=NOW - timedelta(hours=5), input_tokens=300, output_tokens=40)
        sb.mint_key("ci-temp", created_at=NOW - timedelta(days=3))
    (root / "keyguard.toml").write_text("\n".join(config))
    print(f"demo organization in {root}; serve it:")
    print(f"keyguard sandbox --port 0 --state {root}/sandbox.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
