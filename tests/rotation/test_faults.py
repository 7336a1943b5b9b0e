"""Sandbox faults (429, 529, latency, dropped connections) and store faults (throttling,
permission denied) in every step: a run fails cleanly or rides it out, the served key stays
active, and the rotation finishes once the fault is gone."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.errors import AuthError, KeyguardError, UnavailableError
from keyguard.keys import Secret
from keyguard.rotation import RotationEngine, open_engine
from keyguard.stores import SecretStore
from keyguard.stores.interface import Stage, StoreLease, StoreVersion, VersionMeta
from tests.rotation.conftest import Project, make_project
from tests.rotation.fakes import Clock
from tests.stores.servers.aws import AwsHarness
from tests.stores.servers.azure import azure_kv_server, azure_server  # noqa: F401
from tests.stores.servers.base import Harness
from tests.stores.servers.gcp import gcp_fake, gcp_server  # noqa: F401

STEPS = ["create", "update", "verify", "revoke"]


class FaultyStore:
    """A real store reached through a failing path: ``method`` fails until ``heal()``."""

    def __init__(
        self, inner: SecretStore, method: str, error: KeyguardError, after: str | None = None
    ) -> None:
        self.inner, self.method, self.error, self.after = inner, method, error, after
        self.uri = inner.uri
        self.armed = after is None
        self.failures = 0

    def _call(self, name: str, *args: Any) -> Any:
        if name == self.method and self.armed:
            self.failures += 1
            raise self.error
        result = getattr(self.inner, name)(*args)
        if name == self.after:
            self.armed = True
        return result

    def get(self, stage: Stage = Stage.CURRENT) -> Secret | None:
        return self._call("get", stage)  # type: ignore[no-any-return]

    def put_pending(self, value: Secret, meta: VersionMeta) -> str:
        return self._call("put_pending", value, meta)  # type: ignore[no-any-return]

    def promote(self, token: str) -> None:
        self._call("promote", token)

    def rollback(self) -> None:
        self._call("rollback")

    def discard_pending(self, token: str) -> None:
        self._call("discard_pending", token)

    def describe(self) -> list[StoreVersion]:
        return self._call("describe")  # type: ignore[no-any-return]

    def lease(self, owner: str, ttl_seconds: float) -> AbstractContextManager[StoreLease]:
        return self.inner.lease(owner, ttl_seconds)

    def retire_superseded(self) -> None:
        self._call("retire_superseded")


# step -> (method that fails on store 1, armed after this call)
STORE_FAULT_AT = {
    "create": ("put_pending", None),
    "update": ("promote", None),
    "verify": ("get", "promote"),
    "revoke": ("get", None),
}


class RoutedStore(FaultyStore):
    """Store 1 on a cloud backend: ``method`` goes through that server's fault path (real SDK
    errors, mapped by the real store); every other call goes straight to the server."""

    def __init__(
        self, inner: SecretStore, faulted: SecretStore, method: str, after: str | None
    ) -> None:
        super().__init__(inner, method, UnavailableError("unused"), after)
        self.faulted = faulted

    def _call(self, name: str, *args: Any) -> Any:
        if name == self.method and self.armed:
            self.failures += 1
            return getattr(self.faulted, name)(*args)
        result = getattr(self.inner, name)(*args)
        if name == self.after:
            self.armed = True
        return result


def scenario(project: Project, clock: Clock) -> tuple[Secret, Secret]:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-new")
    return old, new


def run_step(
    project: Project,
    clock: Clock,
    step: str,
    new: Secret,
    stores: list[SecretStore] | None = None,
    **client: Any,
) -> Any:
    """Run the command that performs ``step``: deliver, rotate (update+verify), rotate later."""
    with project.sandbox.client(**client) as admin:
        engine: RotationEngine = open_engine(
            project.config, "prod", admin, clock=clock, stores=stores or project.open_stores()
        )
        if step == "create":
            return engine.deliver(new)
        return engine.rotate()


def advance_to(project: Project, clock: Clock, step: str, new: Secret) -> None:
    """Do the steps before ``step`` without faults."""
    order = ["create", "update", "revoke"]
    target = "update" if step == "verify" else step
    for before in order[: order.index(target)]:
        run_step(project, clock, before, new)
    if target == "revoke":
        clock.advance(hours=24, minutes=6)


def finish(project: Project, clock: Clock, new: Secret) -> None:
    """Plain reruns, a day apart, until the rotation is done; the served key always active."""
    for _ in range(4):
        with project.sandbox.client() as admin:
            latest = open_engine(
                project.config, "prod", admin, stores=project.open_stores()
            ).latest()
        assert latest is not None and latest.new.fingerprint == new.fingerprint
        if not latest.in_flight:
            break
        out = run_step(project, clock, "revoke", new)
        served_keys_active(project)
        assert out.exit_code == 0 or out.waiting_for in ("grace", "report"), out.message
        clock.advance(hours=24, minutes=6)
    else:
        pytest.fail("the rotation did not finish")
    assert project.served() == [new, new]


def served_keys_active(project: Project) -> None:
    for s in project.served():
        if s is not None:
            assert project.status_of(s) == "active"


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("kind", ["429", "529", "latency", "drop"])
def test_transient_sandbox_faults_are_ridden_out(project: Project, step: str, kind: str) -> None:
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    project.follow(clock)
    old, new = scenario(project, clock)
    advance_to(project, clock, step, new)
    project.sandbox.set_faults(rate=1.0, kinds=(kind,), retry_after=0, latency=0.05, count=2)
    out = run_step(project, clock, step, new)
    assert project.sandbox.faults_injected >= 1
    project.sandbox.clear_faults()
    served_keys_active(project)
    if step == "revoke":
        assert out.exit_code == 0 and project.status_of(old) == "inactive"
    finish(project, clock, new)
    assert project.status_of(old) == "inactive"


@pytest.mark.parametrize("step", STEPS)
def test_persistent_overload_stops_cleanly_and_resumes(project: Project, step: str) -> None:
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    project.follow(clock)
    old, new = scenario(project, clock)
    advance_to(project, clock, step, new)
    project.sandbox.set_faults(rate=1.0, kinds=("529",), retry_after=0)
    before = project.served()
    # The update touches only the stores; in its run verify then meets the outage.
    with pytest.raises(UnavailableError):
        run_step(project, clock, step, new, max_attempts=2)
    if step == "create":
        assert project.served() == before
    project.sandbox.clear_faults()
    served_keys_active(project)
    assert project.status_of(old) == "active"
    if step == "create":
        run_step(project, clock, "create", new)
    finish(project, clock, new)
    assert project.status_of(old) == "inactive"


@pytest.fixture
def aws_project(tmp_path: Path, sandbox: Sandbox, aws_server: AwsHarness) -> Project:
    uris = [f"file:{tmp_path / 'stores' / 'prod-0.json'}", aws_server.new_uri()]
    project = make_project(tmp_path, sandbox, uris=uris)
    project.by_hand = aws_server.put_by_hand
    return project


@pytest.fixture(params=["aws", "gcp", "azure"])
def cloud_project(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: Sandbox
) -> tuple[Project, Harness]:
    """A file store, then a store on the ``param`` backend's test server."""
    harness: Harness = request.getfixturevalue(f"{request.param}_server")
    uris = [f"file:{tmp_path / 'stores' / 'prod-0.json'}", harness.new_uri()]
    project = make_project(tmp_path, sandbox, uris=uris)
    project.by_hand = harness.put_by_hand
    return project, harness


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(("kind", "error"), [("throttle", UnavailableError), ("denied", AuthError)])
def test_store_faults_stop_cleanly_and_resume(
    cloud_project: tuple[Project, Harness],
    step: str,
    kind: str,
    error: type[KeyguardError],
) -> None:
    project, harness = cloud_project
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    project.follow(clock)
    old, new = scenario(project, clock)
    advance_to(project, clock, step, new)
    method, after = STORE_FAULT_AT[step]
    real = project.open_stores()
    routed = RoutedStore(real[1], harness.faulty(project.stores[1], kind), method, after)
    with pytest.raises(error):
        run_step(project, clock, step, new, stores=[real[0], routed])
    assert routed.failures >= 1
    served_keys_active(project)
    if step != "revoke":
        assert project.status_of(old) == "active"
    # Fault gone: plain reruns finish the rotation.
    if step == "create":
        run_step(project, clock, "create", new)
    finish(project, clock, new)
    assert project.status_of(old) == "inactive"


def test_cli_rotates_a_file_and_an_aws_store_together(aws_project: Project) -> None:
    _, old = aws_project.mint("prod-legacy")
    aws_project.seed(old)
    _, new = aws_project.mint("prod-20261125")
    done = aws_project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert done.returncode == 0, done.stderr
    assert aws_project.served() == [new, new]
    assert aws_project.status_of(old) == "inactive"
