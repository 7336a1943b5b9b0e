"""`keyguard rollback ENV` never puts a leaked, failed or dead key back in service.

Real CLI in a subprocess, the sandbox over HTTP, file stores. A refusal is exit 2 and changes
nothing: no store, no journal line, no Admin API write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.keys import generate_key
from tests.rotation.conftest import Project, make_project


def _rotate_now(project: Project, key: str) -> int:
    return project.run("rotate", "prod", "--grace", "0", "--yes", input=key).returncode


@pytest.mark.parametrize("how", ["--leaked", "--key-id"])
def test_rollback_refuses_a_previous_key_an_incident_revoked(project: Project, how: str) -> None:
    old_id, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    # Inside the grace period: new serves, old is kept as previous and is still active.
    assert project.run("rotate", "prod", "--yes", input=new.reveal()).returncode == 5
    args = ["--leaked", "-"] if how == "--leaked" else ["--key-id", old_id]
    leak = project.run("revoke", *args, "--yes", input=old.reveal() if how == "--leaked" else "")
    assert leak.returncode == 0, leak.stderr
    assert project.status_of(old) == "inactive"
    before = project.snapshot()

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 2, done.stderr
    assert "leaked" in done.stderr and old_id in done.stderr and "incidents.jsonl" in done.stderr
    assert project.snapshot() == before  # nothing changed, no re-activation
    assert project.status_of(old) == "inactive"
    assert project.served() == [new, new]


def test_rollback_refuses_the_key_whose_verify_failed(tmp_path: Path, sandbox: Sandbox) -> None:
    flag = tmp_path / "broken"
    project = make_project(tmp_path, sandbox, check=f"test ! -e {flag}")
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    flag.touch()
    failed = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert failed.returncode == 2 and "failed verification" in failed.stderr
    assert project.served() == [old, old]  # the failed key sits at previous now
    before = project.snapshot()

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 2, done.stderr
    assert "failed verification" in done.stderr and new.hint in done.stderr
    assert project.snapshot() == before
    assert project.served() == [old, old]


def test_rollback_refuses_a_previous_key_the_api_refuses(project: Project) -> None:
    stranger = generate_key()  # not a key of this organization: GET /v1/models says 401
    project.seed(stranger)
    _, new = project.mint("prod-20261125")
    assert _rotate_now(project, new.reveal()) == 0
    before = project.snapshot()

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 2, done.stderr
    assert "GET /v1/models" in done.stderr and stranger.hint in done.stderr
    assert project.snapshot() == before
    assert project.served() == [new, new]


def test_rollback_checks_the_previous_key_before_serving_it(project: Project) -> None:
    old_id, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    assert _rotate_now(project, new.reveal()) == 0
    assert project.status_of(old) == "inactive"
    start = len(project.sandbox.request_log())

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 0, done.stderr
    assert project.served() == [old, old] and project.status_of(old) == "active"
    log = [(m, p) for m, p, _ in project.sandbox.request_log()[start:]]
    reactivated = log.index(("POST", f"/v1/organizations/api_keys/{old_id}"))
    assert ("GET", "/v1/models") in log[reactivated:]  # verified after re-activation
    entries = [json.loads(line) for line in project.journal.read_text().splitlines()]
    assert entries[-1]["step"] == "rollback" and entries[-1]["phase"] == "closed"


def test_a_second_rollback_does_not_undo_the_first(project: Project) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    assert _rotate_now(project, new.reveal()) == 0
    assert project.run("rollback", "prod", "--yes").returncode == 0
    before = project.snapshot()

    again = project.run("rollback", "prod", "--yes")  # e.g. rerun after a crash at its end

    assert again.returncode == 0, again.stderr
    assert "already rolled back" in again.stdout
    assert project.served() == [old, old]
    assert project.snapshot() == before


def test_rollback_never_reactivates_a_key_forged_store_metadata_names(project: Project) -> None:
    """A store document is hostile input: its key id alone never picks the key to re-activate."""
    victim_id, _ = project.mint("team-b-disabled")  # another key, disabled on purpose
    with project.sandbox.client() as admin:
        admin.update_key(victim_id, status="inactive")
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    assert _rotate_now(project, new.reveal()) == 0  # old is previous, and inactive
    for uri in project.stores:  # someone rewrites the previous version's key id
        path = Path(uri.removeprefix("file:"))
        doc = json.loads(path.read_text())
        (previous,) = [v for v in doc["versions"] if "previous" in v["stages"]]
        previous["meta"] = {**(previous.get("meta") or {}), "key_id": victim_id}
        path.write_text(json.dumps(doc))
    project.journal.unlink()  # another machine: no journal to say which key old is
    writes = len(project.sandbox.writes())

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 2, done.stdout + done.stderr
    assert victim_id in done.stderr and "nothing changed" in done.stderr
    assert len(project.sandbox.writes()) == writes  # the victim was never re-activated
    with project.sandbox.client() as admin:
        assert admin.get_key(victim_id).status == "inactive"
    assert project.served() == [new, new]
