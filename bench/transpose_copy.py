"""The copy of a C-ordered chunk into Fortran order: NumPy's ``np.copyto`` against
``bigarrays.transpose.fortran_copy`` (the compiled word-wise kernel the engine cuts pieces with).

Run by hand, never by the test suite::

    python bench/transpose_copy.py                 # 64³ and 128³, uint8/uint16/uint32/float32
    python bench/transpose_copy.py --sizes 64 256

Prints MiB/s of the copy alone (the best of --repeat timings of a loop over ~200 MB, after an
untimed call that compiles or loads the kernel), each result checked against NumPy's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from bigarrays.transpose import fortran_copy

MiB = 2**20


def rate(run: Callable[[], object], nbytes: int, repeat: int) -> float:
    loops = max(3, int(200e6 // nbytes))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(loops):
            run()
        best = min(best, (time.perf_counter() - start) / loops)
    return nbytes / best / MiB


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="cube edges")
    p.add_argument("--dtypes", nargs="+", default=["uint8", "uint16", "uint32", "float32"])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| copy | np.copyto MiB/s | fortran_copy MiB/s | ratio |")
    print("|---|--:|--:|--:|")
    for n in args.sizes:
        for name in args.dtypes:
            a = rng.integers(0, 1 << 16, size=(n, n, n)).astype(name)
            out = np.empty(a.shape, dtype=a.dtype, order="F")
            fortran_copy(a, out)
            if out.tobytes(order="F") != np.asfortranarray(a).tobytes(order="F"):
                raise SystemExit(f"{n}³ {name}: wrong result")
            numpy = rate(lambda a=a, out=out: np.copyto(out, a), a.nbytes, args.repeat)
            ours = rate(lambda a=a, out=out: fortran_copy(a, out), a.nbytes, args.repeat)
            print(f"| {n}³ {name} | {numpy:,.0f} | {ours:,.0f} | {ours / numpy:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
