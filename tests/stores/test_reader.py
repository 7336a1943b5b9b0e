"""The one concurrent reader of stores: each distinct store once, its errors kept with it."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from keyguard.errors import ExitCode, UnavailableError
from keyguard.keys import generate_key
from keyguard.stores import SecretStore, Stage, open_store
from keyguard.stores.interface import VersionMeta
from keyguard.stores.reader import read_stores


def rotated_file_store(folder: Path) -> tuple[str, list[str]]:
    """A file store with a current and a previous key; returns its URI and their hints."""
    uri = f"file:{folder / f'{uuid.uuid4().hex[:8]}.json'}"
    store = open_store(uri)
    hints = []
    for n in range(2):
        key = generate_key()
        store.put_pending(key, VersionMeta(token=f"t{n}", key_id=f"apikey_{n}", hint=key.hint))
        store.promote(f"t{n}")
        hints.append(key.hint)
    return uri, hints


def test_every_stage_of_every_store_is_read_and_one_broken_store_hides_nothing(
    tmp_path: Path,
) -> None:
    good, hints = rotated_file_store(tmp_path)
    empty = f"file:{tmp_path / 'empty.json'}"
    down = "aws-sm://us-east-1/down"
    odd = "file:/odd"
    opened: list[str] = []

    def opener(uri: str) -> SecretStore:
        opened.append(uri)
        if uri == down:
            raise UnavailableError(f"store {uri}: cannot reach it")
        if uri == odd:
            raise TypeError("a store document of a shape nobody expected")
        return open_store(uri)

    reads = read_stores([good, down, empty, good, odd], opener=opener, max_workers=2)
    assert list(reads) == [good, down, empty, odd], "each distinct store once, in order"
    assert sorted(opened) == sorted([good, down, empty, odd])
    current, previous = reads[good].stages[Stage.CURRENT], reads[good].stages[Stage.PREVIOUS]
    assert current.value is not None and current.value.hint == hints[1]
    assert previous.value is not None and previous.value.hint == hints[0]
    assert current.version is not None and current.version.meta.key_id == "apikey_1"
    assert Stage.PENDING not in reads[good].stages
    assert reads[empty].stages == {} and reads[empty].error is None
    assert isinstance(reads[down].error, UnavailableError)
    assert reads[down].exit_code == ExitCode.UNAVAILABLE
    assert isinstance(reads[odd].error, TypeError)
    assert reads[odd].exit_code == ExitCode.USAGE, "an error that is not keyguard's: exit 2"


def test_reads_overlap_up_to_the_bound_and_report_progress(tmp_path: Path) -> None:
    uris = [f"file:{tmp_path / f'{n}.json'}" for n in range(6)]
    lock, running, most = threading.Lock(), [0], [0]
    everyone_waits = threading.Barrier(3, timeout=10)

    def opener(uri: str) -> SecretStore:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        everyone_waits.wait()  # three reads must be in flight together, or this times out
        with lock:
            running[0] -= 1
        return open_store(uri)

    seen: list[tuple[int, int]] = []
    reads = read_stores(
        uris, opener=opener, max_workers=3, progress=lambda *step: seen.append(step)
    )
    assert all(read.error is None for read in reads.values())
    assert most[0] == 3
    assert seen == [(n, 6) for n in range(1, 7)]
