"""Store endpoints a keyguard.toml names are used only when the person running keyguard chose them.

Each test is the attack: a cloned repository's keyguard.toml points a store at a loopback
listener standing in for the attacker's host. Unless ``KEYGUARD_STORE_ENDPOINTS`` lists it, the
listener must receive nothing (no key, no cloud credential, not even a connection).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyguard.errors import ConfigError
from keyguard.stores import open_store
from keyguard.stores.uri import STORE_CA_BUNDLES_ENV, parse_store_uri
from keyguard.urls import STORE_ENDPOINTS_ENV


class Attacker:
    """A loopback TCP listener that counts connections (HTTP, TLS and gRPC all connect first)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    server = Attacker()
    yield server
    server.close()


def _uris(port: int) -> dict[str, str]:
    return {
        "aws": f"aws-sm://us-east-1/anthropic/prod?endpoint_url=http://127.0.0.1:{port}"
        "&max_attempts=1",
        "azure": f"azure-kv://evil/prod?vault_url=https://127.0.0.1:{port}&max_attempts=1",
        "gcp": f"gcp-sm://kg-test/prod?endpoint=127.0.0.1:{port}&insecure=true&attempts=1",
    }


def _opt_in(kind: str, port: int) -> str:
    return f"{'https' if kind == 'azure' else 'http'}://127.0.0.1:{port}"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in (STORE_ENDPOINTS_ENV, STORE_CA_BUNDLES_ENV)
    }
    # Cloud credentials the attacker would love to receive (fake, built here).
    env.update(
        AWS_ACCESS_KEY_ID="AKIA" + "X" * 16,
        AWS_SECRET_ACCESS_KEY="s" * 40,
        AWS_EC2_METADATA_DISABLED="true",
        HOME=str(tmp_path),
    )
    env.update(extra)
    return env


def _config(tmp_path: Path, uri: str) -> Path:
    path = tmp_path / "keyguard.toml"
    path.write_text(f'[environments.prod]\nstores = ["{uri}"]\n', "utf-8")
    return path


@pytest.mark.parametrize("kind", ["aws", "azure", "gcp"])
@pytest.mark.parametrize("command", [["get", "prod"], ["stores", "check"]])
def test_config_endpoint_receives_nothing_unless_opted_in(
    attacker: Attacker, tmp_path: Path, kind: str, command: list[str]
) -> None:
    config = _config(tmp_path, _uris(attacker.port)[kind])
    run = subprocess.run(
        ["keyguard", "--config", str(config), *command],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
    )
    assert attacker.connections == 0
    output = run.stdout + run.stderr
    assert STORE_ENDPOINTS_ENV in output
    assert f"{STORE_ENDPOINTS_ENV}={_opt_in(kind, attacker.port)}" in output
    assert "Traceback" not in output
    if command[0] == "get":
        assert run.returncode == 2, output


@pytest.mark.parametrize("kind", ["aws", "azure", "gcp"])
def test_an_opted_in_endpoint_is_reached(attacker: Attacker, tmp_path: Path, kind: str) -> None:
    """The control: the same config with the endpoint chosen does connect (the rule is real)."""
    config = _config(tmp_path, _uris(attacker.port)[kind])
    allowed = _opt_in(kind, attacker.port)
    run = subprocess.run(
        ["keyguard", "--config", str(config), "get", "prod"],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **{STORE_ENDPOINTS_ENV: f"https://example.com {allowed}"}),
        timeout=60,
    )
    assert run.returncode != 0  # the stand-in is no store
    assert attacker.connections > 0
    assert STORE_ENDPOINTS_ENV not in run.stderr


