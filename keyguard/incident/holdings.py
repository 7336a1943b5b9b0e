"""Where the leaked key lives: every stage of every configured store, read concurrently once.

A stage holds the key when its value has the key's fingerprint or its metadata names the key's
id; never by hint alone (anyone can write a string with a real key's hint).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keyguard.config import Config
from keyguard.errors import KeyguardError
from keyguard.keys import Secret
from keyguard.keys import scrub_text as scrub
from keyguard.stores.interface import Stage
from keyguard.stores.reader import STORE_READERS
from keyguard.stores.reader import read_stores as read_all_stores


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


def read_stores(config: Config, workers: int = STORE_READERS) -> Snapshot:
    """Read every stage of every store of every environment, ``workers`` stores at a time."""
    jobs = [(env.name, uri) for env in config.environments.values() for uri in env.stores]
    snapshot = Snapshot()
    reads = read_all_stores([uri for _, uri in jobs], max_workers=workers)
    for environment, uri in jobs:
        read = reads[uri]
        if read.error is not None:
            error = read.error
            text = (
                str(error)
                if isinstance(error, KeyguardError)
                else f"malformed store document ({type(error).__name__}: {error})"
            )
            snapshot.errors[uri] = scrub(text)
            snapshot.error_environments[uri] = environment
            snapshot.error_codes[uri] = read.exit_code
            continue
        for stage, held in read.stages.items():
            key_id = held.version.meta.key_id if held.version is not None else None
            if held.value is not None or key_id is not None:
                snapshot.values.append(StoreValue(environment, uri, stage, held.value, key_id))
    return snapshot
