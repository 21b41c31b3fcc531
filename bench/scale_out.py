"""Scale-out simulation: ``cp --dask`` jobs of ~10,000 tasks against an object store with latency.

Run by hand, never by the test suite::

    python bench/scale_out.py                       # 10,000 tasks, 20-50 ms a request, ~3 min
    python bench/scale_out.py --tasks 1000 --threads 4   # a smoke run, ~30 s

Every store request (both sides) goes through :class:`LatencyStore`, a file store that first
sleeps a uniform 20-50 ms (--latency), as a first byte from S3 takes, plus the object's bytes at
--bandwidth (one S3 connection moves ~50-100 MB/s). The jobs run on a
``distributed.LocalCluster`` of --workers processes of --threads threads each. Measured:

1. Scheduler overhead: --tasks empty tasks, wall time per task (what the scheduler and the
   workers' task machinery cost, with no I/O at all).
2. Requests per task, bytes per task: the same jobs in this process on a :class:`CountingStore`
   without latency (a count does not depend on the scheduler).
3. The jobs under latency: precomputed -> OME-Zarr with one task per chunk (--tasks tasks, the
   scheduler's worst case), and unsharded -> sharded, one task per shard. Tasks/s, and the
   efficiency: the time a perfect scheduler would take (requests x mean latency / concurrent
   task slots) over the time measured.

Prints a Markdown table; docs/scale-out.md holds one run's and extrapolates from it.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np
from dask.delayed import delayed

import bigarrays as ba
from bigarrays.adapters.dask_copy import convert_on_dask, reshard_on_dask, run_tasks
from bigarrays.stores import open_store
from bigarrays.stores.base import Buffer
from bigarrays.stores.file import FileStore
from bigarrays.testing.counting import CountingStore

CHUNK = 16  # a chunk is 16³ uint8 = 4 KiB: the jobs are about requests, not bytes
SHARD_CHUNKS = 4  # a shard holds 4³ = 64 chunks


class LatencyStore(FileStore):
    """A file store whose every request waits like an object store's: latency plus bytes at a
    bandwidth. Pickles as its settings, so each worker's copy waits the same way."""

    def __init__(self, root: Any, latency: tuple[float, float], bandwidth: float) -> None:
        super().__init__(root)
        self.latency, self.bandwidth = latency, bandwidth

    def __reduce__(self) -> Any:
        return (type(self), (self.root, self.latency, self.bandwidth))

    @property
    def default_concurrency(self) -> int:
        return 32  # requests in flight per array, as the S3 and GCS stores keep by default

    def _wait(self, nbytes: int) -> None:
        time.sleep(random.uniform(*self.latency) + nbytes / self.bandwidth)

    def _get(self, key: str) -> bytes | None:
        value = super()._get(key)
        self._wait(len(value or b""))
        return value

    def _get_encoded_as(self, key: str, encoding: str | None) -> tuple[bytes, str | None] | None:
        found = super()._get_encoded_as(key, encoding)
        self._wait(len(found[0]) if found else 0)
        return found

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        value = super()._get_range(key, start, length)
        self._wait(len(value or b""))
        return value

    def _put(self, key: str, value: Buffer, encoding: str | None) -> str:
        self._wait(memoryview(value).nbytes)
        return super()._put(key, value, encoding)

    def _delete(self, key: str) -> None:
        self._wait(0)
        super()._delete(key)

    def _exists(self, key: str) -> bool:
        self._wait(0)
        return super()._exists(key)

    def _size(self, key: str) -> int | None:
        self._wait(0)
        return super()._size(key)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=10_000, help="chunks of the source (tasks)")
    p.add_argument("--latency", default="20,50", help="ms a request waits: low,high")
    p.add_argument("--bandwidth", type=float, default=80.0, help="MB/s of one request")
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--threads", type=int, default=16, help="threads per worker")
    p.add_argument("--dir", default=None, help="where the datasets go (default: a temp folder)")
    return p.parse_args(argv)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def make_source(root: str, tasks: int) -> tuple[str, tuple[int, int, int]]:
    """A volume of about ``tasks`` chunks, a multiple of whole shards along each axis."""
    side = SHARD_CHUNKS * max(1, round((tasks / SHARD_CHUNKS**3) ** (1 / 3)))
    nz = max(1, round(tasks / side**2))
    grid = (side, side, nz)
    shape = tuple(g * CHUNK for g in grid)
    path = os.path.join(root, "source")
    vol = ba.create(path, shape=shape, dtype="uint8", chunks=(CHUNK,) * 3, progress=False)
    rng = np.random.default_rng(0)
    vol[...] = rng.integers(1, 255, size=shape, dtype=np.uint8)
    return path, (grid[0], grid[1], grid[2])


