"""Incident response: leaked key -> id -> deactivate -> affected environments -> rotations.

Deactivation is the first write and comes before anything slow (store reads, the usage
report); after it, the stores of every environment are read concurrently to find where the key
lives, and environments that serve it are rotated at once (no grace, no drain) when a new key
is waiting, else asked for one; meanwhile an environment that served the leaked key goes back
to its previous key when that one is still active, works and never leaked (store operations
only: the deactivation stays the single Admin API write). The exposure report and the audit
log live in ``keyguard.incident_report``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyguard.config import Config
from keyguard.errors import KeyguardError, NotFoundError, UsageError
from keyguard.keys import Secret
from keyguard.models import ApiKey
from keyguard.stores.interface import Stage, stage_map

if TYPE_CHECKING:
    from keyguard.admin import AdminClient
    from keyguard.rotation import RotationEngine

Say = Callable[[str], None]
#: Stores read at once; cloud stores are slow, but a bound keeps us polite to their APIs.
STORE_READERS = 8


@dataclass(frozen=True)
class Target:
    """What the operator gave: a key, an id, or a scan finding (fingerprint + hint)."""

    key: Secret | None = None
    key_id: str | None = None
    fingerprint: str | None = None
    hint: str | None = None
    commits: tuple[str, ...] = ()  # history findings: commits the scanner found the key in
    note: str | None = None  # how a scan finding was matched

    def __post_init__(self) -> None:
        if self.key is not None:
            object.__setattr__(self, "fingerprint", self.key.fingerprint)
            object.__setattr__(self, "hint", self.key.hint)


@dataclass(frozen=True)
class Deactivation:
    """What the single write did (or why none was needed)."""

    key: ApiKey
    status_before: str
    action: str  # deactivated, archived, already inactive, already archived, expired
    writes: int
    seconds: float  # from the start of the incident to the end of the write


@dataclass(frozen=True)
class Holding:
    """One store stage that holds the leaked key."""

    environment: str
    store: str
    stage: Stage


@dataclass
class EnvOutcome:
    """What happened to one affected environment."""

    environment: str
    stages: list[Holding]
    action: str  # rotated, waiting, not served, error
    message: str
    request: dict[str, Any] | None = None
    exit_code: int = 0  # of the failure, for action "error"

    @property
    def waiting(self) -> bool:
        return self.action in ("waiting", "error")


@dataclass
class StoreValue:
    """One stage of one store as read during the incident (the value stays in memory)."""

    environment: str
    store: str
    stage: Stage
    value: Secret | None
    key_id: str | None


@dataclass
class Snapshot:
    """Every stage of every configured store, read once; errors kept per store."""

    values: list[StoreValue] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def holding(self, fp: str | None, key_id: str | None, hint: str | None) -> list[Holding]:
        """Stages whose value (or metadata key id) is the leaked key."""
        out: list[Holding] = []
        for v in self.values:
            if fp and v.value is not None:
                hit = v.value.fingerprint == fp
            else:
                hit = v.value is not None and hint is not None and v.value.hint == hint
            if hit or (key_id is not None and v.key_id == key_id):
                out.append(Holding(v.environment, v.store, v.stage))
        return out

    def by_fingerprint(self, fp: str) -> StoreValue | None:
        return next((v for v in self.values if v.value and v.value.fingerprint == fp), None)


def _read_store(env: str, uri: str) -> list[StoreValue]:
    from keyguard.stores import open_store

    store = open_store(uri)
    meta = stage_map(store.describe())
    out = []
    for stage in (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS):
        version = meta.get(stage)
        value = store.get(stage) if version is not None or stage is Stage.CURRENT else None
        key_id = version.meta.key_id if version else None
        if value is not None or key_id is not None:
            out.append(StoreValue(env, uri, stage, value, key_id))
    return out


def read_stores(config: Config, workers: int = STORE_READERS) -> Snapshot:
    """Read every stage of every store of every environment, ``workers`` stores at a time."""
    jobs = [(env.name, uri) for env in config.environments.values() for uri in env.stores]
    snap = Snapshot()
    if not jobs:
        return snap

    def one(job: tuple[str, str]) -> tuple[str, list[StoreValue] | str]:
        try:
            return job[1], _read_store(*job)
        except KeyguardError as exc:
            return job[1], str(exc)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        for uri, result in pool.map(one, jobs):
            if isinstance(result, str):
                snap.errors[uri] = result
            else:
                snap.values.extend(result)
    return snap


# -- from a scan report ----------------------------------------------------------------------


def load_scan(path: Path) -> dict[str, Target]:
    """Fingerprint -> Target (hint, commits) from a ``keyguard scan --format json`` report."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the scan report {path}: {exc.strerror}") from None
    except ValueError:
        raise UsageError(
            f"{path} is not JSON; write it with `keyguard scan --format json --output FILE`"
        ) from None
    findings = data.get("findings") if isinstance(data, dict) else None
    if not isinstance(findings, list):
        raise UsageError(
            f"{path} has no findings list: is it a `keyguard scan --format json` report?"
        )
    out: dict[str, Target] = {}
    for f in findings:
        fp = f.get("fingerprint") if isinstance(f, dict) else None
        if not isinstance(fp, str) or not fp:
            continue
        hint = f.get("redacted") if isinstance(f.get("redacted"), str) else None
        commit = f.get("commit") if isinstance(f.get("commit"), str) else None
        old = out.get(fp)
        commits = (old.commits if old else ()) + ((commit,) if commit else ())
        out[fp] = Target(fingerprint=fp, hint=hint or (old.hint if old else None), commits=commits)
    if not out:
        raise NotFoundError(f"the scan report {path} holds no findings: nothing to revoke")
    return out


