"""The key model: both principal shapes, scope before the deprecated workspace_id, unknowns."""

from __future__ import annotations

from typing import Any

import pytest

from keyguard.admin.parse import parse_api_key
from keyguard.models import Principal

WS = "wrkspc_01" + "a" * 22


def key(**fields: Any) -> dict[str, Any]:
    return {"type": "api_key", "id": "apikey_01x", "name": "k", "status": "active", **fields}


@pytest.mark.parametrize(
    ("principal", "expected", "key_type"),
    [
        ({"type": "user_actor", "user_id": "user_1"}, Principal("user", "user_1"), "personal"),
        ({"id": "user_1", "type": "user"}, Principal("user", "user_1"), "personal"),
        (
            {"type": "service_account_actor", "service_account_id": "svac_1"},
            Principal("service_account", "svac_1"),
            "service_account",
        ),
        (
            {"id": "svac_1", "type": "service_account"},
            Principal("service_account", "svac_1"),
            "service_account",
        ),
        (None, None, "workspace"),
        (
            {"type": "robot_actor", "robot_id": "rbt_1"},
            Principal("robot_actor", "rbt_1"),
            "robot_actor",
        ),
    ],
)
def test_both_principal_shapes_and_unknown_ones(
    principal: Any, expected: Principal | None, key_type: str
) -> None:
    parsed = parse_api_key(
        key(principal=principal, scope={"type": "workspace", "workspace_id": WS})
    )
    assert parsed.principal == expected and parsed.key_type == key_type


def test_scope_wins_over_the_deprecated_workspace_id() -> None:
    default = parse_api_key(
        key(workspace_id=None, scope={"type": "workspace", "workspace_id": WS}, principal=None)
    )
    assert default.workspace_id == WS and default.default_workspace is True
    org = parse_api_key(key(workspace_id=None, scope={"type": "organization"}))
    assert org.org_scoped and org.workspace_id is None and org.where == "organization"


def test_an_old_answer_with_a_null_workspace_is_not_guessed_to_be_the_default() -> None:
    old = parse_api_key(key(workspace_id=None))
    assert old.scope is None and old.workspace_id is None and old.default_workspace is None
    assert old.key_type == "unknown" and old.where == "unknown workspace"
    named = parse_api_key(key(workspace_id=WS))
    assert named.scope == "workspace" and named.workspace_id == WS


def test_unknown_enum_values_are_kept_not_fatal() -> None:
    odd = parse_api_key(
        key(status="suspended", scope={"type": "project", "project_id": "p"}, expires_at="bad")
    )
    assert odd.status == "suspended" and odd.scope == "project" and odd.expires_at is None


def test_expiry_and_expired_status_are_read() -> None:
    k = parse_api_key(key(status="expired", expires_at="2026-11-01T00:00:00Z"))
    assert k.status == "expired" and k.expires_at is not None and k.expires_at.year == 2026
