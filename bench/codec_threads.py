"""Do reads and writes scale with threads for each encoding? A codec holding the GIL says no.

    python bench/codec_threads.py               # 1 thread against every core count up to 4
    python bench/codec_threads.py --threads 1,2,8

For each encoding (and gzip on raw), one volume is written once to a temp folder on local disk,
then read whole and written whole again through ``bigarrays`` with 1, 2, ... threads (a fresh
handle each time, best of ``--repeat``). The speedup column is the rate with the most threads
divided by the rate with one: near the thread count when the codec releases the GIL, near 1 when
it holds it (so the pipeline's threads wait on each other).

Volumes as in ``bench/codecs.py``: EM-like uint8 for jpeg, png and gzip, uint64 labels for
compressed_segmentation; 64³ chunks.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import bigarrays as ba

MiB = 2**20


def _codec_bench() -> Any:
    """``bench/codecs.py`` (by path: its name would shadow the standard ``codecs`` module)."""
    spec = importlib.util.spec_from_file_location(
        "bench_codecs", Path(__file__).resolve().parent / "codecs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_codecs"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


CASES: dict[str, tuple[str, dict[str, str]]] = {
    "raw": ("em", {}),
    "gzip": ("em", {"compression": "gzip"}),
    "jpeg": ("em", {"encoding": "jpeg"}),
    "png": ("em", {"encoding": "png"}),
    "compressed_segmentation": ("labels", {"encoding": "compressed_segmentation"}),
}


def best_rate(fn: Callable[[], object], nbytes: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return nbytes / MiB / best


def read_rate(url: str, threads: int, nbytes: int, repeat: int) -> float:
    reader = ba.open(url, threads=threads, progress=False)
    return best_rate(lambda: reader[...], nbytes, repeat)


def write_rate(url: str, threads: int, volume: np.ndarray, repeat: int) -> float:
    writer = ba.open(url, mode="r+", threads=threads, progress=False)

    def write() -> None:
        writer[...] = volume

    return best_rate(write, volume.nbytes, repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cpus = os.cpu_count() or 1
    default_threads = ",".join(str(t) for t in sorted({1, min(cpus, 2), min(cpus, 4)}))
    parser.add_argument("--threads", default=default_threads, help="thread counts to compare")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=256, help="edge of the x and y sides (256)")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    shape = (args.size, args.size, args.size // 2)
    bench_codecs = _codec_bench()
    volumes = {"em": bench_codecs.em_volume(shape), "labels": bench_codecs.label_volume(shape)}
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"# {cpus} cpus, load {load}; volume {shape}, 64³ chunks, best of {args.repeat}; MiB/s")
    head = f"{'encoding':24} {'op':5} " + " ".join(f"{f'{t} thr':>8}" for t in threads)
    print(head + f" {'speedup':>8}")
    print("-" * (len(head) + 9))
    with tempfile.TemporaryDirectory(prefix="bigarrays-threads-") as root:
        for name, (kind, options) in CASES.items():
            volume = volumes[kind]
            url = f"file://{root}/{name}"
            ba.create(url, shape=volume.shape, dtype=volume.dtype, progress=False, **options)[
                ...
            ] = volume
            reads = [read_rate(url, t, volume.nbytes, args.repeat) for t in threads]
            writes = [write_rate(url, t, volume, args.repeat) for t in threads]
            for op, rates in (("read", reads), ("write", writes)):
                cells = " ".join(f"{r:8,.0f}" for r in rates)
                print(f"{name:24} {op:5} {cells} {rates[-1] / rates[0]:7.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
