"""Every admin credential kind against the sandbox; verification with the workspace header."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from keyguard.admin import AdminClient
from keyguard.admin.sandbox import Sandbox
from keyguard.keys import API_KEY_RE

REPO = Path(__file__).resolve().parents[2]


def test_an_org_admin_oauth_token_is_sent_as_a_bearer_with_the_beta(sandbox: Sandbox) -> None:
    token = sandbox.issue_oauth_token("org:admin")
    with AdminClient(token, sandbox.url) as client:
        assert client.credential_kind == "oauth_token"
        sandbox.mint_key("k")
        assert [k.name for k in client.list_keys()] == ["k"]
    assert sandbox.state.bearer_calls == [True]


def test_an_org_scoped_key_of_an_admin_is_an_admin_credential(sandbox: Sandbox) -> None:
    _, owner_key = sandbox.mint_key("ops", key_type="personal", scope="organization")
    with AdminClient(owner_key, sandbox.url) as client:
        assert client.credential_kind == "api_key"
        assert len(list(client.list_keys())) == 1


def test_verify_sends_the_workspace_header_for_org_scoped_keys(sandbox: Sandbox) -> None:
    ws = sandbox.add_workspace("prod")
    _, org_key = sandbox.mint_key("ci", key_type="service_account", scope="organization")
    client = sandbox.client()
    live = client.verify_key(org_key, ws)
    assert live.usable and live.workspace_id == ws
    bare = client.verify_key(org_key)
    assert not bare.usable and bare.problem is not None
    assert "organization-scoped" in bare.problem and "set workspace" in bare.problem
    other = client.verify_key(org_key, "wrkspc_01" + "z" * 22)
    assert not other.usable and "cannot reach workspace" in (other.problem or "")


def test_verify_learns_the_default_workspaces_real_id(sandbox: Sandbox) -> None:
    key_id, secret = sandbox.mint_key("dev")
    client = sandbox.client()
    listed = client.get_key(key_id)
    assert listed.workspace_id == sandbox.default_workspace_id and listed.default_workspace
    assert client.verify_key(secret).workspace_id == sandbox.default_workspace_id


def whoami(sandbox: Sandbox, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    clean.update(PYTHONPATH=str(REPO), ANTHROPIC_BASE_URL=sandbox.url, **env)
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "keys", "whoami", "--format", "json"],
        capture_output=True,
        text=True,
        env=clean,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert not API_KEY_RE.search(done.stdout + done.stderr)
    return done


def test_whoami_names_each_credential_kind(sandbox: Sandbox, tmp_path: Path) -> None:
    done = whoami(sandbox, tmp_path, ANTHROPIC_ADMIN_KEY=sandbox.admin_key.reveal())
    info = json.loads(done.stdout)
    assert info["credential"] == "admin_key" and info["can"]["list_keys"]
    assert info["can"]["read_compliance"] is False  # the feed is off until enabled
    token = sandbox.issue_oauth_token()
    done = whoami(sandbox, tmp_path, ANTHROPIC_AUTH_TOKEN=token.reveal())
    assert json.loads(done.stdout)["credential"] == "oauth_token", done.stderr
    _, dev_key = sandbox.mint_key("dev-org", key_type="service_account", scope="organization")
    done = whoami(sandbox, tmp_path, ANTHROPIC_ADMIN_KEY=dev_key.reveal())
    assert done.returncode == 3 and "not an organization admin" in done.stderr