def resolve_scan(
    found: dict[str, Target], snap: Snapshot, keys: Callable[[], Iterable[ApiKey]]
) -> tuple[list[Target], list[str]]:
    """Match scan findings to keys: through store values (fingerprint), else a unique hint.

    Returns the resolved targets and one message per finding left unresolved.
    """
    targets: list[Target] = []
    unresolved: list[str] = []
    listing: list[ApiKey] | None = None
    for fp, t in found.items():
        held = snap.by_fingerprint(fp)
        if held is not None and held.value is not None:
            targets.append(
                Target(key=held.value, commits=t.commits, note=f"matched in {held.store}")
            )
            continue
        if listing is None:
            listing = list(keys())
        same = [k for k in listing if t.hint and k.partial_key_hint == t.hint]
        if len(same) == 1:
            targets.append(
                Target(
                    key_id=same[0].id,
                    fingerprint=fp,
                    hint=t.hint,
                    commits=t.commits,
                    note="matched by its hint alone (no store holds it)",
                )
            )
        elif same:
            ids = ", ".join(k.id for k in same)
            unresolved.append(
                f"{t.hint}: {len(same)} keys share this hint ({ids}); pipe the key itself "
                "into `keyguard revoke --leaked -`"
            )
        else:
            unresolved.append(
                f"{t.hint or fp[:12]}: no store holds it and no key of the organization has "
                "this hint (another organization's key, or already deleted)"
            )
    return targets, unresolved


def first_commit_time(commits: Iterable[str], repo: Path | None = None) -> datetime | None:
    """The earliest committer date among ``commits`` (``git show -s --format=%cI``)."""
    times = []
    for commit in dict.fromkeys(commits):
        try:
            proc = subprocess.run(
                ["git", "show", "-s", "--format=%cI", commit, "--"],
                capture_output=True,
                text=True,
                cwd=repo,
                check=False,
            )
        except OSError:  # no git, or no such folder: the caller falls back to key creation
            return None
        if proc.returncode == 0 and proc.stdout.strip():
            try:
                times.append(datetime.fromisoformat(proc.stdout.strip().splitlines()[0]))
            except ValueError:
                continue
    return min(times) if times else None


