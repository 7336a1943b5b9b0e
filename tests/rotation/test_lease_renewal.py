"""A rotation proves it still holds its store leases before every write: a run that sat past
its lease while another run took it stops (exit 5) before its next write and resumes later;
a long but healthy run keeps its leases. File stores (each cloud store too), the sandbox over
HTTP."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.errors import ExitCode, LeaseHeldError
from keyguard.keys import API_KEY_RE, Secret
from keyguard.rotation import RotationEngine, open_engine, rollback
from keyguard.rotation.update import VerificationError
from keyguard.stores import SecretStore, open_store
from keyguard.stores.interface import StoreLease
from keyguard.stores.lease import new_owner
from tests.rotation.conftest import Project, make_project
from tests.rotation.fakes import Clock
from tests.rotation.test_clouds import cloud  # noqa: F401  (fixture: each cloud, then all four)
from tests.stores.lease_clock import LeaseClock
from tests.stores.servers.azure import azure_kv_server, azure_server  # noqa: F401  (fixtures)
from tests.stores.servers.base import Harness
from tests.stores.servers.file import file_server  # noqa: F401  (fixture)
from tests.stores.servers.gcp import gcp_fake, gcp_server  # noqa: F401  (fixtures)

LOST = "no longer holds its lease"


class OtherRun:
    """Another keyguard run (another host) that takes a store's lease once it has lapsed."""

    def __init__(self, uri: str, clock: LeaseClock) -> None:
        self.uri, self.clock = uri, clock
        self.held: AbstractContextManager[StoreLease] | None = None

    def take_after_lapse(self) -> None:
        self.clock.advance(1000)  # the first run sat past its 900 s lease (a suspended laptop)
        self.held = open_store(self.uri).lease(new_owner(), 900)
        self.held.__enter__()

    def release(self) -> None:
        assert self.held is not None
        self.held.__exit__(None, None, None)


def on(text: str, act: Callable[[], None]) -> Callable[[str], None]:
    """A ``say`` that runs ``act`` (once) when the engine says ``text``."""
    done: list[bool] = []

    def say(message: str) -> None:
        if text in message and not done:
            done.append(True)
            act()

    return say


def engine(project: Project, admin: Any, **options: Any) -> RotationEngine:
    options.setdefault("grace", timedelta(0))
    return open_engine(project.config, "prod", admin, **options)


def adopted(project: Project) -> tuple[Secret, Secret]:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-new")
    return old, new


def test_a_run_that_lost_its_lease_stops_before_verify_and_revoke_then_resumes(
    project: Project, lease_clock: LeaseClock
) -> None:
    old, new = adopted(project)
    other = OtherRun(project.stores[1], lease_clock)
    with project.sandbox.client() as admin:
        first = engine(project, admin, say=on("every store now serves", other.take_after_lapse))
        with pytest.raises(LeaseHeldError, match=LOST) as err:
            first.rotate(new)
        assert err.value.exit_code == ExitCode.PENDING
        message = str(err.value)
        assert "stopped before the verify step" in message and project.stores[1] in message
        assert new.reveal() not in message and old.reveal() not in message
        assert project.status_of(old) == "active", "nothing revoked on a lost lease"
        assert project.served() == [new, new]
        with pytest.raises(LeaseHeldError, match="another keyguard run"):
            engine(project, admin).rotate()  # the other run still holds the store
        other.release()
        out = engine(project, admin).rotate()  # the journal resumes at verify
    assert out.exit_code == 0, out.message
    assert project.status_of(old) == "inactive" and project.status_of(new) == "active"


class PromoteThen:
    """A real store that runs ``act`` right after it promotes (a slow store: the lease lapses)."""

    def __init__(self, inner: SecretStore, act: Callable[[], None]) -> None:
        self.inner, self.act = inner, act

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def promote(self, token: str) -> None:
        self.inner.promote(token)
        self.act()


def test_a_lost_lease_stops_the_update_between_two_stores(
    project: Project, lease_clock: LeaseClock
) -> None:
    old, new = adopted(project)
    other = OtherRun(project.stores[1], lease_clock)
    stores = [open_store(uri) for uri in project.stores]
    with project.sandbox.client() as admin:
        engine(project, admin).deliver(new)
        slow = [PromoteThen(stores[0], other.take_after_lapse), stores[1]]
        with pytest.raises(LeaseHeldError, match=f"promoting the new key in {project.stores[1]}"):
            engine(project, admin, stores=slow).rotate()
        assert project.served() == [new, old], "the second store was not promoted"
        assert project.status_of(old) == "active"
        other.release()
        out = engine(project, admin).rotate()
    assert out.exit_code == 0, out.message
    assert project.served() == [new, new] and project.status_of(old) == "inactive"


