"""``keyguard scan --verify``: live / revoked / unknown with GET /v1/models, no admin key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from keyguard.admin.sandbox import Sandbox
from keyguard.keys import Secret, generate_key
from tests.incident.conftest import ROOT


def _scan(folder: Path, sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(PYTHONPATH=str(ROOT), ANTHROPIC_BASE_URL=sandbox.url)  # no admin key at all
    return subprocess.run(
        [sys.executable, "-m", "keyguard", "scan", ".", "--format", "json", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _verdicts(done: subprocess.CompletedProcess[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in json.loads(done.stdout)["findings"]:
        out.setdefault(f["fingerprint"], set()).add(f.get("verdict"))
    return out


def _plant(folder: Path, *keys: Secret) -> None:
    folder.mkdir()
    for i, key in enumerate(keys):
        (folder / f"f{i}.env").write_text(f"KEY={key.reveal()}\n")


def test_verify_classifies_each_key_once(sandbox: Sandbox, tmp_path: Path) -> None:
    live_id, live = sandbox.mint_key("prod-1")
    dead_id, dead = sandbox.mint_key("prod-0")
    with sandbox.client() as admin:
        admin.update_key(dead_id, status="inactive")
    stranger = generate_key()
    admin_key = generate_key("admin")
    _plant(tmp_path / "src", live, live, dead, stranger, admin_key)
    before = len(sandbox.request_log())

    done = _scan(tmp_path / "src", sandbox, "--verify")

    assert done.returncode == 1, done.stderr
    for key in (live, dead, stranger, admin_key):
        assert key.reveal() not in done.stdout + done.stderr
    assert _verdicts(done) == {
        live.fingerprint: {"live"},
        dead.fingerprint: {"revoked"},
        stranger.fingerprint: {"revoked"},
        admin_key.fingerprint: {"unknown"},  # never sent: /v1/models cannot judge admin keys
    }
    log = sandbox.request_log()[before:]
    assert [r[:2] for r in log] == [("GET", "/v1/models")] * 3  # one per API key, cached
    assert sandbox.requests(live_id) == 1


def test_verify_says_unknown_when_the_api_does_not_answer(sandbox: Sandbox, tmp_path: Path) -> None:
    _, live = sandbox.mint_key("prod-1")
    _plant(tmp_path / "src", live)
    sandbox.set_faults(rate=1.0, kinds=("500",))
    done = _scan(tmp_path / "src", sandbox, "--verify")
    assert done.returncode == 1, done.stderr
    assert _verdicts(done) == {live.fingerprint: {"unknown"}}


def test_scan_sends_nothing_without_verify(sandbox: Sandbox, tmp_path: Path) -> None:
    _, live = sandbox.mint_key("prod-1")
    _plant(tmp_path / "src", live)
    done = _scan(tmp_path / "src", sandbox)
    assert done.returncode == 1
    assert _verdicts(done) == {live.fingerprint: {None}}
    assert sandbox.request_log() == []


def test_the_scan_command_does_not_import_httpx() -> None:
    code = (
        "import sys, keyguard.cli.scan, keyguard.scanner.hook; "
        "sys.exit(1 if 'httpx' in sys.modules else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0


def test_verify_sends_keys_only_to_the_configured_base_url(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(307)
            self.send_header("location", sandbox.url + self.path)  # elsewhere: must not follow
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _, live = sandbox.mint_key("prod-1")
    _plant(tmp_path / "src", live)
    (tmp_path / "src" / "keyguard.toml").write_text(
        f'[anthropic]\nbase_url = "http://127.0.0.1:{server.server_port}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(PYTHONPATH=str(ROOT), ANTHROPIC_BASE_URL=f"http://127.0.0.1:{server.server_port}")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "keyguard", "scan", ".", "--format", "json", "--verify"],
            cwd=tmp_path / "src",
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        server.shutdown()
    assert done.returncode == 1, done.stderr
    assert seen == ["/v1/models"]  # the configured base URL, the free endpoint, once
    assert sandbox.request_log() == []  # the redirect was not followed
    assert _verdicts(done) == {live.fingerprint: {"unknown"}}
    assert live.reveal() not in done.stdout + done.stderr
