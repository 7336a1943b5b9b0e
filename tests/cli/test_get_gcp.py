"""``keyguard get`` and ``keyguard stores check`` against a ``gcp-sm`` store on the gRPC fake."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from keyguard.cli import main
from keyguard.keys import Secret, generate_key
from keyguard.stores import SecretStore, Stage, open_store
from keyguard.stores.interface import VersionMeta
from tests.stores.servers.gcp import (
    GcpHarness,
    gcp_fake,  # noqa: F401  (fixture)
    gcp_server,  # noqa: F401  (fixture)
)


@pytest.fixture
def gcp(request: pytest.FixtureRequest) -> GcpHarness:
    harness: GcpHarness = request.getfixturevalue("gcp_server")
    return harness


def deliver(store: SecretStore, key: Secret, promote: bool = True) -> None:
    tok = str(uuid.uuid4())
    store.put_pending(key, VersionMeta(hint=key.hint, token=tok, environment="prod"))
    if promote:
        store.promote(tok)


def write_config(tmp_path: Path, uri: str) -> Path:
    path = tmp_path / "keyguard.toml"
    path.write_text(f'[environments.prod]\nstores = ["{uri}"]\n', "utf-8")
    return path


def test_get_prints_the_current_gcp_key_and_nothing_else(gcp: GcpHarness, tmp_path: Path) -> None:
    uri = gcp.new_uri()
    old, new, pending = generate_key(), generate_key(), generate_key()
    store = open_store(uri)
    deliver(store, old)
    deliver(store, new)
    deliver(store, pending, promote=False)  # the newest version: `latest` would serve it
    assert store.get(Stage.PENDING) == pending
    config = write_config(tmp_path, uri)
    env = {**os.environ, "KEYGUARD_CONFIG": str(config)}
    done = subprocess.run(
        ["keyguard", "get", "prod"], capture_output=True, text=True, env=env, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, new.reveal() + "\n", "")


def test_get_with_an_empty_gcp_secret_exits_1(
    gcp: GcpHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, gcp.new_uri())
    assert main(["--config", str(config), "get", "prod"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "no current key" in err


def test_get_reads_a_field_of_a_secret_made_by_hand(
    gcp: GcpHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = generate_key()
    uri = gcp.new_uri(field="ANTHROPIC_API_KEY")
    gcp.put_by_hand(uri, f'{{"DB": "x", "ANTHROPIC_API_KEY": "{key.reveal()}"}}')
    config = write_config(tmp_path, uri)
    assert main(["--config", str(config), "get", "prod"]) == 0
    assert capsys.readouterr().out == key.reveal() + "\n"


def test_stores_check_shows_hints_not_keys(
    gcp: GcpHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = gcp.new_uri()
    key = generate_key()
    deliver(open_store(uri), key)
    config = write_config(tmp_path, uri)
    code = main(["--config", str(config), "stores", "check"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert key.hint in out
    assert key.reveal() not in out + err