def test_a_lease_lost_during_the_drain_check_stops_right_before_the_deactivation(
    project: Project, lease_clock: LeaseClock
) -> None:
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    project.follow(clock)
    old, new = adopted(project)
    other = OtherRun(project.stores[0], lease_clock)
    with project.sandbox.client() as admin:
        hour = timedelta(hours=1)
        assert engine(project, admin, clock=clock, grace=hour).rotate(new).waiting_for == "grace"
        clock.advance(hours=2)
        say = on("skipping the drain check", other.take_after_lapse)
        late = engine(project, admin, clock=clock, grace=hour, force=True, say=say)
        with pytest.raises(LeaseHeldError, match="stopped before deactivating the old key"):
            late.rotate()
        assert project.status_of(old) == "active"
        other.release()
        out = engine(project, admin, clock=clock, grace=hour, force=True).rotate()
    assert out.exit_code == 0, out.message
    assert project.status_of(old) == "inactive"


def test_a_rollback_that_lost_its_lease_changes_no_store(
    project: Project, lease_clock: LeaseClock
) -> None:
    old, new = adopted(project)
    other = OtherRun(project.stores[0], lease_clock)
    with project.sandbox.client() as admin:
        out = engine(project, admin, grace=timedelta(hours=1)).rotate(new)
        assert out.waiting_for == "grace" and project.served() == [new, new]
        stalled = engine(project, admin)
        real = stalled.admin.verify_key

        def slow_verify(*args: Any, **kwargs: Any) -> Any:  # the check of the previous key

            if other.held is None:
                other.take_after_lapse()
            return real(*args, **kwargs)

        stalled.admin = _Proxy(stalled.admin, verify_key=slow_verify)
        with pytest.raises(
            LeaseHeldError, match=f"stopped before rolling back {project.stores[0]}"
        ):
            rollback(stalled)
        assert project.served() == [new, new], "no store rolled back"
        other.release()
        assert rollback(engine(project, admin)).finished
    assert project.served() == [old, old]


def test_a_rollback_that_lost_its_lease_after_re_activating_leaves_the_key_inactive(
    project: Project, lease_clock: LeaseClock
) -> None:
    """The old key was deactivated (grace 0); the rollback re-activates it, then sits past its
    lease while another run takes it: no store serves the old key, so it is inactive again."""
    old, new = adopted(project)
    other = OtherRun(project.stores[0], lease_clock)
    with project.sandbox.client() as admin:
        engine(project, admin, grace=timedelta(0)).rotate(new)
        assert project.status_of(old) == "inactive"
        stalled = engine(project, admin, say=on("re-activated", other.take_after_lapse))
        with pytest.raises(LeaseHeldError, match="Nothing after the last journaled step was done"):
            rollback(stalled)
        assert project.served() == [new, new], "no store rolled back"
        assert project.status_of(old) == "inactive", "re-activated, yet served by no store"
        other.release()
        assert rollback(engine(project, admin)).finished
    assert project.served() == [old, old] and project.status_of(old) == "active"


def test_a_rollback_that_lost_its_lease_before_re_activating_never_re_activates(
    project: Project, lease_clock: LeaseClock
) -> None:
    old, new = adopted(project)
    other = OtherRun(project.stores[0], lease_clock)
    with project.sandbox.client() as admin:
        engine(project, admin, grace=timedelta(0)).rotate(new)
        stalled = engine(project, admin)
        real, updates = stalled.admin.get_key, []

        def slow_get(*args: Any, **kwargs: Any) -> Any:  # the read checks of the previous key
            if other.held is None:
                other.take_after_lapse()
            return real(*args, **kwargs)

        def update_key(*args: Any, **kwargs: Any) -> Any:
            updates.append(kwargs.get("status"))
            return admin.update_key(*args, **kwargs)

        stalled.admin = _Proxy(stalled.admin, get_key=slow_get, update_key=update_key)
        with pytest.raises(LeaseHeldError, match=f"stopped before re-activating {old.hint}"):
            rollback(stalled)
        assert updates == [], "re-activated while another run held the lease"
        assert project.served() == [new, new] and project.status_of(old) == "inactive"


class _Proxy:
    """An object with some attributes replaced."""

    def __init__(self, inner: Any, **replaced: Any) -> None:
        self._inner, self._replaced = inner, replaced

    def __getattr__(self, name: str) -> Any:
        return self._replaced.get(name) or getattr(self._inner, name)


