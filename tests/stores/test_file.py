"""What the file store promises beyond the contract: mode, atomicity, locking, encryption."""

from __future__ import annotations

import stat
import threading
import uuid
from pathlib import Path

import pytest

from keyguard.errors import AuthError, ConfigError, UnavailableError
from keyguard.keys import generate_key
from keyguard.stores import Stage
from keyguard.stores.file import FileStore
from keyguard.stores.interface import VersionMeta


def put(store: FileStore, tok: str | None = None) -> str:
    key, tok = generate_key(), tok or str(uuid.uuid4())
    store.put_pending(key, VersionMeta(token=tok))
    return tok


def test_created_0600_and_no_key_in_any_other_file(tmp_path: Path) -> None:
    store = FileStore.from_uri(f"file:{tmp_path / 'sub' / 'prod.json'}")
    key = generate_key()
    store.put_pending(key, VersionMeta(token="t1"))
    path = tmp_path / "sub" / "prod.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    others = [p for p in (tmp_path / "sub").iterdir() if p != path]
    assert [p.name for p in others] == ["prod.json.lock"]
    assert key.reveal() not in others[0].read_text()


def test_a_crash_before_the_rename_leaves_the_old_document(tmp_path: Path) -> None:
    store = FileStore.from_uri(f"file:{tmp_path / 'prod.json'}")
    tok = put(store)
    store.promote(tok)
    before = (tmp_path / "prod.json").read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(5, "simulated crash")

    store._replace = crash
    with pytest.raises(UnavailableError, match="cannot write") as err:
        put(store)
    assert err.value.exit_code == 4
    assert (tmp_path / "prod.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prod.json", "prod.json.lock"]


def test_concurrent_writers_lose_no_version(tmp_path: Path) -> None:
    uri = f"file:{tmp_path / 'prod.json'}"
    tokens = [f"tok-{i}" for i in range(16)]

    def writer(tok: str) -> None:
        put(FileStore.from_uri(uri), tok)

    threads = [threading.Thread(target=writer, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = FileStore.from_uri(uri).describe()
    assert sorted(v.version_id for v in versions) == sorted(tokens)
    assert sum(Stage.PENDING in v.stages for v in versions) == 1


def test_encrypted_store_keeps_no_plaintext_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KG_PASS", "correct horse battery staple")
    uri = f"file:{tmp_path / 'prod.json'}?passphrase_env=KG_PASS"
    store = FileStore.from_uri(uri)
    key = generate_key()
    store.put_pending(key, VersionMeta(token="t1", hint=key.hint))
    store.promote("t1")
    raw = (tmp_path / "prod.json").read_text()
    assert key.reveal() not in raw
    assert key.reveal()[14:60] not in raw
    assert FileStore.from_uri(uri).get() == key

    monkeypatch.setenv("KG_PASS", "wrong")
    with pytest.raises(AuthError, match="wrong passphrase") as err:
        FileStore.from_uri(uri).get()
    assert err.value.exit_code == 3
    monkeypatch.delenv("KG_PASS")
    with pytest.raises(AuthError, match=r"\$KG_PASS is empty"):
        FileStore.from_uri(uri).get()
    with pytest.raises(ConfigError, match="encrypted"):
        FileStore.from_uri(f"file:{tmp_path / 'prod.json'}").get()


def test_encrypted_values_cannot_be_swapped_between_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv("KG_PASS", "pw")
    uri = f"file:{tmp_path / 'prod.json'}?passphrase_env=KG_PASS"
    store = FileStore.from_uri(uri)
    store.promote(put(store, "t1"))
    put(store, "t2")
    path = tmp_path / "prod.json"
    doc = json.loads(path.read_text())
    a, b = doc["versions"]
    a["value"], b["value"] = b["value"], a["value"]
    path.write_text(json.dumps(doc))
    with pytest.raises(AuthError, match="tampered"):
        FileStore.from_uri(uri).get()


def test_retire_superseded_drops_old_keys_from_disk(tmp_path: Path) -> None:
    store = FileStore.from_uri(f"file:{tmp_path / 'prod.json'}")
    keys = [generate_key() for _ in range(3)]
    for i, key in enumerate(keys):
        store.put_pending(key, VersionMeta(token=f"t{i}"))
        store.promote(f"t{i}")
    store.retire_superseded()
    raw = (tmp_path / "prod.json").read_text()
    assert keys[0].reveal() not in raw
    assert keys[1].reveal() in raw and keys[2].reveal() in raw
    assert len(store.describe()) == 3, "metadata of the retired version is kept"
