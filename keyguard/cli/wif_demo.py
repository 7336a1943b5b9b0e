"""The Keyless chapter of ``keyguard demo``: environment ``ci`` leaves its static key for
Workload Identity Federation against the sandbox and its local OIDC issuer."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx

from keyguard.atomic import write_atomic
from keyguard.config import load_config
from keyguard.errors import PendingError
from keyguard.keys import Secret
from keyguard.models import Say

if TYPE_CHECKING:
    from keyguard.admin.client import AdminClient
    from keyguard.admin.sandbox import Sandbox


_CI = """# keyless.toml: the demo's environment ci, on its way to federation
[anthropic]
admin_key = "file:admin.key"

[environments.ci]
stores = ["file:stores/ci.json"]
workspace = "{workspace}"
[environments.ci.policy]
grace = "30m"
[environments.ci.federation]
provider = "oidc"                 # in real life: github-actions, kubernetes, gcp, ...
issuer = "{issuer}"
subject = "repo:acme/app:ref:refs/heads/main"
claims = {{ repository_owner = "acme" }}
service_account = "ci-app"
token_lifetime = "10m"
"""


class DemoClock(Protocol):
    """The demo's clock, which the sandbox's own clock (its ``Date`` header) follows."""

    now: datetime

    def __call__(self) -> datetime: ...


def keyless_chapter(
    sb: Sandbox, admin: AdminClient, root: Path, step: Say, say: Say, clock: DemoClock
) -> None:
    """plan, apply, the workload exchanges its identity token, verify, traffic, retire-key."""
    from keyguard.admin.auth import ANTHROPIC_VERSION, OAUTH_BETA
    from keyguard.wif import api
    from keyguard.wif.plan import apply_plan, make_plan
    from keyguard.wif.record import load_record
    from keyguard.wif.retire import retire_key
    from keyguard.wif.status import states
    from keyguard.wif.verify import verify
    from keyguard.wif.workload import render

    step("Keyless: environment ci moves from its static key to Workload Identity Federation")
    workspace = sb.add_workspace("ci")
    key_id, key = sb.mint_key("ci-legacy", workspace_id=workspace)
    store = root / "stores" / "ci.json"
    write_atomic(store, key.reveal() + "\n", mode=0o600)
    sb.record_usage(key_id, at=clock() - timedelta(minutes=20))
    (root / "keyless.toml").write_text(
        _CI.format(workspace=workspace, issuer=sb.oidc_issuer), "utf-8"
    )
    config = load_config(root / "keyless.toml", base_url=sb.url)  # the demo chose its sandbox
    env = config.environment("ci")
    federation = env.federation
    assert federation is not None
    say(f"ci: the store holds the static key {key.hint} ({key_id}); [environments.ci.federation]")
    say("    trusts the sandbox's OIDC issuer for repo:acme/app on main, owner acme")

    with api.WifClient(sb.oauth_token, sb.url) as client:
        step("keyguard wif plan ci (with an org:admin OAuth token: Admin keys are refused here)")
        plan = make_plan(client, "ci", federation, env.workspace)
        for change in plan.changes:
            say(change.line())
        step("keyguard wif apply ci --yes")
        record = apply_plan(client, plan, federation, env.workspace, config.state_dir, say)
        step("keyguard wif env ci --format github-actions: what the workload needs (ids only)")
        say(render("github-actions", federation, load_record(config.state_dir, "ci")).rstrip())

        step("The CI job gets its identity token and keyguard wif verify exchanges it")
        body = {
            "sub": federation.subject,
            "aud": federation.audience,
            "claims": {"repository_owner": "acme"},
        }
        identity = httpx.post(f"{sb.oidc_issuer}/token", json=body).json()["id_token"]
        result = verify(sb.url, federation, record, Secret(identity), env.workspace)
        for line in result.lines():
            say(line)

        step("The workload calls Claude with its short-lived token: traffic under ci-app")
        identity = httpx.post(f"{sb.oidc_issuer}/token", json=body).json()["id_token"]
        assert record.rule_id and record.organization_id
        minted = api.exchange(
            sb.url,
            Secret(identity),
            rule_id=record.rule_id,
            organization_id=record.organization_id,
            service_account_id=record.service_account_id,
            workspace_id=workspace,
        )
        assert minted.token is not None
        httpx.post(
            f"{sb.url}/v1/messages",
            headers={
                "authorization": f"Bearer {minted.token.reveal()}",
                "anthropic-beta": OAUTH_BETA,
                "anthropic-version": ANTHROPIC_VERSION,
            },
            json={"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user"}]},
        )
        say(f"200 from /v1/messages; the usage report shows it under {record.service_account_id}")

        step("keyguard wif retire-key ci: the static key must drain for the grace period first")
        try:
            retire_key(config, "ci", admin, client, say, clock=clock)
        except PendingError as exc:
            say(f"{exc}  [exit 5]")
        clock.now += timedelta(minutes=45)  # the sandbox's clock moves with it
        step("45 minutes later the static key has been idle for the whole grace period")
        done = retire_key(config, "ci", admin, client, say, clock=clock)
        say(done.message)
        say(f"{key_id} is now {admin.get_key(key_id).status} in the Admin API")

    step("keyguard wif status")
    for row in states(config, lambda: admin):
        say(
            f"{row.environment}: {row.state}"
            + (f" (waits for {row.waiting_for})" if row.waiting_for else "")
        )
