"""A store's other versions cannot hide a key from the unmanaged list: a stage holds a key only
when its value shows that key's hint, a stage whose metadata names another key is a violation
whatever the stage, and a previous key still active after the rotation's grace is flagged."""

from __future__ import annotations

import json
from datetime import timedelta

from keyguard.audit import Verdict
from keyguard.keys import generate_key
from keyguard.stores.interface import VersionMeta
from tests.audit.conftest import Key, Org


def meta(org: Org, value: Key, *, names: Key | None = None, days_ago: float = 3) -> VersionMeta:
    """Metadata for ``value`` stored ``days_ago``; ``names``: the key id it claims instead (a
    hand-edited store)."""
    return VersionMeta(
        key_id=(names or value).id,
        hint=value.secret.hint,
        fingerprint=value.secret.fingerprint,
        stored_at=org.now - timedelta(days=days_ago),
        token=f"t-{value.id}-{days_ago}",
    )


def stray(org: Org) -> Key:
    """A key-shaped value the organization does not have."""
    key = Key("apikey_none", generate_key())
    org.minted.append(key.secret)
    return key


def test_a_previous_version_naming_another_key_does_not_hide_it(org: Org) -> None:
    prod, backdoor = org.key("prod-2026-12"), org.key("backdoor")
    decoy = stray(org)
    uri = org.store("prod")
    org.put(uri, decoy, meta=meta(org, decoy, names=backdoor))  # becomes previous below
    org.put(uri, prod)
    org.envs["prod"] = {"stores": [uri], "workspace": None, "policy": {}}

    code, out, err = org.cli("--format", "json")
    assert code == 1, err
    doc = json.loads(out)
    assert [u["key_id"] for u in doc["unmanaged"]] == [backdoor.id]
    (env,) = doc["environments"]
    assert env["key_id"] == prod.id and env["verdict"] == "violation"
    (reason,) = env["reasons"]
    assert reason["code"] == "metadata_mismatch"
    assert "previous" in reason["message"] and backdoor.id in reason["message"]
    assert env["previous"] is None  # the record proves no key: none is shown as previous
    (store,) = env["stores"]
    assert store["previous"]["metadata_matches"] is False
    assert store["previous"]["metadata_key_id"] == backdoor.id
    org.assert_no_key_in(out + err)


def test_a_pending_version_naming_another_key_does_not_hide_it(org: Org) -> None:
    prod, backdoor = org.key("prod-1"), org.key("backdoor")
    other = org.key("another-real-key")
    uris = org.env("prod", prod)
    org.put(uris[0], other, promote=False, meta=meta(org, other, names=backdoor))
    report = org.audit()
    assert {u.key_id for u in report.unmanaged} == {backdoor.id}
    (env,) = report.environments
    assert [r.code for r in env.reasons] == ["metadata_mismatch"]
    assert "pending" in env.reasons[0].message and backdoor.id in env.reasons[0].message
    assert env.pending_key_id == other.id  # the value's own hint names it


def test_metadata_naming_another_key_judges_the_key_the_value_is(org: Org) -> None:
    served, claimed = org.key("served", age_days=120), org.key("claimed", age_days=2)
    uri = org.store("edited")
    org.put(uri, served, meta=meta(org, served, names=claimed))
    org.envs["edited"] = {"stores": [uri], "workspace": None, "policy": {}}
    report = org.audit()
    (env,) = report.environments
    assert env.key_id == served.id
    assert [r.code for r in env.reasons] == ["metadata_mismatch", "max_age"]
    assert [u.key_id for u in report.unmanaged] == [claimed.id]


def test_a_previous_key_still_active_after_the_grace_is_flagged(org: Org) -> None:
    old, new = org.key("prod-old", age_days=30), org.key("prod-new", age_days=3)
    uri = org.store("prod")
    org.put(uri, old)
    org.put(uri, new, meta=meta(org, new, days_ago=3))
    org.envs["prod"] = {"stores": [uri], "workspace": None, "policy": {}}
    # A rotation an hour old, its old key inside the grace: in progress, not a finding.
    young_old, young_new = org.key("dev-old"), org.key("dev-new")
    dev = org.store("dev")
    org.put(dev, young_old)
    org.put(dev, young_new, meta=meta(org, young_new, days_ago=1 / 24))
    org.envs["dev"] = {"stores": [dev], "workspace": None, "policy": {}}

    report = org.audit()
    envs = {e.name: e for e in report.environments}
    assert report.unmanaged == ()  # both old keys are held (their values prove it)
    prod = envs["prod"]
    assert prod.verdict is Verdict.WARNING
    (reason,) = prod.reasons
    assert reason.code == "previous_active" and old.id in reason.message
    assert envs["dev"].reasons == () and envs["dev"].previous_status == "active"
    # Revoked, it is no longer a finding.
    with org.sandbox.client() as client:
        client.update_key(old.id, status="inactive")
    assert {e.name: e.reasons for e in org.audit().environments}["prod"] == ()


def test_a_key_only_a_second_store_keeps_as_previous_is_flagged(org: Org) -> None:
    prod, backdoor = org.key("prod-1"), org.key("backdoor")
    uris = [org.store("prod", 0), org.store("prod", 1)]
    org.put(uris[0], prod, meta=meta(org, prod))
    org.put(uris[1], backdoor, meta=meta(org, backdoor, days_ago=4))
    org.put(uris[1], prod, meta=meta(org, prod))
    org.envs["prod"] = {"stores": uris, "workspace": None, "policy": {}}
    (env,) = org.audit().environments
    assert [r.code for r in env.reasons] == ["previous_active"]
    assert backdoor.id in env.reasons[0].message and uris[1] in env.reasons[0].message


def test_a_previous_version_naming_no_key_of_the_organization_is_judged_by_its_value(
    org: Org,
) -> None:
    prod, backdoor = org.key("prod-1"), org.key("backdoor")
    uri = org.store("prod")
    unknown = VersionMeta(key_id="apikey_gone", hint=backdoor.secret.hint, token="gone")
    org.put(uri, backdoor, meta=unknown)
    org.put(uri, prod, meta=meta(org, prod))
    org.envs["prod"] = {"stores": [uri], "workspace": None, "policy": {}}
    report = org.audit()
    (env,) = report.environments
    assert [r.code for r in env.reasons] == ["metadata_mismatch", "previous_active"]
    assert "apikey_gone" in env.reasons[0].message and backdoor.id in env.reasons[1].message
    assert env.previous_key_id == backdoor.id and report.unmanaged == ()
