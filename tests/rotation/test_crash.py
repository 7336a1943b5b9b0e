"""SIGKILL at every journal point of a rotation, then reruns: the invariants always hold.

- the key every store serves is active;
- a delivered key is never lost (once any store holds it, reruns need no key);
- the old key is revoked only after verify succeeded in every store;
- the rotation finishes after reruns.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.keys import API_KEY_RE, Secret
from tests.rotation.conftest import Project, make_project

POINTS = [
    "create:before",
    "create:0:before",
    "create:0:after",
    "create:1:before",
    "create:1:after",
    "create:after",
    "promote:before",
    "promote:0:before",
    "promote:0:after",
    "promote:1:before",
    "promote:1:after",
    "promote:after",
    "verify:before",
    "verify:after",
    "revoke:before",
    "revoke:after",
    "revoke:done",
]


def assert_served_keys_active(project: Project) -> None:
    for secret in project.served():
        assert secret is not None, "a store serves nothing"
        assert project.status_of(secret) == "active", f"a store serves revoked {secret.hint}"


def journal_points(project: Project) -> list[str]:
    out = []
    for line in project.journal.read_text().splitlines():
        e = json.loads(line)
        idx = e.get("store_index")
        out.append(
            f"{e['step']}:{e['phase']}" if idx is None else f"{e['step']}:{idx}:{e['phase']}"
        )
    return out


def stored_anywhere(project: Project, secret: Secret) -> bool:
    from keyguard.stores import open_store
    from keyguard.stores.interface import Stage

    return any(
        open_store(uri).get(stage) == secret
        for uri in project.stores
        for stage in (Stage.PENDING, Stage.CURRENT)
    )


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_then_rerun(project: Project, point: str) -> None:
    crash_and_rerun(project, point)


def crash_at(project: Project, point: str, *args: str, input: str = "") -> list[str]:
    """Run ``keyguard ARGS`` killed by SIGKILL right after ``point``; the journal's points."""
    crashed = project.run(*args, input=input, crash_at=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert_served_keys_active(project)
    seen = journal_points(project)
    assert seen[-1] == point
    return seen


def crash_and_rerun(project: Project, point: str) -> None:
    """Kill a rotation at ``point``, rerun until done, checking the invariants throughout."""
    n = len(project.stores)
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    seen = crash_at(project, point, "rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    if any(p.startswith("create:") and p.endswith(":after") and p != "create:after" for p in seen):
        assert stored_anywhere(project, new), "a delivered key was lost"
    for _attempt in range(3):
        done = project.run("rotate", "prod", "--grace", "0", "--yes")
        assert_served_keys_active(project)
        if done.returncode == 0:
            break
        assert done.returncode == 5, done.stderr
        if "waiting for a new key" in done.stdout:
            break  # the crash came after the last step: nothing left to continue
        # Only a key no store ever held may be asked for again.
        assert "deliver it again" in done.stdout, done.stdout
        assert not stored_anywhere(project, new)
        again = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
        assert_served_keys_active(project)
        if again.returncode == 0:
            break
    else:
        pytest.fail(f"rotation did not finish after reruns: {done.stdout} {done.stderr}")
    assert project.served() == [new] * n
    assert project.status_of(old) == "inactive" and project.status_of(new) == "active"
    seen = journal_points(project)
    first_revoke = seen.index("revoke:before")
    assert "verify:after" in seen[:first_revoke]
    assert not API_KEY_RE.search(project.journal.read_text())


@pytest.mark.parametrize("point", ["verify:failed", "verify:closed"])
def test_sigkill_in_a_failed_verify_then_rerun(
    tmp_path: Path, sandbox: Sandbox, point: str
) -> None:
    flag = tmp_path / "consumer-down"
    project = make_project(tmp_path, sandbox, check=f"test ! -e {flag}")
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    flag.touch()
    crash_at(project, point, "rotate", "prod", "--grace", "0", "--yes", input=new.reveal())

    rerun = project.run("rotate", "prod", "--grace", "0", "--yes")

    # verify:failed: verify runs again, fails again and restores; verify:closed: all done.
    assert rerun.returncode == (2 if point == "verify:failed" else 5), rerun.stderr
    assert project.served() == [old, old]
    assert project.status_of(old) == "active" and project.status_of(new) == "active"
    assert not any(p.startswith("revoke:") for p in journal_points(project))
    assert project.run("rollback", "prod", "--yes").returncode == 2  # never the failed key
    flag.unlink()
    _, fresh = project.mint("prod-20261126")
    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=fresh.reveal())
    assert done.returncode == 0, done.stderr
    assert project.served() == [fresh, fresh] and project.status_of(old) == "inactive"


@pytest.mark.parametrize("point", ["archive:before", "archive:after"])
def test_sigkill_while_archiving_then_rerun(tmp_path: Path, sandbox: Sandbox, point: str) -> None:
    project = make_project(tmp_path, sandbox, extra='\n[policy]\narchive_after = "0s"\n')
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    assert (
        project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal()).returncode == 0
    )
    assert project.status_of(old) == "inactive"
    crash_at(project, point, "rotate", "prod", "--yes")

    rerun = project.run("rotate", "prod", "--yes")

    assert rerun.returncode == 5 and "waiting for a new key" in rerun.stdout, rerun.stderr
    assert project.status_of(old) == "archived" and project.served() == [new, new]
    assert journal_points(project).count("archive:after") == 1
    assert project.run("rollback", "prod", "--yes").returncode == 2  # archived: refused


@pytest.mark.parametrize(
    "point", ["rollback:before", "rollback:0:after", "rollback:1:after", "rollback:closed"]
)
def test_sigkill_mid_rollback_then_rerun(project: Project, point: str) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    assert (
        project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal()).returncode == 0
    )
    crash_at(project, point, "rollback", "prod", "--yes")

    rerun = project.run("rollback", "prod", "--yes")

    assert rerun.returncode == 0, rerun.stderr
    assert project.served() == [old, old]  # finished, and not undone by the rerun
    assert_served_keys_active(project)
    assert journal_points(project).count("rollback:closed") == 1
