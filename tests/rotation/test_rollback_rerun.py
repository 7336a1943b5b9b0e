"""A rollback with no journaled rotation behind it, killed part way, then run again.

The stores hold a current and a previous key that no open rotation of the journal put there
(written by hand, or the newest rotation was closed: the previous key's id is proven by an older
one, so a rollback re-activates it). SIGKILL at each point of the
rollback, then a rerun: it finishes the same rollback (each store written once at most) or
refuses with exit 2; it never swaps back, never mixes keys across stores, never loses a key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyguard.journal import RotationJournal
from keyguard.keys import Secret
from keyguard.stores.file import FORMAT
from keyguard.stores.interface import Stage
from tests.rotation.conftest import Project
from tests.rotation.test_crash import assert_served_keys_active, crash_at, journal_points

# "rollback:0:after-lost": the first store was written, then the process died before the
# journal said so (the entry is dropped after the crash, which is the same thing on disk).
POINTS = [
    "rollback:before",
    "rollback:0:after",
    "rollback:0:after-lost",
    "rollback:1:after",
    "rollback:closed",
]


def write_by_hand(
    project: Project, previous: Secret, current: Secret, only: int | None = None
) -> None:
    """Each file store holds two versions, no metadata: the way a person could lay them out."""
    for index, uri in enumerate(project.stores):
        if only is not None and index != only:
            continue
        path = Path(uri.removeprefix("file:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        versions = [
            {"id": "by-hand-1", "stages": ["previous"], "meta": {}, "value": previous.reveal()},
            {"id": "by-hand-2", "stages": ["current"], "meta": {}, "value": current.reveal()},
        ]
        doc = {"format": FORMAT, "version": 1, "versions": versions, "lease": None}
        path.write_text(json.dumps(doc))
        path.chmod(0o600)


def setup(project: Project, how: str) -> tuple[Secret, Secret]:
    """(old, new): new serves, old is previous, and no open rotation of the journal put them."""
    _, old = project.mint("prod-legacy")
    _, new = project.mint("prod-20261125")
    if how == "by-hand":
        write_by_hand(project, old, new)
    else:  # a finished rotation (old revoked), then a delivered key rolled back before its update
        project.seed(old)
        done = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
        assert done.returncode == 0, done.stderr
        assert project.status_of(old) == "inactive"  # the journal proves it: re-activated
        _, newer = project.mint("prod-20261126")
        assert project.run("deliver", "prod", input=newer.reveal()).returncode == 0
        assert project.run("rollback", "prod", "--yes").returncode == 0
    return old, new


def store_versions(project: Project) -> list[object]:
    """Each store's versions and stages as on disk (the lease a killed run left may go)."""
    return [
        json.loads(Path(u.removeprefix("file:")).read_text())["versions"] for u in project.stores
    ]


def previous_keys(project: Project) -> list[Secret | None]:
    return [s.get(Stage.PREVIOUS) for s in project.open_stores()]


@pytest.mark.parametrize("how", ["by-hand", "rotation-closed"])
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_mid_rollback_without_a_rotation_then_rerun(
    project: Project, point: str, how: str
) -> None:
    old, new = setup(project, how)
    crash_at(project, point.removesuffix("-lost"), "rollback", "prod", "--yes")
    if point.endswith("-lost"):
        lines = project.journal.read_text().splitlines(keepends=True)
        project.journal.write_text("".join(lines[:-1]))
    written = [s == old for s in project.served()]
    after_crash = store_versions(project)

    rerun = project.run("rollback", "prod", "--yes")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert project.served() == [old, old]  # finished, and not swapped back
    assert previous_keys(project) == [new, new]  # the newer key is kept, not lost
    assert_served_keys_active(project)
    for was_written, before, now in zip(written, after_crash, store_versions(project), strict=True):
        if was_written:  # a rewrite would show: a rollback swaps the stages
            assert now == before, "a store already rolled back was written again"
    assert journal_points(project).count("rollback:closed") == 1
    if point == "rollback:closed":
        assert "already rolled back" in rerun.stdout
    again = project.run("rollback", "prod", "--yes")  # and once more: still nothing to undo
    assert again.returncode == 0 and "already rolled back" in again.stdout, again.stderr
    assert project.served() == [old, old]


def test_a_store_changed_between_crash_and_rerun_is_refused_not_guessed(project: Project) -> None:
    old, new = setup(project, "by-hand")
    crash_at(project, "rollback:0:after", "rollback", "prod", "--yes")
    _, other = project.mint("prod-other")
    write_by_hand(project, new, other, only=1)  # someone put a third key in by hand meanwhile
    second = Path(project.stores[1].removeprefix("file:"))
    first = Path(project.stores[0].removeprefix("file:"))
    before = store_versions(project)

    rerun = project.run("rollback", "prod", "--yes")

    assert rerun.returncode == 2, rerun.stdout + rerun.stderr
    assert str(first) in rerun.stderr and str(second) in rerun.stderr
    assert other.hint in rerun.stderr and old.hint in rerun.stderr
    assert "keyguard rollback prod" in rerun.stderr
    assert store_versions(project) == before  # nothing written


def test_stores_that_disagree_are_refused_before_any_write(project: Project) -> None:
    old, new = setup(project, "by-hand")
    _, other = project.mint("prod-other")
    first = Path(project.stores[0].removeprefix("file:"))
    write_by_hand(project, other, new, only=1)  # the second store's previous is another key
    before = store_versions(project)

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 2, done.stdout + done.stderr
    assert str(first) in done.stderr and old.hint in done.stderr and other.hint in done.stderr
    assert store_versions(project) == before
    assert not project.journal.exists() or "rollback" not in project.journal.read_text()


@pytest.mark.parametrize("journaled", [True, False])
def test_an_older_keyguards_unfinished_rollback_is_finished(
    project: Project, journaled: bool
) -> None:
    """Its journal lines name no keys; the store it rolled back shows which way to go."""
    old, new = setup(project, "by-hand")
    project.open_stores()[0].rollback()  # what the older keyguard did before it died
    journal = RotationJournal(project.root / ".keyguard", "prod")
    token, now = "prod-rollback-20261125T120000Z", datetime.now(UTC)
    journal.append(token, "rollback", "before", now)
    if journaled:
        journal.append(token, "rollback", "after", now, store_index=0, store=project.stores[0])
    after_crash = store_versions(project)

    rerun = project.run("rollback", "prod", "--yes")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert project.served() == [old, old] and previous_keys(project) == [new, new]
    assert store_versions(project)[0] == after_crash[0]
    assert journal_points(project).count("rollback:closed") == 1
