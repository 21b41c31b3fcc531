"""Chunk throughput of the local backends: file, zip, lmdb, fsspec (file and memory), memory.

Run by hand (``python bench/local_stores.py [--chunks 512] [--dir /mnt/nvme/tmp]``). Each backend
gets ``--chunks`` 64³ uint8 chunks (256 KiB each, incompressible so no layer can cheat) put from
the store's ``default_concurrency`` threads, then read back twice (cold handle, then warm), then
read as 4 KiB ranges; the best of ``--repeat`` runs is printed in MiB/s and chunks/s. The page
cache is warm throughout: this measures the stores' own overhead, not the disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bigarrays.stores import Store, open_store

CHUNK = 64**3


def backends(root: Path) -> dict[str, Callable[[], str]]:
    def fresh(make: Callable[[str], str]) -> Callable[[], str]:
        return lambda: make(uuid.uuid4().hex[:8])

    return {
        "file": fresh(lambda n: str(root / f"file-{n}")),
        "zip": fresh(lambda n: str(root / f"zip-{n}.zip")),
        "lmdb": fresh(lambda n: f"lmdb://{root}/lmdb-{n}.lmdb"),
        "fsspec+file": fresh(lambda n: f"fsspec+file://{root}/fsspec-{n}"),
        "fsspec+memory": fresh(lambda n: f"fsspec+memory://bench-{n}"),
        "memory": fresh(lambda n: f"memory://bench-{n}"),
    }


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(url: str, chunks: list[bytes]) -> dict[str, float]:
    keys = [f"1_1_1/{i * 64}-{i * 64 + 64}_0-64_0-64" for i in range(len(chunks))]
    store: Store = open_store(url)
    threads = store.default_concurrency
    out = {}
    with ThreadPoolExecutor(threads) as pool:
        # Closing is part of writing: a zip writes (and flushes) its central directory there.
        out["write"] = timed(lambda: (list(pool.map(store.put, keys, chunks)), store.close()))
        reader = open_store(url, read_only=True)
        out["read"] = timed(lambda: list(pool.map(reader.get, keys)))
        out["read warm"] = timed(lambda: list(pool.map(reader.get, keys)))
        out["4 KiB ranges"] = timed(
            lambda: list(pool.map(lambda k: reader.get_range(k, 100_000, 4096), keys))
        )
        assert reader.get(keys[-1]) == chunks[-1]
        reader.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--only", default=None, help="comma-separated backends")
    args = parser.parse_args()
    chunks = [os.urandom(CHUNK) for _ in range(args.chunks)]
    mib = args.chunks * CHUNK / 2**20
    root = Path(tempfile.mkdtemp(prefix="bigarrays-bench-", dir=args.dir))
    try:
        table = backends(root)
        names = args.only.split(",") if args.only else list(table)
        print(f"{args.chunks} chunks of 64³ uint8 ({mib:.0f} MiB), best of {args.repeat}")
        print(f"{'backend':15} {'threads':>7} " + " ".join(
            f"{c:>22}" for c in ("write", "read", "read warm", "4 KiB ranges")))  # fmt: skip
        for name in names:
            runs = [run(table[name](), chunks) for _ in range(args.repeat)]
            best = {k: min(r[k] for r in runs) for k in runs[0]}
            threads = open_store(table[name]()).default_concurrency
            cells = []
            for column, seconds in best.items():
                rate = args.chunks / seconds
                size = mib / seconds if column != "4 KiB ranges" else rate * 4096 / 2**20
                cells.append(f"{size:8.0f} MiB/s {rate:6.0f}/s")
            print(f"{name:15} {threads:>7} " + " ".join(f"{c:>22}" for c in cells), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
