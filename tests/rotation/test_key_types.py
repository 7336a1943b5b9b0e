"""Rotation with today's keys: the Default Workspace by name, organization-scoped keys."""

from __future__ import annotations

from pathlib import Path

from keyguard.admin.sandbox import Sandbox
from tests.rotation.conftest import make_project


def test_an_environment_may_name_the_default_workspace(tmp_path: Path, sandbox: Sandbox) -> None:
    project = make_project(tmp_path, sandbox)
    toml = project.root / "keyguard.toml"
    toml.write_text(toml.read_text().replace(project.workspace, "default"))
    old_id, old = sandbox.mint_key("prod-legacy")  # the Default Workspace: workspace_id null
    project.ids[old.fingerprint] = old_id
    project.seed(old)
    new_id, new = sandbox.mint_key("prod-20261125")
    project.ids[new.fingerprint] = new_id

    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())

    assert done.returncode == 0, done.stderr
    assert project.served() == [new, new] and project.status_of(old) == "inactive"


def test_a_key_of_a_named_workspace_is_refused_for_default(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    project = make_project(tmp_path, sandbox)
    toml = project.root / "keyguard.toml"
    toml.write_text(toml.read_text().replace(f'"{project.workspace}"', '"default"'))
    _, stray = project.mint("prod-20261125")  # in the named workspace "prod"

    done = project.run("deliver", "prod", input=stray.reveal())

    assert done.returncode == 2 and f"{project.workspace}, not the Default" in done.stderr


def test_an_org_scoped_key_without_a_workspace_is_refused_with_the_fix(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    project = make_project(tmp_path, sandbox)
    toml = project.root / "keyguard.toml"
    toml.write_text(toml.read_text().replace(f'workspace = "{project.workspace}"\n', ""))
    _, org_key = sandbox.mint_key("prod-20261125", key_type="service_account", scope="organization")

    done = project.run("deliver", "prod", input=org_key.reveal())

    assert done.returncode == 2, done.stderr
    assert "organization-scoped" in done.stderr and 'set workspace = "wrkspc_' in done.stderr
    assert project.served() == [None, None]


def test_an_org_scoped_key_verifies_with_the_workspace_header(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    project = make_project(tmp_path, sandbox)
    _, old = project.mint("prod-legacy")
    project.seed(old)
    new_id, new = sandbox.mint_key(
        "prod-20261125", key_type="service_account", scope="organization"
    )
    project.ids[new.fingerprint] = new_id

    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())

    assert done.returncode == 0, done.stderr
    assert project.served() == [new, new] and project.status_of(old) == "inactive"
