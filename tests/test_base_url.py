"""Keys go only where the person running keyguard chose: the attacks of issue 11, point 2.

A real HTTP server on loopback stands in for the attacker: whatever a cloned repository's
keyguard.toml says, it must receive nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from keyguard.admin import AdminClient
from keyguard.admin.sandbox import Sandbox
from keyguard.config import load_config
from keyguard.errors import ConfigError
from keyguard.keys import Secret
from keyguard.liveness import LivenessChecker
from keyguard.urls import parse_base_url, redact_url

ROOT = Path(__file__).resolve().parents[1]


class Attacker:
    """A loopback HTTP server that records every request it gets (and answers 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                seen.append((self.command, self.path, dict(self.headers)))
                body = b'{"data": [], "has_more": false}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    a = Attacker()
    try:
        yield a
    finally:
        a.server.shutdown()
        a.server.server_close()


def keyguard(
    cwd: Path, *args: str, stdin: str = "", **env_extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(PYTHONPATH=str(ROOT), KEYGUARD_STDIN_WAIT="1", **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "keyguard", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def cloned_repo(tmp_path: Path, base_url: str, key: Secret | None = None) -> Path:
    """A repository someone else wrote: its keyguard.toml names their host; a key is planted."""
    repo = tmp_path / "cloned"
    (repo / "stores").mkdir(parents=True)
    (repo / "keyguard.toml").write_text(
        f'[anthropic]\nbase_url = "{base_url}"\n\n'
        '[environments.prod]\nstores = ["file:stores/prod.json"]\n'
    )
    if key is not None:
        (repo / "app.env").write_text(f"ANTHROPIC_API_KEY={key.reveal()}\n")
        store = repo / "stores" / "prod.json"
        store.write_text(key.reveal() + "\n")
        store.chmod(0o600)
    return repo


def _refused(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


# -- a cloned repository's keyguard.toml alone never chooses ---------------------------------


def test_scan_verify_in_a_cloned_repo_sends_no_key_to_its_base_url(
    tmp_path: Path, sandbox: Sandbox, attacker: Attacker
) -> None:
    _, live = sandbox.mint_key("prod-1")
    repo = cloned_repo(tmp_path, attacker.url, live)
    done = keyguard(repo, "scan", ".", "--verify")
    _refused(done, "[anthropic] base_url", "ANTHROPIC_BASE_URL", "--base-url", "keyguard.toml:2")
    assert attacker.requests == []
    assert live.reveal() not in done.stdout + done.stderr


def test_a_plain_scan_of_a_cloned_repo_still_runs(tmp_path: Path, attacker: Attacker) -> None:
    repo = cloned_repo(tmp_path, "http://localhost@evil.example")
    done = keyguard(repo, "scan", ".")
    assert done.returncode == 0, done.stderr  # nothing is sent, so nothing to refuse
    assert attacker.requests == []


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "list"],
        ["status", "prod"],
        ["audit"],
        ["rotate", "prod"],
        ["revoke", "--leaked", "-", "--yes"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_the_admin_key_and_a_leaked_key_never_go_to_a_config_only_base_url(
    tmp_path: Path, sandbox: Sandbox, attacker: Attacker, command: list[str]
) -> None:
    _, live = sandbox.mint_key("prod-1")
    repo = cloned_repo(tmp_path, attacker.url, live)
    done = keyguard(
        repo,
        *command,
        stdin=live.reveal() + "\n",
        ANTHROPIC_ADMIN_KEY=sandbox.admin_key.reveal(),
    )
    _refused(done, "[anthropic] base_url", "ANTHROPIC_BASE_URL")
    assert attacker.requests == []
    assert sandbox.admin_key.reveal() not in done.stdout + done.stderr


def test_userinfo_that_looks_like_localhost_is_refused_even_when_chosen(
    tmp_path: Path, sandbox: Sandbox, attacker: Attacker
) -> None:
    # Starts with "http://localhost", but the host is the attacker's 127.0.0.1:PORT.
    url = f"http://localhost@127.0.0.1:{attacker.port}"
    _, live = sandbox.mint_key("prod-1")
    repo = cloned_repo(tmp_path, url, live)
    admin = sandbox.admin_key.reveal()
    for done in (
        keyguard(repo, "keys", "list", ANTHROPIC_ADMIN_KEY=admin),
        keyguard(repo, "keys", "list", ANTHROPIC_ADMIN_KEY=admin, ANTHROPIC_BASE_URL=url),
        keyguard(repo, "--base-url", url, "scan", ".", "--verify"),
    ):
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
    assert attacker.requests == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://localhost@evil.example", "user name"),
        ("https://user:pw@api.anthropic.com", "user name"),
        ("http://10.0.0.1", "plain http"),
        ("http://127.0.0.1.evil.example", "plain http"),
        ("http://localhost.evil.example:80", "plain http"),
        ("ftp://api.anthropic.com", "https://HOST"),
        ("https://api.anthropic.com?x=1", "query"),
        ("https://api.anthropic.com\\@evil.example", "backslash"),
        ("https://api.anthropic.com:99999", "not a URL"),
    ],
)
def test_a_chosen_url_is_parsed_not_prefix_matched(
    tmp_path: Path, sandbox: Sandbox, url: str, why: str
) -> None:
    done = keyguard(
        tmp_path, "--base-url", url, "keys", "list", ANTHROPIC_ADMIN_KEY=sandbox.admin_key.reveal()
    )
    _refused(done, "--base-url", why)
    assert "pw" not in done.stderr  # a password in a URL is never repeated
    with pytest.raises(ConfigError, match=why):
        parse_base_url(url, "ANTHROPIC_BASE_URL")


def test_a_look_alike_host_in_the_config_is_not_the_default(tmp_path: Path) -> None:
    repo = cloned_repo(tmp_path, "https://api.anthropic.com.evil.example")
    done = keyguard(repo, "keys", "list", ANTHROPIC_ADMIN_KEY="x")
    _refused(done, "https://api.anthropic.com.evil.example", "set only in the config file")


def test_clients_refuse_a_bad_base_url_before_any_request(
    sandbox: Sandbox, attacker: Attacker
) -> None:
    url = f"http://localhost@127.0.0.1:{attacker.port}"
    with pytest.raises(ConfigError):
        AdminClient(sandbox.admin_key, url).list_keys()
    with pytest.raises(ConfigError):
        LivenessChecker(url)
    assert attacker.requests == []


# -- the person running keyguard chooses ------------------------------------------------------


def test_the_environment_or_the_option_chooses_and_the_config_may_agree(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    repo = cloned_repo(tmp_path, sandbox.url)
    admin = sandbox.admin_key.reveal()
    by_env = keyguard(
        repo, "keys", "list", ANTHROPIC_ADMIN_KEY=admin, ANTHROPIC_BASE_URL=sandbox.url
    )
    assert by_env.returncode == 0, by_env.stderr
    by_option = keyguard(
        repo, "--base-url", sandbox.url + "/", "keys", "list", ANTHROPIC_ADMIN_KEY=admin
    )
    assert by_option.returncode == 0, by_option.stderr
    (repo / "keyguard.toml").write_text('[environments.prod]\nstores = ["file:stores/p.json"]\n')
    no_setting = keyguard(
        repo, "keys", "list", ANTHROPIC_ADMIN_KEY=admin, ANTHROPIC_BASE_URL=sandbox.url
    )
    assert no_setting.returncode == 0, no_setting.stderr
    assert [m for m, p, _ in sandbox.request_log() if p.startswith("/v1/organizations/api_keys")]


def test_the_option_wins_over_the_environment_and_a_config_that_differs_is_refused(
    tmp_path: Path, sandbox: Sandbox, attacker: Attacker
) -> None:
    repo = cloned_repo(tmp_path, attacker.url)
    admin = sandbox.admin_key.reveal()
    done = keyguard(
        repo, "--base-url", sandbox.url, "keys", "list",
        ANTHROPIC_ADMIN_KEY=admin, ANTHROPIC_BASE_URL=attacker.url,
    )  # fmt: skip
    _refused(done, "differs from the base URL chosen with --base-url")
    (repo / "keyguard.toml").write_text("")
    done = keyguard(
        repo, "--base-url", sandbox.url, "keys", "list",
        ANTHROPIC_ADMIN_KEY=admin, ANTHROPIC_BASE_URL=attacker.url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert attacker.requests == []


def test_the_default_is_the_anthropic_api_and_a_config_may_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    assert load_config(None).base_url == "https://api.anthropic.com"
    path = tmp_path / "keyguard.toml"
    path.write_text('[anthropic]\nbase_url = "https://API.anthropic.com:443/"\n')
    assert load_config(path).base_url == "https://api.anthropic.com"
    assert load_config(None, base_url="http://[::1]:8080/").base_url == "http://[::1]:8080"


def test_urls_in_messages_keep_only_scheme_and_host() -> None:
    secret_path = "/services/T000/B000/" + "x" * 24
    assert redact_url("https://hooks.slack.com" + secret_path) == "https://hooks.slack.com/…"
    assert redact_url("https://u:pw@host.example:8443") == "https://host.example:8443/…"
    assert redact_url("https://host.example") == "https://host.example"
