"""The same condition gives the same error, with the same exit code, in every backend.

One table, run against every backend of ``conftest.BACKENDS`` over its real client (moto server,
the GCP gRPC fake, the Azure HTTPS fake, a temp folder). Each row provokes one condition the way
it happens to a person and asserts the error class, its exit code, and that the message names
the store (so the one-line error says *which* store to look at):

- nothing to promote or roll back (nothing stored, or another run replaced the pending key),
  the same token with another key: ``ConflictError`` (2), the Protocol's compare-and-set;
- another live run holds the lease: ``LeaseHeldError`` (5: run again later);
- a document keyguard cannot use (``#FIELD`` over a plain secret, a non-string field):
  ``ConfigError`` (2), and a refused write stores nothing;
- access refused: ``AuthError`` (3); unreachable: ``UnavailableError`` (4);
- the secret deleted between keyguard's read and its write: ``NotFoundError`` (1);
- no key in any store of an environment: ``keyguard get`` exits 1.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyguard.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    ExitCode,
    KeyguardError,
    LeaseHeldError,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from keyguard.keys import Secret, generate_key
from keyguard.stores import SecretStore, Stage, open_store
from keyguard.stores.interface import VersionMeta
from keyguard.stores.lease import new_owner
from tests.stores.servers.base import Harness

FIELD = "ANTHROPIC_API_KEY"


def meta_for(key: Secret, token: str) -> VersionMeta:
    return VersionMeta(
        key_id=f"apikey_{uuid.uuid4().hex[:20]}",
        hint=key.hint,
        fingerprint=key.fingerprint,
        stored_at=datetime.now(UTC).replace(microsecond=0),
        token=token,
        environment="prod",
    )


def rotate(store: SecretStore, key: Secret) -> str:
    token = str(uuid.uuid4())
    store.put_pending(key, meta_for(key, token))
    store.promote(token)
    return token


# -- the conditions: each returns the store it acted on, after provoking the error ---------------


def nothing_stored_promote(harness: Harness) -> tuple[SecretStore, Callable[[], object]]:
    store = harness()
    return store, lambda: store.promote(str(uuid.uuid4()))


def nothing_stored_rollback(harness: Harness) -> tuple[SecretStore, Callable[[], object]]:
    store = harness()
    return store, store.rollback


def pending_replaced_by_another_run(
    harness: Harness,
) -> tuple[SecretStore, Callable[[], object]]:
    store = harness()
    rotate(store, generate_key())
    mine, theirs = generate_key(), generate_key()
    token = str(uuid.uuid4())
    store.put_pending(mine, meta_for(mine, token))
    other_token = str(uuid.uuid4())
    harness.open(store.uri).put_pending(theirs, meta_for(theirs, other_token))
    return store, lambda: store.promote(token)


def same_token_another_key(harness: Harness) -> tuple[SecretStore, Callable[[], object]]:
    store = harness()
    key, token = generate_key(), str(uuid.uuid4())
    store.put_pending(key, meta_for(key, token))
    other = generate_key()
    return store, lambda: store.put_pending(other, meta_for(other, token))


def lease_held_by_another_run(harness: Harness) -> tuple[SecretStore, Callable[[], object]]:
    store = harness()
    holder = store.lease(new_owner(), 600)
    holder.__enter__()  # another run holds it (its lease is left to expire)

    def take() -> None:
        try:
            with harness.open(store.uri).lease(new_owner(), 600):
                pass
        finally:
            holder.__exit__(None, None, None)  # the other run ends, releasing its lease

    return store, take


def field_over_a_plain_secret_read(
    harness: Harness,
) -> tuple[SecretStore, Callable[[], object]]:
    uri = harness.new_uri()
    harness.put_by_hand(uri, generate_key().reveal())
    store = harness.open(f"{uri}#{FIELD}")
    return store, store.get


def field_over_a_plain_secret_write(
    harness: Harness,
) -> tuple[SecretStore, Callable[[], object]]:
    uri = harness.new_uri()
    harness.put_by_hand(uri, generate_key().reveal())
    store = harness.open(f"{uri}#{FIELD}")
    key = generate_key()
    return store, lambda: store.put_pending(key, meta_for(key, str(uuid.uuid4())))


def field_holding_a_number(harness: Harness) -> tuple[SecretStore, Callable[[], object]]:
    uri = harness.new_uri()
    harness.put_by_hand(uri, json.dumps({FIELD: 42, "DB_URL": "postgres://db"}))
    store = harness.open(f"{uri}#{FIELD}")
    return store, store.get


def put_pending_without_a_token(harness: Harness) -> tuple[SecretStore, Callable[[], object]]:
    store, key = harness(), generate_key()
    return store, lambda: store.put_pending(key, VersionMeta(hint=key.hint))


CONDITIONS: dict[
    str, tuple[Callable[[Harness], tuple[SecretStore, Callable[[], object]]], type]
] = {
    "promote-with-nothing-stored": (nothing_stored_promote, ConflictError),
    "rollback-with-nothing-stored": (nothing_stored_rollback, ConflictError),
    "promote-after-another-run-replaced-pending": (
        pending_replaced_by_another_run,
        ConflictError,
    ),
    "same-token-another-key": (same_token_another_key, ConflictError),
    "lease-held-by-another-run": (lease_held_by_another_run, LeaseHeldError),
    "field-over-a-plain-secret-read": (field_over_a_plain_secret_read, ConfigError),
    "field-over-a-plain-secret-write": (field_over_a_plain_secret_write, ConfigError),
    "field-holding-a-number": (field_holding_a_number, ConfigError),
    "put-pending-without-a-token": (put_pending_without_a_token, UsageError),
}

EXIT = {
    ConflictError: ExitCode.USAGE,
    LeaseHeldError: ExitCode.PENDING,
    ConfigError: ExitCode.USAGE,
    AuthError: ExitCode.AUTH,
    UnavailableError: ExitCode.UNAVAILABLE,
    UsageError: ExitCode.USAGE,
}


def names_the_store(error: KeyguardError, store: SecretStore) -> bool:
    return store.uri in str(error)


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_the_same_condition_gives_the_same_error(store_factory: Harness, condition: str) -> None:
    provoke, expected = CONDITIONS[condition]
    store, action = provoke(store_factory)
    with pytest.raises(KeyguardError) as err:
        action()
    assert type(err.value) is expected, f"{store_factory.name}: {err.value!r}"
    assert err.value.exit_code == EXIT[expected]
    assert names_the_store(err.value, store), str(err.value)


def test_a_refused_write_stores_nothing(store_factory: Harness) -> None:
    """A #FIELD store over a plain secret refuses the delivered key before writing it anywhere."""
    store, action = field_over_a_plain_secret_write(store_factory)
    with pytest.raises(ConfigError):
        action()
    plain = store_factory.open(store.uri.removesuffix(f"#{FIELD}"))
    assert plain.get(Stage.PENDING) is None
    assert all(Stage.PENDING not in version.stages for version in plain.describe())


