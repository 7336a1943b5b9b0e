"""``wif plan`` / ``wif apply`` against a hostile keyguard.toml or a rule changed by hand.

A cloned repository carries its own keyguard.toml: its issuer and jwks_url are parsed (not
prefix-matched), a JWKS change is shown old -> new and never applied by keyguard, an issuer
other environments' rules use is never changed, a rule never keeps trusting an old issuer, and
a rule widened by hand never shows as "keep".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.config import load_config
from keyguard.errors import ConfigError
from tests.wif.conftest import OAUTH_BETA, admin_http, ok
from tests.wif.test_cli import SUBJECT, Keyless, make_keyless

ATTACKER_JWKS = "https://jwks.attacker.example/keys.json"
BASE = '[environments.ci]\nstores = ["file:ci.json"]\n[environments.ci.federation]\n'


@pytest.fixture
def kl(tmp_path: Path, sandbox: Sandbox) -> Keyless:
    return make_keyless(tmp_path, sandbox)


def _config(tmp_path: Path, body: str) -> Any:
    path = tmp_path / "keyguard.toml"
    path.write_text(BASE + 'provider = "oidc"\nsubject = "job:x"\n' + body)
    return load_config(path).environments["ci"].federation


@pytest.mark.parametrize(
    "line",
    [
        'issuer = "http://127.0.0.1.attacker.example"',
        'issuer = "http://127.0.0.1@attacker.example/x"',
        'issuer = "https://127.0.0.1@attacker.example/x"',
        'issuer = "http://localhost.attacker.example"',
        'issuer = "http://idp.example"',
        'issuer = "https://idp.example/?x=1"',
        'issuer = "https://idp.example\\\\@attacker.example"',
        'issuer = "https://idp.example"\njwks_url = "http://jwks.attacker.example/keys.json"',
        'issuer = "https://idp.example"\njwks_url = "http://127.0.0.1.attacker.example/jwks"',
        'issuer = "https://idp.example"\njwks_url = "http://127.0.0.1@attacker.example/jwks"',
        'issuer = "https://idp.example"\njwks_url = "https://idp.example@attacker.example/k"',
        'issuer = "https://idp.example"\njwks_url = "jwks.attacker.example/keys.json"',
    ],
)
def test_look_alike_or_plain_http_urls_are_refused(tmp_path: Path, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, line + "\n")
    assert "keyguard.toml:" in str(caught.value)
    assert "https://" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "issuer", "jwks"),
    [
        ('issuer = "http://127.0.0.1:8080/oidc/"', "http://127.0.0.1:8080/oidc", None),
        ('issuer = "http://localhost:9/oidc"', "http://localhost:9/oidc", None),
        ('issuer = "http://[::1]:9/oidc"', "http://[::1]:9/oidc", None),
        (
            'issuer = "https://idp.example/t"\njwks_url = "https://keys.example/jwks"',
            "https://idp.example/t",
            "https://keys.example/jwks",
        ),
    ],
)
def test_https_or_a_real_loopback_host_is_accepted(
    tmp_path: Path, line: str, issuer: str, jwks: str | None
) -> None:
    fed = _config(tmp_path, line + "\n")
    assert (fed.issuer, fed.jwks_url) == (issuer, jwks)


def _add_env(kl: Keyless, name: str, federation: str) -> None:
    config = kl.root / "keyguard.toml"
    config.write_text(
        config.read_text()
        + f'\n[environments.{name}]\nstores = ["file:{kl.root}/stores/{name}.json"]\n'
        + f"[environments.{name}.federation]\n{federation}"
    )


def _set(kl: Keyless, old: str, new: str) -> None:
    config = kl.root / "keyguard.toml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def _get(kl: Keyless, kind: str, object_id: str) -> dict[str, Any]:
    with admin_http(kl.sb) as http:
        found: dict[str, Any] = ok(http.get(f"/v1/organizations/{kind}/{object_id}"))
    return found


def _rules(kl: Keyless) -> list[dict[str, Any]]:
    with admin_http(kl.sb) as http:
        rules: list[dict[str, Any]] = ok(http.get("/v1/organizations/federation_rules"))["data"]
    return rules


def _exchange(kl: Keyless, rule: dict[str, Any], workspace: str) -> int:
    body = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": kl.identity(),
        "federation_rule_id": rule["id"],
        "organization_id": kl.sb.state.data["organization"]["id"],
        "service_account_id": rule["target"]["service_account_id"],
        "workspace_id": workspace,
    }
    answer = httpx.post(
        f"{kl.sb.url}/v1/oauth/token",
        json=body,
        headers={"anthropic-beta": f"{OAUTH_BETA},oidc-federation-2026-04-01"},
    )
    return answer.status_code


def test_another_environment_never_rewrites_a_shared_issuers_jwks(kl: Keyless) -> None:
    """The review's attack: env `docs` names ci's issuer plus an attacker's JWKS URL."""
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    (rule,) = _rules(kl)
    _add_env(
        kl,
        "docs",
        f'provider = "oidc"\nissuer = "{kl.sb.oidc_issuer}"\nsubject = "job:other"\n'
        f'service_account = "docs"\njwks_url = "{ATTACKER_JWKS}"\n',
    )
    writes = len(kl.sb.writes())
    plan = kl.run("wif", "plan", "docs")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "discovery" in plan.stderr and ATTACKER_JWKS in plan.stderr  # old and new
    assert rule["id"] in plan.stderr and "Console" in plan.stderr
    applied = kl.run("wif", "apply", "docs", "--yes")
    assert applied.returncode == 2, applied.stdout + applied.stderr
    assert "Console" in applied.stderr
    assert len(kl.sb.writes()) == writes  # nothing made, nothing changed
    assert _get(kl, "federation_issuers", rule["issuer_id"])["jwks"]["type"] == "discovery"


