"""Full rotations through the real CLI over GCP (gRPC fake), Azure (HTTPS fake), and all four
store kinds in one environment; consumers reading natively see the new key."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.keys import generate_key
from keyguard.stores.interface import Stage
from tests.rotation.conftest import Project, make_project
from tests.rotation.test_crash import crash_and_rerun, crash_at
from tests.rotation.test_rollback_rerun import setup
from tests.stores.servers.aws import AwsHarness
from tests.stores.servers.azure import AzureHarness, azure_kv_server, azure_server  # noqa: F401
from tests.stores.servers.base import Harness
from tests.stores.servers.file import FileHarness, file_server  # noqa: F401
from tests.stores.servers.gcp import GcpHarness, gcp_fake, gcp_server  # noqa: F401

KINDS = {
    "aws": ["aws"],
    "gcp": ["gcp"],
    "azure": ["azure"],
    "all-four": ["file", "aws", "gcp", "azure"],
}
#: One cloud store per run: the rollback rules against each provider's real client.
EACH_CLOUD = pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"], indirect=True)


@pytest.fixture(params=list(KINDS))
def cloud(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sandbox: Sandbox,
    file_server: FileHarness,  # noqa: F811
    aws_server: AwsHarness,
    gcp_server: GcpHarness,  # noqa: F811
    azure_server: AzureHarness,  # noqa: F811
) -> tuple[Project, dict[str, Harness]]:
    harnesses: dict[str, Harness] = {
        "file": file_server,
        "aws": aws_server,
        "gcp": gcp_server,
        "azure": azure_server,
    }
    by_uri = {harnesses[k].new_uri(): harnesses[k] for k in KINDS[request.param]}
    project = make_project(tmp_path, sandbox, uris=list(by_uri))
    project.by_hand = lambda uri, raw: by_uri[uri].put_by_hand(uri, raw)
    return project, by_uri


def test_full_rotation_through_the_cli(cloud: tuple[Project, dict[str, Harness]]) -> None:
    project, by_uri = cloud
    n = len(project.stores)
    _, old = project.mint("prod-legacy")
    project.seed(old)  # by hand through each native client: keyguard adopts it
    _, new = project.mint("prod-20261125")
    done = project.run("deliver", "prod", input=new.reveal())
    assert done.returncode == 0, done.stderr
    assert project.served() == [old] * n
    done = project.run("rotate", "prod", "--grace", "10m")
    assert done.returncode == 5, done.stderr
    assert "grace period" in done.stdout and "10m" in done.stdout
    assert project.served() == [new] * n and project.status_of(old) == "active"
    # What a consumer reads with the provider's own client is the new key.
    assert [h.read_by_hand(uri) for uri, h in by_uri.items()] == [new.reveal()] * n
    done = project.run("rotate", "prod", "--grace", "0", "--yes")
    assert done.returncode == 0, done.stderr
    assert project.status_of(old) == "inactive" and project.status_of(new) == "active"
    status = project.run("status", "prod")
    assert status.returncode == 0 and new.hint in status.stdout
    done = project.run("rollback", "prod", "--yes")
    assert done.returncode == 0, done.stderr
    assert project.served() == [old] * n and project.status_of(old) == "active"
    assert [h.read_by_hand(uri) for uri, h in by_uri.items()] == [old.reveal()] * n


@pytest.mark.parametrize(
    "point", ["create:2:after", "promote:1:after", "promote:3:before", "revoke:before"]
)
def test_sigkill_mid_rotation_over_all_four_kinds(
    point: str,
    tmp_path: Path,
    sandbox: Sandbox,
    file_server: FileHarness,  # noqa: F811
    aws_server: AwsHarness,
    gcp_server: GcpHarness,  # noqa: F811
    azure_server: AzureHarness,  # noqa: F811
) -> None:
    harnesses: list[Harness] = [file_server, aws_server, gcp_server, azure_server]
    by_uri = {h.new_uri(): h for h in harnesses}
    project = make_project(tmp_path, sandbox, uris=list(by_uri))
    project.by_hand = lambda uri, raw: by_uri[uri].put_by_hand(uri, raw)
    crash_and_rerun(project, point)


@EACH_CLOUD
def test_rollback_checks_the_previous_key_then_serves_it(
    cloud: tuple[Project, dict[str, Harness]],
) -> None:
    project, by_uri = cloud
    old_id, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert done.returncode == 0, done.stderr
    assert project.status_of(old) == "inactive"
    start = len(project.sandbox.request_log())

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 0, done.stderr
    assert project.served() == [old] and project.status_of(old) == "active"
    assert [h.read_by_hand(uri) for uri, h in by_uri.items()] == [old.reveal()]
    log = [(m, p) for m, p, _ in project.sandbox.request_log()[start:]]
    reactivated = log.index(("POST", f"/v1/organizations/api_keys/{old_id}"))
    assert ("GET", "/v1/models") in log[reactivated:]  # verified after re-activation
    before = project.snapshot()
    again = project.run("rollback", "prod", "--yes")
    assert again.returncode == 0 and "already rolled back" in again.stdout, again.stderr
    assert project.snapshot() == before


@EACH_CLOUD
def test_rollback_refuses_a_previous_key_that_leaked(
    cloud: tuple[Project, dict[str, Harness]],
) -> None:
    project, by_uri = cloud
    old_id, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    # Inside the grace period: new serves, old is kept as previous and is still active.
    assert project.run("rotate", "prod", "--yes", input=new.reveal()).returncode == 5
    leak = project.run("revoke", "--leaked", "-", "--yes", input=old.reveal())
    assert leak.returncode == 0, leak.stderr
    assert project.status_of(old) == "inactive"
    before = project.snapshot()

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 2, done.stderr
    assert "leaked" in done.stderr and old_id in done.stderr and "incidents.jsonl" in done.stderr
    assert project.snapshot() == before  # no store written, no re-activation
    assert project.status_of(old) == "inactive" and project.served() == [new]
    assert [h.read_by_hand(uri) for uri, h in by_uri.items()] == [new.reveal()]


@EACH_CLOUD
def test_rollback_refuses_a_dead_previous_key(cloud: tuple[Project, dict[str, Harness]]) -> None:
    project, by_uri = cloud
    stranger = generate_key()  # not a key of this organization: GET /v1/models says 401
    project.seed(stranger)
    _, new = project.mint("prod-20261125")
    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert done.returncode == 0, done.stderr
    before = project.snapshot()
    start = len(project.sandbox.request_log())

    done = project.run("rollback", "prod", "--yes")

    assert done.returncode == 2, done.stderr
    assert "GET /v1/models" in done.stderr and stranger.hint in done.stderr
    assert ("GET", "/v1/models") in [(m, p) for m, p, _ in project.sandbox.request_log()[start:]]
    assert project.snapshot() == before
    assert project.served() == [new]
    assert [h.read_by_hand(uri) for uri, h in by_uri.items()] == [new.reveal()]


@pytest.mark.parametrize("point", ["rollback:0:after", "rollback:2:after"])
@pytest.mark.parametrize("cloud", ["all-four"], indirect=True)
def test_sigkill_mid_rollback_without_a_journal_over_all_four_kinds(
    cloud: tuple[Project, dict[str, Harness]], point: str
) -> None:
    project, by_uri = cloud
    old, new = setup(project, "journal-lost")
    crash_at(project, point, "rollback", "prod", "--yes")
    written = [s == old for s in project.served()]
    assert 0 < sum(written) < 4
    after_crash = [s.describe() for s in project.open_stores()]

    rerun = project.run("rollback", "prod", "--yes")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert project.served() == [old] * 4  # finished, none swapped back
    assert [s.get(Stage.PREVIOUS) for s in project.open_stores()] == [new] * 4
    assert [h.read_by_hand(uri) for uri, h in by_uri.items()] == [old.reveal()] * 4
    for was_written, before, store in zip(written, after_crash, project.open_stores(), strict=True):
        if was_written:
            assert store.describe() == before, f"{store.uri} was rolled back twice"
