"""``keyguard wif``: one environment walked from its static key to federation, and refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.keys import Secret
from tests.wif.conftest import admin_http, ok

ROOT = Path(__file__).resolve().parents[2]
SUBJECT = "job:acme/app:ref:main"


@dataclass
class Keyless:
    """keyguard.toml with environment ``ci`` on a static key, about to federate."""

    root: Path
    sb: Sandbox
    workspace: str
    key_id: str
    key: Secret

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            KEYGUARD_CONFIG=str(self.root / "keyguard.toml"),
            ANTHROPIC_ADMIN_KEY=self.sb.admin_key.reveal(),
            ANTHROPIC_AUTH_TOKEN=self.sb.oauth_token.reveal(),
            ANTHROPIC_BASE_URL=self.sb.url,  # chosen by the runner; the config agrees
        )
        env.update(extra)
        return {k: v for k, v in env.items() if v}

    def run(self, *args: str, stdin: str = "", **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "keyguard", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(**extra),
            cwd=self.root,
            timeout=60,
            check=False,
        )
        out = done.stdout + done.stderr
        assert "sk-ant-api03-" not in out.replace(self.key.hint, "")
        assert self.sb.oauth_token.reveal() not in out
        assert "Traceback" not in out, out
        return done

    def identity(self, sub: str = SUBJECT, **claims: Any) -> str:
        body = {
            "sub": sub,
            "aud": "https://api.anthropic.com",
            "claims": {"owner": "acme", **claims},
        }
        token: str = ok(httpx.post(f"{self.sb.oidc_issuer}/token", json=body))["id_token"]
        return token

    def shift_usage(self, seconds: float, *, service_account: bool) -> None:
        """Move recorded traffic back in time (the usage report is all the drain check reads)."""
        with self.sb.state.lock:
            for event in self.sb.state.data["usage"]:
                if bool(event.get("service_account_id")) == service_account:
                    event["at"] -= seconds


def make_keyless(root: Path, sb: Sandbox, federation: str | None = None) -> Keyless:
    ws = sb.add_workspace("ci")
    key_id, key = sb.mint_key("ci-static", workspace_id=ws)
    store = root / "stores" / "ci.json"
    store.parent.mkdir(parents=True)
    store.write_text(key.reveal() + "\n")
    store.chmod(0o600)
    federation = federation or (
        f'provider = "oidc"\nissuer = "{sb.oidc_issuer}"\nsubject = "{SUBJECT}"\n'
        'claims = { owner = "acme" }\nservice_account = "ci-app"\n'
    )
    (root / "keyguard.toml").write_text(
        f'[anthropic]\nbase_url = "{sb.url}"\n\n'
        f'[environments.ci]\nstores = ["file:{store}"]\nworkspace = "{ws}"\n'
        '[environments.ci.policy]\ngrace = "2m"\nusage_lag = "1m"\n'
        f"[environments.ci.federation]\n{federation}"
    )
    return Keyless(root, sb, ws, key_id, key)


@pytest.fixture
def kl(tmp_path: Path, sandbox: Sandbox) -> Keyless:
    return make_keyless(tmp_path, sandbox)


def _workload(kl: Keyless, env_json: str, token_file: Path) -> None:
    """The official SDK as the workload, configured only by `keyguard wif env`'s variables."""
    anthropic = pytest.importorskip("anthropic")
    values = json.loads(env_json)
    values["ANTHROPIC_IDENTITY_TOKEN_FILE"] = str(token_file)
    saved = {
        k: os.environ.pop(k, None) for k in [*values, "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]
    }
    os.environ.update(values)
    try:
        client = anthropic.Anthropic(base_url=kl.sb.url)
        client.messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def test_an_environment_moves_from_its_static_key_to_federation(
    kl: Keyless, tmp_path: Path
) -> None:
    kl.sb.record_usage(kl.key_id, at=time.time() - 30)  # the static key serves today
    status = kl.run("wif", "status")
    assert "ci: in migration: waiting for `keyguard wif apply ci`" in status.stdout

    plan = kl.run("wif", "plan", "ci")
    assert plan.returncode == 0, plan.stderr
    assert "+ service account ci-app" in plan.stdout
    assert "+ rule keyguard-ci" in plan.stdout
    writes = len(kl.sb.writes())
    assert writes == 0  # plan changes nothing

    applied = kl.run("wif", "apply", "ci", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "fdrl_" in applied.stdout
    again = kl.run("wif", "plan", "ci")
    assert "nothing to change" in again.stdout  # idempotent
    rerun = kl.run("wif", "apply", "ci", "--yes")
    assert rerun.returncode == 0
    assert "created" not in rerun.stderr

    token_file = tmp_path / "identity"
    token_file.write_text(kl.identity())
    verified = kl.run("wif", "verify", "ci", "--identity-token-file", str(token_file))
    assert verified.returncode == 0, verified.stderr
    assert "scope: workspace:inference" in verified.stdout
    assert f"workspace: {kl.workspace}" in verified.stdout
    assert "sk-ant-oat01-" not in verified.stdout + verified.stderr

    # retire-key waits for the service account's traffic first
    waiting = kl.run("wif", "retire-key", "ci", "--yes")
    assert waiting.returncode == 5, waiting.stderr
    assert "waiting for traffic from service account" in waiting.stderr

    env_json = kl.run("wif", "env", "ci", "--format", "json")
    assert "ANTHROPIC_API_KEY" in env_json.stderr  # the shadowing warning
    token_file.write_text(kl.identity())
    _workload(kl, env_json.stdout, token_file)

    # traffic under the service account; the static key was busy after the switch: drain
    kl.shift_usage(600, service_account=True)
    kl.shift_usage(60, service_account=False)
    kl.sb.record_usage(kl.key_id, at=time.time() - 240)
    busy = kl.run("wif", "retire-key", "ci", "--yes")
    assert busy.returncode == 5, busy.stderr
    assert "still carries traffic" in busy.stderr
    with kl.sb.client() as admin:
        assert admin.get_key(kl.key_id).status == "active"

    # the key has been idle for the whole grace period: it goes
    kl.shift_usage(1200, service_account=False)
    retired = kl.run("wif", "retire-key", "ci", "--yes")
    assert retired.returncode == 0, retired.stderr
    with kl.sb.client() as admin:
        assert admin.get_key(kl.key_id).status == "inactive"
    assert "ci: federated" in kl.run("wif", "status").stdout


def test_apply_with_an_admin_key_instead_of_an_oauth_token_exits_3(kl: Keyless) -> None:
    done = kl.run("wif", "apply", "ci", "--yes", ANTHROPIC_AUTH_TOKEN="")
    assert done.returncode == 3
    assert "ant auth login --scope org:admin" in done.stderr
    assert "Admin key cannot do this" in done.stderr
    as_token = kl.run("wif", "apply", "ci", "--yes", ANTHROPIC_AUTH_TOKEN=kl.sb.admin_key.reveal())
    assert as_token.returncode == 3
    assert "holds an Admin key" in as_token.stderr
    assert kl.sb.admin_key.reveal() not in as_token.stderr
    assert kl.sb.writes() == []


def test_a_token_the_api_refuses_exits_3(kl: Keyless) -> None:
    done = kl.run("wif", "plan", "ci", ANTHROPIC_AUTH_TOKEN="sk-ant-oat01-" + "z" * 95)
    assert done.returncode == 3
    assert "ant auth login" in done.stderr


def test_apply_without_yes_off_a_terminal_changes_nothing(kl: Keyless) -> None:
    done = kl.run("wif", "apply", "ci")
    assert done.returncode == 2
    assert "--yes" in done.stderr
    assert kl.sb.writes() == []


def test_commands_refuse_an_environment_without_federation(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    (tmp_path / "keyguard.toml").write_text('[environments.dev]\nstores = ["file:dev.json"]\n')
    kl = Keyless(tmp_path, sandbox, "", "", Secret("x"))
    for args in (("plan", "dev"), ("apply", "dev", "--yes"), ("env", "dev"), ("retire-key", "dev")):
        done = kl.run("wif", *args)
        assert done.returncode == 2
        assert "[environments.dev.federation]" in done.stderr
    assert "dev: static" in kl.run("wif", "status").stdout


def test_env_and_verify_before_apply_say_to_apply(kl: Keyless, tmp_path: Path) -> None:
    done = kl.run("wif", "env", "ci")
    assert done.returncode == 2
    assert "keyguard wif apply ci" in done.stderr
    token_file = tmp_path / "identity"
    token_file.write_text(kl.identity())
    done = kl.run("wif", "verify", "ci", "--identity-token-file", str(token_file))
    assert done.returncode == 2
    assert "keyguard wif apply ci" in done.stderr


@pytest.mark.parametrize(
    ("identity", "cause"),
    [
        ({"aud_override": "https://other.example"}, "audience:"),
        ({"sub": "job:acme/app:ref:feature"}, "subject:"),
        ({"owner": "mallory"}, "subject: claim 'owner'"),
    ],
)
def test_verify_explains_the_opaque_401(
    kl: Keyless, tmp_path: Path, identity: dict[str, str], cause: str
) -> None:
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    sub = identity.pop("sub", SUBJECT)
    aud = identity.pop("aud_override", "https://api.anthropic.com")
    body = {"sub": sub, "aud": aud, "claims": {"owner": "acme", **identity}}
    token = ok(httpx.post(f"{kl.sb.oidc_issuer}/token", json=body))["id_token"]
    done = kl.run("wif", "verify", "ci", "--identity-token-file", "-", stdin=token)
    assert done.returncode == 3, done.stderr
    assert "refused (401)" in done.stderr
    assert f"likely cause: {cause}" in done.stderr


def test_verify_names_the_issuer_first(kl: Keyless, tmp_path: Path) -> None:
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    token = kl.identity(iss="https://elsewhere.example", aud="https://other.example")
    done = kl.run("wif", "verify", "ci", "--identity-token-file", "-", stdin=token)
    assert done.returncode == 3
    assert "likely cause: issuer:" in done.stderr


def test_verify_finds_an_archived_rule(kl: Keyless) -> None:
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    with admin_http(kl.sb) as http:
        rule_id = ok(http.get("/v1/organizations/federation_rules"))["data"][0]["id"]
        ok(http.post(f"/v1/organizations/federation_rules/{rule_id}/archive"))
    done = kl.run("wif", "verify", "ci", "--identity-token-file", "-", stdin=kl.identity())
    assert done.returncode == 3
    assert "likely cause: rule id:" in done.stderr


def test_verify_refuses_a_non_jwt_cleanly(kl: Keyless) -> None:
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    done = kl.run("wif", "verify", "ci", "--identity-token-file", "-", stdin="garbage")
    assert done.returncode == 2
    assert "not a JWT" in done.stderr


@pytest.mark.parametrize("fmt", ["env", "github-actions", "kubernetes"])
def test_env_formats_carry_the_ids_and_the_warning(kl: Keyless, fmt: str) -> None:
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    done = kl.run("wif", "env", "ci", "--format", fmt)
    assert done.returncode == 0
    assert "ANTHROPIC_FEDERATION_RULE_ID" in done.stdout
    assert "ANTHROPIC_SERVICE_ACCOUNT_ID" in done.stdout
    assert "ANTHROPIC_IDENTITY_TOKEN_FILE" in done.stdout
    assert "even set to an empty string" in done.stderr
    if fmt == "github-actions":
        assert "id-token: write" in done.stdout
        assert "audience=https://api.anthropic.com" in done.stdout
    if fmt == "kubernetes":
        assert "serviceAccountToken:" in done.stdout
        assert "audience: https://api.anthropic.com" in done.stdout


def test_verify_diagnoses_without_an_oauth_token_too(kl: Keyless) -> None:
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    token = kl.identity(sub="job:acme/app:ref:feature")
    for auth in ("", "sk-ant-oat01-" + "q" * 95):  # a workload has none, or a useless one
        done = kl.run(
            "wif",
            "verify",
            "ci",
            "--identity-token-file",
            "-",
            stdin=token,
            ANTHROPIC_AUTH_TOKEN=auth,
        )
        assert done.returncode == 3, done.stderr
        assert "likely cause: subject:" in done.stderr


def test_a_changed_subject_is_planned_as_an_update_and_applied(kl: Keyless) -> None:
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    config = kl.root / "keyguard.toml"
    config.write_text(config.read_text().replace(SUBJECT, "job:acme/app:ref:release"))
    plan = kl.run("wif", "plan", "ci")
    assert "~ rule keyguard-ci" in plan.stdout and "match.subject_prefix" in plan.stdout
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    assert "nothing to change" in kl.run("wif", "plan", "ci").stdout
    with admin_http(kl.sb) as http:
        rules = ok(http.get("/v1/organizations/federation_rules"))["data"]
    assert [r["match"]["subject_prefix"] for r in rules] == ["job:acme/app:ref:release"]


def test_an_environment_whose_static_key_was_retired_is_never_due(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """After `wif retire-key`, `rotate --due` must not ask for a static key again."""
    from datetime import timedelta

    from keyguard.config import load_config
    from keyguard.wif.record import WifRecord, load_record, save_record

    kl = make_keyless(tmp_path, sandbox)
    old_id, old = sandbox.mint_key("ci-old", workspace_id=kl.workspace, age=timedelta(days=200))
    (tmp_path / "stores" / "ci.json").write_text(old.reveal() + "\n")
    kl = replace(kl, key=old)  # the hint run() lets through
    due = kl.run("rotate", "--due")
    assert due.returncode == 5, due.stdout + due.stderr  # a 200-day-old static key is due
    assert "(DUE)" in kl.run("status").stdout

    # what `wif retire-key` leaves: the key inactive, the retirement recorded
    state_dir = load_config(tmp_path / "keyguard.toml").state_dir
    with sandbox.client() as admin:
        admin.update_key(old_id, status="inactive")
    record = WifRecord("ci", retired={"key_ids": [old_id], "hint": old.hint, "stores": []})
    save_record(state_dir, record)
    assert load_record(state_dir, "ci").retired

    writes = len(sandbox.writes())
    rotated = kl.run("rotate", "--due")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "ci: federated" in rotated.stdout and "retired" in rotated.stdout
    assert "new key" not in rotated.stdout
    status = kl.run("status")
    assert status.returncode == 0, status.stderr
    assert "ci: federated" in status.stdout and "(DUE)" not in status.stdout
    assert json.loads(kl.run("status", "--json").stdout)["environments"][0]["due"] is False
    assert len(sandbox.writes()) == writes  # nothing asked of the API but reads


@pytest.mark.parametrize(
    ("field", "damage", "named"),
    [
        ("rule_id", ["fedrule_1", "fedrule_2"], "rule_id"),
        ("service_account_id", {"id": "svac_1"}, "service_account_id"),
        ("applied_at", 1700000000, "applied_at"),
        ("applied_at", "yesterday", "applied_at"),
        ("applied_at", "2026-12-01T00:00:00", "applied_at"),  # no time zone: not comparable
        ("retired", {"key_ids": [], "at": "2026-12-01T00:00:00"}, "retired.at"),
        ("retired", {"key_ids": [], "at": "yesterday"}, "retired.at"),
        ("issuer_id", True, "issuer_id"),
        ("retired", ["apikey_1"], "retired"),
        ("retired", "yes", "retired"),
        ("retired", {"key_ids": "apikey_1"}, "retired.key_ids"),
        ("retired", {"key_ids": [], "hint": ["sk-ant-"]}, "retired.hint"),
    ],
)
def test_a_damaged_federation_record_is_a_one_line_config_error(
    kl: Keyless, field: str, damage: Any, named: str
) -> None:
    """The record is a file anyone can edit: a wrong type is named, never a traceback or a
    wrong decision (a list taken for a rule id, a string taken for a retirement)."""
    from keyguard.config import load_config
    from keyguard.wif.record import record_path

    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    path = record_path(load_config(kl.root / "keyguard.toml").state_dir, "ci")
    record = json.loads(path.read_text())
    record[field] = damage
    path.write_text(json.dumps(record))
    for args in (("wif", "env", "ci"), ("wif", "status"), ("status",), ("wif", "retire-key", "ci")):
        done = kl.run(*args)  # run() fails on any traceback
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        [line] = done.stderr.strip().splitlines()
        assert str(path) in line and f"'{named}'" in line, line
        assert "move it away and rerun apply" in line