# -- identify and deactivate -----------------------------------------------------------------


def identify(admin: AdminClient, target: Target) -> ApiKey:
    """The Admin API's view of the target key; ``NotFoundError`` (exit 1) if it has none."""
    if target.key_id is not None:
        try:
            return admin.get_key(target.key_id)
        except NotFoundError:
            raise NotFoundError(
                f"no key {target.key_id} in this organization; check the id with "
                "`keyguard keys list` (or the admin key's organization)"
            ) from None
    if target.key is None:
        raise UsageError("nothing to identify: give --leaked -, --key-id or --from-scan")
    try:
        return admin.find_key(target.key)
    except NotFoundError:
        raise NotFoundError(
            f"the leaked key {target.key.hint} is not a key of this organization (no key has "
            "its hint): it belongs to another organization, or the admin key cannot see it. "
            "Revoke it in that organization's Console; nothing was changed"
        ) from None


def deactivate(admin: AdminClient, key: ApiKey, *, archive: bool, started: float) -> Deactivation:
    """One write: ``inactive`` (or ``archived``), skipped when the key is already there."""
    before = key.status
    want = "archived" if archive else "inactive"
    if before == "archived":
        return Deactivation(key, before, "already archived", 0, time.monotonic() - started)
    if before == "inactive" and not archive:
        return Deactivation(key, before, "already inactive", 0, time.monotonic() - started)
    if before == "expired" and not archive:
        return Deactivation(key, before, "expired", 0, time.monotonic() - started)
    # Archiving straight from active is one documented status change: still a single write.
    after = admin.update_key(key.id, status=want)
    action = "archived" if archive else "deactivated"
    return Deactivation(after, before, action, 1, time.monotonic() - started)


# -- affected environments -------------------------------------------------------------------


def group_holdings(holdings: Iterable[Holding]) -> dict[str, list[Holding]]:
    out: dict[str, list[Holding]] = {}
    for h in holdings:
        out.setdefault(h.environment, []).append(h)
    return out


#: (environment, leaked key, serves it as current) -> outcome
Rotator = Callable[[str, "LeakedKey", bool], EnvOutcome]


@dataclass(frozen=True)
class LeakedKey:
    """The leaked key as the later steps need it: never its value."""

    id: str
    hint: str
    fingerprint: str | None


def handle_environments(
    holdings: list[Holding], leaked: LeakedKey, rotate: Rotator
) -> Iterator[EnvOutcome]:
    """Rotate each environment that serves or would serve the key; note those that only keep it.

    A leaked pending key goes to the rotator too: it discards the key (never promotes it) and
    asks for another one.
    """
    for env, stages in group_holdings(holdings).items():
        kinds = {h.stage for h in stages}
        if kinds & {Stage.CURRENT, Stage.PENDING}:
            outcome = rotate(env, leaked, Stage.CURRENT in kinds)
            outcome.stages = stages
            yield outcome
        else:
            yield EnvOutcome(
                env,
                stages,
                "not served",
                f"{env}: keeps the leaked key only as the previous version (rollback target); "
                "it is not served. Do not roll back to it (`keyguard rollback` refuses a key "
                "of the incident log)",
            )


def _is_leaked(value: Secret | None, key_id: str | None, leaked: LeakedKey) -> bool:
    """Is this stored value (or its metadata key id) the leaked key?"""
    if value is not None and leaked.fingerprint is not None:
        return value.fingerprint == leaked.fingerprint
    return key_id is not None and key_id == leaked.id


