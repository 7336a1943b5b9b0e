"""Where the leaked key lives: every stage of every configured store, read concurrently once.

A stage holds the key when its value has the key's fingerprint or its metadata names the key's
id; never by hint alone (anyone can write a string with a real key's hint).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from keyguard.config import Config
from keyguard.errors import ExitCode, KeyguardError
from keyguard.keys import Secret
from keyguard.keys import scrub_text as scrub
from keyguard.stores import open_store
from keyguard.stores.interface import Stage, stage_map

#: Stores read at once; cloud stores are slow, but a bound keeps us polite to their APIs.
STORE_READERS = 8


@dataclass(frozen=True)
class LeakedKey:
    """A proven leaked key as the stores are searched for it: id, hint, fingerprint if known."""

    id: str
    hint: str
    fingerprint: str | None  # None: revoked by --key-id, its value never seen

    def is_value(self, value: Secret | None, key_id: str | None) -> bool:
        """Is this stored value (or, with no fingerprint to compare, its metadata id) this key?"""
        if value is not None and self.fingerprint is not None:
            return value.fingerprint == self.fingerprint
        return key_id is not None and key_id == self.id


@dataclass(frozen=True)
class Holding:
    """One store stage that holds the leaked key."""

    environment: str
    store: str
    stage: Stage


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
    error_environments: dict[str, str] = field(default_factory=dict)  # store -> environment
    error_codes: dict[str, int] = field(default_factory=dict)  # store -> the error's exit code

    def holding(self, leaked: LeakedKey) -> list[Holding]:
        """Stages whose value is the leaked key (its fingerprint) or names its id in metadata."""
        found: list[Holding] = []
        for item in self.values:
            same_value = (
                leaked.fingerprint is not None
                and item.value is not None
                and item.value.fingerprint == leaked.fingerprint
            )
            if same_value or item.key_id == leaked.id:
                found.append(Holding(item.environment, item.store, item.stage))
        return found

    def same_hint(self, leaked: LeakedKey) -> list[str]:
        """Stores holding an unidentified value with the key's hint: to be checked by hand."""
        found = []
        for item in self.values:
            if item.value is None or item.value.hint != leaked.hint:
                continue
            if leaked.fingerprint is not None and item.value.fingerprint == leaked.fingerprint:
                continue
            if leaked.id and item.key_id == leaked.id:
                continue
            if leaked.fingerprint is None and item.key_id is None:
                found.append(f"{item.environment}: {item.store} ({item.stage})")
        return found


def _read_store(environment: str, uri: str) -> list[StoreValue]:
    store = open_store(uri)
    versions = stage_map(store.describe())
    found = []
    for stage in (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS):
        version = versions.get(stage)
        value = store.get(stage) if version is not None or stage is Stage.CURRENT else None
        key_id = version.meta.key_id if version else None
        if value is not None or key_id is not None:
            found.append(StoreValue(environment, uri, stage, value, key_id))
    return found


def read_stores(config: Config, workers: int = STORE_READERS) -> Snapshot:
    """Read every stage of every store of every environment, ``workers`` stores at a time."""
    jobs = [(env.name, uri) for env in config.environments.values() for uri in env.stores]
    snapshot = Snapshot()
    if not jobs:
        return snapshot
    environments = {uri: environment for environment, uri in jobs}
    codes: dict[str, int] = {}

    def read_one(job: tuple[str, str]) -> tuple[str, list[StoreValue] | str]:
        try:
            return job[1], _read_store(*job)
        except KeyguardError as exc:
            codes[job[1]] = int(exc.exit_code)
            return job[1], scrub(str(exc))
        except Exception as exc:  # a malformed store document must not stop an incident
            codes[job[1]] = int(ExitCode.USAGE)
            return job[1], scrub(f"malformed store document ({type(exc).__name__}: {exc})")

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        for uri, result in pool.map(read_one, jobs):
            if isinstance(result, str):
                snapshot.errors[uri] = result
                snapshot.error_environments[uri] = environments[uri]
                snapshot.error_codes[uri] = codes.get(uri, int(ExitCode.UNAVAILABLE))
            else:
                snapshot.values.extend(result)
    return snapshot
