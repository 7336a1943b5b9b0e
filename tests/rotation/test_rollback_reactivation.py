"""`keyguard rollback ENV` re-activates a key only when keyguard's own journal proves which key
the previous secret is (by its fingerprint) and the Admin API shows that key with its hint.

A store document is hostile input: a forged ``key_id`` in its metadata, or a planted string with
the hint of a real key someone disabled on purpose, must never get that key re-activated, not
even for the moment before ``GET /v1/models`` fails. Real CLI in a subprocess, the sandbox over
HTTP, file stores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyguard.keys import Secret
from tests.rotation.conftest import Project, look_alike


def _rotate_now(project: Project, key: str) -> int:
    return project.run("rotate", "prod", "--grace", "0", "--yes", input=key).returncode


def _rotated_out(project: Project) -> tuple[str, Secret, Secret]:
    """``prod-legacy`` rotated out at once: it is every store's previous key, and inactive."""
    old_id, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    assert _rotate_now(project, new.reveal()) == 0
    assert project.status_of(old) == "inactive"
    return old_id, old, new


def _disable(project: Project, key_id: str) -> None:
    """Deactivated on purpose (e.g. after a leak this machine's incident log never saw)."""
    with project.sandbox.client() as admin:
        admin.update_key(key_id, status="inactive")


def _forge_previous_key_id(project: Project, key_id: str) -> None:
    """Whoever can write the store rewrites the previous version's key id."""
    for uri in project.stores:
        path = Path(uri.removeprefix("file:"))
        doc = json.loads(path.read_text())
        (previous,) = [v for v in doc["versions"] if "previous" in v["stages"]]
        previous["meta"] = {**(previous.get("meta") or {}), "key_id": key_id}
        path.write_text(json.dumps(doc, indent=2))  # the store's own layout


def _updates_of(project: Project, key_id: str, start: int) -> list[tuple[str, str, int]]:
    """Every Admin API update (``POST``) of key ``key_id`` since request ``start``."""
    path = f"/v1/organizations/api_keys/{key_id}"
    return [r for r in project.sandbox.request_log()[start:] if r[:2] == ("POST", path)]


def _hide_hint(project: Project, key_id: str) -> None:
    """The Admin API answers ``partial_key_hint: null`` for this key (it may, per its docs)."""
    with project.sandbox.state.lock:
        project.sandbox.state.key(key_id)["hint"] = None


@pytest.mark.parametrize("journal", ["kept", "lost"])
def test_forged_metadata_naming_a_key_with_the_same_hint_never_reactivates_it(
    project: Project, journal: str
) -> None:
    old_id, old, new = _rotated_out(project)
    # A real key that shows old's hint too, disabled on purpose by another team.
    victim_id, victim = project.mint("team-b-disabled", secret=look_alike(old))
    _disable(project, victim_id)
    if journal == "kept":
        # The newest rotation is closed (a delivered key rolled back before its update), so the
        # proof is in an older rotation of the journal, not in the live one.
        _, newer = project.mint("prod-20261126")
        assert project.run("deliver", "prod", input=newer.reveal()).returncode == 0
        assert project.run("rollback", "prod", "--yes").returncode == 0
        assert project.served() == [new, new]
    else:
        project.journal.unlink()  # another machine: no journal says which key old is
    _forge_previous_key_id(project, victim_id)
    before = project.snapshot()
    start = len(project.sandbox.request_log())

    done = project.run("rollback", "prod", "--yes")

    assert _updates_of(project, victim_id, start) == []  # not re-activated, not for a moment
    assert project.status_of(victim) == "inactive"
    if journal == "kept":  # the journal names old's id by its fingerprint: that one comes back
        assert done.returncode == 0, done.stdout + done.stderr
        assert project.served() == [old, old] and project.status_of(old) == "active"
        assert len(_updates_of(project, old_id, start)) == 1
    else:
        assert done.returncode == 2, done.stdout + done.stderr
        assert "nothing changed" in done.stderr and "Console" in done.stderr
        assert "keyguard rollback prod" in done.stderr and victim_id in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert project.snapshot() == before
        assert project.status_of(old) == "inactive"


def test_a_look_alike_previous_key_never_reactivates_the_key_whose_hint_it_copies(
    project: Project,
) -> None:
    victim_id, victim = project.mint("billing-prod")
    project.seed(look_alike(victim))  # planted: it shows the victim's hint, and nothing else
    _, new = project.mint("prod-20261125")
    assert _rotate_now(project, new.reveal()) == 0  # the look-alike is previous, never identified
    _disable(project, victim_id)
    before = project.snapshot()
    start = len(project.sandbox.request_log())

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 2, done.stdout + done.stderr
    assert _updates_of(project, victim_id, start) == []  # not re-activated, not for a moment
    assert project.status_of(victim) == "inactive"
    assert "hint" in done.stderr and "Console" in done.stderr and "nothing changed" in done.stderr
    assert project.snapshot() == before
    assert project.served() == [new, new]


def test_rollback_never_reactivates_a_key_whose_hint_the_api_does_not_show(
    project: Project,
) -> None:
    old_id, old, new = _rotated_out(project)  # the journal proves old's id
    _hide_hint(project, old_id)
    before = project.snapshot()

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 2, done.stdout + done.stderr
    assert "partial_key_hint" in done.stderr and "Console" in done.stderr
    assert project.snapshot() == before  # no Admin API write either
    assert project.status_of(old) == "inactive" and project.served() == [new, new]


def test_rollback_to_an_active_previous_key_needs_no_hint(project: Project) -> None:
    old_id, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    # Inside the grace period: new serves, old is kept as previous and is still active.
    assert project.run("rotate", "prod", "--yes", input=new.reveal()).returncode == 5
    _hide_hint(project, old_id)
    writes = len(project.sandbox.writes())

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 0, done.stdout + done.stderr
    assert project.served() == [old, old] and project.status_of(old) == "active"
    assert len(project.sandbox.writes()) == writes  # nothing to re-activate


def test_after_a_lost_journal_a_person_reactivates_the_key_and_keyguard_proves_the_rest(
    project: Project,
) -> None:
    old_id, old, new = _rotated_out(project)
    project.journal.unlink()  # nothing proves which key old is any more

    refused = project.run("rollback", "prod", "--yes")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "hint alone" in refused.stderr
    assert "re-activate it in the Anthropic Console" in refused.stderr
    assert project.status_of(old) == "inactive" and project.served() == [new, new]
    with project.sandbox.client() as admin:  # the person checks the Console and re-activates it
        admin.update_key(old_id, status="active")
    writes = len(project.sandbox.writes())
    # Old active again: the stores now show an unfinished rotation the journal lacks, and
    # keyguard says how to rebuild it (old authenticates: its id is proven, and journaled).
    orphan = project.run("rollback", "prod", "--yes")
    assert orphan.returncode == 2 and "--recover" in orphan.stderr, orphan.stderr
    assert project.run("rotate", "prod", "--recover", "--yes").returncode == 5  # grace

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 0, done.stdout + done.stderr
    assert project.served() == [old, old] and project.status_of(old) == "active"
    assert len(project.sandbox.writes()) == writes  # keyguard wrote nothing to the Admin API
