"""``bigarrays downsample``: add a pyramid's levels to a dataset and write them."""

from __future__ import annotations

import argparse
import time
from typing import Any

from bigarrays.api import open
from bigarrays.cli import (
    _byte_size,
    _progress_setting,
    _store_options,
    human_bytes,
    parse_box,
    parse_ints,
)
from bigarrays.ops.pooling import METHODS
from bigarrays.ops.pyramid import DEFAULT_MEMORY_TARGET


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "downsample", help="build a pyramid: add downsampled levels (mips) and write them",
        description="Add levels 1, 2, ... to the dataset at URL, each level 0 pooled by its "
        "cumulative factor exactly as tensorstore.downsample computes it, and write them block "
        "by block within --memory. Precomputed volumes get new scales, OME-Zarr images new "
        "multiscale levels.", parents=parents,
    )  # fmt: skip
    p.add_argument("url", metavar="URL")
    p.add_argument("--factor", default="auto",
                   help="per-level factor along each axis of the bounds, e.g. 2,2,1, or 'auto' "
                   "(halve the finest axes until near isotropic; default)")  # fmt: skip
    p.add_argument(
        "--mips",
        type=int,
        default=None,
        metavar="N",
        help="levels to add (default: until a level fits in one chunk)",
    )
    p.add_argument(
        "--method",
        default="auto",
        choices=("auto", *METHODS),
        help="pooling: auto = mode for segmentation, mean for images",
    )
    p.add_argument("--box", default=None, metavar="BOX",
                   help="pool only this box of level 0 now: a0:a1,b0:b1,... over the bounds' "
                   "axes (an empty side means the bounds)")  # fmt: skip
    p.add_argument("--chunks", default=None, metavar="A,B,C",
                   help="chunk size of the new levels along the bounds' axes (default: level "
                   "0's)")  # fmt: skip
    p.add_argument(
        "--memory",
        type=_byte_size,
        default=DEFAULT_MEMORY_TARGET,
        metavar="BYTES",
        help="memory target (default 1G; suffixes K, M, G)",
    )
    p.add_argument("--threads", type=int, default=None, help="blocks in flight (default: cores)")
    p.add_argument("--overwrite", action="store_true", help="replace existing levels")
    p.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="run the blocks as tasks on the dask.distributed scheduler at ADDRESS "
        "(tcp://host:8786); the dataset must be on a store every worker reaches",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    vol = open(args.url, mode="r+", progress=_progress_setting(args),
               **_store_options(args, args.url))  # fmt: skip
    with vol:
        n = len(vol.bounds.start)
        factor: Any = "auto"
        if args.factor != "auto":
            factor = parse_ints(args.factor, n, "--factor")
        box = None if args.box is None else parse_box(args.box, vol.bounds, vol.dims)
        chunks = None if args.chunks is None else parse_ints(args.chunks, n, "--chunks")
        started = time.perf_counter()
        before = vol.mips
        vol.downsample(factor, num_mips=args.mips, method=args.method, bounds=box, chunks=chunks,
                       memory_target=args.memory, threads=args.threads,
                       overwrite=args.overwrite, scheduler=args.dask)  # fmt: skip
        seconds = time.perf_counter() - started
        if not args.quiet:
            added = vol.mips - (1 if args.overwrite else before)
            print(f"{vol.url}: {added} level(s) written in {seconds:.1f} s "
                  f"({human_bytes(vol.nbytes / max(seconds, 1e-9))}/s of level 0)")  # fmt: skip
            for k in range(1, vol.mips):
                level = vol.at_mip(k)
                print(f"  mip {k}: {level.bounds}  resolution {level.resolution}")
    return 0
