"""A keyguard project on disk (file stores in three environments) behind the real sandbox; the
real ``keyguard`` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.config import Config, load_config
from keyguard.keys import Secret
from keyguard.stores import open_store
from keyguard.stores.interface import Stage
from keyguard.urls import STORE_ENDPOINTS_ENV

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Incident:
    """keyguard.toml: prod (two file stores), staging and dev (one each), all in the sandbox."""

    root: Path
    sandbox: Sandbox
    secrets: list[Secret]  # every key minted in a test: none may ever be printed

    @property
    def config(self) -> Config:
        return load_config(self.root / "keyguard.toml")

    def stores(self, env: str) -> list[str]:
        return list(self.config.environment(env).stores)

    def mint(self, name: str, **kw: Any) -> tuple[str, Secret]:
        key_id, secret = self.sandbox.mint_key(name, **kw)
        self.secrets.append(secret)
        return key_id, secret

    def serve(self, env: str, secret: Secret) -> None:
        """Put a key in every store of ``env`` by hand, as current (the store adopts it)."""
        for uri in self.stores(env):
            path = Path(uri.removeprefix("file:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secret.reveal() + "\n")
            path.chmod(0o600)

    def deliver(self, env: str, secret: Secret) -> None:
        """``keyguard deliver ENV``: the new key stored as pending (rotation's own engine)."""
        from keyguard.rotation import open_engine

        with self.sandbox.client() as admin:
            open_engine(self.config, env, admin).deliver(secret)

    def served(self, env: str) -> list[Secret | None]:
        return [open_store(uri).get(Stage.CURRENT) for uri in self.stores(env)]

    def status(self, key_id: str) -> str:
        with self.sandbox.client() as admin:
            return admin.get_key(key_id).status

    def revoke(
        self,
        *args: str,
        key: Secret | None = None,
        stdin: str = "",
        env: dict[str, str] | None = None,
    ) -> Run:
        """``keyguard revoke ARGS`` with ``key`` (or ``stdin``) on a piped stdin."""
        return self.run("revoke", *args, key=key, stdin=stdin, env=env)

    def run(
        self,
        *args: str,
        key: Secret | None = None,
        stdin: str = "",
        env: dict[str, str] | None = None,
    ) -> Run:
        """``keyguard ARGS`` in the project, with ``key`` (or ``stdin``) on a piped stdin."""
        extra = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
        # Store endpoints our fake servers were opted in with (allow_store_endpoint) stay.
        env[STORE_ENDPOINTS_ENV] = os.environ.get(STORE_ENDPOINTS_ENV, "")
        env.update(
            PYTHONPATH=str(ROOT),
            KEYGUARD_CONFIG=str(self.root / "keyguard.toml"),
            ANTHROPIC_ADMIN_KEY=self.sandbox.admin_key.reveal(),
            ANTHROPIC_BASE_URL=self.sandbox.url,  # chosen by the runner; the config agrees
        )
        env.update(extra)
        done = subprocess.run(
            [sys.executable, "-m", "keyguard", *args],
            input=key.reveal() + "\n" if key else stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            timeout=120,
            check=False,
        )
        run = Run(done.returncode, done.stdout, done.stderr)
        self.assert_no_leak(run.text)
        return run

    def assert_no_leak(self, text: str) -> None:
        for secret in self.secrets:
            assert secret.reveal() not in text
            assert secret.reveal()[14:60] not in text  # not even a long piece of the body

    def audit(self) -> list[dict[str, Any]]:
        path = self.root / ".keyguard" / "incidents.jsonl"
        text = path.read_text("utf-8")
        self.assert_no_leak(text)
        assert path.stat().st_mode & 0o777 == 0o600
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def incident(tmp_path: Path, sandbox: Sandbox) -> Iterator[Incident]:
    (tmp_path / "keyguard.toml").write_text(
        f"""
[anthropic]
base_url = "{sandbox.url}"

[environments.prod]
stores = ["file:stores/prod-a.json", "file:stores/prod-b.json"]

[environments.staging]
stores = ["file:stores/staging.json"]

[environments.dev]
stores = ["file:stores/dev.json"]
"""
    )
    yield Incident(tmp_path, sandbox, [])
