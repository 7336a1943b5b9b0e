"""Incident response: leaked key -> proof -> id -> deactivate -> environments -> rotations.

Before any write, the leaked string is proven to *be* the key (``prove``: it authenticates
with ``GET /v1/models`` and exactly one active key of the organization has its hint; a hint
alone never is proof). A scan finding is first read again from where the scan found it
(``reread``). Deactivation is the first write (it also puts the leak mark on the key's name)
and comes before anything slow (store reads, the usage report); after it, the stores of every
environment are read concurrently to find where the key lives, and environments that serve
it are rotated at once (no grace, no drain) when a new key is waiting, else asked for one;
meanwhile an environment that served the leaked key goes back to its previous key when that
one is still active, works and never leaked (store operations only: the deactivation stays
the single Admin API write). The exposure report and the audit log live in
``keyguard.incident_report``.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyguard.config import Config
from keyguard.errors import ExitCode, KeyguardError, NotFoundError, UsageError
from keyguard.keys import Secret, is_api_key, leak_mark
from keyguard.keys import scrub_text as scrub
from keyguard.models import ApiKey, Say
from keyguard.stores.interface import Stage, stage_map

if TYPE_CHECKING:
    from keyguard.admin import AdminClient
    from keyguard.rotation import RotationEngine

#: Stores read at once; cloud stores are slow, but a bound keeps us polite to their APIs.
STORE_READERS = 8


@dataclass(frozen=True)
class Target:
    """What the operator gave: a key (from stdin or read again for a scan finding), or an id."""

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
    error_envs: dict[str, str] = field(default_factory=dict)  # store -> its environment
    error_codes: dict[str, int] = field(default_factory=dict)  # store -> the error's exit code

    def holding(self, fp: str | None, key_id: str | None) -> list[Holding]:
        """Stages whose value is the leaked key (its fingerprint) or names its id in metadata.

        Never by hint: anyone can write a string with a real key's hint.
        """
        out: list[Holding] = []
        for v in self.values:
            hit = fp is not None and v.value is not None and v.value.fingerprint == fp
            if hit or (key_id is not None and v.key_id == key_id):
                out.append(Holding(v.environment, v.store, v.stage))
        return out

    def same_hint(self, hint: str | None, fp: str | None, key_id: str | None) -> list[str]:
        """Stores holding a different-or-unidentified value with this hint: checked by hand."""
        out = []
        for v in self.values:
            if v.value is None or hint is None or v.value.hint != hint:
                continue
            if (fp is not None and v.value.fingerprint == fp) or (key_id and v.key_id == key_id):
                continue
            if fp is None and v.key_id is None:
                out.append(f"{v.environment}: {v.store} ({v.stage})")
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

    envs = {uri: env for env, uri in jobs}

    codes: dict[str, int] = {}

    def one(job: tuple[str, str]) -> tuple[str, list[StoreValue] | str]:
        try:
            return job[1], _read_store(*job)
        except KeyguardError as exc:
            codes[job[1]] = int(exc.exit_code)
            return job[1], scrub(str(exc))
        except Exception as exc:  # a malformed store document must not stop an incident
            codes[job[1]] = int(ExitCode.USAGE)
            return job[1], scrub(f"malformed store document ({type(exc).__name__}: {exc})")

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        for uri, result in pool.map(one, jobs):
            if isinstance(result, str):
                snap.errors[uri] = result
                snap.error_envs[uri] = envs[uri]
                snap.error_codes[uri] = codes.get(uri, int(ExitCode.UNAVAILABLE))
            else:
                snap.values.extend(result)
    return snap


# -- from a scan report ----------------------------------------------------------------------


@dataclass(frozen=True)
class ScanFinding:
    """One finding of a scan report: where it was and its fingerprint; never the key."""

    fingerprint: str
    hint: str | None
    path: str | None
    line: int | None
    commit: str | None

    @property
    def where(self) -> str:
        place = f"{self.path or '?'}:{self.line or '?'}"
        return f"{place} in commit {self.commit[:12]}" if self.commit else place


def load_scan(path: Path) -> list[ScanFinding]:
    """The findings of a ``keyguard scan --format json`` report (one per fingerprint+place)."""
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
    out: dict[tuple[str, str | None, str | None], ScanFinding] = {}
    for f in findings:
        if not isinstance(f, dict):
            continue
        fp = f.get("fingerprint")
        if not isinstance(fp, str) or not fp:
            continue

        def text(name: str, f: dict[str, Any] = f) -> str | None:
            value = f.get(name)
            return value if isinstance(value, str) and value else None

        line = f.get("line")
        finding = ScanFinding(
            fp,
            text("redacted"),
            text("path"),
            line if isinstance(line, int) and not isinstance(line, bool) else None,
            text("commit"),
        )
        out.setdefault((fp, finding.path, finding.commit), finding)
    if not out:
        raise NotFoundError(f"the scan report {path} holds no findings: nothing to revoke")
    return list(out.values())


_COMMIT_RE = re.compile(r"[0-9a-fA-F]{4,64}")
#: A file read again for a finding: past this, the scan report is not trusted to point at it.
REREAD_LIMIT = 256 * 1024 * 1024


def reread(finding: ScanFinding, repo: Path) -> Secret | str:
    """The finding's full key, read again from where the scan found it, or why it cannot be.

    A plain file is read at its path (relative paths from ``repo``, the folder the scan ran
    in), a history finding from its commit's blob (``git show COMMIT:PATH`` in ``repo``), an
    archive member through the scanner's own archive reader. The key counts only when its
    fingerprint is the report's: text that changed since the scan is reported, never used.
    """
    from keyguard.scanner.engine import scan_stdin

    label = finding.hint or finding.fingerprint[:12]
    if finding.path is None:
        return f"{label}: the report does not say where the scan found it; not acted on"
    file, _, _member = finding.path.partition("!")
    if finding.commit is not None:
        data = _git_blob(finding.commit, file, repo)
        if isinstance(data, str):
            return f"{label} at {finding.where}: {data}; not acted on"
        stream: Any = io.BytesIO(data)
    else:
        where = Path(file) if Path(file).is_absolute() else repo / file
        try:
            if where.stat().st_size > REREAD_LIMIT:
                return f"{label} at {finding.where}: {where} is too large to read again"
            stream = where.open("rb")
        except OSError as exc:
            return (
                f"{label} at {finding.where}: cannot read {where} again ({exc.strerror}); "
                "not acted on (run revoke where the scan ran, or pass --repo)"
            )
    with stream:
        found = scan_stdin(stream, label=file).findings
    for f in found:
        if f.fingerprint == finding.fingerprint:
            return f.secret
    return (
        f"{label} at {finding.where}: the text there changed since the scan (no key with the "
        "report's fingerprint is there now); not acted on"
    )


def _git_blob(commit: str, file: str, repo: Path) -> bytes | str:
    if not _COMMIT_RE.fullmatch(commit):
        return f"{commit[:40]!r} is not a commit id"
    try:
        proc = subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{file}"],
            capture_output=True,
            cwd=repo,
            check=False,
        )
    except OSError:
        return f"git cannot run in {repo}"
    if proc.returncode != 0:
        return f"git cannot read {file} at commit {commit[:12]} in {repo} (pass --repo)"
    return proc.stdout


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
    """The Admin API's view of an id the operator gave; ``NotFoundError`` (exit 1) if none."""
    if target.key_id is None:
        raise UsageError("nothing to identify: give --leaked -, --key-id or --from-scan")
    try:
        return admin.get_key(target.key_id)
    except NotFoundError:
        raise NotFoundError(
            f"no key {target.key_id} in this organization; check the id with "
            "`keyguard keys list` (or the admin key's organization)"
        ) from None