def test_a_long_healthy_run_keeps_its_lease_and_a_second_run_is_refused(
    project: Project, lease_clock: LeaseClock
) -> None:
    old, new = adopted(project)
    refused: list[str] = []

    def slow_step() -> None:
        lease_clock.advance(500)  # each step takes most of a 900 s lease

    def second_run_starts() -> None:
        slow_step()  # 1000 s in: past the expiry the first run started with
        with project.sandbox.client() as admin2:
            try:
                engine(project, admin2).rotate()
            except LeaseHeldError as exc:
                refused.append(str(exc))

    def say(message: str) -> None:
        if "every store now serves" in message:
            slow_step()
        elif "verified" in message:
            second_run_starts()

    with project.sandbox.client() as admin:
        out = engine(project, admin, say=say).rotate(new)
    assert out.exit_code == 0, out.message
    assert len(refused) == 1 and "another keyguard run" in refused[0]
    assert project.status_of(old) == "inactive" and project.served() == [new, new]


def test_the_cli_stops_with_exit_5_when_a_host_with_a_fast_clock_takes_its_lease(
    tmp_path: Path, sandbox: Sandbox, lease_clock: LeaseClock
) -> None:
    gate = tmp_path / "gate"
    project = make_project(
        tmp_path,
        sandbox,
        check=f"touch {gate}.in; i=0; while [ ! -e {gate}.go ] && [ $i -lt 600 ]; "
        "do sleep 0.05; i=$((i+1)); done",
    )
    old, new = adopted(project)
    keyfile = tmp_path / "new.key"
    keyfile.write_text(new.reveal())
    keyfile.chmod(0o600)
    with keyfile.open() as stdin:
        first = subprocess.Popen(
            [sys.executable, "-m", "keyguard", "rotate", "prod", "--grace", "0"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=project.env(),
        )
    for _ in range(1200):  # the first run sits in its verify step (the consumer check)
        if Path(f"{gate}.in").exists() or first.poll() is not None:
            break
        threading.Event().wait(0.05)
    # Another host whose clock runs 1000 s ahead sees the lease as lapsed and takes it.
    other = OtherRun(project.stores[0], lease_clock)
    try:
        other.take_after_lapse()
    finally:
        Path(f"{gate}.go").touch()
        out, err = first.communicate(timeout=60)
    assert first.returncode == 5, out + err
    assert LOST in err and "stopped before the revoke step" in err
    assert "Traceback" not in err
    [error] = [line for line in err.splitlines() if "error" in line]
    assert error.startswith("keyguard: error: prod: stopped before the revoke step")
    assert not API_KEY_RE.search(out + err)
    assert project.status_of(old) == "active" and project.served() == [new, new]
    other.release()
    done = project.run("rotate", "prod", "--grace", "0")
    assert done.returncode == 0, done.stderr
    assert project.status_of(old) == "inactive"


def test_a_lost_cloud_lease_stops_the_run_before_verify_and_revoke(
    cloud: tuple[Project, dict[str, Harness]],  # noqa: F811
    lease_clock: LeaseClock,
) -> None:
    project, _ = cloud
    old, new = adopted(project)
    other = OtherRun(project.stores[-1], lease_clock)
    with project.sandbox.client() as admin:
        first = engine(project, admin, say=on("every store now serves", other.take_after_lapse))
        with pytest.raises(LeaseHeldError, match=LOST):
            first.rotate(new)
        assert project.status_of(old) == "active"
        other.release()
        out = engine(project, admin).rotate()
    assert out.exit_code == 0, out.message
    assert project.status_of(old) == "inactive" and project.served() == [new] * len(project.stores)


def test_a_failed_verify_puts_the_old_key_back_only_while_it_holds_the_lease(
    tmp_path: Path, sandbox: Sandbox, lease_clock: LeaseClock
) -> None:
    project = make_project(tmp_path, sandbox, check="false")  # the consumer check fails
    old, new = adopted(project)
    other = OtherRun(project.stores[0], lease_clock)
    with project.sandbox.client() as admin:
        first = engine(project, admin)
        real = first.admin.verify_key

        def slow_verify(*args: Any, **kwargs: Any) -> Any:  # the verify step's, after promote
            if other.held is None and project.served() == [new, new]:
                other.take_after_lapse()
            return real(*args, **kwargs)

        first.admin = _Proxy(first.admin, verify_key=slow_verify)
        with pytest.raises(LeaseHeldError, match="stopped before serving the previous key again"):
            first.rotate(new)
        assert project.served() == [new, new], "no store written while another run holds it"
        other.release()
        with pytest.raises(VerificationError, match="failed verification"):
            engine(project, admin).rotate()
    assert project.served() == [old, old] and project.status_of(old) == "active"
