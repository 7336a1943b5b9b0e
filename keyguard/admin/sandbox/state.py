"""The sandbox's organization: workspaces, keys, usage events, faults; optionally in a file."""

from __future__ import annotations

import json
import os
import random
import secrets
import string
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyguard.keys import Secret, fingerprint, generate_key, redact

SETTABLE_STATUSES = ("active", "inactive", "archived")
#: The Console's three kinds of API key (its "Linked account" choice).
KEY_TYPES = ("personal", "service_account", "workspace")
SCOPES = ("workspace", "organization")
ROLES = ("admin", "developer")
FAULT_KINDS = (
    "429",  # rate limit, with retry-after
    "spend_cap",  # the usage tier's monthly cap: 429, no retry-after, never worth a retry
    "402",  # billing_error
    "408",
    "409",
    "500",
    "502",
    "503",
    "529",
    "latency",
    "drop",
)
_ID_ALPHABET = string.ascii_letters + string.digits


class SandboxError(Exception):
    """An API error the handler turns into Anthropic's error body."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def new_id(prefix: str) -> str:
    """An id in Anthropic's shape, e.g. ``apikey_01`` + 22 characters."""
    return prefix + "01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Faults:
    """Faults injected into ``/v1/`` answers at a rate; ``count`` bounds how many."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ()
    retry_after: float = 0
    latency: float = 0.0
    count: int | None = None
    injected: int = 0
    rng: random.Random = field(default_factory=random.Random)
    only: str | None = None  # "POST" or "GET /v1/organizations/usage_report": faults hit these
    should_retry: str | None = None  # "true"/"false": sent as ``x-should-retry`` with faults

    def applies(self, method: str, path: str) -> bool:
        """True when a request with ``method`` and ``path`` may draw a fault."""
        if not self.only:
            return True
        verb, _, prefix = self.only.partition(" ")
        return method == verb and path.startswith(prefix)

    def draw(self) -> str | None:
        if self.rate <= 0 or not self.kinds or (self.count is not None and self.count <= 0):
            return None
        if self.rng.random() >= self.rate:
            return None
        if self.count is not None:
            self.count -= 1
        self.injected += 1
        return self.rng.choice(self.kinds)

    def describe(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "kinds": list(self.kinds),
            "retry_after": self.retry_after,
            "latency": self.latency,
            "count": self.count,
            "injected": self.injected,
            "only": self.only,
            "should_retry": self.should_retry,
        }


def page(
    items: list[dict[str, Any]],
    after_id: str | None,
    before_id: str | None,
    limit: int,
) -> dict[str, Any]:
    """Anthropic's cursor paging over ``items`` in their listed order."""
    ids = [item["id"] for item in items]
    if after_id is not None:
        if after_id not in ids:
            raise SandboxError(400, "invalid_request_error", f"after_id {after_id} not found")
        rest = items[ids.index(after_id) + 1 :]
        chosen, has_more = rest[:limit], len(rest) > limit
    elif before_id is not None:
        if before_id not in ids:
            raise SandboxError(400, "invalid_request_error", f"before_id {before_id} not found")
        rest = items[: ids.index(before_id)]
        chosen, has_more = rest[-limit:], len(rest) > limit
    else:
        chosen, has_more = items[:limit], len(items) > limit
    return {
        "data": chosen,
        "has_more": has_more,
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
    }


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 (temp file + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SandboxState:
    """Everything the sandbox knows, guarded by one lock; saved after each change if a file."""

    def __init__(self, path: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.path = path
        self.faults = Faults()
        self.now = time.time
        #: Every answered request as (method, path, status): tests count writes with it.
        self.request_log: list[tuple[str, str, int]] = []
        #: For each OAuth bearer call to the Admin API: did it carry ``oauth-2025-04-20``?
        self.bearer_calls: list[bool] = []
        if path is not None and path.exists():
            self.data = json.loads(path.read_text("utf-8"))
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
        self._keys: dict[str, dict[str, Any]] = {k["id"]: k for k in self.data["keys"]}
        self._by_fp: dict[str, str] = {k["fingerprint"]: k["id"] for k in self.data["keys"]}
        self._workspaces: dict[str, dict[str, Any]] = {w["id"]: w for w in self.data["workspaces"]}
        self._tokens: dict[str, dict[str, Any]] = {
            t["fingerprint"]: t for t in self.data["oauth_tokens"]
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
        data.setdefault("oauth_tokens", [])
        data.setdefault("activities", [])
        data.setdefault("compliance_enabled", False)
        data.setdefault("admin_key_scopes", ["read:compliance_activities"])
        for rec in data["keys"]:
            rec.setdefault("principal", {"type": "user", "id": data["user_id"]})
            rec.setdefault("scope", "workspace")

    @property
    def admin_key(self) -> Secret:
        return Secret(self.data["admin_key"])

    def save(self) -> None:
        if self.path is not None:
            write_private(self.path, json.dumps(self.data, indent=1))

    # -- workspaces -------------------------------------------------------------------------

    def add_workspace(self, name: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
        if not name or len(name) > 255:
            raise SandboxError(400, "invalid_request_error", "name: 1 to 255 characters")
        with self.lock:
            ws: dict[str, Any] = {
                "type": "workspace",
                "id": new_id("wrkspc_"),
                "name": name,
                "created_at": iso(self.now()),
                "archived_at": None,
                "display_color": "#6C5BB9",
                "tags": dict(tags or {}),
            }
            self.data["workspaces"].append(ws)
            self._workspaces[ws["id"]] = ws
            self.save()
            return dict(ws)

    def workspace(self, workspace_id: str) -> dict[str, Any]:
        ws = self._workspaces.get(workspace_id)
        if ws is None:
            raise SandboxError(404, "not_found_error", f"workspace {workspace_id} not found")
        return dict(ws)

    def reachable(self, workspace_id: str) -> bool:
        """True when ``workspace_id`` is a live workspace of the org (the Default's included)."""
        if workspace_id == self.data["default_workspace_id"]:
            return True
        ws = self._workspaces.get(workspace_id)
        return ws is not None and ws.get("archived_at") is None

    def list_workspaces(
        self, include_archived: bool, after_id: str | None, before_id: str | None, limit: int
    ) -> dict[str, Any]:
        with self.lock:
            items = [
                dict(w)
                for w in self.data["workspaces"]
                if include_archived or w.get("archived_at") is None
            ]
        return page(items, after_id, before_id, limit)

    # -- keys -------------------------------------------------------------------------------

    # -- members: users and service accounts ------------------------------------------------

    def add_user(self, email: str, role: str = "developer") -> dict[str, Any]:
        if role not in ROLES:
            raise SandboxError(400, "invalid_request_error", f"role: one of {', '.join(ROLES)}")
        with self.lock:
            user = {"id": new_id("user_"), "email": email, "role": role, "removed_at": None}
            self.data["users"].append(user)
            self.save()
            return dict(user)

    def remove_user(self, user_id: str) -> dict[str, Any]:
        """The person leaves: their personal keys are archived, as Anthropic does."""
        with self.lock:
            user = self.member("user", user_id)
            user["removed_at"] = self.now()
            for rec in self.data["keys"]:
                if rec["principal"] == {"type": "user", "id": user_id}:
                    self._set_status(rec, "archived", actor=None)
            self.save()
            return dict(user)

    def add_service_account(self, name: str, role: str = "developer") -> dict[str, Any]:
        if role not in ROLES:
            raise SandboxError(400, "invalid_request_error", f"role: one of {', '.join(ROLES)}")
        with self.lock:
            sa = {
                "id": new_id("svac_"),
                "type": "service_account",
                "name": name,
                "organization_role": role,
                "created_at": iso(self.now()),
                "archived_at": None,
            }
            self.data["service_accounts"].append(sa)
            self.save()
            return dict(sa)

    def archive_service_account(self, sa_id: str) -> dict[str, Any]:
        """The service account is archived: its keys stop working (they are archived)."""
        with self.lock:
            sa = self.member("service_account", sa_id)
            sa["archived_at"] = iso(self.now())
            for rec in self.data["keys"]:
                if rec["principal"] == {"type": "service_account", "id": sa_id}:
                    self._set_status(rec, "archived", actor=None)
            self.save()
            return dict(sa)

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
            rec = self.member(principal["type"], principal["id"])
        except SandboxError:
            return None
        if rec.get("removed_at") or rec.get("archived_at"):
            return None
        role = rec.get("role") or rec.get("organization_role")
        return str(role) if role else None

    # -- keys -------------------------------------------------------------------------------

    def mint_key(
        self,
        name: str,
        workspace_id: str | None = None,
        created_at: float | None = None,
        expires_at: float | None = None,
        secret: Secret | None = None,
        *,
        key_type: str = "service_account",
        scope: str = "workspace",
        principal_id: str | None = None,
    ) -> tuple[dict[str, Any], Secret]:
        """A key as the Console makes it. ``workspace_id`` None: the Default Workspace.

        ``key_type`` personal (linked to ``principal_id``, the owner by default),
        service_account (linked to ``principal_id``, a new ``svac_`` by default) or workspace
        (legacy, linked to no one); ``scope`` organization only for linked keys.
        """
        if not name or len(name) > 500:
            raise SandboxError(400, "invalid_request_error", "name: 1 to 500 characters")
        if key_type not in KEY_TYPES:
            raise SandboxError(400, "invalid_request_error", f"type: one of {', '.join(KEY_TYPES)}")
        if scope not in SCOPES:
            raise SandboxError(400, "invalid_request_error", f"scope: one of {', '.join(SCOPES)}")
        if scope == "organization" and (key_type == "workspace" or workspace_id is not None):
            raise SandboxError(
                400,
                "invalid_request_error",
                "scope organization: only personal and service-account keys, with no workspace",
            )
        with self.lock:
            if workspace_id is not None:
                self.workspace(workspace_id)
            principal: dict[str, str] | None = None
            if key_type == "personal":
                user_id = principal_id or self.data["user_id"]
                self.member("user", user_id)
                principal = {"type": "user", "id": user_id}
            elif key_type == "service_account":
                sa_id = principal_id or self.add_service_account(f"sa-{name}"[:60].lower())["id"]
                self.member("service_account", sa_id)
                principal = {"type": "service_account", "id": sa_id}
            secret = secret or generate_key("api")
            if secret.fingerprint in self._by_fp:
                raise SandboxError(409, "conflict_error", "that secret is already a key")
            rec: dict[str, Any] = {
                "id": new_id("apikey_"),
                "name": name,
                "workspace_id": workspace_id,
                "created_at": self.now() if created_at is None else created_at,
                "expires_at": expires_at,
                "status": "active",
                "fingerprint": secret.fingerprint,
                "hint": redact(secret.reveal()),
                "requests": 0,
                "last_request_at": None,
                "principal": principal,
                "scope": scope,
            }
            self.data["keys"].append(rec)
            self._keys[rec["id"]] = rec
            self._by_fp[rec["fingerprint"]] = rec["id"]
            self.record_activity(
                "platform_api_key_created",
                self.console_actor(),
                api_key_id=rec["id"],
                at=rec["created_at"],
            )
            self.save()
            return self.view(rec), secret

    def status_of(self, rec: dict[str, Any]) -> str:
        """Stored status, except that an active key past ``expires_at`` is ``expired``."""
        status: str = rec["status"]
        expires = rec.get("expires_at")
        if status == "active" and expires is not None and expires <= self.now():
            return "expired"
        return status

    def real_workspace(self, rec: dict[str, Any]) -> str | None:
        """The real ``wrkspc_`` id of a key's workspace (the Default's too); None: org-scoped."""
        if rec["scope"] == "organization":
            return None
        ws: str = rec["workspace_id"] or self.data["default_workspace_id"]
        return ws

    def view(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The key as the Admin API shows it (Sept 2026 shape): never the secret."""
        principal = rec["principal"]
        shown: dict[str, str] | None = None
        if principal is not None and principal["type"] == "user":
            shown = {"type": "user_actor", "user_id": principal["id"]}
        elif principal is not None:
            shown = {"type": "service_account_actor", "service_account_id": principal["id"]}
        real = self.real_workspace(rec)
        scope = {"type": "workspace", "workspace_id": real} if real else {"type": "organization"}
        return {
            "type": "api_key",
            "id": rec["id"],
            "name": rec["name"],
            # Deprecated: null for the Default Workspace and for organization-scoped keys.
            "workspace_id": rec["workspace_id"],
            "created_at": iso(rec["created_at"]),
            "created_by": {"id": self.data["user_id"], "type": "user"},
            "expires_at": iso(rec["expires_at"]),
            "partial_key_hint": rec["hint"],
            "status": self.status_of(rec),
            "principal": shown,
            "scope": scope,
        }

    def key(self, key_id: str) -> dict[str, Any]:
        rec = self._keys.get(key_id)
        if rec is None:
            raise SandboxError(404, "not_found_error", f"API key {key_id} not found")
        return rec

    def list_keys(
        self,
        filters: dict[str, str | None],
        after_id: str | None,
        before_id: str | None,
        limit: int,
    ) -> dict[str, Any]:
        status, workspace = filters.get("status"), filters.get("workspace_id")
        creator = filters.get("created_by_user_id")
        with self.lock:
            views = [self.view(k) for k in self.data["keys"]]
        items = [
            v
            for v in views
            if (status is None or v["status"] == status)
            # Organization-scoped keys match no workspace filter; the Default's keys match
            # their real id (the deprecated ``workspace_id`` field is null for both).
            and (workspace is None or (v["scope"].get("workspace_id") == workspace))
            and (creator is None or v["created_by"]["id"] == creator)
        ]
        return page(items, after_id, before_id, limit)

    def update_key(
        self, key_id: str, body: Any, actor: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        actor = actor or {"type": "admin_api_key_actor", "admin_api_key_id": "apikey_admin"}
        if not isinstance(body, dict):
            raise SandboxError(400, "invalid_request_error", "body must be a JSON object")
        extra = set(body) - {"name", "status"}
        if extra:
            raise SandboxError(
                400, "invalid_request_error", f"{sorted(extra)[0]}: Extra inputs are not permitted"
            )
        name, status = body.get("name"), body.get("status")
        if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 500):
            raise SandboxError(400, "invalid_request_error", "name: 1 to 500 characters")
        if status is not None and status not in SETTABLE_STATUSES:
            raise SandboxError(
                400, "invalid_request_error", "status: must be active, inactive or archived"
            )
        with self.lock:
            rec = self.key(key_id)
            current = self.status_of(rec)
            if current == "archived":
                raise SandboxError(
                    400, "invalid_request_error", f"API key {key_id} is archived: cannot update"
                )
            if current == "expired" and status is not None and status != "archived":
                raise SandboxError(
                    400, "invalid_request_error", f"API key {key_id} has expired: status is final"
                )
            updates = []
            if name is not None and name != rec["name"]:
                updates.append(
                    {"type": "name", "previous_value": rec["name"], "current_value": name}
                )
                rec["name"] = name
            if status is not None and status != current:
                updates.append(
                    {"type": "status", "previous_value": current, "current_value": status}
                )
                rec["status"] = status
            if updates:
                self.record_activity(
                    "platform_api_key_updated", actor, api_key_id=key_id, updates=updates
                )
            self.save()
            return self.view(rec)

    def _set_status(self, rec: dict[str, Any], status: str, actor: dict[str, Any] | None) -> None:
        previous = self.status_of(rec)
        if previous in ("archived", status):
            return
        rec["status"] = status
        update = {"type": "status", "previous_value": previous, "current_value": status}
        self.record_activity(
            "platform_api_key_updated",
            actor or {"type": "system_actor"},
            api_key_id=rec["id"],
            updates=[update],
        )

    def authenticate(self, presented: str) -> dict[str, Any] | None:
        """The API key record whose secret this is, or None."""
        key_id = self._by_fp.get(fingerprint(presented))
        return self._keys.get(key_id) if key_id else None

    def note_request(self, rec: dict[str, Any]) -> None:
        with self.lock:
            rec["requests"] += 1
            rec["last_request_at"] = self.now()
            self.save()

    # -- OAuth bearer tokens (``sk-ant-oat01-``) --------------------------------------------

    def issue_oauth_token(
        self,
        scope: str = "org:admin",
        principal: dict[str, str] | None = None,
        *,
        workspace_id: str | None = None,
        lifetime: float = 3600.0,
    ) -> tuple[dict[str, Any], Secret]:
        """A bearer token as ``ant auth login`` (or a federation exchange) mints one."""
        with self.lock:
            principal = principal or {"type": "user", "id": self.data["user_id"]}
            token = Secret("sk-ant-oat01-" + secrets.token_urlsafe(60))
            rec = {
                "fingerprint": token.fingerprint,
                "scope": scope,
                "principal": principal,
                "workspace_id": workspace_id,
                "expires_at": self.now() + lifetime,
            }
            self.data["oauth_tokens"].append(rec)
            self._tokens[token.fingerprint] = rec
            self.save()
            return dict(rec), token

    def oauth_token(self, presented: str) -> dict[str, Any] | None:
        """The live token record for a bearer string, or None (unknown or expired)."""
        rec = self._tokens.get(fingerprint(presented))
        if rec is None or rec["expires_at"] <= self.now():
            return None
        return rec

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

    # -- usage ------------------------------------------------------------------------------

    def record_usage(
        self,
        key_id: str,
        at: float | None = None,
        model: str = "claude-sonnet-4-5",
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_input_tokens: int = 0,
        cache_creation_input_tokens: int = 0,
        workspace_id: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            rec = self.key(key_id)
            event = {
                "api_key_id": key_id,
                "workspace_id": rec["workspace_id"] if workspace_id is None else workspace_id,
                "at": self.now() if at is None else at,
                "model": model,
                "uncached_input_tokens": int(input_tokens),
                "cache_read_input_tokens": int(cache_read_input_tokens),
                "cache_creation_input_tokens": int(cache_creation_input_tokens),
                "output_tokens": int(output_tokens),
            }
            self.data["usage"].append(event)
            self.save()
            return dict(event)

    def usage_events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self.data["usage"]]
