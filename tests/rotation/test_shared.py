"""A key another environment still serves is never revoked: rotating one of two sharers waits."""

from __future__ import annotations

import json
from pathlib import Path

from keyguard.keys import Secret
from tests.rotation.conftest import Project


def _add_environment(project: Project, name: str, key: Secret | None) -> Path:
    store = project.root / "stores" / f"{name}.json"
    with (project.root / "keyguard.toml").open("a") as fh:
        fh.write(f'\n[environments.{name}]\nstores = ["file:{store}"]\n')
    if key is not None:
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(key.reveal() + "\n")
        store.chmod(0o600)
    return store


def test_rotating_one_of_two_environments_sharing_a_key_does_not_revoke_it(
    project: Project,
) -> None:
    old_id, old = project.mint("shared-legacy")
    project.seed(old)
    _add_environment(project, "staging", old)
    _, new = project.mint("prod-new")
    held = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert held.returncode == 5, held.stdout + held.stderr
    assert "still served by staging" in held.stdout and old_id in held.stdout, held.stdout
    assert project.served() == [new, new]
    assert project.status_of(old) == "active"
    again = project.run("rotate", "prod", "--grace", "0", "--yes")
    assert again.returncode == 5 and project.status_of(old) == "active"
    status = project.run("status", "prod")
    assert "staging" in status.stdout, status.stdout
    # Staging moves to its own key: nothing serves the old one any more, so it goes.
    _, staging_new = project.mint("staging-new")
    moved = project.run("rotate", "staging", "--grace", "0", "--yes", input=staging_new.reveal())
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert project.status_of(old) == "inactive"
    done = project.run("rotate", "prod", "--grace", "0", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rotation finished" in done.stdout


def test_a_key_named_by_id_in_another_environments_metadata_is_not_revoked(
    project: Project,
) -> None:
    """Matched by key id too: a store that says it holds the old key (by metadata) counts."""
    old_id, old = project.mint("shared-legacy")
    project.seed(old)
    staging = _add_environment(project, "staging", None)
    _, other = project.mint("staging-own")
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_text(
        json.dumps(
            {
                "format": "keyguard-file-store",
                "version": 1,
                "lease": None,
                "versions": [
                    {
                        "id": "t1",
                        "stages": ["pending"],
                        "value": other.reveal(),
                        "meta": {"key_id": old_id},
                    }
                ],
            }
        )
    )
    _, new = project.mint("prod-new")
    held = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert held.returncode == 5 and "staging" in held.stdout, held.stdout + held.stderr
    assert project.status_of(old) == "active"


def test_an_unreadable_store_elsewhere_stops_the_revoke_with_its_own_exit_code(
    project: Project,
) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    staging = _add_environment(project, "staging", None)
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_text("DB_URL=postgres://db\nDEBUG=1\n")  # not a store keyguard can read
    _, new = project.mint("prod-new")
    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot tell whether environment staging still serves it" in done.stderr
    assert "Traceback" not in done.stderr
    assert project.served() == [new, new] and project.status_of(old) == "active"
