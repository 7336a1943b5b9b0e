"""The journal lost mid-rotation: the next run refuses and says what to do; --recover finishes."""

from __future__ import annotations

import pytest

from tests.rotation.conftest import Project


@pytest.mark.parametrize("point", ["create:0:after", "promote:0:after", "verify:after"])
def test_lost_journal_refuses_then_recover_finishes(project: Project, point: str) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    crashed = project.run(
        "rotate", "prod", "--grace", "0", "--yes", input=new.reveal(), crash_at=point
    )
    assert crashed.returncode != 0
    project.journal.unlink()  # the CI cache or the disk that held it is gone
    before = project.served()
    status = project.run("status", "prod")
    assert status.returncode == 0 and "journal lost" in status.stdout
    assert "keyguard rotate prod --recover" in status.stdout
    for args in (("rotate", "prod", "--grace", "0"), ("rotate", "--due")):
        refused = project.run(*args)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert str(project.journal) in refused.stderr and new.hint in refused.stderr
        assert "keyguard rotate prod --recover" in refused.stderr
    assert project.run("rollback", "prod", "--yes").returncode == 2
    assert project.served() == before and project.status_of(old) == "active"
    done = project.run("rotate", "prod", "--grace", "0", "--recover")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rebuilt rotation" in done.stderr
    assert project.served() == [new, new]
    assert project.status_of(old) == "inactive" and project.status_of(new) == "active"


def test_lost_journal_after_a_finished_rotation_is_no_obstacle(project: Project) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    assert project.run("rotate", "prod", "--grace", "0", input=new.reveal()).returncode == 0
    project.journal.unlink()
    status = project.run("status", "prod")
    assert "journal lost" not in status.stdout and new.hint in status.stdout
    assert project.run("rotate", "--due").returncode == 0
    _, newer = project.mint("prod-next")
    done = project.run("rotate", "prod", "--grace", "0", input=newer.reveal())
    assert done.returncode == 0, done.stderr
    assert project.served() == [newer, newer] and project.status_of(new) == "inactive"


def test_handing_over_the_same_key_again_is_consent_to_rebuild(project: Project) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    project.run("rotate", "prod", "--yes", input=new.reveal(), crash_at="promote:0:after")
    project.journal.unlink()
    _, other = project.mint("prod-other")
    refused = project.run("rotate", "prod", "--grace", "0", input=other.reveal())
    assert refused.returncode == 2 and "--recover" in refused.stderr
    done = project.run("rotate", "prod", "--grace", "0", input=new.reveal())
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.served() == [new, new] and project.status_of(old) == "inactive"
