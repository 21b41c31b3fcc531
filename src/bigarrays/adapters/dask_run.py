"""Running a list of independent tasks on Dask with the cluster's progress: the one way every
whole-dataset job of bigarrays (``cp --dask``, pyramids with ``scheduler=``) runs its tasks.

A job is a list of delayed tasks, each with a weight (the units of work it does, such as the
chunks it writes); :func:`run_tasks` computes them on a ``distributed.Client``, a scheduler's
address or a local Dask scheduler, and advances a progress bar (:mod:`bigarrays.progress`: a
bar on a terminal, nothing otherwise or with ``progress=False``) by a task's weight when the
scheduler reports that task done, not when it was submitted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from bigarrays.errors import MissingDependencyError, UnsupportedError
from bigarrays.progress import progress_bar
from bigarrays.stores import Store

try:
    from dask.base import compute as dask_compute
    from dask.callbacks import Callback
    from dask.delayed import Delayed, delayed
except ImportError:  # pragma: no cover - the extra is part of the test environment
    raise MissingDependencyError("dask", "dask", "running jobs on Dask") from None

__all__ = ["check_reachable", "graph_key", "run_tasks"]

#: Dask schedulers that run every task in this process.
IN_PROCESS = (None, "threads", "threading", "sync", "synchronous", "single-threaded")


def check_reachable(source: Store, target: Store, scheduler: Any) -> None:
    """Refuse stores that other processes cannot share, before anything is written: a memory
    store (another process sees an empty one of its own, so writes would be lost) and a zip
    file as the destination (writers in several processes would corrupt its directory)."""
    from bigarrays.stores.memory import MemoryStore
    from bigarrays.stores.zip import ZipStore

    if isinstance(scheduler, str | None) and scheduler in IN_PROCESS:
        return
    for store, role in ((source, "source"), (target, "destination")):
        if isinstance(store, MemoryStore) or (
            role == "destination" and isinstance(store, ZipStore)
        ):
            raise UnsupportedError(
                f"the {role} {store.url} cannot be shared by the worker processes of "
                f"{scheduler!r}: use a store that every worker reaches (S3, GCS, a shared file "
                "system), or scheduler='threads'"
            )


def graph_key(value: Any, name: str) -> Delayed:
    """``value`` as a key of its own, which the tasks that take it depend on: it is sent to a
    worker, and unpickled there, once rather than once per task."""
    node: Delayed = delayed(value, name=f"{name}-{uuid.uuid4().hex}", traverse=False)
    return node


def run_tasks(
    tasks: Sequence[Delayed],
    weights: Sequence[int],
    scheduler: Any,
    progress: bool | None,
    description: str,
) -> list[Any]:
    """Compute ``tasks`` on ``scheduler`` and return their results, in order.

    ``scheduler`` is a ``distributed.Client``, a scheduler's address (``tcp://host:8786``, a
    client is opened and closed here) or a local Dask scheduler's name (``"threads"``,
    ``"sync"``, ``"processes"``). The bar advances by a task's weight as the cluster reports
    the task done, so it shows the cluster's progress, not the order of submission.
    """
    client, opened = _client(scheduler)
    try:
        with progress_bar(sum(weights), description, progress) as advance:
            if client is not None:
                return _run_on_client(client, tasks, weights, advance)
            weight = {task.key: w for task, w in zip(tasks, weights, strict=True)}

            def done(key: Any, *_: Any) -> None:
                for _i in range(weight.get(key, 0)):
                    advance()  # type: ignore[misc]

            watch: Any = nullcontext()
            if advance is not None:
                watch = Callback(posttask=done)  # type: ignore[no-untyped-call]
            with watch:
                return list(dask_compute(*tasks, scheduler=scheduler))  # type: ignore[no-untyped-call]
    finally:
        if opened:
            client.close()


def _client(scheduler: Any) -> tuple[Any, bool]:
    """The ``distributed.Client`` that ``scheduler`` names, if any, and whether it was opened
    here (so is closed here)."""
    if isinstance(scheduler, str) and "://" in scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise MissingDependencyError(
                "distributed", "dask", "running on a dask.distributed cluster"
            ) from None
        return Client(scheduler, set_as_default=False), True  # type: ignore[no-untyped-call]
    if scheduler is None or isinstance(scheduler, str):
        return None, False
    try:
        from distributed import Client
    except ImportError:
        return None, False
    return (scheduler, False) if isinstance(scheduler, Client) else (None, False)


def _run_on_client(
    client: Any, tasks: Sequence[Delayed], weights: Sequence[int], advance: Any
) -> list[Any]:
    from distributed import as_completed

    futures = client.compute(list(tasks))
    weight = {future.key: w for future, w in zip(futures, weights, strict=True)}
    try:
        # Following each task costs the client a few hundred microseconds: only for a bar.
        if advance is not None:
            for future in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
                if future.status == "error":
                    future.result()  # raises the task's error here
                for _ in range(weight[future.key]):
                    advance()
        return list(client.gather(futures))
    finally:
        client.cancel(futures)
