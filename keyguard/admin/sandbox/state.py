"""The sandbox's whole state: the organization (``organization.py``) plus what authenticates
and what it serves: API keys, OAuth bearer tokens, usage events, injected faults."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from keyguard.admin.sandbox.faults import Faults
from keyguard.admin.sandbox.organization import Organization
from keyguard.admin.sandbox.wire import SandboxError, iso, new_id, page
from keyguard.keys import Secret, fingerprint, generate_key, redact

SETTABLE_STATUSES = ("active", "inactive", "archived")
#: The Console's three kinds of API key (its "Linked account" choice).
KEY_TYPES = ("personal", "service_account", "workspace")
SCOPES = ("workspace", "organization")


class SandboxState(Organization):
    """Everything the sandbox knows, guarded by one lock; saved after each change if a file."""

    def __init__(self, path: Path | None = None) -> None:
        self.faults = Faults()
        #: Every answered request as (method, path, status): tests count writes with it.
        self.request_log: list[tuple[str, str, int]] = []
        #: For each OAuth bearer call to the Admin API: did it carry ``oauth-2025-04-20``?
        self.bearer_calls: list[bool] = []
        super().__init__(path)
        self._keys: dict[str, dict[str, Any]] = {k["id"]: k for k in self.data["keys"]}
        self._by_fp: dict[str, str] = {k["fingerprint"]: k["id"] for k in self.data["keys"]}
        self._tokens: dict[str, dict[str, Any]] = {
            t["fingerprint"]: t for t in self.data["oauth_tokens"]
        }

    def _upgrade(self) -> None:
        super()._upgrade()
        self.data.setdefault("oauth_tokens", [])
        for record in self.data["keys"]:
            record.setdefault("principal", {"type": "user", "id": self.data["user_id"]})
            record.setdefault("scope", "workspace")

    # -- members leaving: their keys go with them -------------------------------------------

    def remove_user(self, user_id: str) -> dict[str, Any]:
        """The person leaves: their personal keys are archived, as Anthropic does."""
        with self.lock:
            user = self.member("user", user_id)
            user["removed_at"] = self.now()
            for record in self.data["keys"]:
                if record["principal"] == {"type": "user", "id": user_id}:
                    self._set_status(record, "archived", actor=None)
            self.save()
            return dict(user)

    def archive_service_account(self, account_id: str) -> dict[str, Any]:
        """The service account is archived: its keys stop working (they are archived)."""
        with self.lock:
            account = self.member("service_account", account_id)
            account["archived_at"] = iso(self.now())
            for record in self.data["keys"]:
                if record["principal"] == {"type": "service_account", "id": account_id}:
                    self._set_status(record, "archived", actor=None)
            self.save()
            return dict(account)

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
                account_id = (
                    principal_id or self.add_service_account(f"sa-{name}"[:60].lower())["id"]
                )
                self.member("service_account", account_id)
                principal = {"type": "service_account", "id": account_id}
            secret = secret or generate_key("api")
            if secret.fingerprint in self._by_fp:
                raise SandboxError(409, "conflict_error", "that secret is already a key")
            record: dict[str, Any] = {
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
            self.data["keys"].append(record)
            self._keys[record["id"]] = record
            self._by_fp[record["fingerprint"]] = record["id"]
            self.record_activity(
                "platform_api_key_created",
                self.console_actor(),
                api_key_id=record["id"],
                at=record["created_at"],
            )
            self.save()
            return self.view(record), secret

    def status_of(self, record: dict[str, Any]) -> str:
        """Stored status, except that an active key past ``expires_at`` is ``expired``."""
        status: str = record["status"]
        expires = record.get("expires_at")
        if status == "active" and expires is not None and expires <= self.now():
            return "expired"
        return status

    def real_workspace(self, record: dict[str, Any]) -> str | None:
        """The real ``wrkspc_`` id of a key's workspace (the Default's too); None: org-scoped."""
        if record["scope"] == "organization":
            return None
        workspace: str = record["workspace_id"] or self.data["default_workspace_id"]
        return workspace

    def view(self, record: dict[str, Any]) -> dict[str, Any]:
        """The key as the Admin API shows it (Sept 2026 shape): never the secret."""
        principal = record["principal"]
        shown: dict[str, str] | None = None
        if principal is not None and principal["type"] == "user":
            shown = {"type": "user_actor", "user_id": principal["id"]}
        elif principal is not None:
            shown = {"type": "service_account_actor", "service_account_id": principal["id"]}
        real = self.real_workspace(record)
        scope = {"type": "workspace", "workspace_id": real} if real else {"type": "organization"}
        return {
            "type": "api_key",
            "id": record["id"],
            "name": record["name"],
            # Deprecated: null for the Default Workspace and for organization-scoped keys.
            "workspace_id": record["workspace_id"],
            "created_at": iso(record["created_at"]),
            "created_by": {"id": self.data["user_id"], "type": "user"},
            "expires_at": iso(record["expires_at"]),
            "partial_key_hint": record["hint"],
            "status": self.status_of(record),
            "principal": shown,
            "scope": scope,
        }

    def key(self, key_id: str) -> dict[str, Any]:
        record = self._keys.get(key_id)
        if record is None:
            raise SandboxError(404, "not_found_error", f"API key {key_id} not found")
        return record

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
            record = self.key(key_id)
            current = self.status_of(record)
            if current == "archived":
                raise SandboxError(
                    400, "invalid_request_error", f"API key {key_id} is archived: cannot update"
                )
            if current == "expired" and status is not None and status != "archived":
                raise SandboxError(
                    400, "invalid_request_error", f"API key {key_id} has expired: status is final"
                )
            updates = []
            if name is not None and name != record["name"]:
                updates.append(
                    {"type": "name", "previous_value": record["name"], "current_value": name}
                )
                record["name"] = name
            if status is not None and status != current:
                updates.append(
                    {"type": "status", "previous_value": current, "current_value": status}
                )
                record["status"] = status
            if updates:
                self.record_activity(
                    "platform_api_key_updated", actor, api_key_id=key_id, updates=updates
                )
            self.save()
            return self.view(record)

    def _set_status(
        self, record: dict[str, Any], status: str, actor: dict[str, Any] | None
    ) -> None:
        previous = self.status_of(record)
        if previous in ("archived", status):
            return
        record["status"] = status
        update = {"type": "status", "previous_value": previous, "current_value": status}
        self.record_activity(
            "platform_api_key_updated",
            actor or {"type": "system_actor"},
            api_key_id=record["id"],
            updates=[update],
        )

    def authenticate(self, presented: str) -> dict[str, Any] | None:
        """The API key record whose secret this is, or None."""
        key_id = self._by_fp.get(fingerprint(presented))
        return self._keys.get(key_id) if key_id else None

    def note_request(self, record: dict[str, Any]) -> None:
        with self.lock:
            record["requests"] += 1
            record["last_request_at"] = self.now()
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
            record = {
                "fingerprint": token.fingerprint,
                "scope": scope,
                "principal": principal,
                "workspace_id": workspace_id,
                "expires_at": self.now() + lifetime,
            }
            self.data["oauth_tokens"].append(record)
            self._tokens[token.fingerprint] = record
            self.save()
            return dict(record), token

    def oauth_token(self, presented: str) -> dict[str, Any] | None:
        """The live token record for a bearer string, or None (unknown or expired)."""
        record = self._tokens.get(fingerprint(presented))
        if record is None or record["expires_at"] <= self.now():
            return None
        return record

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
            record = self.key(key_id)
            event = {
                "api_key_id": key_id,
                "workspace_id": record["workspace_id"] if workspace_id is None else workspace_id,
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
