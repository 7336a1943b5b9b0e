"""Where the per-repository work runs: this process, a local process pool, or a Dask cluster.

``distributed`` (the ``fleet`` extra) is imported only for ``--executor dask://``. A task that a
pool or cluster loses (a worker killed mid-task) becomes that repository's error.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from typing import Any

from keyguard.errors import UnavailableError, UsageError
from keyguard.fleet.model import RepoResult
from keyguard.fleet.worker import Outcome, Task, fetch, scan_repo

#: Most fetches at once: a fetch mostly waits on the network.
FETCH_THREADS = 32
#: Repositories per Dask task.
DASK_BATCH = 8


def check_executor(executor: str) -> str:
    """``local`` or ``dask://HOST:PORT``; anything else is a usage error."""
    if executor == "local":
        return executor
    address = executor.removeprefix("dask://")
    if not executor.startswith("dask://") or not address or "/" in address:
        raise UsageError(f"--executor {executor!r}: give local or dask://HOST:PORT")
    return executor


def run_tasks(tasks: list[Task], executor: str, jobs: int) -> Iterator[Outcome]:
    """Each task's outcome, in the order they finish."""
    if executor.startswith("dask://"):
        yield from _dask(tasks, executor.removeprefix("dask://"))
    else:
        yield from _local(tasks, jobs)


def _lost(task: Task, exc: BaseException) -> Outcome:
    error = f"the worker running it was lost ({type(exc).__name__})"
    return Outcome(RepoResult(url=task.spec.url, status="error", error=error))


def _local(tasks: list[Task], jobs: int) -> Iterator[Outcome]:
    """Fetches run in threads (they mostly wait on the network), many at once; the reading runs
    in ``jobs`` processes as each fetch ends. A repository whose tips did not move since
    ``--since`` never reaches the pool."""
    pool: ProcessPoolExecutor | None = None
    if jobs > 1 and len(tasks) > 1:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method))
        # Start the workers now, before any fetch thread exists: a fork copies no thread's lock.
        pool.submit(int).result()
    fetchers = ThreadPoolExecutor(max_workers=min(FETCH_THREADS, max(4, jobs * 4)))
    try:
        waiting: dict[Future[Any], Task] = {fetchers.submit(fetch, t): t for t in tasks}
        while waiting:
            done, _ = wait(waiting, return_when=FIRST_COMPLETED)
            for future in done:
                task = waiting.pop(future)
                try:
                    got = future.result()
                except Exception as exc:
                    yield _lost(task, exc)
                    continue
                if isinstance(got, Outcome):
                    yield got
                elif pool is None:
                    yield scan_repo(got)
                else:
                    waiting[pool.submit(scan_repo, got)] = got
    finally:
        fetchers.shutdown(cancel_futures=True)
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _dask(tasks: list[Task], address: str) -> Iterator[Outcome]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise UsageError(
            "--executor dask:// needs Dask distributed: pip install 'keyguard[fleet]'"
        ) from None
    try:
        client: Any = Client(f"tcp://{address}", timeout=30, set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise UnavailableError(
            f"Dask scheduler {address}: cannot connect ({type(exc).__name__}); is it running?"
        ) from None
    # A task is a batch of repositories: a worker fetches a batch's mirrors at once in threads
    # (fetches mostly wait on the network), then reads them one by one.
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        size = max(1, min(DASK_BATCH, len(tasks) // (workers * 4)))
        batches = [tasks[i : i + size] for i in range(0, len(tasks), size)]
        futures = client.map(scan_batch, batches, pure=False)
        by_key = {f.key: b for f, b in zip(futures, batches, strict=True)}
        pending = dask_completed(futures, loop=client.loop)  # type: ignore[no-untyped-call]
    except Exception as exc:
        client.close()
        raise UnavailableError(
            f"Dask scheduler {address}: cannot submit work ({type(exc).__name__})"
        ) from None
    try:
        for future in pending:
            try:
                yield from future.result()
            except Exception as exc:
                for task in by_key[future.key]:
                    yield _lost(task, exc)
    finally:
        client.close()


def scan_batch(tasks: list[Task]) -> list[Outcome]:
    """A few repositories in one Dask task: fetched at once, read one after the other."""
    return list(_local(tasks, 1))
