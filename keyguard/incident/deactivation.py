"""The incident's first write: the proven key made ``inactive`` (or ``archived``) and its name
given the leak mark, in one Admin API call, before anything slow."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from keyguard.admin.protocol import AdminApi
from keyguard.keys import leak_mark
from keyguard.models import ApiKey


@dataclass(frozen=True)
class Deactivation:
    """What the single write did (or why none was needed)."""

    key: ApiKey
    status_before: str
    action: str  # deactivated, archived, already inactive, already archived, expired
    writes: int
    seconds: float  # from the start of the incident to the end of the write


def deactivate(
    admin: AdminApi,
    key: ApiKey,
    *,
    archive: bool,
    started: float,
    today: datetime | None = None,
) -> Deactivation:
    """One write: ``inactive`` (or ``archived``) plus the leak mark on its name.

    The mark (``leaked-YYYY-MM-DD <old name>``, see ``keys.leak_mark``) records the leak in the
    organization itself, where every machine sees it: rollback and rotate refuse a marked key
    even without the local incident log. An archived key cannot be updated: no write.
    """
    before = key.status
    want = "archived" if archive else "inactive"
    day = (today or datetime.now(UTC)).date()
    marked = leak_mark(key.name, day)
    rename = marked if marked != key.name else None
    if before == "archived":
        return Deactivation(key, before, "already archived", 0, time.monotonic() - started)
    if before in ("inactive", "expired") and not archive:
        action = "already inactive" if before == "inactive" else "expired"
        if rename is None:
            return Deactivation(key, before, action, 0, time.monotonic() - started)
        after = admin.update_key(key.id, name=rename)
        return Deactivation(after, before, action, 1, time.monotonic() - started)
    # Archiving straight from active is one documented status change: still a single write.
    after = admin.update_key(key.id, status=want, name=rename)
    action = "archived" if archive else "deactivated"
    return Deactivation(after, before, action, 1, time.monotonic() - started)