def _nothing(i: int) -> int:
    return i


def scheduler_overhead(client: Any, tasks: int) -> float:
    """Seconds of wall time per empty task, through the same path the jobs take."""
    task = delayed(_nothing, pure=False)
    run_tasks([task(i) for i in range(200)], [1] * 200, client, False, "")  # warm up
    started = time.perf_counter()
    run_tasks([task(i) for i in range(tasks)], [1] * tasks, client, False, "")
    return (time.perf_counter() - started) / tasks


JOBS = ("to OME-Zarr, a task per chunk", "unsharded -> sharded, a task per shard")


def job(name: str, source: Any, target: Any, scheduler: Any) -> float:
    """Run job ``name`` from ``source`` to ``target``; its seconds."""
    one_chunk = CHUNK**3 * 3  # the memory target of one chunk: a task per chunk
    started = time.perf_counter()
    if name == JOBS[0]:
        convert_on_dask(source, target, "zarr", compression="none", scheduler=scheduler,
                        progress=False, memory_target=one_chunk)  # fmt: skip
    else:
        shard = SHARD_CHUNKS**3 * CHUNK**3
        reshard_on_dask(source, target, shard=True, scheduler=scheduler, progress=False,
                        shard_size_bytes=shard, memory_target=one_chunk)  # fmt: skip
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lo, hi = (float(v) / 1000 for v in args.latency.split(","))
    bandwidth = args.bandwidth * 1e6
    root = tempfile.mkdtemp(prefix="scale-out-", dir=args.dir)
    try:
        path, grid = make_source(root, args.tasks)
        chunks = math.prod(grid)
        shards = math.prod(-(-g // SHARD_CHUNKS) for g in grid)
        tasks = {"to OME-Zarr, a task per chunk": chunks,
                 "unsharded -> sharded, a task per shard": shards}  # fmt: skip
        log(f"source: {grid} chunks of {CHUNK}³ uint8 ({chunks} chunks, {shards} shards of "
            f"{SHARD_CHUNKS}³ chunks); latency {lo * 1e3:.0f}-{hi * 1e3:.0f} ms, "
            f"{args.bandwidth:.0f} MB/s a request; {args.workers} workers x {args.threads} "
            f"threads; {os.cpu_count()} cores")  # fmt: skip

        # Requests per task: counted in this process, without latency.
        counted: dict[str, tuple[int, int]] = {}
        for i, name in enumerate(JOBS):
            source = CountingStore(open_store(path, read_only=True))
            target = CountingStore(open_store(os.path.join(root, f"counted-{i}")))
            job(name, source, target, "threads")
            counted[name] = (source.requests + target.requests,
                             source.bytes_read + target.bytes_written)  # fmt: skip
        log(f"requests and bytes counted: {counted}")

        from distributed import Client, LocalCluster

        with (
            LocalCluster(n_workers=args.workers, threads_per_worker=args.threads,
                         processes=True, dashboard_address=None, host="127.0.0.1",
                         silence_logs=50) as cluster,
            Client(cluster) as client,
        ):  # fmt: skip
            overhead = scheduler_overhead(client, args.tasks)
            log(f"scheduler: {overhead * 1e6:.0f} µs of wall time per empty task")
            measured = {}
            for i, name in enumerate(JOBS):
                target = LatencyStore(os.path.join(root, f"slow-{i}"), (lo, hi), bandwidth)
                measured[name] = job(name, LatencyStore(path, (lo, hi), bandwidth), target, client)
                log(f"{name}: {measured[name]:.1f} s")
        slots = args.workers * args.threads
        mean = (lo + hi) / 2
        rows = [
            "| job | tasks | requests / task | KiB / task | wall s | tasks/s | "
            "requests in flight |",
            "|---|--:|--:|--:|--:|--:|--:|",
            f"| {args.tasks:,} empty tasks | {args.tasks:,} | 0 | 0 | "
            f"{overhead * args.tasks:.1f} | {1 / overhead:,.0f} | — |",
        ]
        for name, seconds in measured.items():
            n = tasks[name]
            requests, nbytes = counted[name]
            per = requests / n
            # Requests waiting at once, on average: the store's latency hidden by concurrency
            # (task slots, and the engine's threads inside a task).
            in_flight = requests * mean / seconds
            rows.append(
                f"| {name} | {n:,} | {per:.1f} | {nbytes / n / 1024:.1f} | {seconds:.1f} | "
                f"{n / seconds:,.0f} | {in_flight:.1f} |"
            )
        print("\n".join(rows))
        print(f"\nmean latency {mean * 1e3:.0f} ms, {slots} task slots "
              f"({args.workers} x {args.threads}); overhead {overhead * 1e6:.0f} µs per task; "
              "one run")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
