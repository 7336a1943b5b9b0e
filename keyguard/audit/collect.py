"""Joining the Admin API's keys and usage, every environment's stores and the policy."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from keyguard.admin.protocol import ListsKeys, ReadsUsage
from keyguard.audit import judge
from keyguard.audit.model import (
    AuditReport,
    EnvironmentReport,
    KeyKind,
    PolicyLimits,
    StageView,
    StoreView,
    UnmanagedKey,
)
from keyguard.audit.stores import Opener, read_stores
from keyguard.config import Config, Environment
from keyguard.errors import KeyguardError
from keyguard.keys import Secret
from keyguard.models import ApiKey

#: ``(task, done, total)``: task is ``"stores"``, ``"keys"`` or ``"usage"``; total may be unknown.
Progress = Callable[[str, int, int | None], None]
Clock = Callable[[], datetime]
LastRotation = Callable[[Environment], datetime | None]
#: Does this (organization-scoped) key reach the Admin API? (``GET /v1/organizations/me``)
AdminProbe = Callable[[Secret], bool]

#: Above this many keys, ask for everyone's usage at once rather than list ids in the URL.
USAGE_FILTER_LIMIT = 100


class AdminReader(ListsKeys, ReadsUsage, Protocol):
    """The part of ``AdminClient`` an audit reads."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class KeyIndex:
    """The organization's keys, listed once, by id and by partial hint."""

    by_id: dict[str, ApiKey] = field(default_factory=dict)
    by_hint: dict[str, list[ApiKey]] = field(default_factory=lambda: defaultdict(list))

    def add(self, key: ApiKey) -> None:
        self.by_id[key.id] = key
        if key.partial_key_hint:
            self.by_hint[key.partial_key_hint].append(key)

    def resolve(self, view: StageView | None) -> StageView | None:
        """Fill in a stage's key id from its hint. Metadata naming a key with another hint than
        the value's (or a key the organization lacks, while it has the value's) proves nothing:
        that stage is flagged and stands for the key its value shows."""
        if view is None:
            return None
        if view.key_id:
            known = self.by_id.get(view.key_id)
            value_is = self._only(view.hint)
            if (known and known.partial_key_hint and view.hint != known.partial_key_hint) or (
                known is None and value_is is not None
            ):
                return replace(
                    view,
                    key_id=value_is,
                    claimed_key_id=view.key_id,
                    meta_mismatch=True,
                )
            return view
        return replace(view, key_id=self._only(view.hint))

    def _only(self, hint: str | None) -> str | None:
        matches = self.by_hint.get(hint or "", [])
        return matches[0].id if len(matches) == 1 else None

    def holds(self, view: StageView | None) -> ApiKey | None:
        """The organization's key a stage is shown to hold: a key-shaped value whose hint is that
        key's. Metadata alone (an id, a hint, a fingerprint) is whoever wrote the store's word."""
        if view is None or not view.key_id or not view.well_formed:
            return None
        key = self.by_id.get(view.key_id)
        if key is None or not key.partial_key_hint or key.partial_key_hint != view.hint:
            return None
        return key


def list_keys(client: AdminReader, progress: Progress | None = None) -> KeyIndex:
    """Every key of the organization, page by page, counted as it arrives."""
    index = KeyIndex()
    for n, key in enumerate(client.list_keys(), 1):
        index.add(key)
        if progress is not None and n % 100 == 0:
            progress("keys", n, None)
    if progress is not None:
        progress("keys", len(index.by_id), len(index.by_id))
    return index


def usage_totals(
    client: AdminReader, key_ids: set[str], now: datetime
) -> dict[str, tuple[int, int]]:
    """Tokens per key over the last 24 hours and 7 days, from hourly buckets."""
    if not key_ids:
        return {}
    ids = sorted(key_ids) if len(key_ids) <= USAGE_FILTER_LIMIT else []
    rows = client.usage(ids, now - timedelta(days=7), now, bucket_width="1h")
    day_ago = now - timedelta(hours=24)
    out: dict[str, tuple[int, int]] = {}
    for row in rows:
        if row.api_key_id is None or row.api_key_id not in key_ids:
            continue
        day, week = out.get(row.api_key_id, (0, 0))
        recent = row.total_tokens if row.starting_at >= day_ago else 0
        out[row.api_key_id] = (day + recent, week + row.total_tokens)
    return out


def journal_last_rotation(state_dir: Path) -> LastRotation:
    """When each environment's current key went into service, per its rotation journal."""
    from keyguard.journal import RotationJournal

    def last(env: Environment) -> datetime | None:
        try:
            entries = RotationJournal(state_dir, env.name).entries()
        except KeyguardError:
            return None  # a damaged journal is `keyguard status`'s business, not the audit's
        undone = {e.rotation for e in entries if e.step == "rollback"}
        # The whole environment's promotion (not one store's), of a rotation that stood.
        promoted = [
            e.ts
            for e in entries
            if e.step == "promote"
            and e.phase == "after"
            and "store" not in e.data
            and e.rotation not in undone
        ]
        if not promoted:
            return None
        ts = max(promoted)
        return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)

    return last


