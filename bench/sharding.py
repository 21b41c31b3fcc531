"""Sharded against unsharded: write and read throughput, and store requests per cutout.

Run by hand, never by the test suite::

    python bench/sharding.py                    # 512³ uint8, 64³ chunks, file store
    python bench/sharding.py --size 256 --repeat 1   # a smoke test

For each layout (unsharded; sharded with the automatic 1 GiB target, which makes the whole 512³
volume one shard; sharded with 16 MiB shards, 4 x 4 x 4 chunks each) it times, on local disk:

- **write**: the whole volume into a fresh dataset (median of --repeat);
- **read**: the whole volume with a freshly opened handle;
- **cutout**: an unaligned box of (size/2)³ at offset (37, 53, 101), fresh handle each time;

and counts the store requests (``bigarrays.testing.counting.CountingStore``) of one cutout with a
cold handle (just opened: the info read included, no minishard index cached) and with a warm one
(the same cutout again), and of one single-voxel read with a cold handle (info read excluded).
Every read is checked against the source. MiB/s are of uncompressed voxels.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.stores import open_store
from bigarrays.synthetic import synthetic_em
from bigarrays.testing.counting import CountingStore

MiB = 2**20
CUTOUT_OFFSET = (37, 53, 101)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        if hasattr(os, "sync"):
            os.sync()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def run_layout(
    name: str, options: dict[str, Any], data: np.ndarray, root: Path, repeat: int, threads: int
) -> dict[str, Any]:
    n = data.shape[0]
    half = n // 2
    cut = tuple(slice(o % half, o % half + half) for o in CUTOUT_OFFSET)
    counter = {"i": 0}

    def write() -> Path:
        counter["i"] += 1
        path = root / f"{name}-{counter['i']}"
        vol = ba.create(path, shape=data.shape, chunks=(64, 64, 64), threads=threads, **options)
        t0 = time.perf_counter()
        vol[...] = data
        write.elapsed = time.perf_counter() - t0  # type: ignore[attr-defined]
        vol.close()
        return path

    write_times = []
    path = root
    for _ in range(repeat):
        gc.collect()
        path = write()
        write_times.append(write.elapsed)  # type: ignore[attr-defined]
    write_s = statistics.median(write_times)

    def read_all() -> np.ndarray:
        with ba.open(path, threads=threads) as vol:
            return vol[...]

    read_s, back = timed(read_all, repeat)
    ok = np.array_equal(back, data)

    def cutout() -> np.ndarray:
        with ba.open(path, threads=threads) as vol:
            return vol[cut]

    cut_s, piece = timed(cutout, repeat)
    ok = ok and np.array_equal(piece, data[cut])

    store = CountingStore(open_store(str(path)))
    vol = ba.open(store, threads=threads)
    vol[cut]
    cold = store.requests
    store.reset()
    vol[cut]
    warm = store.requests
    store.reset()
    cold_vol = ba.open(CountingStore(open_store(str(path))), threads=threads)
    one_store = cold_vol.store
    assert isinstance(one_store, CountingStore)
    one_store.reset()
    cold_vol[n // 3, n // 3, n // 3]
    single = one_store.requests

    files = [p for p in path.rglob("*") if p.is_file() and p.name != "info"]
    nbytes = data.nbytes / MiB
    return {
        "layout": name,
        "write": nbytes / write_s,
        "read": nbytes / read_s,
        "cutout": data[cut].nbytes / MiB / cut_s,
        "cold": cold,
        "warm": warm,
        "single": single,
        "files": len(files),
        "stored": sum(p.stat().st_size for p in files) / MiB,
        "ok": ok,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="edge of the cube (default 512)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--threads", type=int, default=None, help="I/O threads (default: auto)")
    parser.add_argument("--dir", default=None, help="folder for the volumes (default: a temp)")
    args = parser.parse_args(argv)
    n = args.size
    threads = args.threads or max(4, 2 * (os.cpu_count() or 1))
    data = np.asfortranarray(synthetic_em(Box((0, 0, 0), (n, n, n)))).astype(np.uint8)
    layouts: list[tuple[str, dict[str, Any]]] = [
        ("unsharded", {}),
        ("sharded 1 GiB", {"sharding": True}),
        ("sharded 16 MiB", {"sharding": True, "shard_size_bytes": 16 * MiB}),
    ]
    root = Path(tempfile.mkdtemp(prefix="bigarrays-bench-sharding-", dir=args.dir))
    print(f"volume {n}³ uint8 ({data.nbytes / MiB:.0f} MiB), chunks 64³, cutout {(n // 2)}³ at "
          f"{tuple(o % (n // 2) for o in CUTOUT_OFFSET)}, threads {threads}, {args.repeat} "
          f"repeat(s), folder {root}, {os.cpu_count()} cpus", file=sys.stdout)  # fmt: skip
    rows = []
    try:
        for name, options in layouts:
            print(f"... {name}", file=sys.stderr)
            rows.append(run_layout(name, options, data, root, args.repeat, threads))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    header = (f"{'layout':<16}{'write MiB/s':>12}{'read MiB/s':>12}{'cutout MiB/s':>14}"
              f"{'req/cutout cold':>17}{'req/cutout warm':>17}{'req/voxel':>11}{'files':>7}"
              f"{'MiB stored':>12}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in rows:
        if not r["ok"]:
            print(f"{r['layout']:<16}  FAIL: wrong voxels read back")
            continue
        print(f"{r['layout']:<16}{r['write']:>12.0f}{r['read']:>12.0f}{r['cutout']:>14.0f}"
              f"{r['cold']:>17}{r['warm']:>17}{r['single']:>11}{r['files']:>7}"
              f"{r['stored']:>12.1f}")  # fmt: skip
    base = rows[0]
    for r in rows[1:]:
        ratios = (r["write"] / base["write"], r["read"] / base["read"],
                  r["cutout"] / base["cutout"])  # fmt: skip
        print(f"{r['layout']} / unsharded: write {ratios[0]:.2f}x, read {ratios[1]:.2f}x, "
              f"cutout {ratios[2]:.2f}x")  # fmt: skip
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
