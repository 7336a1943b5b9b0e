"""Attacks on `keyguard wif retire-key` and on the retirement it records.

A static key is deactivated only when proven to be the one the environment serves (it
authenticates; a hint is seven characters anyone can copy) and when no other environment
serves it; the record's word alone never makes an environment "federated, not rotated".
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.admin.sandbox.wif_routes import record_usage
from keyguard.config import load_config
from keyguard.keys import Secret
from keyguard.wif.record import load_record, record_path
from tests.wif.test_cli import Keyless, make_keyless


@pytest.fixture
def kl(tmp_path: Path, sandbox: Sandbox) -> Keyless:
    return make_keyless(tmp_path, sandbox)


def _state_dir(kl: Keyless) -> Path:
    return load_config(kl.root / "keyguard.toml").state_dir


def _switched(kl: Keyless) -> None:
    """Applied, and the service account carried traffic half an hour ago (the switch)."""
    applied = kl.run("wif", "apply", "ci", "--yes")
    assert applied.returncode == 0, applied.stderr
    sa_id = load_record(_state_dir(kl), "ci").service_account_id
    usage = {"service_account_id": sa_id, "workspace_id": kl.workspace}
    record_usage(kl.sb.state, usage, "claude-sonnet-4-5", 10, 10, at=time.time() - 1800)


def _status(sb: Sandbox, key_id: str) -> str:
    with sb.client() as admin:
        return admin.get_key(key_id).status


def _look_alike(key: Secret) -> Secret:
    """A different string with the same ``partial_key_hint``: anyone who saw the hint can."""
    raw = key.reveal()
    twin = Secret(raw[:20] + ("x" if raw[20] != "x" else "y") + raw[21:])
    assert twin.hint == key.hint and twin != key
    return twin


def _add_environment(kl: Keyless, name: str, value: Secret) -> Path:
    store = kl.root / "stores" / f"{name}.json"
    store.write_text(value.reveal() + "\n")
    store.chmod(0o600)
    config = kl.root / "keyguard.toml"
    config.write_text(
        config.read_text()
        + f'\n[environments.{name}]\nstores = ["file:{store}"]\nworkspace = "{kl.workspace}"\n'
    )
    return store


def test_retire_key_never_deactivates_a_key_another_environment_serves(kl: Keyless) -> None:
    """`batch` (a weekly job, idle now) serves ci's static key: rotation would wait (exit 5)."""
    _add_environment(kl, "batch", kl.key)
    kl.sb.record_usage(kl.key_id, at=time.time() - 3600)  # idle since before the switch
    _switched(kl)
    done = kl.run("wif", "retire-key", "ci", "--yes")
    assert done.returncode == 5, done.stdout + done.stderr
    assert "batch" in done.stderr and kl.key.hint in done.stderr
    assert _status(kl.sb, kl.key_id) == "active"
    assert not load_record(_state_dir(kl), "ci").retired
    assert "ci: federated" not in kl.run("wif", "status").stdout

    # once batch serves its own key, ci's static key goes
    _, own = kl.sb.mint_key("batch", workspace_id=kl.workspace)
    (kl.root / "stores" / "batch.json").write_text(own.reveal() + "\n")
    retired = kl.run("wif", "retire-key", "ci", "--yes")
    assert retired.returncode == 0, retired.stderr
    assert _status(kl.sb, kl.key_id) == "inactive"


def test_retire_key_never_deactivates_the_namesake_of_a_look_alike(
    kl: Keyless, sandbox: Sandbox
) -> None:
    """ci's store holds a string with the hint of prod's key (another workspace): no proof."""
    prod_id, prod = sandbox.mint_key("prod-api", workspace_id=sandbox.add_workspace("prod"))
    (kl.root / "stores" / "ci.json").write_text(_look_alike(prod).reveal() + "\n")
    _switched(kl)
    done = replace(kl, key=prod).run("wif", "retire-key", "ci", "--yes")
    assert _status(sandbox, prod_id) == "active"
    assert _status(sandbox, kl.key_id) == "active"  # no longer served: not ci's to touch
    assert "does not authenticate" in done.stdout + done.stderr
    assert "deactivated nothing" in done.stdout + done.stderr


def test_retire_key_refuses_with_a_local_clock_two_days_fast(kl: Keyless) -> None:
    """The drain check would read the usage report of a future: refused, exit 2, key active."""
    from keyguard.rotation.revoke import ClockSkewError
    from keyguard.wif.api import WifClient
    from keyguard.wif.retire import retire_key

    kl.sb.record_usage(kl.key_id, at=time.time() - 3600)
    _switched(kl)
    config = load_config(kl.root / "keyguard.toml")

    def fast() -> datetime:
        return datetime.now(UTC) + timedelta(days=2)

    def confirm(_question: str) -> None:
        raise AssertionError("asked to confirm a deactivation it must refuse")

    with (
        kl.sb.client() as admin,
        WifClient(kl.sb.oauth_token, kl.sb.url) as client,
        pytest.raises(ClockSkewError) as err,
    ):
        retire_key(config, "ci", admin, client, confirm, clock=fast)
    assert err.value.exit_code == 2
    assert "2.0 days apart" in str(err.value) and kl.key.hint in str(err.value)
    assert "keyguard wif retire-key ci" in str(err.value)
    assert _status(kl.sb, kl.key_id) == "active"
    assert not load_record(_state_dir(kl), "ci").retired


