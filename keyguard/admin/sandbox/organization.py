"""The sandbox's organization: its document (optionally in a file), workspaces, members and
the Compliance API's activity feed. ``state.SandboxState`` adds the credentials and traffic."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from keyguard.admin.sandbox.wire import SandboxError, iso, new_id, page
from keyguard.atomic import write_atomic
from keyguard.errors import ConfigError
from keyguard.keys import Secret, generate_key

ROLES = ("admin", "developer")


#: What a state file must hold (and of what type) before the sandbox serves from it.
_STATE_FIELDS = {"admin_key": str, "user_id": str, "workspaces": list, "keys": list, "usage": list}


def _load_state(path: Path) -> dict[str, Any]:
    """A state file written by the sandbox; ConfigError (and the file untouched) otherwise."""
    fix = "move it away or pass another --state"
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        why = f"cannot read the sandbox state ({exc.strerror})"
        raise ConfigError(f"{path}: {why}; {fix}") from None
    except (ValueError, RecursionError):
        raise ConfigError(f"{path} is not a sandbox state file (not JSON); {fix}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a sandbox state file (not an object); {fix}")
    wrong = [name for name, kind in _STATE_FIELDS.items() if not isinstance(data.get(name), kind)]
    if wrong:
        raise ConfigError(f"{path} is not a sandbox state file ({', '.join(wrong)}); {fix}")
    return data


class Organization:
    """The organization's document, guarded by one lock; saved after each change if a file."""

    def __init__(self, path: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.path = path
        self.now = time.time
        if path is not None and path.exists():
            self.data = _load_state(path)
        else:
            self.data = {
                "admin_key": generate_key("admin").reveal(),
                "organization": {
                    "id": str(uuid.uuid4()),
                    "name": "keyguard sandbox",
                    "type": "organization",
                },
                "user_id": new_id("user_"),
                "workspaces": [],
                "keys": [],
                "usage": [],
            }
        self._upgrade()
        self.save()
        self._workspaces: dict[str, dict[str, Any]] = {
            workspace["id"]: workspace for workspace in self.data["workspaces"]
        }

    def _upgrade(self) -> None:
        """Fill in what an older state file lacks (members, the Default Workspace, feeds)."""
        data = self.data
        data.setdefault("default_workspace_id", new_id("wrkspc_"))
        data.setdefault(
            "users",
            [
                {
                    "id": data["user_id"],
                    "email": "owner@sandbox.invalid",
                    "role": "admin",
                    "removed_at": None,
                }
            ],
        )
        data.setdefault("service_accounts", [])
        data.setdefault("activities", [])
        data.setdefault("compliance_enabled", False)
        data.setdefault("admin_key_scopes", ["read:compliance_activities"])

    @property
    def admin_key(self) -> Secret:
        return Secret(self.data["admin_key"])

    def save(self) -> None:
        if self.path is not None:
            write_atomic(self.path, json.dumps(self.data, indent=1), mode=0o600)

    # -- workspaces -------------------------------------------------------------------------

    def add_workspace(self, name: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
        if not name or len(name) > 255:
            raise SandboxError(400, "invalid_request_error", "name: 1 to 255 characters")
        with self.lock:
            workspace: dict[str, Any] = {
                "type": "workspace",
                "id": new_id("wrkspc_"),
                "name": name,
                "created_at": iso(self.now()),
                "archived_at": None,
                "display_color": "#6C5BB9",
                "tags": dict(tags or {}),
            }
            self.data["workspaces"].append(workspace)
            self._workspaces[workspace["id"]] = workspace
            self.save()
            return dict(workspace)

    def workspace(self, workspace_id: str) -> dict[str, Any]:
        workspace = self._workspaces.get(workspace_id)
        if workspace is None:
            raise SandboxError(404, "not_found_error", f"workspace {workspace_id} not found")
        return dict(workspace)

    def reachable(self, workspace_id: str) -> bool:
        """True when ``workspace_id`` is a live workspace of the org (the Default's included)."""
        if workspace_id == self.data["default_workspace_id"]:
            return True
        workspace = self._workspaces.get(workspace_id)
        return workspace is not None and workspace.get("archived_at") is None

    def list_workspaces(
        self, include_archived: bool, after_id: str | None, before_id: str | None, limit: int
    ) -> dict[str, Any]:
        with self.lock:
            items = [
                dict(workspace)
                for workspace in self.data["workspaces"]
                if include_archived or workspace.get("archived_at") is None
            ]
        return page(items, after_id, before_id, limit)

    # -- members: users and service accounts ------------------------------------------------

    def add_user(self, email: str, role: str = "developer") -> dict[str, Any]:
        if role not in ROLES:
            raise SandboxError(400, "invalid_request_error", f"role: one of {', '.join(ROLES)}")
        with self.lock:
            user = {"id": new_id("user_"), "email": email, "role": role, "removed_at": None}
            self.data["users"].append(user)
            self.save()
            return dict(user)

    def add_service_account(self, name: str, role: str = "developer") -> dict[str, Any]:
        if role not in ROLES:
            raise SandboxError(400, "invalid_request_error", f"role: one of {', '.join(ROLES)}")
        with self.lock:
            account = {
                "id": new_id("svac_"),
                "type": "service_account",
                "name": name,
                "organization_role": role,
                "created_at": iso(self.now()),
                "archived_at": None,
            }
            self.data["service_accounts"].append(account)
            self.save()
            return dict(account)

    def member(self, kind: str, member_id: str) -> dict[str, Any]:
        """A user or service account record by id (removed ones too)."""
        table = self.data["users"] if kind == "user" else self.data["service_accounts"]
        for item in table:
            if item["id"] == member_id:
                found: dict[str, Any] = item
                return found
        raise SandboxError(404, "not_found_error", f"{kind} {member_id} not found")

    def role_of(self, principal: dict[str, str] | None) -> str | None:
        """The organization role of a key's principal; None for legacy keys or gone members."""
        if principal is None:
            return None
        try:
            record = self.member(principal["type"], principal["id"])
        except SandboxError:
            return None
        if record.get("removed_at") or record.get("archived_at"):
            return None
        role = record.get("role") or record.get("organization_role")
        return str(role) if role else None

    # -- the Compliance API's activity feed -------------------------------------------------

    def console_actor(self, ip: str = "203.0.113.7") -> dict[str, Any]:
        """The organization owner working in the Console, as the feed shows a person."""
        owner = self.member("user", self.data["user_id"])
        return {
            "type": "user_actor",
            "user_id": owner["id"],
            "email_address": owner["email"],
            "ip_address": ip,
            "user_agent": "Mozilla/5.0 (sandbox Console)",
        }

    def record_activity(
        self, activity_type: str, actor: dict[str, Any], at: float | None = None, **fields: Any
    ) -> dict[str, Any] | None:
        """Append an event to the feed, only while the feed is enabled (as Anthropic does)."""
        with self.lock:
            if not self.data["compliance_enabled"]:
                return None
            event = {
                "id": new_id("activity_"),
                "created_at": iso(self.now() if at is None else at),
                "organization_id": new_id("org_"),
                "organization_uuid": self.data["organization"]["id"],
                "type": activity_type,
                "actor": actor,
                **fields,
            }
            self.data["activities"].append(event)
            self.save()
            return dict(event)

    def compliance_readable(self) -> bool:
        """The feed is on and the admin key was made with ``read:compliance_activities``."""
        scopes = self.data["admin_key_scopes"]
        return bool(self.data["compliance_enabled"]) and "read:compliance_activities" in scopes

    def activities(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self.data["activities"]]