def test_check_jti_on_an_issuer_other_rules_use_is_left_to_the_console(kl: Keyless) -> None:
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    (rule,) = _rules(kl)
    with admin_http(kl.sb) as http:
        path = f"/v1/organizations/federation_issuers/{rule['issuer_id']}"
        ok(http.post(path, json={"check_jti": False}))
    _add_env(
        kl,
        "docs",
        f'provider = "oidc"\nissuer = "{kl.sb.oidc_issuer}"\nsubject = "job:other"\n'
        'service_account = "docs"\n',
    )
    writes = len(kl.sb.writes())
    done = kl.run("wif", "apply", "docs", "--yes")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "check_jti: off -> on" in done.stderr and rule["id"] in done.stderr
    assert len(kl.sb.writes()) == writes
    assert _get(kl, "federation_issuers", rule["issuer_id"])["check_jti"] is False


def test_a_jwks_change_is_shown_old_and_new_and_left_to_the_console(kl: Keyless) -> None:
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    (rule,) = _rules(kl)
    _set(
        kl,
        'service_account = "ci-app"\n',
        f'service_account = "ci-app"\njwks_url = "{ATTACKER_JWKS}"\n',
    )
    writes = len(kl.sb.writes())
    plan = kl.run("wif", "plan", "ci")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert f"discovery -> explicit URL {ATTACKER_JWKS}" in plan.stderr
    assert "Console" in plan.stderr
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 2
    assert len(kl.sb.writes()) == writes
    assert _get(kl, "federation_issuers", rule["issuer_id"])["jwks"]["type"] == "discovery"


def test_a_hand_set_jwks_is_not_planned_as_keep(kl: Keyless) -> None:
    """The issuer's JWKS changed in the Console, keyguard.toml says discovery: not "= issuer"."""
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    (rule,) = _rules(kl)
    with admin_http(kl.sb) as http:
        ok(
            http.post(
                f"/v1/organizations/federation_issuers/{rule['issuer_id']}",
                json={"jwks": {"type": "explicit_url", "url": ATTACKER_JWKS}},
            )
        )
    plan = kl.run("wif", "plan", "ci")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert f"explicit URL {ATTACKER_JWKS} -> discovery" in plan.stderr


def test_a_new_issuer_shows_its_jwks_url_in_the_plan(tmp_path: Path, sandbox: Sandbox) -> None:
    kl = make_keyless(
        tmp_path,
        sandbox,
        f'provider = "oidc"\nissuer = "https://idp.example.com"\nsubject = "{SUBJECT}"\n'
        f'service_account = "ci-app"\njwks_url = "{ATTACKER_JWKS}"\n',
    )
    plan = kl.run("wif", "plan", "ci")
    assert plan.returncode == 0, plan.stderr
    assert f"+ issuer https://idp.example.com: jwks explicit URL {ATTACKER_JWKS}" in plan.stdout


