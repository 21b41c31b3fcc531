"""``bigarrays demo``: the main job end to end on a local folder, verified and timed.

It writes a synthetic EM-like volume, reads it back whole, cuts out unaligned boxes (some crossing
the bounds) and checks each against the generator, rewrites an unaligned box (read-modify-write of
partial chunks), and prints the throughput of each step.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from bigarrays.api import create
from bigarrays.array import BigArray
from bigarrays.box import Box
from bigarrays.synthetic import synthetic_em

MiB = 2**20
T = TypeVar("T")


class DemoFailure(AssertionError):
    """The demo read back something other than what it wrote."""


def generate(shape: tuple[int, ...], threads: int) -> np.ndarray:
    """The whole synthetic volume, computed slab by slab on ``threads`` threads."""
    out = np.empty(shape, dtype=np.uint8, order="F")
    step = 16

    def slab(z0: int) -> None:
        z1 = min(z0 + step, shape[2])
        out[:, :, z0:z1] = synthetic_em(Box((0, 0, z0), (shape[0], shape[1], z1)))

    with cf.ThreadPoolExecutor(threads) as pool:
        list(pool.map(slab, range(0, shape[2], step)))
    return out


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def _rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MiB:8.1f} MiB in {seconds:6.2f} s = {nbytes / MiB / seconds:7.1f} MiB/s"


def _random_boxes(bounds: Box, count: int, rng: random.Random) -> list[Box]:
    """Unaligned boxes of varied sizes; a few reach past the bounds (those voxels read as 0)."""
    boxes = []
    for i in range(count):
        shape = [rng.randint(1, max(1, min(200, n))) for n in bounds.shape]
        start = []
        for axis, n in enumerate(shape):
            lo, hi = bounds.start[axis], bounds.stop[axis]
            if i % 5 == 0:  # every fifth box straddles an edge of the volume
                start.append(rng.choice([lo - n // 2, hi - n // 2]))
            else:
                start.append(rng.randint(lo, max(lo, hi - n)))
        boxes.append(Box(start, [a + n for a, n in zip(start, shape, strict=True)]))
    return boxes


def _truth(box: Box, bounds: Box) -> np.ndarray:
    """What a read of ``box`` must return: the generator inside the bounds, 0 outside."""
    out = np.zeros(box.shape, dtype=np.uint8, order="F")
    inside = box.intersect(bounds)
    if not inside.empty:
        out[inside.slices(box.start)] = synthetic_em(inside)
    return out


def run_demo(
    folder: Path,
    shape: tuple[int, ...] = (1024, 1024, 256),
    *,
    threads: int | None = None,
    quiet: bool = False,
    compression: str | None = None,
    cutouts: int = 24,
) -> int:
    folder = folder.expanduser().resolve()
    url = folder / "em"
    progress = False if quiet else None
    workers = os.cpu_count() or 1
    nbytes = int(np.prod(shape))

    print(f"bigarrays demo: a {' x '.join(map(str, shape))} uint8 EM-like volume "
          f"({nbytes / MiB:.0f} MiB), 64^3 chunks, {compression or 'raw'}, in {url}")  # fmt: skip
    data, t = _timed(lambda: generate(shape, workers))
    print(f"  generate  {_rate(nbytes, t)}  (synthetic data, in memory)")

    vol: BigArray = create(
        url, shape=shape, dtype="uint8", chunks=(64, 64, 64), resolution=(8, 8, 40),
        compression=compression, overwrite=True, threads=threads, progress=progress,
    )  # fmt: skip

    def write_all() -> None:
        vol[:, :, :] = data

    _, t = _timed(write_all)
    stored = sum(vol.store.size(k) or 0 for k in vol.store.list(vol.scale.key + "/"))
    print(f"  write     {_rate(nbytes, t)}  ({vol.num_chunks} chunks, "
          f"{stored / MiB:.1f} MiB on disk)")  # fmt: skip

    back, t = _timed(lambda: vol[:, :, :])
    print(f"  read      {_rate(nbytes, t)}")
    if not np.array_equal(back, data):
        raise DemoFailure("the volume read back differs from what was written")
    del back

    rng = random.Random(20261121)
    boxes = _random_boxes(vol.bounds, cutouts, rng)
    total, elapsed = 0, 0.0
    for box in boxes:
        cut, t = _timed(lambda: vol[box])  # noqa: B023 - called before the loop moves on
        total, elapsed = total + cut.nbytes, elapsed + t
        if not np.array_equal(cut, _truth(box, vol.bounds)):
            raise DemoFailure(f"cutout {box} differs from the generator")
    print(f"  cutouts   {_rate(total, elapsed)}  ({len(boxes)} unaligned boxes, "
          f"{sum(1 for b in boxes if not vol.bounds.contains(b))} crossing the bounds, "
          "all verified)")  # fmt: skip

    # An unaligned write touches partial chunks: they must be read, merged and rewritten.
    b = vol.bounds
    box = Box(
        [b.start[i] + min(37, b.shape[i] // 3) for i in range(3)],
        [b.start[i] + min(37, b.shape[i] // 3) + max(1, b.shape[i] // 3) for i in range(3)],
    )
    patch = 255 - data[box.slices()]
    _, t = _timed(lambda: vol.__setitem__(box, patch))
    expected = data.copy(order="F")
    expected[box.slices()] = patch
    grown = Box([max(b.start[i], box.start[i] - 64) for i in range(3)],
                [min(b.stop[i], box.stop[i] + 64) for i in range(3)])  # fmt: skip
    if not np.array_equal(vol[grown], expected[grown.slices()]):
        raise DemoFailure(f"unaligned write of {box} did not read back, or disturbed neighbours")
    print(f"  rewrite   {_rate(patch.nbytes, t)}  (unaligned {box}, partial chunks merged, "
          "verified with its neighbours)")  # fmt: skip
    vol[box] = data[box.slices()]
    vol.close()

    # A middle z plane of at most 512 x 512 voxels, inside whatever shape was asked for.
    x1, y1, z = min(512, shape[0]), min(512, shape[1]), shape[2] // 2
    print(
        "\nAll checks passed. Look at it:\n"
        f"  in Python:      import bigarrays as ba; vol = ba.open({str(url)!r}); "
        f"vol[0:{x1}, 0:{y1}, {z}]\n"
        f"  from the shell: bigarrays info {url}\n"
        f"                  bigarrays cutout {url} 0:{x1},0:{y1},{z}:{z + 1} -o slice.tif\n"
        f"  in Neuroglancer: serve {folder} with CORS headers, e.g.\n"
        f"                  npx http-server {folder} -p 8000 --cors\n"
        "                  then add the layer source precomputed://http://127.0.0.1:8000/em\n"
        "                  in a Neuroglancer viewer (e.g. https://neuroglancer-demo.appspot.com)"
    )
    return 0
