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


_DENIED_PROBE = """
import os, sys
from keyguard.errors import KeyguardError
from keyguard.keys import Secret
from keyguard.stores import open_store
from keyguard.stores.interface import VersionMeta

store = open_store(sys.argv[1])
new = Secret(sys.stdin.read())
if os.geteuid() == 0:  # root reads anything: act as "nobody", whom 0600/0700 keep out
    os.setegid(65534)
    os.seteuid(65534)
for name, action in (
    ("get", lambda: store.get()),
    ("put", lambda: store.put_pending(new, VersionMeta(token="t2"))),
):
    try:
        action()
        print(name, "ok")
    except KeyguardError as exc:
        print(name, type(exc).__name__, int(exc.exit_code), str(exc))
"""


def test_permission_denied_is_an_auth_error_and_changes_nothing(tmp_path: Path) -> None:
    """A user who may not read the store gets exit 3, no key in the message, no change."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "secrets"
    uri = f"file:{folder / 'prod.json'}"
    store = FileStore.from_uri(uri)
    old, new = generate_key(), generate_key()
    store.put_pending(old, VersionMeta(token="t1"))
    store.promote("t1")
    before = (folder / "prod.json").read_bytes()
    if os.geteuid() != 0:
        folder.chmod(0o000)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _DENIED_PROBE, uri],
            input=new.reveal(),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
            check=False,
        )
    finally:
        folder.chmod(0o700)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["get", "AuthError", "3"],
        ["put", "AuthError", "3"],
    ]
    assert all("permission denied" in line for line in lines)
    assert old.reveal() not in proc.stdout + proc.stderr
    assert new.reveal() not in proc.stdout + proc.stderr
    assert (folder / "prod.json").read_bytes() == before


# -- links and files put there by hand -------------------------------------------------------


def test_a_symlinked_store_is_written_through_to_its_target(tmp_path: Path) -> None:
    real = tmp_path / "mounted" / "anthropic.json"
    real.parent.mkdir()
    old, new = generate_key(), generate_key()
    real.write_text(old.reveal() + "\n")
    link = tmp_path / "app" / "prod.json"
    link.parent.mkdir()
    link.symlink_to(real)
    store = FileStore.from_uri(f"file:{link}")
    assert store.get() == old
    store.put_pending(new, VersionMeta(token="t1"))
    store.promote("t1")
    assert link.is_symlink() and link.resolve() == real
    assert FileStore.from_uri(f"file:{real}").get() == new
    assert FileStore.from_uri(f"file:{real}").get(Stage.PREVIOUS) == old
    # The temp file and the lock live beside the target, and nothing is left behind.
    beside = sorted(p.name for p in real.parent.iterdir())
    assert beside == ["anthropic.json", "anthropic.json.lock"]
    assert sorted(p.name for p in link.parent.iterdir()) == ["prod.json"]


def test_a_dangling_symlink_gets_its_target_created(tmp_path: Path) -> None:
    real = tmp_path / "target.json"
    link = tmp_path / "prod.json"
    link.symlink_to(real)
    store = FileStore.from_uri(f"file:{link}")
    store.put_pending(generate_key(), VersionMeta(token="t1"))
    assert link.is_symlink() and real.is_file()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("DB_URL=postgres://db\nANTHROPIC_API_KEY={key}\nDEBUG=1\n", "3 lines of text"),
        ('{{"anthropic": "{key}", "db": "postgres://db"}}', "a JSON document"),
        ("ANTHROPIC_API_KEY={key}\n", "one line that is not a key"),
        ("{key} {key}\n", "one line that is not a key"),
    ],
)
def test_a_file_holding_more_than_a_key_is_refused_and_left_unchanged(
    tmp_path: Path, text: str, said: str
) -> None:
    key = generate_key()
    path = tmp_path / "prod.env"
    path.write_text(text.format(key=key.reveal()))
    before = path.read_bytes()
    store = FileStore.from_uri(f"file:{path}")
    for attempt in (store.get, lambda: store.put_pending(generate_key(), VersionMeta(token="t"))):
        with pytest.raises(ConfigError, match=said) as err:
            attempt()
        assert err.value.exit_code == 2
        assert "left unchanged" in str(err.value) and key.reveal() not in str(err.value)
    assert path.read_bytes() == before


def test_a_json_field_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prod.json"
    path.write_text('{"anthropic": "changeme", "db": "postgres://db"}')
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="#anthropic is not an Anthropic API key"):
        FileStore.from_uri(f"file:{path}#anthropic").put_pending(
            generate_key(), VersionMeta(token="t")
        )
    assert path.read_bytes() == before


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prod.json"
    path.write_bytes(b"\xff\xfe\x00k\x00e\x00y")
    with pytest.raises(ConfigError, match="not UTF-8"):
        FileStore.from_uri(f"file:{path}").get()
