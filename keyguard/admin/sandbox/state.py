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

KEY_STATUSES = ("active", "inactive", "archived", "expired")
SETTABLE_STATUSES = ("active", "inactive", "archived")
FAULT_KINDS = ("429", "500", "529", "latency", "drop")
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
            self.save()
        self._keys: dict[str, dict[str, Any]] = {k["id"]: k for k in self.data["keys"]}
        self._by_fp: dict[str, str] = {k["fingerprint"]: k["id"] for k in self.data["keys"]}
        self._workspaces: dict[str, dict[str, Any]] = {w["id"]: w for w in self.data["workspaces"]}

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

    def mint_key(
        self,
        name: str,
        workspace_id: str | None = None,
        created_at: float | None = None,
        expires_at: float | None = None,
        secret: Secret | None = None,
    ) -> tuple[dict[str, Any], Secret]:
        if not name or len(name) > 500:
            raise SandboxError(400, "invalid_request_error", "name: 1 to 500 characters")
        with self.lock:
            if workspace_id is not None:
                self.workspace(workspace_id)
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
            }
            self.data["keys"].append(rec)
            self._keys[rec["id"]] = rec
            self._by_fp[rec["fingerprint"]] = rec["id"]
            self.save()
            return self.view(rec), secret

    def status_of(self, rec: dict[str, Any]) -> str:
        """Stored status, except that an active key past ``expires_at`` is ``expired``."""
        status: str = rec["status"]
        expires = rec.get("expires_at")
        if status == "active" and expires is not None and expires <= self.now():
            return "expired"
        return status

    def view(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The key as the Admin API shows it: never the secret."""
        return {
            "type": "api_key",
            "id": rec["id"],
            "name": rec["name"],
            "workspace_id": rec["workspace_id"],
            "created_at": iso(rec["created_at"]),
            "created_by": {"id": self.data["user_id"], "type": "user"},
            "expires_at": iso(rec["expires_at"]),
            "partial_key_hint": rec["hint"],
            "status": self.status_of(rec),
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
            and (workspace is None or v["workspace_id"] == workspace)
            and (creator is None or v["created_by"]["id"] == creator)
        ]
        return page(items, after_id, before_id, limit)

    def update_key(self, key_id: str, body: Any) -> dict[str, Any]:
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
            if name is not None:
                rec["name"] = name
            if status is not None:
                rec["status"] = status
            self.save()
            return self.view(rec)

    def authenticate(self, presented: str) -> dict[str, Any] | None:
        """The API key record whose secret this is, or None."""
        key_id = self._by_fp.get(fingerprint(presented))
        return self._keys.get(key_id) if key_id else None

    def note_request(self, rec: dict[str, Any]) -> None:
        with self.lock:
            rec["requests"] += 1
            rec["last_request_at"] = self.now()
            self.save()

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
    ) -> dict[str, Any]:
        with self.lock:
            rec = self.key(key_id)
            event = {
                "api_key_id": key_id,
                "workspace_id": rec["workspace_id"],
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
