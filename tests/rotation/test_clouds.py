"""Full rotations through the real CLI over GCP (gRPC fake), Azure (HTTPS fake), and all four
store kinds in one environment; consumers reading natively see the new key."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyguard.admin.sandbox import Sandbox
from tests.rotation.conftest import Project, make_project
from tests.rotation.test_crash import crash_and_rerun
from tests.stores.servers.aws import AwsHarness
from tests.stores.servers.azure import AzureHarness, azure_kv_server, azure_server  # noqa: F401
from tests.stores.servers.base import Harness
from tests.stores.servers.file import FileHarness, file_server  # noqa: F401
from tests.stores.servers.gcp import GcpHarness, gcp_fake, gcp_server  # noqa: F401

KINDS = {"gcp": ["gcp"], "azure": ["azure"], "all-four": ["file", "aws", "gcp", "azure"]}


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
