"""Pooling kernels of pyramids: bigarrays beside tinybrain and TensorStore, in memory.

    python bench/pooling.py                 # 512x512x256, 3 repeats (~1 min on 2 cores)
    python bench/pooling.py --quick         # 128x128x64, one repeat: a smoke test
    python bench/pooling.py --noise         # adds a worst case: labels that change every voxel

Two volumes, Fortran-ordered (x, y, z) as precomputed blocks are: an EM-like uint8 image
(``bigarrays.synthetic``) pooled by ``mean`` and a uint64 label volume (wavy cells with hashed
64-bit ids, as in ``bench/codecs.py``) pooled by ``mode``, each into the levels 2x2x2, 4x4x4 and
8x8x8. Every tool computes the three levels from the same array in memory, on one thread; the
best of ``--repeat`` runs is kept.

- bigarrays: ``pool_levels(volume, (0, 0, 0), [(2,)*3, (4,)*3, (8,)*3], method)``, one call.
- tinybrain: ``downsample_with_averaging`` / ``downsample_segmentation`` with ``num_mips=3``.
  It builds each level from the one before (rounded means of rounded means, modes of modes),
  so its coarser levels differ from the others'; its speed is the figure of interest.
- TensorStore: ``ts.downsample(ts.array(volume), [f]*3, method).read()`` for each level.

Outside the timers, every bigarrays level is compared with TensorStore's (bit for bit); a
mismatch prints FAIL and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorstore as ts
import tinybrain

from bigarrays.box import Box
from bigarrays.ops.pooling import pool_levels
from bigarrays.synthetic import synthetic_em

FACTORS = [(2, 2, 2), (4, 4, 4), (8, 8, 8)]


def _label_volume(shape: tuple[int, int, int]) -> np.ndarray:
    # bench/codecs.py is loaded by path: on sys.path it would shadow the standard codecs module.
    spec = importlib.util.spec_from_file_location(
        "bench_codecs", Path(__file__).with_name("codecs.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    labels: np.ndarray = module.label_volume(shape)
    return labels


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return best, result


def tensorstore_levels(volume: np.ndarray, method: str) -> list[np.ndarray]:
    source = ts.array(volume)
    return [ts.downsample(source, list(f), method).read().result() for f in FACTORS]


def tinybrain_levels(volume: np.ndarray, method: str) -> list[np.ndarray]:
    if method == "mean":
        return list(tinybrain.downsample_with_averaging(volume, (2, 2, 2), num_mips=3))
    return list(tinybrain.downsample_segmentation(volume, (2, 2, 2), num_mips=3))


def ours(volume: np.ndarray, method: str) -> list[np.ndarray]:
    return [a for a, _ in pool_levels(volume, (0, 0, 0), FACTORS, method)]


def row(name: str, volume: np.ndarray, method: str, repeat: int) -> bool:
    mib = volume.nbytes / 2**20
    t_ours, got = best_of(repeat, lambda: ours(volume, method))
    t_tiny, _ = best_of(repeat, lambda: tinybrain_levels(volume, method))
    t_ts, want = best_of(repeat, lambda: tensorstore_levels(volume, method))
    same = all(
        a.shape == b.shape and np.array_equal(a, b)
        for a, b in zip(got, want, strict=True)  # type: ignore[arg-type]
    )
    verdict = "" if same else "  FAIL: bigarrays differs from TensorStore"
    print(
        f"{name:<28} {mib:7.0f} MiB  bigarrays {t_ours:7.3f} s  tinybrain {t_tiny:7.3f} s "
        f"({t_tiny / t_ours:4.1f}x)  tensorstore {t_ts:7.3f} s ({t_ts / t_ours:4.1f}x){verdict}",
        flush=True,
    )
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="512,512,256", help="x,y,z of both volumes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="128,128,64 and one repeat")
    parser.add_argument("--noise", action="store_true", help="also random labels (worst case)")
    args = parser.parse_args()
    shape = (128, 128, 64) if args.quick else tuple(int(v) for v in args.shape.split(","))
    repeat = 1 if args.quick else args.repeat
    assert len(shape) == 3
    print(f"levels 2x2x2, 4x4x4, 8x8x8 of {shape}, best of {repeat}; ratio = their s / our s")
    image = np.asfortranarray(synthetic_em(Box((0, 0, 0), shape)))
    ok = row("uint8 EM image, mean", image, "mean", repeat)
    del image
    labels = _label_volume(shape)  # type: ignore[arg-type]
    ok &= row("uint64 labels, mode", labels, "mode", repeat)
    if args.noise:
        rng = np.random.default_rng(0)
        noise = np.asfortranarray(rng.integers(0, 2**40, size=shape, dtype=np.uint64))
        ok &= row("uint64 noise labels, mode", noise, "mode", repeat)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
