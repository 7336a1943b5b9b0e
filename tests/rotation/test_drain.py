"""Grace, drain check and archive against the sandbox's usage report over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.rotation import open_engine, status
from tests.rotation.conftest import Project, make_project
from tests.rotation.fakes import Clock


def test_traffic_on_the_old_key_holds_back_revoke_until_idle(project: Project) -> None:
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=12))
    project.follow(clock)
    old_id, old = project.mint("prod-legacy", created_at=clock() - timedelta(days=85))
    project.seed(old)
    _, new = project.mint("prod-new", created_at=clock())
    with project.sandbox.client() as admin:

        def engine():  # type: ignore[no-untyped-def]
            return open_engine(project.config, "prod", admin, clock=clock)

        out = engine().rotate(new)
        assert out.waiting_for == "grace" and project.served() == [new, new]
        project.sandbox.record_usage(
            old_id, at=clock() + timedelta(hours=3), input_tokens=700, output_tokens=50
        )
        clock.advance(hours=24, minutes=2)
        assert engine().rotate().waiting_for == "report"  # the report lags 5 minutes
        clock.advance(minutes=5)
        out = engine().rotate()
        assert (out.exit_code, out.waiting_for) == (5, "drain")
        assert old.hint in out.message and old_id in out.message and "750 tokens" in out.message
        assert project.status_of(old) == "active"
        assert "still carries traffic" in status(engine()).waiting_for
        clock.advance(hours=24)
        out = engine().rotate()
        assert out.exit_code == 0, out.message
        assert project.status_of(old) == "inactive"
        clock.advance(days=7, minutes=1)
        assert engine().rotate().waiting_for == "key"
        assert project.status_of(old) == "archived"
        assert project.status_of(new) == "active"


def test_idle_old_key_is_revoked_once_the_window_covers_grace(project: Project) -> None:
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    project.follow(clock)
    old_id, old = project.mint("prod-legacy")
    project.seed(old)
    project.sandbox.record_usage(old_id, at=clock() - timedelta(minutes=30))  # before the update
    _, new = project.mint("prod-new")
    with project.sandbox.client() as admin:
        engine = open_engine(project.config, "prod", admin, clock=clock, grace=timedelta(hours=1))
        assert engine.rotate(new).waiting_for == "grace"
        clock.advance(hours=1, minutes=6)
        out = open_engine(
            project.config, "prod", admin, clock=clock, grace=timedelta(hours=1)
        ).rotate()
        assert out.exit_code == 0, out.message
    assert project.status_of(old) == "inactive"


def test_cli_drain_holds_back_revoke_and_force_skips_it(tmp_path: Path, sandbox: Sandbox) -> None:
    project = make_project(tmp_path, sandbox, extra='\n[policy]\nusage_lag = "0s"\n')
    old_id, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-new")
    done = project.run("rotate", "prod", "--grace", "3s", "--yes", input=new.reveal())
    assert done.returncode in (0, 5), done.stderr
    time.sleep(3.2)  # past the grace; the traffic below lands inside the last grace window
    project.sandbox.record_usage(old_id, at=datetime.now(UTC), input_tokens=500, output_tokens=5)
    held = project.run("rotate", "prod", "--grace", "3s", "--yes")
    assert held.returncode == 5 and "still carries traffic" in held.stdout, held.stdout
    assert old_id in held.stdout and project.status_of(old) == "active"
    forced = project.run("rotate", "prod", "--grace", "3s", "--force", "--yes")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert project.status_of(old) == "inactive" and project.served() == [new, new]


def test_the_sandbox_tells_its_time_in_a_real_date_header(sandbox: Sandbox) -> None:
    from email.utils import parsedate_to_datetime

    import httpx

    answer = httpx.get(f"{sandbox.url}/v1/organizations/me")
    told = parsedate_to_datetime(answer.headers["date"])
    assert abs(told - datetime.now(UTC)) < timedelta(seconds=5)
    sandbox.state.now = lambda: time.time() - 2 * 86400
    told = parsedate_to_datetime(httpx.get(f"{sandbox.url}/v1/models").headers["date"])
    assert abs(told - (datetime.now(UTC) - timedelta(days=2))) < timedelta(seconds=5)
    with sandbox.client() as admin:
        admin.me()
        api = admin.server_time()
        assert api is not None and abs(api - (datetime.now(UTC) - timedelta(days=2))) < timedelta(
            seconds=5
        )


def test_a_local_clock_two_days_fast_never_revokes_a_key_in_use(project: Project) -> None:
    """The drain check would ask the usage report about the future, see nothing, revoke."""
    from keyguard.rotation.revoke import ClockSkewError

    clock = Clock(datetime.now(UTC))  # right, for now; the sandbox keeps real time
    old_id, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-new")
    with project.sandbox.client() as admin:
        assert open_engine(project.config, "prod", admin, clock=clock).rotate(new).waiting_for == (
            "grace"
        )
        project.sandbox.record_usage(old_id, at=datetime.now(UTC), input_tokens=40)
        clock.advance(days=2)  # the local clock runs two days fast
        with pytest.raises(ClockSkewError) as err:
            open_engine(project.config, "prod", admin, clock=clock).rotate()
    assert err.value.exit_code == 2
    message = str(err.value)
    assert f"local clock says {clock():%Y-%m-%d %H:%M}" in message
    assert f"API's says {datetime.now(UTC):%Y-%m-%d %H:%M}" in message
    assert "2.0 days apart" in message and old.hint in message
    assert project.status_of(old) == "active" and project.served() == [new, new]


def test_cli_refuses_to_revoke_with_exit_2_when_the_clocks_differ(project: Project) -> None:
    """The API two days behind is the local clock two days fast: update and verify still run."""
    project.sandbox.state.now = lambda: time.time() - 2 * 86400
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-new")
    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "local clock says" in done.stderr and "Anthropic API's says" in done.stderr
    assert "verified" in done.stderr  # everything that does not depend on time was done
    assert project.served() == [new, new] and project.status_of(old) == "active"
    project.sandbox.state.now = time.time  # the clocks agree again: the next run revokes
    again = project.run("rotate", "prod", "--grace", "0", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert project.status_of(old) == "inactive"


def test_archive_waits_while_the_clocks_differ(project: Project) -> None:
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=10))
    project.follow(clock)
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-new")
    said: list[str] = []
    with project.sandbox.client() as admin:

        def engine():  # type: ignore[no-untyped-def]
            return open_engine(
                project.config, "prod", admin, clock=clock, grace=timedelta(0), say=said.append
            )

        assert engine().rotate(new).exit_code == 0
        assert project.status_of(old) == "inactive"
        stuck = clock()
        project.sandbox.state.now = lambda: stuck.timestamp()  # the API's clock stands still
        clock.advance(days=8)  # the local one says archive_after has long passed
        assert engine().rotate().waiting_for == "key"
        assert project.status_of(old) == "inactive"
        assert any("not archiving" in line and "local clock says" in line for line in said)
        project.follow(clock)  # the clocks agree again
        engine().rotate()
    assert project.status_of(old) == "archived"
