"""``keyguard get`` and ``keyguard stores check`` on an ``azure-kv`` store (the HTTPS fake)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from keyguard.cli import main
from keyguard.keys import Secret, generate_key
from keyguard.stores import SecretStore, open_store
from keyguard.stores.interface import VersionMeta
from tests.stores.servers import azure as azure_servers
from tests.stores.servers.azure import AzureKeyVaultServer

kv_server = azure_servers.azure_kv_server  # the session fixture, under this name here


def deliver(store: SecretStore, key: Secret) -> None:
    tok = str(uuid.uuid4())
    store.put_pending(key, VersionMeta(hint=key.hint, token=tok, environment="prod"))
    store.promote(tok)


def write_config(
    tmp_path: Path, server: AzureKeyVaultServer, name: str, vault_url: str = ""
) -> Path:
    uri = server.uri(name, vault_url=vault_url)
    path = tmp_path / "keyguard.toml"
    path.write_text(f'[environments.prod]\nstores = ["{uri}"]\n', "utf-8")
    return path


def test_get_prints_the_azure_current_key(
    kv_server: AzureKeyVaultServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"kg-{uuid.uuid4().hex[:12]}"
    config = write_config(tmp_path, kv_server, name)
    old, new = generate_key(), generate_key()
    store = open_store(kv_server.uri(name))
    deliver(store, old)
    deliver(store, new)
    pending = generate_key()
    store.put_pending(pending, VersionMeta(token=str(uuid.uuid4())))
    assert main(["--config", str(config), "get", "prod"]) == 0
    out, err = capsys.readouterr()
    assert out == new.reveal() + "\n", "the current key, not the pending one"
    assert err == ""
    assert main(["--config", str(config), "stores", "check"]) == 0
    out = capsys.readouterr().out
    assert new.hint in out and old.hint in out
    assert new.reveal() not in out and pending.reveal() not in out


def test_get_with_an_empty_azure_store_exits_1(
    kv_server: AzureKeyVaultServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, kv_server, f"kg-{uuid.uuid4().hex[:12]}")
    assert main(["--config", str(config), "get", "prod"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "no current key" in err


def test_get_when_azure_denies_access_exits_3(
    kv_server: AzureKeyVaultServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    denied = kv_server.fault_url("403")
    config = write_config(tmp_path, kv_server, "kg-denied", vault_url=denied)
    assert main(["--config", str(config), "get", "prod"]) == 3
    out, err = capsys.readouterr()
    assert out == "" and "permission denied" in err