class NotProvenError(NotFoundError):
    """The leaked string is not proven to be a live key of this organization: no write."""


def authenticates(admin: AdminClient, key: Secret) -> tuple[bool, str]:
    """``GET /v1/models`` with the key itself (free): does it authenticate, and what it said.

    A 400 that demands the ``anthropic-workspace-id`` header comes only after the key
    authenticated: a live organization-scoped key. Unavailable (exit 4) propagates: no proof.
    """
    from keyguard.admin.errors import ApiError

    try:
        result = admin.verify_key(key)
    except ApiError as exc:
        said = (exc.api_message or "").lower()
        if exc.status == 400 and (
            ("anthropic-workspace-id" in said and "required" in said)
            or "not scoped to a workspace" in said
        ):
            return True, "400 (live organization-scoped key: it asks for a workspace)"
        raise
    return result.usable, f"HTTP {result.status_code}"


def prove(
    admin: AdminClient, keys: list[Secret], listing: list[ApiKey] | None = None
) -> list[ApiKey]:
    """For each leaked string, the one key of the organization it provably *is*.

    Proof, before any write: the string authenticates (``GET /v1/models``) and exactly one key
    of the organization has its hint (and that key is active). A hint alone proves nothing:
    anyone who saw a hint can write a look-alike. If any string is not proven, none is acted
    on (``NotProvenError``, exit 1) and the message says why for each.
    """
    for key in keys:
        if not is_api_key(key.reveal()):
            raise UsageError(
                f"{key.hint} is not an Anthropic API key (sk-ant-api03-...): keyguard revokes API "
                "keys only (delete an admin key in the Console)"
            )
    from keyguard.admin.client import key_matches_hint

    if listing is None:
        listing = list(admin.list_keys())
    proven: list[ApiKey] = []
    problems: list[str] = []
    for key in keys:
        same = [k for k in listing if key_matches_hint(key, k.partial_key_hint)]
        live, said = authenticates(admin, key)
        problem = _proof_problem(key, same, live, said)
        if problem is None:
            proven.append(same[0])
        else:
            problems.append(problem)
    if problems:
        several = len(keys) > 1
        raise NotProvenError(
            "; ".join(problems)
            + (f" (none of the {len(keys)} keys was acted on)" if several else "")
            + ". Nothing was changed"
        )
    return proven


