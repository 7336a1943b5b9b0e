"""``keyguard demo``: the whole rotation lifecycle against an in-process sandbox, offline."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from keyguard.atomic import write_atomic
from keyguard.config import load_config

if TYPE_CHECKING:
    from keyguard.rotation import RotationEngine

_CONFIG = """\
# A keyguard.toml like yours: two environments, each key in a local file store.
[anthropic]
admin_key = "file:admin.key"

[policy]
file = "default"

[environments.dev]
stores = ["file:stores/dev.json"]
workspace = "{dev_ws}"

[environments.prod]
stores = ["file:stores/prod-app.json", "file:stores/prod-worker.json"]
workspace = "{prod_ws}"
"""


class _DemoClock:
    """Demo time: starts three days ago so that "a day later" is still in the past."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)

    def __call__(self) -> datetime:
        return self.now


def _write_secret_file(path: Path, text: str) -> None:
    write_atomic(path, text + "\n", mode=0o600)


def _step(text: str) -> None:
    click.echo("")
    # Bold only on a terminal (click strips it in a pipe), and never with NO_COLOR set.
    if os.environ.get("NO_COLOR"):
        click.echo(f"==> {text}")
    else:
        click.secho(f"==> {text}", bold=True)


@click.command()
@click.option("--keep", is_flag=True, help="Keep the temporary project and print where it is.")
def demo(keep: bool) -> int:
    """Walk a key rotation end to end against a local sandbox: no credentials, no network."""
    from keyguard.admin.sandbox import Sandbox
    from keyguard.rotation import open_engine, rotation_request, status

    clock = _DemoClock()
    say = click.echo
    tmp = Path(tempfile.mkdtemp(prefix="keyguard-demo-"))
    with Sandbox() as sb, sb.client() as admin:
        sb.state.now = lambda: clock().timestamp()  # the API's clock moves with the demo's
        _step(f"A local Admin API sandbox listens on {sb.url}; the project lives in {tmp}")
        dev_ws = sb.add_workspace("dev", tags={"env": "dev"})
        prod_ws = sb.add_workspace("prod", tags={"env": "prod"})
        _write_secret_file(tmp / "admin.key", sb.admin_key.reveal())
        (tmp / "keyguard.toml").write_text(_CONFIG.format(dev_ws=dev_ws, prod_ws=prod_ws), "utf-8")
        config = load_config(tmp / "keyguard.toml")
        old_key_ids: dict[str, str] = {}
        for env in ("dev", "prod"):
            key_id, secret = sb.mint_key(
                f"{env}-legacy",
                workspace_id=config.environments[env].workspace,
                created_at=clock() - timedelta(days=85),
            )
            old_key_ids[env] = key_id
            for uri in config.environments[env].stores:
                _write_secret_file(Path(uri.removeprefix("file:")), secret.reveal())
            say(f"{env}: the stores already hold {secret.hint} ({key_id}), 85 days old")

        def engine(env: str, grace: timedelta | None = None) -> RotationEngine:
            return open_engine(config, env, admin, clock=clock, say=say, grace=grace)

        _step("keyguard status: both keys are past due (80 days)")
        for env in ("dev", "prod"):
            env_status = status(engine(env))
            age = env_status.age.days if env_status.age else "?"
            due = " (DUE)" if env_status.due else ""
            say(f"{env}: serving {env_status.current}, {age}d old{due}")

        _step("keyguard rotate --due (cron): a rotation request for each environment")
        for env in ("dev", "prod"):
            say(rotation_request(engine(env), "the key is 85 days old")["text"])

        _step("Someone creates the key in the Console (the sandbox's Console here)")
        new_id, new = sb.mint_key(
            f"prod-{clock():%Y%m%d}", workspace_id=prod_ws, created_at=clock()
        )
        say(f"created {new.hint} ({new_id}) and piped it into `keyguard rotate prod`")

        _step("keyguard rotate prod: adopt the old key, store, promote, verify")
        out = engine("prod").rotate(new)
        say(f"{out.message}  [exit {out.exit_code}]")

        _step("Two hours later a forgotten worker still uses the old key")
        sb.record_usage(
            old_key_ids["prod"],
            at=clock() + timedelta(hours=2),
            input_tokens=900,
            output_tokens=120,
        )
        clock.now += timedelta(hours=24, minutes=10)
        out = engine("prod").rotate()
        say(f"a day later, keyguard rotate prod: {out.message}  [exit {out.exit_code}]")

        _step("The worker is fixed; a day later the old key has been idle for a whole grace")
        clock.now += timedelta(hours=24)
        out = engine("prod").rotate()
        say(f"{out.message}  [exit {out.exit_code}]")

        _step("dev rotates with --grace 0: the old key is revoked right after verify")
        dev_id, dev_new = sb.mint_key(
            f"dev-{clock():%Y%m%d}", workspace_id=dev_ws, created_at=clock()
        )
        out = engine("dev", grace=timedelta(0)).rotate(dev_new)
        say(f"{out.message}  [exit {out.exit_code}]")

        _step("keyguard status")
        for env in ("dev", "prod"):
            env_status = status(engine(env))
            waiting = env_status.waiting_for
            say(f"{env}: {env_status.phase}; serving {env_status.current}; waiting for: {waiting}")
        for env, key_id in old_key_ids.items():
            say(f"{env}: old key {key_id} is {admin.get_key(key_id).status} in the Admin API")
        del dev_id

        _step("keyguard audit: what each key really is (type, scope) and the policy's verdicts")
        from keyguard.audit import run_audit
        from keyguard.audit.render import render_table

        sb.mint_key("batch-2024", key_type="workspace", created_at=clock())  # legacy, no one's
        sb.mint_key("ops-laptop", key_type="personal", scope="organization", created_at=clock())
        report = run_audit(config, admin, clock=clock, probe=admin.reaches_admin_api)
        say(render_table(report, width=140), nl=False)

        from keyguard.cli.wif_demo import keyless_chapter

        keyless_chapter(sb, admin, tmp, _step, say, clock)
    _step("The demo's keyguard.toml (admin_key names a file, never holds the key)")
    click.echo((tmp / "keyguard.toml").read_text("utf-8").rstrip())
    if keep:
        click.echo(f"\nThe demo project stays in {tmp} (the sandbox is gone).")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        click.echo("\nThe demo project is deleted: `keyguard demo --keep` keeps it.")
    click.echo("Next: `keyguard init` writes your own keyguard.toml; then `keyguard status`.")
    return 0
