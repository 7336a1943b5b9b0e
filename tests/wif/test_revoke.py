"""``keyguard revoke --rule / --service-account``: the exchange stops at once; minted tokens
live until they expire, and the answer says until when."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from keyguard.admin.sandbox import Sandbox
from tests.wif.conftest import admin_http, bearer_headers, ok
from tests.wif.test_cli import Keyless, make_keyless


def _applied(tmp_path: Path, sandbox: Sandbox) -> tuple[Keyless, dict[str, str]]:
    kl = make_keyless(tmp_path, sandbox)
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    ids = json.loads((tmp_path / ".keyguard" / "wif" / "ci.json").read_text())
    return kl, ids


def _exchange(kl: Keyless, ids: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{kl.sb.url}/v1/oauth/token",
        json={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": kl.identity(),
            "federation_rule_id": ids["rule_id"],
            "organization_id": ids["organization_id"],
            "service_account_id": ids["service_account_id"],
        },
    )


def test_revoking_a_rule_stops_the_exchange_and_says_when_tokens_die(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    kl, ids = _applied(tmp_path, sandbox)
    minted = ok(_exchange(kl, ids))["access_token"]
    done = kl.run("revoke", "--rule", ids["rule_id"], "--yes")
    assert done.returncode == 0, done.stderr
    assert f"archived rule {ids['rule_id']}" in done.stdout
    assert "stay valid until" in done.stdout
    assert _exchange(kl, ids).status_code == 401
    # the documented truth: a token minted before stays valid until it expires
    models = httpx.get(f"{kl.sb.url}/v1/models", headers=bearer_headers(minted))
    assert models.status_code == 200
    again = kl.run("revoke", "--rule", ids["rule_id"], "--yes")
    assert again.returncode == 0  # idempotent


def test_revoking_a_service_account_archives_its_rules_first(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    kl, ids = _applied(tmp_path, sandbox)
    done = kl.run(
        "revoke", "--service-account", ids["service_account_id"], "--yes", "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    assert '"archived_rules": [' in done.stdout
    with admin_http(sandbox) as http:
        sa = ok(http.get(f"/v1/organizations/service_accounts/{ids['service_account_id']}"))
        rule = ok(http.get(f"/v1/organizations/federation_rules/{ids['rule_id']}"))
    assert sa["archived_at"] is not None and rule["archived_at"] is not None
    assert _exchange(kl, ids).status_code == 401


def test_revoke_refusals(tmp_path: Path, sandbox: Sandbox) -> None:
    kl, ids = _applied(tmp_path, sandbox)
    unknown = kl.run("revoke", "--rule", "fdrl_01nothere", "--yes")
    assert unknown.returncode == 1
    wrong = kl.run("revoke", "--rule", ids["service_account_id"], "--yes")
    assert wrong.returncode == 2
    both = kl.run("revoke", "--rule", ids["rule_id"], "--key-id", "apikey_01x", "--yes")
    assert both.returncode == 2
    unasked = kl.run("revoke", "--rule", ids["rule_id"])
    assert unasked.returncode == 2 and "--yes" in unasked.stderr
    admin_key = kl.run("revoke", "--rule", ids["rule_id"], "--yes", ANTHROPIC_AUTH_TOKEN="")
    assert admin_key.returncode == 3
    assert _exchange(kl, ids).status_code == 200  # nothing was archived