def discard_leaked_pending(engine: RotationEngine, leaked: LeakedKey) -> bool:
    """Drop the leaked key from every store's pending stage and close its rotation, if any.

    A delivered key that leaked must never be promoted. No Admin API write happens here.
    """
    from keyguard.rotation import rollback

    st = engine.latest()
    closed = False
    if st is not None and st.phase in ("creating", "delivered"):
        ours = st.new.fingerprint == leaked.fingerprint if leaked.fingerprint else None
        if ours or (ours is None and st.new.id == leaked.id):
            rollback(engine)  # before the update, a rollback discards the pending key everywhere
            closed = True
    dropped = False
    with engine.leased():
        for store in engine.stores:
            version = stage_map(store.describe()).get(Stage.PENDING)
            if version is None:
                continue
            if _is_leaked(store.get(Stage.PENDING), version.meta.key_id, leaked):
                store.discard_pending(version.meta.token or version.version_id)
                dropped = True
    return closed or dropped


def serve_previous(engine: RotationEngine, leaked: LeakedKey, say: Say) -> str | None:
    """Roll the stores back to the previous key if it is active, works and never leaked.

    Store operations only: an inactive previous key is not re-activated (the incident makes a
    single Admin API write). Returns the hint now served, or None when nothing changed.
    """
    from keyguard.rotation import RollbackRefused, rollback

    st = engine.latest()
    if st is not None and st.phase in ("creating", "delivered"):
        return None  # a rollback would only discard a pending key
    try:
        rollback(engine, reactivate=False)
    except RollbackRefused as exc:
        why = str(exc).removeprefix(f"{engine.env.name}: ")  # said once, not twice
        say(f"{engine.env.name}: not rolling back to the previous key: {why}")
        return None
    served = [s.get(Stage.CURRENT) for s in engine.stores]
    if any(v is None or _is_leaked(v, None, leaked) for v in served):
        return None  # e.g. an earlier rollback: the leaked key is what it went back to
    return served[0].hint if served[0] is not None else None


def engine_rotator(config: Config, admin: AdminClient, say: Say) -> Rotator:
    """The seam to ``keyguard.rotation``: force semantics, no grace, no drain."""

    def rotate(env: str, leaked: LeakedKey, serves: bool) -> EnvOutcome:
        from keyguard.rotation import open_engine, rotation_request

        try:
            # An incident cannot wait for a lost journal to come back: rebuild it from the
            # stores (recover) and finish at once, with no grace and no drain.
            engine = open_engine(
                config, env, admin, grace=timedelta(0), force=True, say=say, recover=True
            )
            discarded = discard_leaked_pending(engine, leaked)
            st = engine.latest()
            new = None
            if st is None or not st.in_flight:
                for store in engine.stores:
                    value = store.get(Stage.PENDING)
                    if value is not None and value.fingerprint != leaked.fingerprint:
                        new = value
                        break
            in_flight = st is not None and st.in_flight and st.new.fingerprint != leaked.fingerprint
            if serves and (in_flight or new is not None):
                outcome = engine.rotate(new)
                action = "rotated" if outcome.finished else "waiting"
                return EnvOutcome(env, [], action, outcome.message)
            why = f"its key {leaked.hint} ({leaked.id}) leaked and was deactivated"
            served_again = serve_previous(engine, leaked, say) if serves else None
            if served_again is not None:
                why += f"; meanwhile it serves the previous key {served_again} again"
            if discarded:
                why = (
                    f"the new key {leaked.hint} ({leaked.id}) waiting as pending leaked and was "
                    "deactivated; it was discarded, never put in service"
                )
            request = rotation_request(engine, why)
            text = str(request["text"])
            if served_again is not None:
                text = (
                    f"{env}: the leaked key {leaked.hint} no longer serves: the stores serve the "
                    f"previous key {served_again} again (still active, checked with "
                    f"GET /v1/models). {text}"
                )
            return EnvOutcome(env, [], "waiting", text, request)
        except KeyguardError as exc:
            return EnvOutcome(
                env,
                [],
                "error",
                f"{env}: rotation failed: {exc}. The leaked key stays inactive; once the cause "
                f"is fixed, finish with `keyguard rotate {env} --grace 0 --force`",
                exit_code=int(exc.exit_code),
            )

    return rotate