def _first_current(views: Sequence[StoreView]) -> StageView | None:
    return next((s.current for s in views if s.error is None and s.current is not None), None)


def _first(views: Sequence[StoreView], stage: str) -> StageView | None:
    return next((getattr(s, stage) for s in views if getattr(s, stage) is not None), None)


def key_kind(key: ApiKey | None, admin_equivalent: bool | None = None) -> KeyKind:
    if key is None:
        return KeyKind()
    return KeyKind(
        key_type=key.key_type,
        scope=key.scope,
        principal=str(key.principal) if key.principal else None,
        default_workspace=key.default_workspace,
        admin_equivalent=admin_equivalent,
    )


def departed_keys(index: KeyIndex) -> list[ApiKey]:
    """Archived keys of principals (people, service accounts) whose every key is archived:
    the way Anthropic leaves the keys of someone removed from the organization."""
    by_principal: dict[str, list[ApiKey]] = defaultdict(list)
    for key in index.by_id.values():
        if key.principal is not None:
            by_principal[str(key.principal)].append(key)
    return [
        k
        for keys in by_principal.values()
        if all(k.status == "archived" for k in keys)
        for k in keys
    ]


def first_time(state_dir: Path, keys: list[ApiKey]) -> list[ApiKey]:
    """The keys not listed by an earlier audit; remembers them (ids only) for the next one."""
    import json
    import os

    seen_file = state_dir / "audit-departed.jsonl"
    seen: set[str] = set()
    try:
        lines = seen_file.read_text("utf-8").splitlines()
    except (OSError, ValueError):
        lines = []
    for line in lines:  # local state anyone can edit: a line of another shape lists its key again
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(entry, dict) and isinstance(entry.get("key_id"), str):
            seen.add(entry["key_id"])
    new = [k for k in keys if k.id not in seen]
    if new:
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(seen_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.writelines(json.dumps({"key_id": k.id}) + "\n" for k in new)
        except OSError:
            pass  # a read-only state dir: list them again next time rather than fail
    return new


def _probe(
    env: Environment, key: ApiKey | None, opener: Opener, probe: AdminProbe | None
) -> bool | None:
    """For an organization-scoped served key: can it call the Admin API? None: not known."""
    if probe is None or key is None or not key.org_scoped or key.status != "active":
        return None
    for uri in env.stores:
        try:
            secret = opener(uri).get()
        except KeyguardError:
            continue
        if secret is not None:
            try:
                return probe(secret)
            except KeyguardError:
                return None
    return None


def _age(key: ApiKey | None, now: datetime) -> timedelta | None:
    return now - key.created_at if key is not None and key.created_at is not None else None


def run_audit(
    config: Config,
    client: AdminReader,
    env_names: Sequence[str] = (),
    *,
    opener: Opener | None = None,
    clock: Clock = utc_now,
    last_rotation: LastRotation | None = None,
    max_workers: int = 8,
    progress: Progress | None = None,
    probe: AdminProbe | None = None,
    remember_departed: bool = True,
) -> AuditReport:
    """The audit report for ``env_names`` (all environments when empty).

    ``probe`` asks whether a served organization-scoped key reaches the Admin API (then it is
    admin-equivalent). Archived keys of departed members are listed once: their ids are kept
    in ``<state dir>/audit-departed.jsonl`` unless ``remember_departed`` is False.
    """
    if opener is None:
        from keyguard.stores import open_store

        opener = open_store
    selected = [config.environment(n) for n in dict.fromkeys(env_names)] or list(
        config.environments.values()
    )
    now = clock()
    # Reports say "UTC": an injected clock in another zone (or naive) is normalised once here.
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    if last_rotation is None:
        last_rotation = journal_last_rotation(config.state_dir)
    # Every environment's stores are read, not only the selected ones: sharing and
    # unmanaged keys are only true statements against the whole configuration.
    everything = list(config.environments.values())
    uris = [uri for env in everything for uri in env.stores]

    def on_store(done: int, total: int) -> None:
        if progress is not None:
            progress("stores", done, total)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-keys") as lister:
        keys_future = lister.submit(list_keys, client, progress)
        raw = read_stores(uris, opener, max_workers=max_workers, progress=on_store)
        index = keys_future.result()

    views = {
        uri: replace(
            v,
            current=index.resolve(v.current),
            pending=index.resolve(v.pending),
            previous=index.resolve(v.previous),
        )
        for uri, v in raw.items()
    }
    by_env = {env.name: [views[u] for u in env.stores] for env in everything}

    served: dict[str, set[str]] = defaultdict(set)  # fingerprint -> environments serving it
    held: set[str] = set()
    for name, env_views in by_env.items():
        for v in env_views:
            for stage in (v.current, v.pending, v.previous):
                key = index.holds(stage)
                if key is not None:
                    held.add(key.id)
            if v.current is not None and v.current.fingerprint:
                served[v.current.fingerprint].add(name)

    unmanaged_keys = [k for k in index.by_id.values() if k.status == "active" and k.id not in held]
    wanted = {k.id for k in unmanaged_keys}
    for env in selected:
        current = _first_current(by_env[env.name])
        if current is not None and current.key_id:
            wanted.add(current.key_id)
    if progress is not None:
        progress("usage", 0, 1)
    usage = usage_totals(client, wanted, now)
    if progress is not None:
        progress("usage", 1, 1)

    reports = tuple(
        _environment_report(
            env,
            by_env[env.name],
            index,
            served,
            usage,
            now,
            last_rotation,
            lambda e, k: _probe(e, k, opener, probe),
        )
        for env in selected
    )
    gone = departed_keys(index)
    if remember_departed:
        gone = first_time(config.state_dir, gone)
    departed = tuple(_unmanaged(k, {}, now) for k in sorted(gone, key=lambda k: k.id))
    unmanaged = tuple(
        sorted(
            (_unmanaged(k, usage, now) for k in unmanaged_keys),
            key=lambda u: (-(u.age or timedelta()).total_seconds(), u.key_id),
        )
    )
    notes: tuple[str, ...] = ()
    unread = sorted(uri for uri, v in raw.items() if v.error is not None)
    if unread and unmanaged:
        # "Unmanaged" is only known against stores that were read: say so before anyone revokes.
        notes = (
            f"{len(unread)} store(s) could not be read ({', '.join(unread)}): a key held only "
            "there is listed as unmanaged; read them again before revoking an unmanaged key",
        )
    return AuditReport(
        generated_at=now,
        environments=reports,
        unmanaged=unmanaged,
        keys_listed=len(index.by_id),
        notes=notes,
        departed=departed,
    )


def _environment_report(
    env: Environment,
    views: list[StoreView],
    index: KeyIndex,
    served: dict[str, set[str]],
    usage: dict[str, tuple[int, int]],
    now: datetime,
    last_rotation: LastRotation | None,
    probe: Callable[[Environment, ApiKey | None], bool | None],
) -> EnvironmentReport:
    limits = PolicyLimits.of(env.policy)
    current = _first_current(views)
    key_id = current.key_id if current else None
    key = index.by_id.get(key_id) if key_id else None
    ref = (key_id or current.hint) if current else None
    admin_equivalent = probe(env, key)
    reasons = judge.store_reasons(views)
    reasons += judge.key_reasons(key, ref, limits, now, workspace=env.workspace)
    reasons += judge.kind_reasons(key, limits, admin_equivalent=admin_equivalent)
    shared_with: set[str] = set()
    for v in views:
        if v.current is not None and v.current.fingerprint:
            shared_with |= served.get(v.current.fingerprint, set())
    shared_with.discard(env.name)
    if ref is not None:
        reasons += judge.shared_reasons(ref, sorted(shared_with), limits)
    rotated = last_rotation(env) if last_rotation else None
    if rotated is None and current is not None:
        rotated = current.stored_at
    kept = [
        (v.uri, old)
        for v in views
        if v.error is None and (old := index.holds(v.previous)) is not None and old.id != key_id
    ]
    reasons += judge.previous_reasons(env.name, kept, rotated, limits, now)
    pending, previous = _first(views, "pending"), _first(views, "previous")
    prev_key = index.by_id.get(previous.key_id) if previous and previous.key_id else None
    day, week = usage.get(key_id, (0, 0)) if key_id else (None, None)
    return EnvironmentReport(
        name=env.name,
        verdict=judge.verdict_of(reasons),
        reasons=tuple(reasons),
        limits=limits,
        key_id=key_id,
        key_name=key.name if key else None,
        hint=(key.partial_key_hint if key and key.partial_key_hint else None)
        or (current.hint if current else None),
        workspace_id=key.workspace_id if key else None,
        status=key.status if key else None,
        created_at=key.created_at if key else None,
        created_by=key.created_by if key else None,
        age=_age(key, now),
        expires_at=key.expires_at if key else None,
        stores=tuple(views),
        stores_agree=judge.stores_agree(views),
        last_rotation=rotated,
        pending_key_id=(pending.key_id if pending else None),
        pending_hint=(pending.hint if pending else None),
        previous_key_id=(previous.key_id if previous else None),
        previous_status=prev_key.status if prev_key else None,
        tokens_24h=day,
        tokens_7d=week,
        kind=key_kind(key, admin_equivalent),
    )


def _unmanaged(key: ApiKey, usage: dict[str, tuple[int, int]], now: datetime) -> UnmanagedKey:
    day, week = usage.get(key.id, (0, 0))
    return UnmanagedKey(
        key_id=key.id,
        key_name=key.name,
        hint=key.partial_key_hint,
        workspace_id=key.workspace_id,
        created_at=key.created_at,
        created_by=key.created_by,
        age=_age(key, now),
        expires_at=key.expires_at,
        tokens_24h=day,
        tokens_7d=week,
        kind=key_kind(key),
        flags=judge.key_flags(key),
    )
