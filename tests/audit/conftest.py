"""An organization in the sandbox plus environments in real file stores, built per test."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyguard.audit import AuditReport, run_audit
from keyguard.cli import main
from keyguard.config import load_config
from keyguard.keys import Secret
from keyguard.stores import open_store
from keyguard.stores.interface import VersionMeta
from tests.stores.servers.aws import aws_server  # noqa: F401  (fixtures for cloud stores)
from tests.stores.servers.azure import azure_kv_server, azure_server  # noqa: F401
from tests.stores.servers.gcp import gcp_fake, gcp_server  # noqa: F401


@dataclass
class Key:
    id: str
    secret: Secret


@dataclass
class Org:
    """Keys minted (back-dated) in the sandbox; environments whose stores hold them."""

    sandbox: Any
    root: Path
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    envs: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy: dict[str, str] = field(default_factory=dict)
    minted: list[Secret] = field(default_factory=list)

    def key(
        self,
        name: str,
        *,
        age_days: float = 1,
        expires_in_days: float | None = 365,
        workspace: str | None = None,
        **kind: str,
    ) -> Key:
        """A key; by default a workspace-scoped service-account key expiring in a year (the
        shape no verdict flags). ``expires_in_days=None``: one that never expires."""
        created = self.now - timedelta(days=age_days)
        expires = None if expires_in_days is None else self.now + timedelta(days=expires_in_days)
        key_id, secret = self.sandbox.mint_key(
            name, workspace_id=workspace, created_at=created, expires_at=expires, **kind
        )
        self.minted.append(secret)
        return Key(key_id, secret)

    def store(self, env: str, index: int = 0) -> str:
        return f"file:{self.root / 'stores' / f'{env}-{index}.json'}"

    def put(
        self, uri: str, key: Key, *, promote: bool = True, meta: VersionMeta | None = None
    ) -> None:
        """Deliver ``key`` into a store the way a rotation does (pending, then current)."""
        token = meta.token if meta is not None and meta.token else uuid.uuid4().hex
        store = open_store(uri)
        store.put_pending(
            key.secret,
            meta
            or VersionMeta(
                key_id=key.id,
                hint=key.secret.hint,
                fingerprint=key.secret.fingerprint,
                stored_at=self.now - timedelta(days=1),
                token=token,
            ),
        )
        if promote:
            store.promote(token)

    def env(
        self,
        name: str,
        key: Key | None,
        *,
        stores: int = 1,
        workspace: str | None = None,
        policy: dict[str, str] | None = None,
    ) -> list[str]:
        """An environment with ``stores`` file stores, each serving ``key``."""
        uris = [self.store(name, i) for i in range(stores)]
        if key is not None:
            for uri in uris:
                self.put(uri, key)
        self.envs[name] = {"stores": uris, "workspace": workspace, "policy": policy or {}}
        return uris

    def config_path(self) -> Path:
        lines = [
            "[anthropic]",
            f'base_url = "{self.sandbox.url}"',
            'admin_key = "env:ANTHROPIC_ADMIN_KEY"',
            "",
            "[policy]",
            *(f'{k} = "{v}"' for k, v in self.policy.items()),
        ]
        for name, env in self.envs.items():
            lines += ["", f"[environments.{name}]"]
            lines.append("stores = [" + ", ".join(f'"{u}"' for u in env["stores"]) + "]")
            if env["workspace"]:
                lines.append(f'workspace = "{env["workspace"]}"')
            if env["policy"]:
                lines += ["", f"[environments.{name}.policy]"]
                lines += [f'{k} = "{v}"' for k, v in env["policy"].items()]
        path = self.root / "keyguard.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def audit(self, *envs: str, **kwargs: Any) -> AuditReport:
        config = load_config(self.config_path())
        client = self.sandbox.client()
        try:
            kwargs.setdefault("clock", lambda: self.now)
            kwargs.setdefault("probe", client.reaches_admin_api)
            return run_audit(config, client, envs, **kwargs)
        finally:
            client.close()

    def cli(self, *args: str) -> tuple[int, str, str]:
        """``keyguard --config ... audit ARGS`` in process; (exit code, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["--config", str(self.config_path()), "audit", *args])
        return code, out.getvalue(), err.getvalue()

    def assert_no_key_in(self, text: str) -> None:
        """No minted key, not even its body, appears in ``text``."""
        for secret in self.minted:
            assert secret.reveal() not in text
            assert secret.reveal()[20:60] not in text


@pytest.fixture
def org(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Org]:
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", sandbox.admin_key.reveal())
    monkeypatch.setenv("ANTHROPIC_BASE_URL", sandbox.url)  # the config's base_url agrees
    monkeypatch.delenv("KEYGUARD_CONFIG", raising=False)
    (tmp_path / "stores").mkdir()
    yield Org(sandbox, tmp_path)
