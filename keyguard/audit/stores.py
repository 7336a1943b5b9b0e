"""The audit's view of every environment's stores: stages, hints and fingerprints, no keys.

The stores are read by the one concurrent reader, :func:`keyguard.stores.reader.read_stores`;
this module keeps what the audit shows of each read.
"""

from __future__ import annotations

from collections.abc import Iterable

from keyguard.audit.model import StageView, StoreView
from keyguard.keys import Secret, is_api_key
from keyguard.keys import scrub_text as scrub
from keyguard.stores import reader
from keyguard.stores.interface import Stage, VersionMeta
from keyguard.stores.reader import Opener, StoreRead
from keyguard.stores.reader import ReadProgress as StoreProgress

__all__ = ["Opener", "StoreProgress", "read_store", "read_stores"]


def _stage_view(secret: Secret | None, meta: VersionMeta | None) -> StageView | None:
    if secret is None:
        return None
    meta = meta or VersionMeta()
    hint, fingerprint = secret.hint, secret.fingerprint
    mismatch = bool(
        (meta.fingerprint and meta.fingerprint != fingerprint) or (meta.hint and meta.hint != hint)
    )
    return StageView(
        key_id=meta.key_id,
        hint=hint,
        fingerprint=fingerprint,
        stored_at=meta.stored_at,
        meta_mismatch=mismatch,
        well_formed=is_api_key(secret.reveal()),
    )


def store_view(read: StoreRead) -> StoreView:
    """What the audit shows of one store read: each stage's key as hints, or the error."""
    if read.error is not None:
        # The reason already names the store: do not say it twice when the error does too.
        text = str(read.error).removeprefix(f"store {read.uri}: ")
        return StoreView(uri=read.uri, error=scrub(f"{type(read.error).__name__}: {text}"))
    views: dict[Stage, StageView | None] = {}
    for stage in (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS):
        held = read.stages.get(stage)
        meta = held.version.meta if held is not None and held.version is not None else None
        views[stage] = _stage_view(held.value if held is not None else None, meta)
    return StoreView(
        uri=read.uri,
        current=views[Stage.CURRENT],
        pending=views[Stage.PENDING],
        previous=views[Stage.PREVIOUS],
    )


def read_store(uri: str, opener: Opener) -> StoreView:
    """Describe one store and read each stage it has; an error becomes part of the view."""
    return store_view(reader.read_store(uri, opener))


def read_stores(
    uris: Iterable[str],
    opener: Opener,
    *,
    max_workers: int = 8,
    progress: StoreProgress | None = None,
) -> dict[str, StoreView]:
    """Every distinct store URI read at most ``max_workers`` at a time."""
    reads = reader.read_stores(uris, opener=opener, max_workers=max_workers, progress=progress)
    return {uri: store_view(read) for uri, read in reads.items()}