def _forge(kl: Keyless, retired: dict[str, Any]) -> None:
    path = record_path(_state_dir(kl), "ci")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"retired": retired}))


FORGED = {
    "no key ids": lambda served_id, other_id: {"hint": "x"},
    "the served key, still active": lambda served_id, other_id: {"key_ids": [served_id]},
    "another key, while the store serves a live one": lambda served_id, other_id: {
        "key_ids": [other_id]
    },
    "no such key": lambda served_id, other_id: {"key_ids": ["apikey_01NoSuchKey"]},
}


@pytest.mark.parametrize("forged", sorted(FORGED))
def test_the_records_word_alone_never_stops_rotation(
    tmp_path: Path, sandbox: Sandbox, forged: str
) -> None:
    """A record says `retired`; the store serves a live, 200-day-old key: it is due."""
    kl = make_keyless(tmp_path, sandbox)
    old_id, old = sandbox.mint_key("ci-old", workspace_id=kl.workspace, age=timedelta(days=200))
    (tmp_path / "stores" / "ci.json").write_text(old.reveal() + "\n")
    kl = replace(kl, key=old)
    with sandbox.client() as admin:
        admin.update_key(kl.key_id, status="inactive")  # the first static key, retired for real
    _forge(kl, FORGED[forged](old_id, kl.key_id))

    due = kl.run("rotate", "--due")
    assert due.returncode == 5, due.stdout + due.stderr  # a rotation request, as for any other
    assert "federated" not in due.stdout
    status = kl.run("status")
    assert "(DUE)" in status.stdout and "ci: federated" not in status.stdout
    assert "the WIF record says" in status.stdout  # what is inconsistent
    wif_status = kl.run("wif", "status")
    assert wif_status.returncode == 0, wif_status.stderr
    assert "ci: federated" not in wif_status.stdout
    assert "the WIF record says" in wif_status.stdout
    assert _status(sandbox, old_id) == "active"


def test_retire_key_retires_for_real_what_a_forged_record_only_claims(kl: Keyless) -> None:
    """A record that says `retired` while the store serves a live key is no reason to stop."""
    _forge(kl, {"hint": "x"})
    _switched(kl)
    done = kl.run("wif", "retire-key", "ci", "--yes")
    assert done.returncode == 0, done.stderr
    assert "already retired" not in done.stdout
    assert _status(kl.sb, kl.key_id) == "inactive"
    assert load_record(_state_dir(kl), "ci").retired["key_ids"] == [kl.key_id]
    assert "ci: federated" in kl.run("wif", "status").stdout
    again = kl.run("wif", "retire-key", "ci", "--yes")
    assert again.returncode == 0 and "already retired" in again.stdout


def test_retire_key_refuses_a_live_key_its_store_misnames(kl: Keyless, sandbox: Sandbox) -> None:
    """The store's metadata (its writer's word) names prod's key beside ci's live one: which
    key this is stays unproven, so nothing is deactivated and nothing recorded (exit 2)."""
    prod_id, prod = sandbox.mint_key("prod-api", workspace_id=sandbox.add_workspace("prod"))
    version = {"id": "t1", "stages": ["current"], "value": kl.key.reveal()}
    doc = {"format": "keyguard-file-store", "version": 1, "lease": None, "versions": [version]}
    version["meta"] = {"key_id": prod_id}
    (kl.root / "stores" / "ci.json").write_text(json.dumps(doc))
    _switched(kl)
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "wif", "retire-key", "ci", "--yes"],
        capture_output=True,
        text=True,
        env=kl.env(),
        cwd=kl.root,
        timeout=60,
        check=False,
    )  # not kl.run: the message names both hints (ci's and prod's), never a whole key
    assert done.returncode == 2, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert kl.key.reveal() not in said and prod.reveal() not in said and "Traceback" not in said
    assert f"recorded id {prod_id}" in done.stderr and "deactivated nothing" in done.stderr
    assert _status(sandbox, prod_id) == "active" and _status(sandbox, kl.key_id) == "active"
    assert not load_record(_state_dir(kl), "ci").retired


def test_wif_status_needs_no_credentials_until_a_record_claims_a_retirement(kl: Keyless) -> None:
    """Only a claimed retirement is checked against the API; the rest is local, as before."""
    bare = {"ANTHROPIC_ADMIN_KEY": "", "ANTHROPIC_AUTH_TOKEN": ""}  # kl.env drops empty ones
    status = kl.run("wif", "status", **bare)
    assert status.returncode == 0, status.stderr
    assert "ci: in migration" in status.stdout
    _forge(kl, {"key_ids": []})
    unchecked = kl.run("wif", "status", **bare)
    assert unchecked.returncode == 3, unchecked.stdout + unchecked.stderr
    assert "ci: federated" not in unchecked.stdout