def _proof_problem(key: Secret, same: list[ApiKey], live: bool, said: str) -> str | None:
    hint = key.hint
    if not live:
        text = f"{hint} is not a live key of this organization: GET /v1/models refused it ({said})"
        if not same:
            return text + " and no key of the organization has its hint"
        active = [k for k in same if k.status == "active"]
        if active:
            ids = ", ".join(k.id for k in active)
            return (
                text + f"; the active key {ids} only shares its hint: this string is a "
                "look-alike, not that key"
            )
        k = same[0]
        more = f" (and {len(same) - 1} more with that hint)" if len(same) > 1 else ""
        return (
            text + f"; the key with its hint, {k.id} ({k.name!r}){more}, is already {k.status}. "
            f"If you checked that {k.id} is the leaked key, finish the incident (environments, "
            f"report) with `keyguard revoke --key-id {k.id}`"
        )
    if not same:
        return (
            f"{hint} authenticates, but no key of this organization has its hint: it belongs to "
            "another organization (or the admin key cannot see it); revoke it in that "
            "organization's Console"
        )
    if len(same) > 1:
        ids = ", ".join(f"{k.id} ({k.status})" for k in same)
        return (
            f"{hint} authenticates, but {len(same)} keys of this organization share its hint "
            f"({ids}): keyguard cannot prove which one it is; check in the Console, then use "
            "`keyguard revoke --key-id apikey_...`"
        )
    if same[0].status != "active":
        return (
            f"{hint} authenticates, but the one key with its hint, {same[0].id}, is "
            f"{same[0].status}: it is not this string"
        )
    return None


def deactivate(
    admin: AdminClient,
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
        except Exception as exc:  # a malformed store document: this environment only
            return EnvOutcome(
                env,
                [],
                "error",
                f"{env}: rotation failed: {scrub(f'{type(exc).__name__}: {exc}')}. The leaked "
                f"key stays inactive; fix the store, then `keyguard rotate {env} --grace 0 "
                "--force`",
                exit_code=int(ExitCode.USAGE),
            )

    return rotate