def test_a_jwks_url_the_config_repeats_is_kept_when_check_jti_is_turned_on(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Turning check_jti on sends check_jti only: it never resets the JWKS source."""
    jwks = f"{sandbox.oidc_issuer}/jwks"
    kl = make_keyless(
        tmp_path,
        sandbox,
        f'provider = "oidc"\nissuer = "{sandbox.oidc_issuer}"\nsubject = "{SUBJECT}"\n'
        f'claims = {{ owner = "acme" }}\nservice_account = "ci-app"\njwks_url = "{jwks}"\n',
    )
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    (rule,) = _rules(kl)
    with admin_http(kl.sb) as http:
        path = f"/v1/organizations/federation_issuers/{rule['issuer_id']}"
        ok(http.post(path, json={"check_jti": False}))
    plan = kl.run("wif", "plan", "ci")
    assert plan.returncode == 0, plan.stderr
    assert "check_jti: off -> on" in plan.stdout
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    issuer = _get(kl, "federation_issuers", rule["issuer_id"])
    assert issuer["check_jti"] is True
    assert issuer["jwks"] == {"type": "explicit_url", "url": jwks}
    _set(kl, f'jwks_url = "{jwks}"\n', "")  # and a config that drops it is refused, not applied
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 2
    assert _get(kl, "federation_issuers", rule["issuer_id"])["jwks"]["type"] == "explicit_url"


@pytest.mark.parametrize("new_issuer_exists", [False, True])
def test_a_changed_issuer_never_leaves_the_rule_trusting_the_old_one(
    kl: Keyless, new_issuer_exists: bool
) -> None:
    """The review's attack: plan said `= rule keyguard-ci`; old-issuer tokens still exchanged."""
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    (rule,) = _rules(kl)
    new = "https://new-idp.example.com"
    if new_issuer_exists:
        with admin_http(kl.sb) as http:
            body = {"name": "new-idp", "issuer_url": new}
            ok(http.post("/v1/organizations/federation_issuers", json=body))
    _set(kl, f'issuer = "{kl.sb.oidc_issuer}"', f'issuer = "{new}"')
    writes = len(kl.sb.writes())
    for command in (("wif", "plan", "ci"), ("wif", "apply", "ci", "--yes")):
        done = kl.run(*command)
        assert done.returncode == 2, done.stdout + done.stderr
        assert kl.sb.oidc_issuer in done.stderr and new in done.stderr  # old and new
        assert f"keyguard revoke --rule {rule['id']}" in done.stderr
    assert len(kl.sb.writes()) == writes

    # the way out it names: archive the rule, then apply makes a rule on the new issuer
    assert kl.run("revoke", "--rule", rule["id"], "--yes").returncode == 0
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    (live,) = [r for r in _rules(kl) if r["archived_at"] is None]
    assert _get(kl, "federation_issuers", live["issuer_id"])["issuer_url"] == new
    assert _exchange(kl, rule, kl.workspace) == 401  # the old issuer's tokens: refused
    assert live["name"] == "keyguard-ci-r2"  # the archived rule keeps its name
    _set(kl, f'subject = "{SUBJECT}"', 'subject = "job:acme/app:ref:release"')
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0  # found and updated again
    assert "nothing to change" in kl.run("wif", "plan", "ci").stdout
    assert _get(kl, "federation_rules", live["id"])["match"]["subject_prefix"].endswith("release")


def test_a_rule_widened_to_another_workspace_is_planned_and_narrowed(kl: Keyless) -> None:
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    (rule,) = _rules(kl)
    other = kl.sb.add_workspace("prod")
    with admin_http(kl.sb) as http:
        path = f"/v1/organizations/service_accounts/{rule['target']['service_account_id']}"
        body = {"workspace_id": other, "workspace_role": "workspace_developer"}
        ok(http.post(f"{path}/workspaces", json=body))
        path = f"/v1/organizations/federation_rules/{rule['id']}/workspaces"
        ok(http.post(path, json={"workspace_id": other}))
    assert _exchange(kl, rule, other) == 200  # widened by hand

    plan = kl.run("wif", "plan", "ci")
    assert plan.returncode == 0, plan.stderr
    assert f"~ rule keyguard-ci ({rule['id']})" in plan.stdout
    assert f"workspaces: also {other}" in plan.stdout
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    assert _get(kl, "federation_rules", rule["id"])["workspace_ids"] == [kl.workspace]
    assert _exchange(kl, rule, other) == 401
    assert _exchange(kl, rule, kl.workspace) == 200
    assert "nothing to change" in kl.run("wif", "plan", "ci").stdout


def test_a_rule_with_a_hand_made_condition_is_not_planned_as_keep(kl: Keyless) -> None:
    """The sandbox refuses CEL, so the condition is put in its state as the Console would."""
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    (rule,) = _rules(kl)
    with kl.sb.state.lock:
        for item in kl.sb.state.data["federation"]["rules"]:
            if item["id"] == rule["id"]:
                item["match"]["condition"] = "claims.ref == 'main'"
    plan = kl.run("wif", "plan", "ci")
    assert plan.returncode == 0, plan.stderr
    assert "~ rule keyguard-ci" in plan.stdout and "match.condition" in plan.stdout
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    assert _get(kl, "federation_rules", rule["id"])["match"].get("condition") is None
