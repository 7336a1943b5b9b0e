"""Reading every environment's stores concurrently: stages, hints and fingerprints, no keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

from keyguard.audit.model import StageView, StoreView
from keyguard.keys import Secret, is_api_key
from keyguard.keys import scrub_text as scrub
from keyguard.stores.interface import SecretStore, Stage, VersionMeta, stage_map

Opener = Callable[[str], SecretStore]
#: ``(done, total)`` after each store read.
StoreProgress = Callable[[int, int], None]


def _stage_view(secret: Secret | None, meta: VersionMeta | None) -> StageView | None:
    if secret is None:
        return None
    meta = meta or VersionMeta()
    hint, fp = secret.hint, secret.fingerprint
    mismatch = bool(
        (meta.fingerprint and meta.fingerprint != fp) or (meta.hint and meta.hint != hint)
    )
    return StageView(
        key_id=meta.key_id,
        hint=hint,
        fingerprint=fp,
        stored_at=meta.stored_at,
        meta_mismatch=mismatch,
        well_formed=is_api_key(secret.reveal()),
    )


def read_store(uri: str, opener: Opener) -> StoreView:
    """Describe one store and read each stage it has; an error becomes part of the view."""
    try:
        store = opener(uri)
        stages = stage_map(store.describe())
        views: dict[Stage, StageView | None] = {}
        for stage in (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS):
            if stage is not Stage.CURRENT and stage not in stages:
                views[stage] = None
                continue
            meta = stages[stage].meta if stage in stages else None
            views[stage] = _stage_view(store.get(stage), meta)
    except Exception as exc:  # one broken store must not hide the rest of the report
        # The reason already names the store: do not say it twice when the error does too.
        text = str(exc).removeprefix(f"store {uri}: ")
        return StoreView(uri=uri, error=scrub(f"{type(exc).__name__}: {text}"))
    return StoreView(
        uri=uri,
        current=views[Stage.CURRENT],
        pending=views[Stage.PENDING],
        previous=views[Stage.PREVIOUS],
    )


def read_stores(
    uris: Iterable[str],
    opener: Opener,
    *,
    max_workers: int = 8,
    progress: StoreProgress | None = None,
) -> dict[str, StoreView]:
    """Every distinct store URI read at most ``max_workers`` at a time."""
    unique = list(dict.fromkeys(uris))
    out: dict[str, StoreView] = {}
    if not unique:
        return out
    with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="audit") as pool:
        futures: dict[Future[StoreView], str] = {
            pool.submit(read_store, uri, opener): uri for uri in unique
        }
        for done, future in enumerate(as_completed(futures), 1):
            out[futures[future]] = future.result()
            if progress is not None:
                progress(done, len(unique))
    return out
