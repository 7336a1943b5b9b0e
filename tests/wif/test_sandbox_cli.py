"""``keyguard sandbox`` prints the OAuth token, the org and its OIDC issuer; they federate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.wif.conftest import AUDIENCE, bearer_headers

REPO = Path(__file__).resolve().parents[2]


def test_the_sandbox_command_exports_what_federation_needs() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "keyguard", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not (line := proc.stdout.readline()).startswith("# Ctrl-C"):
            lines.append(line)
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        url, token = exports["ANTHROPIC_BASE_URL"], exports["ANTHROPIC_AUTH_TOKEN"]
        issuer_url = exports["KEYGUARD_SANDBOX_OIDC_ISSUER"]
        assert token.startswith("sk-ant-oat01-")
        with httpx.Client(base_url=url, headers=bearer_headers(token)) as http:
            sa = http.post("/v1/organizations/service_accounts", json={"name": "ci"}).json()
            issuer = http.post(
                "/v1/organizations/federation_issuers",
                json={"name": "local", "issuer_url": issuer_url},
            ).json()
            rule = http.post(
                "/v1/organizations/federation_rules",
                json={
                    "name": "ci",
                    "issuer_id": issuer["id"],
                    "match": {"subject_prefix": "job:ci"},
                    "target": {"type": "service_account", "service_account_id": sa["id"]},
                    "oauth_scope": "workspace:inference",
                    "workspace_id": "default",
                },
            ).json()
        for sub, status in (("job:ci", 200), ("job:other", 401)):
            identity = httpx.post(
                f"{issuer_url}/token", json={"sub": sub, "aud": AUDIENCE, "lifetime": 300}
            ).json()["id_token"]
            answer = httpx.post(
                f"{url}/v1/oauth/token",
                json={
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": identity,
                    "federation_rule_id": rule["id"],
                    "organization_id": exports["ANTHROPIC_ORGANIZATION_ID"],
                },
            )
            assert answer.status_code == status
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    # the opaque 401's real reason is in the sandbox's log, and no token is
    assert "does not match subject_prefix" in err
    assert "sk-ant-" not in err
