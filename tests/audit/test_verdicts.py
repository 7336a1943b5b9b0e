"""Every verdict and reason, against the sandbox over HTTP and real file stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from keyguard.audit import Verdict
from keyguard.stores.interface import VersionMeta
from tests.audit.conftest import Org


def codes(report_env: object) -> list[str]:
    return [r.code for r in report_env.reasons]  # type: ignore[attr-defined]


def test_fresh_key_is_ok_and_reports_what_anthropic_and_the_stores_say(org: Org) -> None:
    ws = org.sandbox.add_workspace("prod")
    key = org.key("prod-1", age_days=12.5, workspace=ws)
    org.env("prod", key, stores=2, workspace=ws)
    org.sandbox.record_usage(
        key.id, at=org.now - timedelta(hours=2), input_tokens=100, output_tokens=20
    )
    org.sandbox.record_usage(
        key.id, at=org.now - timedelta(days=3), input_tokens=1000, output_tokens=0
    )
    (env,) = org.audit().environments
    assert env.verdict is Verdict.OK and env.reasons == ()
    assert env.key_id == key.id and env.key_name == "prod-1"
    assert env.hint == key.secret.hint
    assert env.workspace_id == ws and env.status == "active"
    assert env.age_days == 12.5
    assert env.stores_agree
    assert (env.tokens_24h, env.tokens_7d) == (120, 1120)
    assert env.last_rotation == org.now - timedelta(days=1)


def test_due_and_max_age_follow_the_policy_per_environment(org: Org) -> None:
    org.env("due", org.key("due-1", age_days=85))
    org.env("old", org.key("old-1", age_days=91))
    org.env(
        "strict", org.key("strict-1", age_days=26), policy={"due_after": "25d", "max_age": "30d"}
    )
    envs = {e.name: e for e in org.audit().environments}
    assert envs["due"].verdict is Verdict.DUE and codes(envs["due"]) == ["due"]
    assert envs["old"].verdict is Verdict.VIOLATION and codes(envs["old"]) == ["max_age"]
    assert "past max_age 90d" in envs["old"].reasons[0].message
    assert envs["strict"].verdict is Verdict.DUE
    assert "past due_after 25d" in envs["strict"].reasons[0].message


def test_expired_and_expiring_keys_are_violations(org: Org) -> None:
    org.env("expired", org.key("e-1", age_days=30, expires_in_days=-1))
    org.env("soon", org.key("s-1", age_days=5, expires_in_days=10))
    org.env("later", org.key("l-1", age_days=5, expires_in_days=30))
    envs = {e.name: e for e in org.audit().environments}
    assert codes(envs["expired"]) == ["expired"]
    assert codes(envs["soon"]) == ["expiring"]
    assert "inside the 14d warning window" in envs["soon"].reasons[0].message
    assert envs["later"].verdict is Verdict.OK


def test_inactive_or_archived_key_served_is_a_violation(org: Org) -> None:
    inactive, archived = org.key("i-1"), org.key("a-1")
    org.env("inactive", inactive)
    org.env("archived", archived)
    with org.sandbox.client() as client:
        client.update_key(inactive.id, status="inactive")
        client.update_key(archived.id, status="archived")
    envs = {e.name: e for e in org.audit().environments}
    assert codes(envs["inactive"]) == ["inactive_served"]
    assert codes(envs["archived"]) == ["inactive_served"]
    assert envs["archived"].status == "archived"


def test_disagreeing_stores_name_each_store(org: Org) -> None:
    a, b = org.key("split-a"), org.key("split-b")
    uris = org.env("split", a, stores=2)
    org.put(uris[1], b)
    (env,) = org.audit().environments
    assert not env.stores_agree
    assert codes(env) == ["stores_disagree"]
    assert uris[0] in env.reasons[0].message and b.id in env.reasons[0].message


def test_shared_key_is_a_violation_for_every_environment_serving_it(org: Org) -> None:
    shared = org.key("shared-1")
    org.env("api", shared)
    org.env("worker", shared)
    org.env("solo", org.key("solo-1"))
    envs = {e.name: e for e in org.audit().environments}
    assert codes(envs["api"]) == ["shared"] and "worker" in envs["api"].reasons[0].message
    assert codes(envs["worker"]) == ["shared"] and "api" in envs["worker"].reasons[0].message
    assert "violates one_key_per_environment" in envs["api"].reasons[0].message
    assert envs["solo"].verdict is Verdict.OK
    # Auditing one environment still sees the other one sharing its key.
    (only,) = org.audit("api").environments
    assert codes(only) == ["shared"]


def test_shared_key_allowed_when_the_policy_says_so(org: Org) -> None:
    org.policy["one_key_per_environment"] = "false"
    shared = org.key("shared-1")
    org.env("api", shared)
    org.env("worker", shared)
    # the TOML writer quotes values: a quoted "false" is truthy, so write it bare
    path = org.config_path()
    path.write_text(path.read_text().replace('"false"', "false"))
    from keyguard.audit import run_audit
    from keyguard.config import load_config

    with org.sandbox.client() as client:
        report = run_audit(load_config(path), client, clock=lambda: org.now)
    assert [e.verdict for e in report.environments] == [Verdict.OK, Verdict.OK]


def test_store_problems_each_have_a_reason(org: Org, tmp_path: Path) -> None:
    empty = org.env("empty", None)
    assert empty
    broken = org.env("broken", None)
    Path(broken[0].removeprefix("file:")).mkdir()  # a folder where the file should be
    junk = org.env("junk", None)
    Path(junk[0].removeprefix("file:")).write_text("not-a-key-at-all\n")
    edited_key, other = org.key("edited-1"), org.key("other-1")
    edited = org.store("edited")
    org.put(
        edited, edited_key, meta=VersionMeta(key_id=other.id, hint=other.secret.hint, token="t1")
    )
    org.envs["edited"] = {"stores": [edited], "workspace": None, "policy": {}}
    envs = {e.name: e for e in org.audit().environments}
    assert codes(envs["empty"]) == ["no_current_key"]
    assert codes(envs["broken"]) == ["store_unreadable"]
    assert "Is a directory" in envs["broken"].reasons[0].message
    # A file store adopts only a key: anything else is refused, so the store reads as broken.
    assert codes(envs["junk"]) == ["store_unreadable"]
    assert "not a key" in envs["junk"].reasons[0].message
    assert codes(envs["edited"])[0] == "metadata_mismatch"
    assert all(e.verdict is Verdict.VIOLATION for e in envs.values())


def test_unknown_key_and_wrong_workspace(org: Org) -> None:
    from keyguard.keys import generate_key
    from tests.audit.conftest import Key

    stray = Key("apikey_nowhere", generate_key())
    org.minted.append(stray.secret)
    org.env("stray", stray)
    ws_a, ws_b = org.sandbox.add_workspace("a"), org.sandbox.add_workspace("b")
    org.env("moved", org.key("moved-1", workspace=ws_a), workspace=ws_b)
    envs = {e.name: e for e in org.audit().environments}
    assert codes(envs["stray"]) == ["unknown_key"]
    assert codes(envs["moved"]) == ["workspace_mismatch"]


def test_pending_and_previous_are_reported(org: Org) -> None:
    old, new, next_ = org.key("r-1", age_days=40), org.key("r-2", age_days=2), org.key("r-3")
    uris = org.env("rotating", old)
    org.put(uris[0], new)  # old becomes previous
    org.put(uris[0], next_, promote=False)  # a delivery waiting to be promoted
    with org.sandbox.client() as client:
        client.update_key(old.id, status="inactive")
    (env,) = org.audit().environments
    assert env.key_id == new.id and env.verdict is Verdict.OK
    assert env.previous_key_id == old.id and env.previous_status == "inactive"
    assert env.pending_key_id == next_.id and env.pending_hint == next_.secret.hint


def test_unmanaged_keys_are_the_active_keys_no_store_holds(org: Org) -> None:
    held = org.key("held-1")
    org.env("prod", held)
    loose = org.key("laptop-test", age_days=200)
    young = org.key("ci-temp", age_days=3)
    gone = org.key("old-off", age_days=300)
    with org.sandbox.client() as client:
        client.update_key(gone.id, status="inactive")
    org.sandbox.record_usage(
        loose.id, at=org.now - timedelta(hours=1), input_tokens=7, output_tokens=3
    )
    report = org.audit()
    assert [u.key_id for u in report.unmanaged] == [loose.id, young.id]  # oldest first
    first = report.unmanaged[0]
    assert first.age_days == 200 and first.key_name == "laptop-test"
    assert (first.tokens_24h, first.tokens_7d) == (10, 10)
    assert report.keys_listed == 4


def test_last_rotation_comes_from_the_rotation_journal(org: Org) -> None:
    from keyguard.config import load_config
    from keyguard.journal import RotationJournal

    org.env("prod", org.key("prod-2"))
    org.env("dev", org.key("dev-1"))
    state_dir = load_config(org.config_path()).state_dir
    journal = RotationJournal(state_dir, "prod")
    promoted = org.now - timedelta(days=3, hours=4)
    journal.append("tok-1", "promote", "before", promoted - timedelta(seconds=5))
    journal.append("tok-1", "promote", "after", promoted)
    journal.append("tok-1", "verify", "after", promoted + timedelta(seconds=9))
    envs = {e.name: e for e in org.audit().environments}
    assert envs["prod"].last_rotation == promoted
    # No journal: when the store says its current version was stored.
    assert envs["dev"].last_rotation == org.now - timedelta(days=1)


def test_a_rolled_back_or_half_promoted_rotation_is_not_the_last_rotation(org: Org) -> None:
    from keyguard.config import load_config
    from keyguard.journal import RotationJournal

    org.env("prod", org.key("prod-2"))
    journal = RotationJournal(load_config(org.config_path()).state_dir, "prod")
    stood = org.now - timedelta(days=20)
    journal.append("tok-1", "promote", "after", stood)
    undone = org.now - timedelta(days=2)
    journal.append("tok-2", "promote", "after", undone)
    journal.append("tok-2", "rollback", "closed", undone + timedelta(minutes=5))
    half = org.now - timedelta(hours=1)  # one store promoted, then the process died
    journal.append("tok-3", "promote", "after", half, store_index=0, store="file:/x")
    (env,) = org.audit().environments
    assert env.last_rotation == stood
