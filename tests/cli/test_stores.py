"""``keyguard get`` and ``keyguard stores check`` against real stores (file, AWS on moto)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from keyguard.cli import main
from keyguard.keys import Secret, generate_key
from keyguard.stores import SecretStore, open_store
from keyguard.stores.interface import VersionMeta
from tests.stores.servers.aws import (
    AwsHarness,
    aws_server,  # noqa: F401  (fixture)
)
from tests.stores.servers.base import allow_store_endpoint


def deliver(store: SecretStore, key: Secret) -> None:
    tok = str(uuid.uuid4())
    store.put_pending(key, VersionMeta(hint=key.hint, token=tok, environment="prod"))
    store.promote(tok)


def write_config(tmp_path: Path, stores: list[str]) -> Path:
    listed = ", ".join(f'"{s}"' for s in stores)
    path = tmp_path / "keyguard.toml"
    path.write_text(f"[environments.prod]\nstores = [{listed}]\n", "utf-8")
    return path


@pytest.fixture(params=["file", "aws"])
def prod_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file:{tmp_path / 'prod.json'}"
    harness: AwsHarness = request.getfixturevalue("aws_server")
    return harness.new_uri()


def test_get_prints_the_current_key_and_nothing_else(
    prod_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = generate_key(), generate_key()
    store = open_store(prod_uri)
    deliver(store, old)
    deliver(store, new)
    config = write_config(tmp_path, [prod_uri])
    assert main(["--config", str(config), "get", "prod"]) == 0
    out, err = capsys.readouterr()
    assert out == new.reveal() + "\n"
    assert err == ""


def test_get_with_no_key_exits_1(
    prod_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, [prod_uri])
    assert main(["--config", str(config), "get", "prod"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "no current key" in err


def test_get_falls_through_an_unreachable_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = generate_key()
    good = f"file:{tmp_path / 'prod.json'}"
    deliver(open_store(good), key)
    allow_store_endpoint("http://127.0.0.1:9")
    dead = "aws-sm://us-east-1/anthropic/prod?endpoint_url=http://127.0.0.1:9&max_attempts=1"
    config = write_config(tmp_path, [dead, good])
    assert main(["--config", str(config), "get", "prod"]) == 0
    assert capsys.readouterr().out == key.reveal() + "\n"


def test_get_reports_an_unreachable_only_store_as_unavailable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    allow_store_endpoint("http://127.0.0.1:9")
    dead = "aws-sm://us-east-1/anthropic/prod?endpoint_url=http://127.0.0.1:9&max_attempts=1"
    config = write_config(tmp_path, [dead])
    assert main(["--config", str(config), "get", "prod"]) == 4
    assert "cannot reach AWS Secrets Manager" in capsys.readouterr().err


def test_stores_check_shows_hints_and_stages_never_keys(
    prod_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = generate_key(), generate_key()
    store = open_store(prod_uri)
    deliver(store, old)
    deliver(store, new)
    config = write_config(tmp_path, [prod_uri])
    assert main(["--config", str(config), "stores", "check"]) == 0
    out = capsys.readouterr().out
    assert new.hint in out and old.hint in out
    assert new.reveal() not in out and old.reveal() not in out


def test_stores_check_exit_code_names_the_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    allow_store_endpoint("http://127.0.0.1:9")
    dead = "aws-sm://us-east-1/anthropic/prod?endpoint_url=http://127.0.0.1:9&max_attempts=1"
    config = write_config(tmp_path, [f"file:{tmp_path / 'ok.json'}", dead])
    assert main(["--config", str(config), "stores", "check"]) == 4
    assert "UnavailableError" in capsys.readouterr().out
