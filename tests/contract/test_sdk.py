"""The official ``anthropic`` SDK against keyguard's sandbox, over HTTP, with strict parsing.

If the SDK cannot parse the sandbox's answer, the sandbox is wrong: these tests pin the
sandbox to the shapes Anthropic's own client expects (key types, principal, scope, expiry,
the workspace header). The SDK is a test dependency only; keyguard's client stays on httpx.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keyguard.admin.sandbox import Sandbox
from keyguard.keys import Secret

anthropic = pytest.importorskip("anthropic", reason="the contract tests need the [test] extra")


def sdk(sandbox: Sandbox, key: Secret, **headers: str) -> Any:
    """An SDK client on the sandbox that validates every answer against its own models."""
    return anthropic.Anthropic(
        api_key=key.reveal(),
        base_url=sandbox.url,
        max_retries=0,
        default_headers=headers or None,
        _strict_response_validation=True,
    )


@pytest.fixture
def org(sandbox: Sandbox) -> Iterator[dict[str, Any]]:
    """One key of every type and scope the Console can make, plus the ids a test checks."""
    prod = sandbox.add_workspace("prod")
    svac = sandbox.add_service_account("billing-api")
    expires = datetime.now(UTC) + timedelta(days=30)
    keys = {
        "personal": sandbox.mint_key("alice-laptop", prod, key_type="personal"),
        "service_account": sandbox.mint_key(
            "prod-api", prod, key_type="service_account", principal_id=svac, expires_at=expires
        ),
        "workspace": sandbox.mint_key("legacy-batch", prod, key_type="workspace"),
        "default_ws": sandbox.mint_key("dev-default", key_type="service_account"),
        "org_personal": sandbox.mint_key("ops-org", key_type="personal", scope="organization"),
        "org_sa": sandbox.mint_key(
            "ci-org", key_type="service_account", scope="organization", principal_id=svac
        ),
    }
    yield {"prod": prod, "svac": svac, "expires": expires, "keys": keys}


def test_list_parses_every_key_type_and_scope(sandbox: Sandbox, org: dict[str, Any]) -> None:
    client = sdk(sandbox, sandbox.admin_key)
    listed = {k.id: k for k in client.organization.api_keys.list(limit=2)}  # pages: 3 calls
    ids = {name: key_id for name, (key_id, _) in org["keys"].items()}
    assert set(listed) == set(ids.values())

    personal = listed[ids["personal"]]
    assert personal.principal.type == "user_actor" and personal.principal.user_id.startswith(
        "user_"
    )
    assert personal.scope.type == "workspace" and personal.scope.workspace_id == org["prod"]

    sa = listed[ids["service_account"]]
    assert sa.principal.type == "service_account_actor"
    assert sa.principal.service_account_id == org["svac"]
    assert sa.expires_at is not None and abs(sa.expires_at - org["expires"]) < timedelta(seconds=1)

    legacy = listed[ids["workspace"]]
    assert legacy.principal is None and legacy.scope.workspace_id == org["prod"]

    default = listed[ids["default_ws"]]
    assert default.scope.type == "workspace"
    assert default.scope.workspace_id == sandbox.default_workspace_id  # the real id, not null

    for name in ("org_personal", "org_sa"):
        assert listed[ids[name]].scope.type == "organization"
    assert all(k.status == "active" and k.type == "api_key" for k in listed.values())


def test_retrieve_and_update_through_the_sdk(sandbox: Sandbox, org: dict[str, Any]) -> None:
    client = sdk(sandbox, sandbox.admin_key)
    key_id, secret = org["keys"]["service_account"]
    got = client.organization.api_keys.retrieve(key_id)
    assert got.partial_key_hint == secret.hint and got.name == "prod-api"
    renamed = client.organization.api_keys.update(key_id, name="prod-api-old", status="inactive")
    assert (renamed.name, renamed.status) == ("prod-api-old", "inactive")
    assert client.organization.api_keys.list(status="inactive").data[0].id == key_id
    archived = client.organization.api_keys.update(key_id, status="archived")
    assert archived.status == "archived"
    with pytest.raises(anthropic.BadRequestError):
        client.organization.api_keys.update(key_id, status="active")


def test_an_expired_key_reads_as_expired(sandbox: Sandbox) -> None:
    key_id, _ = sandbox.mint_key("short", expires_at=datetime.now(UTC) - timedelta(minutes=1))
    client = sdk(sandbox, sandbox.admin_key)
    assert client.organization.api_keys.retrieve(key_id).status == "expired"
    assert [k.id for k in client.organization.api_keys.list(status="expired")] == [key_id]


@pytest.mark.parametrize("name", ["personal", "service_account", "workspace", "default_ws"])
def test_models_list_with_a_workspace_key_of_every_type(
    sandbox: Sandbox, org: dict[str, Any], name: str
) -> None:
    _key_id, secret = org["keys"][name]
    page = sdk(sandbox, secret).models.with_raw_response.list()
    models = page.parse()
    assert [m.type for m in models.data] == ["model"] * len(models.data) and models.data
    expected = sandbox.default_workspace_id if name == "default_ws" else org["prod"]
    assert page.headers["anthropic-workspace-id"] == expected


@pytest.mark.parametrize("name", ["org_personal", "org_sa"])
def test_an_org_scoped_key_needs_the_workspace_header(
    sandbox: Sandbox, org: dict[str, Any], name: str
) -> None:
    _key_id, secret = org["keys"][name]
    with pytest.raises(anthropic.BadRequestError, match="anthropic-workspace-id is required"):
        sdk(sandbox, secret).models.list()
    page = sdk(sandbox, secret, **{"anthropic-workspace-id": org["prod"]}).models.with_raw_response
    assert page.list().headers["anthropic-workspace-id"] == org["prod"]
    unknown = "wrkspc_01" + "x" * 22
    with pytest.raises(anthropic.NotFoundError):
        sdk(sandbox, secret, **{"anthropic-workspace-id": unknown}).models.list()


def test_an_org_scoped_admins_key_reaches_the_admin_api(
    sandbox: Sandbox, org: dict[str, Any]
) -> None:
    _key_id, owner_key = org["keys"]["org_personal"]  # the owner is an organization admin
    listed = sdk(sandbox, owner_key).organization.api_keys.list()
    assert len(listed.data) == len(org["keys"])
    _key_id, sa_key = org["keys"]["org_sa"]  # a developer service account: no Admin API
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk(sandbox, sa_key).organization.api_keys.list()
    _key_id, ws_key = org["keys"]["workspace"]
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk(sandbox, ws_key).organization.api_keys.list()


def test_an_org_admin_oauth_token_works_as_a_bearer(sandbox: Sandbox, org: dict[str, Any]) -> None:
    token = sandbox.issue_oauth_token("org:admin")
    client = anthropic.Anthropic(
        auth_token=token.reveal(),
        base_url=sandbox.url,
        max_retries=0,
        _strict_response_validation=True,
    )
    assert len(client.organization.api_keys.list().data) == len(org["keys"])
