"""The audit after a real `keyguard deliver` and `keyguard rotate`, both through the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from keyguard.admin.sandbox import Sandbox
from tests.rotation.conftest import Project, make_project

A_YEAR = datetime.now(UTC) + timedelta(days=365)  # keys with an expiry: no never_expires flag


def audit(project: Project) -> tuple[int, dict[str, Any]]:
    done = project.run("audit", "--format", "json", "prod")
    assert done.stderr == "", done.stderr
    (env,) = json.loads(done.stdout)["environments"]
    return done.returncode, env


def promoted_at(project: Project) -> datetime:
    """The rotation journal's own time for the whole environment's promotion."""
    lines = [json.loads(x) for x in project.journal.read_text().splitlines()]
    (ts,) = [
        x["ts"]
        for x in lines
        if x.get("step") == "promote" and x.get("phase") == "after" and "store" not in x
    ]
    return datetime.fromisoformat(ts).astimezone(UTC)


def test_audit_shows_pending_then_the_rotation_and_the_previous_key(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    project = make_project(tmp_path, sandbox)
    old_id, old = project.mint(
        "prod-legacy", created_at=datetime.now(UTC) - timedelta(days=100), expires_at=A_YEAR
    )
    project.seed(old)
    code, env = audit(project)
    assert (code, env["key_id"], env["verdict"]) == (1, old_id, "violation")
    assert [r["code"] for r in env["reasons"]] == ["max_age"]
    assert env["last_rotation"] is None and env["previous"] is None  # seeded by hand

    new_id, new = project.mint("prod-20261125", expires_at=A_YEAR)
    done = project.run("deliver", "prod", input=new.reveal())
    assert done.returncode == 0, done.stderr
    code, env = audit(project)
    assert (code, env["key_id"]) == (1, old_id)  # still served: still a violation
    assert env["pending"] == {"key_id": new_id, "hint": new.hint}

    before = datetime.now(UTC)
    done = project.run("rotate", "prod", "--grace", "0", "--yes")
    assert done.returncode == 0, done.stderr
    code, env = audit(project)
    assert (code, env["key_id"], env["verdict"], env["reasons"]) == (0, new_id, "ok", [])
    assert env["pending"] is None
    assert env["previous"] == {"key_id": old_id, "status": "inactive"}
    rotated = datetime.fromisoformat(env["last_rotation"])
    assert rotated == promoted_at(project) and rotated >= before - timedelta(seconds=1)
    assert env["stores_agree"] and len(env["stores"]) == 2
