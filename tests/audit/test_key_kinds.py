"""What a key really is: type, scope, principal and expiry, judged and shown in every format."""

from __future__ import annotations

import csv
import io
import json

from keyguard.audit import Verdict
from keyguard.config import load_config
from tests.audit.conftest import Org


def reasons(env: object) -> dict[str, Verdict]:
    return {r.code: r.verdict for r in env.reasons}  # type: ignore[attr-defined]


def test_a_legacy_workspace_key_is_flagged_for_migration(org: Org) -> None:
    org.env("batch", org.key("batch-1", key_type="workspace"))
    (env,) = org.audit().environments
    assert reasons(env) == {"legacy_workspace_key": Verdict.WARNING}
    assert env.verdict is Verdict.WARNING and env.kind.key_type == "workspace"
    assert "migrate" in env.reasons[0].message and "federation" in env.reasons[0].message


def test_a_personal_key_warns_by_default_and_violates_under_strict(org: Org) -> None:
    bob = org.sandbox.add_user("bob@example.invalid")
    key = org.key("prod-1", key_type="personal", principal_id=bob)
    org.env("prod", key)
    (env,) = org.audit().environments
    assert reasons(env) == {"personal_key": Verdict.WARNING}
    assert f"personal key of {bob}" in env.reasons[0].message
    org.policy["file"] = "strict"
    (env,) = org.audit().environments
    assert reasons(env)["personal_key"] is Verdict.VIOLATION


def test_an_org_scoped_key_of_an_admin_is_admin_equivalent(org: Org) -> None:
    ws = org.sandbox.add_workspace("prod")
    admin_key = org.key("ops", key_type="personal", scope="organization")  # the owner: an admin
    svac = org.sandbox.add_service_account("ci")
    dev_key = org.key("ci", key_type="service_account", scope="organization", principal_id=svac)
    org.env("ops", admin_key, workspace=ws)
    org.env("ci", dev_key, workspace=ws)
    ops, ci = org.audit().environments
    assert reasons(ops)["org_scoped"] is Verdict.WARNING
    assert reasons(ops)["admin_equivalent"] is Verdict.VIOLATION and ops.kind.admin_equivalent
    assert "admin_equivalent" not in reasons(ci) and ci.kind.admin_equivalent is False
    assert ci.kind.workspace_label(ci.workspace_id) == "organization"


def test_never_expiring_and_soon_expiring_keys(org: Org) -> None:
    org.env("forever", org.key("forever-1", expires_in_days=None))
    org.env("soon", org.key("soon-1", expires_in_days=3))
    forever, soon = org.audit().environments
    assert reasons(forever) == {"never_expires": Verdict.WARNING}
    assert reasons(soon) == {"expiring": Verdict.VIOLATION}
    assert "emails only the key's creator" in soon.reasons[0].message


def test_keys_of_a_departed_member_are_listed_once(org: Org) -> None:
    bob = org.sandbox.add_user("bob@example.invalid")
    gone = org.key("bob-laptop", key_type="personal", principal_id=bob)
    org.env("prod", org.key("prod-1"))
    org.sandbox.remove_user(bob)
    first = org.audit()
    assert [u.key_id for u in first.departed] == [gone.id]
    assert first.departed[0].kind.principal == f"user:{bob}"
    assert org.audit().departed == ()  # not every run


def test_every_format_carries_type_scope_principal_and_expiry(org: Org) -> None:
    ws = org.sandbox.add_workspace("prod")
    org.env("prod", org.key("prod-1", workspace=ws, key_type="workspace"))
    org.key("stray", key_type="personal", scope="organization", expires_in_days=None)
    code, out, _ = org.cli("--format", "json", "--fail-on", "never")
    data = json.loads(out)
    (env,) = data["environments"]
    assert (env["type"], env["scope"], env["principal"]) == ("workspace", "workspace", None)
    assert env["expires_at"] and data["summary"]["warning"] == 1
    (stray,) = data["unmanaged"]
    assert (stray["type"], stray["scope"]) == ("personal", "organization")
    assert stray["principal"].startswith("user:") and "never expires" in stray["flags"]
    _, out, _ = org.cli("--format", "csv", "--fail-on", "never")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["kind"], r["type"], r["scope"]) for r in rows] == [
        ("environment", "workspace", "workspace"),
        ("unmanaged", "personal", "organization"),
    ]
    _, out, _ = org.cli("--format", "markdown", "--fail-on", "never")
    assert "workspace / workspace" in out and "personal / organization" in out
    assert "legacy workspace key" in out
    _, out, _ = org.cli("--format", "table", "--fail-on", "never")
    assert "workspace / workspace" in out and "1 warning" in out
    _, out, _ = org.cli("--format", "html", "--fail-on", "never")
    assert "personal / organization" in out and "v-warning" in out
    code, _, _ = org.cli("--format", "json", "--fail-on", "warning")
    assert code == 1


def test_a_damaged_departed_list_is_no_traceback_and_keeps_its_good_lines(org: Org) -> None:
    """``audit-departed.jsonl`` is local state anyone can edit: a line of the wrong shape is
    passed over (its key, if any, is listed again), never a traceback."""
    bob = org.sandbox.add_user("bob@example.invalid")
    seen = org.key("bob-laptop", key_type="personal", principal_id=bob)
    again = org.key("bob-desktop", key_type="personal", principal_id=bob)
    org.env("prod", org.key("prod-1"))
    org.sandbox.remove_user(bob)
    state_dir = load_config(org.config_path()).state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "audit-departed.jsonl").write_text(
        "\n".join(
            [
                json.dumps({"key_id": [again.id]}),
                json.dumps({"key_id": {"id": again.id}}),
                "[" * 100_000,
                "[]",
                "not json",
                json.dumps({"key_id": seen.id}),
            ]
        )
        + "\n"
    )
    code, out, err = org.cli("--format", "json", "--fail-on", "never")
    assert code == 0, err
    assert [u["key_id"] for u in json.loads(out)["departed"]] == [again.id]