def test_nothing_stored_reads_as_nothing(store_factory: Harness) -> None:
    store = store_factory()
    assert store.get() is None and store.get(Stage.PREVIOUS) is None
    assert store.describe() == []
    store.withdraw(str(uuid.uuid4()))
    store.discard_pending(str(uuid.uuid4()))
    assert store.describe() == []


def test_a_refused_store_gives_the_same_error(
    store_factory: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store_factory.name == "file":
        # A file store's credential is its passphrase: a wrong one is refused access.
        monkeypatch.setenv("KG_TEST_PASSPHRASE", "the right one")
        uri = f"{store_factory.new_uri()}?passphrase_env=KG_TEST_PASSPHRASE"
        rotate(open_store(uri), generate_key())
        monkeypatch.setenv("KG_TEST_PASSPHRASE", "a wrong one")
        bad = open_store(uri)
    else:
        store = store_factory()
        rotate(store, generate_key())
        bad = store_factory.faulty(store.uri, "denied")
    _assert_raises(bad, AuthError, store_factory.name)


@pytest.mark.backends("aws", "azure", "gcp")  # a local file has no network to be cut off from
def test_an_unreachable_store_gives_the_same_error(store_factory: Harness) -> None:
    store = store_factory()
    rotate(store, generate_key())
    bad = store_factory.faulty(store.uri, "unreachable")
    _assert_raises(bad, UnavailableError, store_factory.name)


def _assert_raises(bad: SecretStore, expected: type[KeyguardError], backend: str) -> None:
    with pytest.raises(KeyguardError) as err:
        bad.get()
    assert type(err.value) is expected, f"{backend}: {err.value!r}"
    assert err.value.exit_code == EXIT[expected]
    assert names_the_store(err.value, bad), str(err.value)


@pytest.mark.backends("aws", "azure", "gcp")  # a file store reads and writes under one lock
def test_a_secret_deleted_under_a_write_is_not_found(store_factory: Harness) -> None:
    """Someone deletes the secret between keyguard's read and its write: exit 1, never a
    traceback. (A file store holds its lock across both: it has no such moment.)"""
    store = store_factory()
    rotate(store, generate_key())
    key = generate_key()
    vanishing = store_factory.faulty(store.uri, "gone")
    with pytest.raises(KeyguardError) as err:
        vanishing.put_pending(key, meta_for(key, str(uuid.uuid4())))
    assert type(err.value) is NotFoundError, f"{store_factory.name}: {err.value!r}"
    assert err.value.exit_code == ExitCode.FOUND
    assert names_the_store(err.value, vanishing), str(err.value)
    assert key.reveal() not in str(err.value)


def test_get_of_an_environment_whose_store_holds_nothing_exits_1(
    store_factory: Harness, tmp_path: Path
) -> None:
    """A consumer asks for a key no store holds: exit 1 (not found), on every backend."""
    uri = store_factory.new_uri()
    config = tmp_path / "keyguard.toml"
    config.write_text(f"[environments.prod]\nstores = [{json.dumps(uri)}]\n", "utf-8")
    done = subprocess.run(
        ["keyguard", "--config", str(config), "get", "prod"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout) == (ExitCode.FOUND, ""), done.stderr
    assert "has no current key" in done.stderr and "Traceback" not in done.stderr
