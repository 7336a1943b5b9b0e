"""A keyguard project on disk wired to the real sandbox, and the real CLI in a subprocess; and
the in-memory world of the state machine's unit tests (``fake_world``, ``serving_old_key``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.config import Config, Environment, load_config
from keyguard.journal import RotationJournal
from keyguard.keys import API_KEY_RE, Secret
from keyguard.policy import Policy
from keyguard.rotation import RotationEngine
from keyguard.stores import SecretStore, open_store
from keyguard.stores.interface import Stage
from keyguard.stores.uri import STORE_CA_BUNDLES_ENV
from keyguard.urls import STORE_ENDPOINTS_ENV
from tests.rotation.fakes import Clock, FakeAdmin, FakeStore
from tests.stores.lease_clock import lease_clock  # noqa: F401  (fixture: a lease lapses)
from tests.stores.servers.aws import aws_server  # noqa: F401  (fixture for the AWS scenarios)

ROOT = Path(__file__).resolve().parents[2]


def look_alike(key: Secret) -> Secret:
    """A different string with the same ``partial_key_hint``: anyone who saw the hint can."""
    raw = key.reveal()
    twin = Secret(raw[:20] + ("x" if raw[20] != "x" else "y") + raw[21:])
    assert twin.hint == key.hint and twin != key
    return twin


@dataclass
class Project:
    """keyguard.toml with one environment ``prod`` on file stores, plus the sandbox behind it."""

    root: Path
    sandbox: Sandbox
    workspace: str
    stores: list[str]
    ids: dict[str, str] = field(default_factory=dict)  # fingerprint -> apikey id
    _opened: dict[str, SecretStore] = field(default_factory=dict)
    by_hand: Callable[[str, str], None] | None = None  # writes a plain value to a cloud store

    @property
    def config(self) -> Config:
        return load_config(self.root / "keyguard.toml")

    @property
    def journal(self) -> Path:
        return self.root / ".keyguard" / "prod.journal.jsonl"

    def mint(self, name: str, **kw: Any) -> tuple[str, Secret]:
        key_id, secret = self.sandbox.mint_key(name, workspace_id=self.workspace, **kw)
        self.ids[secret.fingerprint] = key_id
        return key_id, secret

    def seed(self, secret: Secret) -> None:
        """Put a key into every store by hand, the way it sat there before keyguard."""
        for uri in self.stores:
            if not uri.startswith("file:"):
                assert self.by_hand is not None, f"no way to seed {uri}"
                self.by_hand(uri, secret.reveal())
                continue
            path = Path(uri.removeprefix("file:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secret.reveal() + "\n")
            path.chmod(0o600)

    def open_stores(self) -> list[SecretStore]:
        """The stores, opened once (a boto3 client is slow to build)."""
        for uri in self.stores:
            if uri not in self._opened:
                self._opened[uri] = open_store(uri)
        return [self._opened[uri] for uri in self.stores]

    def snapshot(self) -> tuple[list[object], str, int]:
        """Every store (a file store's raw bytes, a cloud store's versions and stages), the
        journal and the count of Admin API writes: what a refusal must leave as it was."""
        stores: list[object] = []
        for uri, store in zip(self.stores, self.open_stores(), strict=True):
            if uri.startswith("file:"):
                stores.append(Path(uri.removeprefix("file:")).read_bytes())
            else:
                stores.append((store.describe(), store.get(Stage.PREVIOUS)))
        journal = self.journal.read_text() if self.journal.exists() else ""
        return stores, journal, len(self.sandbox.writes())

    def follow(self, clock: Callable[[], datetime]) -> None:
        """The sandbox (the API's clock, its ``Date`` header) tells the test's clock's time."""
        self.sandbox.state.now = lambda: clock().timestamp()

    def served(self) -> list[Secret | None]:
        return [store.get(Stage.CURRENT) for store in self.open_stores()]

    def status_of(self, secret: Secret) -> str:
        with self.sandbox.client() as admin:
            return admin.get_key(self.ids[secret.fingerprint]).status

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
        # Store endpoints and CA bundles our fake servers were opted in with stay.
        env[STORE_ENDPOINTS_ENV] = os.environ.get(STORE_ENDPOINTS_ENV, "")
        env[STORE_CA_BUNDLES_ENV] = os.environ.get(STORE_CA_BUNDLES_ENV, "")
        env.update(
            PYTHONPATH=str(ROOT),
            KEYGUARD_CONFIG=str(self.root / "keyguard.toml"),
            ANTHROPIC_ADMIN_KEY=self.sandbox.admin_key.reveal(),
            ANTHROPIC_BASE_URL=self.sandbox.url,  # chosen by the runner; the config agrees
            KEYGUARD_STDIN_WAIT="2",
            **extra,
        )
        return env

    def run(
        self, *args: str, input: str | None = "", crash_at: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """The real CLI in a subprocess; stdin gets ``input`` (closed after)."""
        extra = {"KEYGUARD_TEST_CRASH_AT": crash_at} if crash_at else {}
        done = subprocess.run(
            [sys.executable, "-m", "keyguard", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(**extra),
            cwd=self.root,
            timeout=timeout,
            check=False,
        )
        assert not API_KEY_RE.search(done.stdout + done.stderr), "a key reached the output"
        return done


def make_project(
    root: Path,
    sandbox: Sandbox,
    *,
    stores: int = 2,
    check: str | None = None,
    extra: str = "",
    uris: list[str] | None = None,
) -> Project:
    workspace = sandbox.add_workspace("prod", tags={"env": "prod"})
    uris = uris or [f"file:{root / 'stores' / f'prod-{i}.json'}" for i in range(stores)]
    check_line = f"check = {check!r}\n" if check else ""
    (root / "keyguard.toml").write_text(
        f'[anthropic]\nbase_url = "{sandbox.url}"\n\n'
        f"[environments.prod]\nstores = {uris!r}\n".replace("'", '"')
        + f'workspace = "{workspace}"\n'
        + check_line
        + extra
    )
    return Project(root, sandbox, workspace, uris)


@pytest.fixture
def project(tmp_path: Path, sandbox: Sandbox) -> Project:
    return make_project(tmp_path, sandbox)


@dataclass
class FakeWorld:
    """The state machine's world in memory: an Admin API, two stores, a clock, a state folder.

    Environment ``prod`` serves from both stores and lives in workspace ``wrkspc_p``.
    """

    admin: FakeAdmin
    stores: list[FakeStore]
    clock: Clock
    state_dir: Path

    def engine(self, *, check: str | None = None, **options: Any) -> RotationEngine:
        """A fresh engine over this world, as each scheduled run builds one."""
        env = Environment(
            "prod",
            tuple(store.uri for store in self.stores),
            Policy(),
            workspace="wrkspc_p",
            check=check,
        )
        return RotationEngine(
            env,
            admin=self.admin,
            stores=self.stores,
            journal=RotationJournal(self.state_dir, "prod"),
            clock=self.clock,
            **options,
        )


@dataclass(frozen=True)
class MintedKey:
    """A key the fake Admin API knows: its ``apikey_`` id and its value."""

    id: str
    value: Secret


@pytest.fixture
def fake_world(tmp_path: Path) -> FakeWorld:
    return FakeWorld(
        FakeAdmin(),
        [FakeStore(f"fake:{tmp_path}/a"), FakeStore(f"fake:{tmp_path}/b")],
        Clock(),
        tmp_path,
    )


@pytest.fixture
def serving_old_key(fake_world: FakeWorld) -> MintedKey:
    """Key ``prod-old``, put in every store by hand before keyguard ever ran."""
    key_id, value = fake_world.admin.mint("prod-old", "wrkspc_p")
    for store in fake_world.stores:
        store.seed(value)
    return MintedKey(key_id, value)


@pytest.fixture
def new_key(fake_world: FakeWorld) -> MintedKey:
    """Key ``prod-new``, just created in the Console for ``prod`` and not yet delivered."""
    key_id, value = fake_world.admin.mint("prod-new", "wrkspc_p")
    return MintedKey(key_id, value)
