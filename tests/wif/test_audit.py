"""``keyguard audit`` judges the federation: every rule ok, warning or violation, with reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.admin.sandbox import federation_rules as wif
from keyguard.audit.federation import judge_issuer, judge_rule
from keyguard.wif.providers import GITHUB_ISSUER
from tests.wif.conftest import admin_http, ok
from tests.wif.test_cli import make_keyless


def _rule(**kw: Any) -> dict[str, Any]:
    base = {
        "id": "fdrl_01x",
        "name": "r",
        "match": {"subject_prefix": "repo:acme/app:ref:refs/heads/main"},
        "oauth_scope": "workspace:inference",
        "token_lifetime_seconds": 600,
        "applies_to_all_workspaces": False,
        "target": {"service_account_id": "svac_01x"},
    }
    base.update(kw)
    return base


ISSUER = {
    "id": "fdis_01x",
    "issuer_url": GITHUB_ISSUER,
    "check_jti": True,
    "jwks": {"type": "discovery"},
}
SA = {"id": "svac_01x", "archived_at": None}


@pytest.mark.parametrize(
    ("rule", "issuer", "verdict", "says"),
    [
        (_rule(), ISSUER, "ok", ""),
        (_rule(match={"subject_prefix": "repo:*"}), ISSUER, "violation", "pins no tenant"),
        (_rule(match={"subject_prefix": "repo:acme/*"}), ISSUER, "warning", "fork pull requests"),
        (
            _rule(match={"subject_prefix": "repo:acme/*", "claims": {"ref": "refs/heads/main"}}),
            ISSUER,
            "ok",
            "",
        ),
        (
            _rule(match={"subject_prefix": "x", "condition": "true"}),
            ISSUER,
            "violation",
            "always true",
        ),
        (_rule(applies_to_all_workspaces=True), ISSUER, "warning", "applies_to_all_workspaces"),
        (_rule(oauth_scope="org:admin"), ISSUER, "violation", "org:admin"),
        (_rule(token_lifetime_seconds=7200), ISSUER, "warning", "over 1 h"),
        (_rule(), {**ISSUER, "check_jti": False}, "warning", "check_jti is off"),
        (_rule(), {**ISSUER, "max_jwt_lifetime_seconds": 86400}, "warning", "max_jwt_lifetime"),
        (_rule(), {**ISSUER, "jwks": {"type": "inline", "keys": []}}, "warning", "inline JWKS"),
        (
            _rule(),
            {**ISSUER, "poll_status": {"consecutive_failures": 3}},
            "warning",
            "polling failed 3",
        ),
        (
            _rule(),
            {**ISSUER, "jwks_polling_disabled_at": "2026-01-01T00:00:00Z"},
            "violation",
            "disabled",
        ),
    ],
)
def test_rule_verdicts(
    rule: dict[str, Any], issuer: dict[str, Any], verdict: str, says: str
) -> None:
    found = judge_rule(rule, issuer, SA)
    assert found.verdict == verdict, found.reasons
    assert says in " ".join(found.reasons)


def test_a_rule_targeting_an_archived_service_account_is_flagged() -> None:
    found = judge_rule(_rule(), ISSUER, {**SA, "archived_at": "2026-01-01T00:00:00Z"})
    assert found.verdict == "warning"
    assert "archived" in found.reasons[0]


def test_a_clean_issuer_is_ok() -> None:
    assert judge_issuer(ISSUER).verdict == "ok"


def test_audit_reports_the_federation_in_every_format(tmp_path: Path, sandbox: Sandbox) -> None:
    kl = make_keyless(tmp_path, sandbox)
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    with admin_http(sandbox) as http:
        sa = ok(http.get("/v1/organizations/service_accounts"))["data"][0]
        github = ok(
            http.post(
                "/v1/organizations/federation_issuers",
                json={"name": "github", "issuer_url": GITHUB_ISSUER, "check_jti": False},
            )
        )
    # an org:admin rule can only come from the Console
    bad = wif.create_rule(
        sandbox.state,
        {
            "name": "wide-open",
            "issuer_id": github["id"],
            "match": {"subject_prefix": "repo:*"},
            "target": {"type": "service_account", "service_account_id": sa["id"]},
            "oauth_scope": "org:admin",
            "applies_to_all_workspaces": True,
            "token_lifetime_seconds": 86400,
        },
        console=True,
    )
    done = kl.run("audit", "--format", "json")
    assert done.returncode == 1, done.stderr  # a federation violation fails the audit
    doc = json.loads(done.stdout)
    verdicts = {r["id"]: r for r in doc["federation_rules"]}
    assert verdicts[bad["id"]]["verdict"] == "violation"
    reasons = " ".join(verdicts[bad["id"]]["reasons"])
    for says in (
        "pins no tenant",
        "org:admin",
        "applies_to_all_workspaces",
        "over 1 h",
        "check_jti",
    ):
        assert says in reasons
    mine = [r for r in doc["federation_rules"] if r["name"] == "keyguard-ci"]
    assert mine[0]["verdict"] == "ok", mine
    assert any("ci: migrating" in line for line in doc["migration_backlog"])
    for fmt in ("table", "markdown", "csv", "html"):
        text = kl.run("audit", "--format", fmt).stdout
        assert "wide-open" in text, fmt
        assert "violation" in text, fmt


def test_without_an_oauth_token_the_audit_says_the_federation_was_not_audited(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    kl = make_keyless(tmp_path, sandbox)
    done = kl.run("audit", "--format", "json", ANTHROPIC_AUTH_TOKEN="")
    doc = json.loads(done.stdout)
    assert doc["federation_rules"] == []
    assert any("federation not audited" in n for n in doc["notes"])


def test_a_token_without_org_admin_does_not_sink_the_keys_audit(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    kl = make_keyless(tmp_path, sandbox)
    done = kl.run("audit", "--format", "json", ANTHROPIC_AUTH_TOKEN="sk-ant-oat01-" + "q" * 95)
    assert done.returncode in (0, 1), done.stderr
    doc = json.loads(done.stdout)
    assert doc["environments"][0]["name"] == "ci"
    assert any("federation not audited" in n for n in doc["notes"])
    assert "q" * 20 not in done.stdout
