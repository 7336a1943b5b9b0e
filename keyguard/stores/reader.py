"""Reading many stores at once: every stage of every store, a bounded number at a time.

The one concurrent reader of stores (the audit and incident response both use it). A store
that cannot be read does not stop the others: its error is kept in its ``StoreRead`` for the
caller to report. Keys read here stay ``Secret`` values; callers keep what they need of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from keyguard.errors import ExitCode, KeyguardError
from keyguard.keys import Secret
from keyguard.stores import open_store
from keyguard.stores.interface import SecretStore, Stage, StoreVersion, stage_map

#: Opens a store by URI (``keyguard.stores.open_store``, or a test's fake).
Opener = Callable[[str], SecretStore]
#: ``(done, total)`` after each store read.
ReadProgress = Callable[[int, int], None]
#: Stores read at once: cloud stores are slow, but a bound keeps us polite to their APIs.
STORE_READERS = 8


@dataclass(frozen=True)
class StageRead:
    """One stage of a store: the key it holds and the version's metadata (either may be None:
    a key put there by hand has no keyguard metadata, a retired version no value)."""

    value: Secret | None
    version: StoreVersion | None


@dataclass(frozen=True)
class StoreRead:
    """What one store holds at each stage, or the error that kept it from being read."""

    uri: str
    stages: Mapping[Stage, StageRead] = field(default_factory=dict)
    error: Exception | None = None

    @property
    def exit_code(self) -> int:
        """The error's exit code; 2 for an error that is not keyguard's (a malformed store)."""
        if self.error is None:
            return int(ExitCode.OK)
        if isinstance(self.error, KeyguardError):
            return int(self.error.exit_code)
        return int(ExitCode.USAGE)


def read_store(uri: str, opener: Opener | None = None) -> StoreRead:
    """Describe one store, then read each stage it has (``current`` always)."""
    try:
        store = (opener or open_store)(uri)
        versions = stage_map(store.describe())
        stages: dict[Stage, StageRead] = {}
        for stage in (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS):
            version = versions.get(stage)
            if version is None and stage is not Stage.CURRENT:
                continue
            value = store.get(stage)
            if value is not None or version is not None:
                stages[stage] = StageRead(value, version)
    except Exception as exc:  # one broken store must not hide the others
        return StoreRead(uri, error=exc)
    return StoreRead(uri, stages)


def read_stores(
    uris: Iterable[str],
    *,
    opener: Opener | None = None,
    max_workers: int = STORE_READERS,
    progress: ReadProgress | None = None,
) -> dict[str, StoreRead]:
    """Every distinct URI of ``uris`` read, at most ``max_workers`` at a time, in their order."""
    unique = list(dict.fromkeys(uris))
    if not unique:
        return {}
    done: dict[str, StoreRead] = {}
    workers = max(1, min(max_workers, len(unique)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keyguard-store") as pool:
        futures: dict[Future[StoreRead], str] = {
            pool.submit(read_store, uri, opener): uri for uri in unique
        }
        for count, future in enumerate(as_completed(futures), 1):
            done[futures[future]] = future.result()
            if progress is not None:
                progress(count, len(unique))
    return {uri: done[uri] for uri in unique}