def test_get_does_not_fall_through_a_refused_store(attacker: Attacker, tmp_path: Path) -> None:
    """A refused endpoint is a config error to fix, not an outage to hide behind the next store."""
    good = tmp_path / "prod.json"
    config = _config(tmp_path, _uris(attacker.port)["aws"])
    config.write_text(config.read_text().replace('"]', f'", "file:{good}"]'), "utf-8")
    run = subprocess.run(
        ["keyguard", "--config", str(config), "get", "prod"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
    )
    assert (run.returncode, run.stdout, attacker.connections) == (2, "", 0), run.stderr
    assert STORE_ENDPOINTS_ENV in run.stderr


def test_rotate_refuses_before_any_network_call(attacker: Attacker, tmp_path: Path) -> None:
    config = _config(tmp_path, _uris(attacker.port)["aws"])
    run = subprocess.run(
        ["keyguard", "--config", str(config), "rotate", "prod"],
        capture_output=True,
        text=True,
        env=_env(
            tmp_path,
            ANTHROPIC_ADMIN_KEY="x",
            ANTHROPIC_BASE_URL=f"http://127.0.0.1:{attacker.port}",
        ),
        timeout=60,
    )
    assert attacker.connections == 0
    assert run.returncode == 2, run.stderr
    assert STORE_ENDPOINTS_ENV in run.stderr


@pytest.mark.parametrize(
    ("uri", "allowed", "message"),
    [
        # Another port on the same host is another endpoint.
        ("aws-sm://r/n?endpoint_url=http://127.0.0.1:2", "http://127.0.0.1:1", "export"),
        # Userinfo: a prefix match on the listed URL would accept it.
        ("aws-sm://r/n?endpoint_url=http://127.0.0.1:1@evil.example", "http://127.0.0.1:1", "@"),
        # Plain http leaves loopback only if listed, and never even then.
        ("aws-sm://r/n?endpoint_url=http://evil.example", "http://evil.example", "plain http"),
        ("gcp-sm://p/s?endpoint=evil.example:80&insecure=true", "http://evil.example", "http"),
        ("gcp-sm://p/s?endpoint=127.0.0.1:1@evil.example:443", "https://evil.example", "HOST"),
        ("gcp-sm://p/s?endpoint=evil.example", "https://evil.example:8443", "export"),
        ("azure-kv://vvv/n?vault_url=https://127.0.0.1.evil.example", "https://127.0.0.1", "exp"),
    ],
)
def test_endpoints_are_parsed_not_prefix_matched(
    monkeypatch: pytest.MonkeyPatch, uri: str, allowed: str, message: str
) -> None:
    monkeypatch.setenv(STORE_ENDPOINTS_ENV, allowed)
    with pytest.raises(ConfigError, match=message) as err:
        open_store(uri)
    assert err.value.exit_code == 2


def test_a_bad_opt_in_entry_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_ENDPOINTS_ENV, "http://evil.example")
    with pytest.raises(ConfigError, match=STORE_ENDPOINTS_ENV):
        open_store("aws-sm://r/n?endpoint_url=http://127.0.0.1:1")


# -- the CA a key is sent under ----------------------------------------------------------------


def _ca_config(tmp_path: Path, port: int) -> tuple[Path, Path]:
    """A cloned repository that ships its own CA and names it for an Azure store."""
    shipped = tmp_path / "repo" / "ca.pem"
    shipped.parent.mkdir()
    shipped.write_text("-----BEGIN CERTIFICATE-----\nnot checked before the opt-in\n", "utf-8")
    uri = (
        f"azure-kv://evil/prod?vault_url=https://127.0.0.1:{port}&ca_bundle={shipped}"
        "&max_attempts=1"
    )
    return _config(tmp_path, uri), shipped


@pytest.mark.parametrize("command", [["get", "prod"], ["stores", "check"]])
def test_a_repository_cannot_choose_the_ca_a_key_is_sent_under(
    attacker: Attacker, tmp_path: Path, command: list[str]
) -> None:
    """Even to an endpoint the operator chose, a repository's CA bundle is not trusted."""
    config, shipped = _ca_config(tmp_path, attacker.port)
    endpoint = f"https://127.0.0.1:{attacker.port}"
    run = subprocess.run(
        ["keyguard", "--config", str(config), *command],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **{STORE_ENDPOINTS_ENV: endpoint}),
        timeout=60,
    )
    output = run.stdout + run.stderr
    assert attacker.connections == 0
    assert f"{STORE_CA_BUNDLES_ENV}={shipped}" in output
    assert "Traceback" not in output
    if command[0] == "get":
        assert run.returncode == 2, output


def test_a_chosen_ca_bundle_is_used(attacker: Attacker, tmp_path: Path) -> None:
    """The control: the operator lists the same bundle, and the store goes on to connect."""
    config, shipped = _ca_config(tmp_path, attacker.port)
    chosen = {
        STORE_ENDPOINTS_ENV: f"https://127.0.0.1:{attacker.port}",
        STORE_CA_BUNDLES_ENV: os.pathsep.join(["/elsewhere/ca.pem", str(shipped)]),
    }
    run = subprocess.run(
        ["keyguard", "--config", str(config), "get", "prod"],
        capture_output=True,
        text=True,
        env=_env(tmp_path, **chosen),
        timeout=60,
    )
    assert STORE_CA_BUNDLES_ENV not in run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert run.returncode != 0  # the stand-in is no store (nor is the bundle a certificate)
    assert attacker.connections > 0


@pytest.mark.parametrize(
    ("value", "insecure", "allowed", "target"),
    [
        ("Store.Example ", False, "https://store.example", "store.example:443"),
        ("store.example:8443", False, "https://store.example:8443", "store.example:8443"),
        ("127.0.0.1:80", True, "http://127.0.0.1", "127.0.0.1:80"),
        ("[::1]:5", True, "http://[::1]:5", "[::1]:5"),
    ],
)
def test_a_grpc_endpoint_is_used_in_the_form_that_was_checked(
    monkeypatch: pytest.MonkeyPatch, value: str, insecure: bool, allowed: str, target: str
) -> None:
    """The HOST:PORT handed to gRPC is the normalized one the opt-in check passed, port spelled
    out: never the raw option text (case, spaces) that was only compared after normalizing."""
    monkeypatch.setenv(STORE_ENDPOINTS_ENV, allowed)
    parsed = parse_store_uri(f"gcp-sm://p/s?endpoint={value}")
    assert parsed.opt_endpoint("endpoint", host_port=True, insecure=insecure) == target
