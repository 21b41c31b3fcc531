"""``bigarrays ingest``: stream image files (TIFF pages, a .npy stack) into a dataset."""

from __future__ import annotations

import argparse
import glob
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from bigarrays.cli import UsageError, _byte_size, _progress_setting, _store_options, human_bytes
from bigarrays.progress import progress_bar
from bigarrays.streaming import DEFAULT_QUEUE_BYTES, stream


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ingest", help="stream TIFF files, a multi-page TIFF or a .npy stack into a dataset",
        description="Append the frames of SOURCE to the dataset at DST along --axis, with the "
        "streaming writer: whole chunks (or shards) written once, the extent checkpointed as it "
        "grows. SOURCE is a glob ('frames/*.tif', quoted; files in natural order, every page "
        "of each), a multi-page TIFF, or a .npy file whose first axis runs over the frames. "
        "Images are (rows, columns) = (y, x): a precomputed volume gets them as (x, y). DST is "
        "created from the first frame unless --resume continues it (frames it holds already "
        "are skipped).", parents=parents,
    )  # fmt: skip
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--axis", default="z", help="the axis frames follow along (default z)")
    p.add_argument("--chunks", default=None, metavar="A,B,C",
                   help="chunk shape of a new dataset, along its axes")  # fmt: skip
    p.add_argument("--dims", default=None, metavar="NAMES",
                   help="axis names of a new Zarr dataset, e.g. z,y,x")  # fmt: skip
    p.add_argument("--format", default=None, choices=("precomputed", "zarr", "zarr2"))
    p.add_argument("--compression", default=None, help="e.g. gzip, zstd, blosc")
    p.add_argument("--sharding", action="store_true", help="store chunks in shards")
    p.add_argument("--max-shape", default=None, metavar="A,B,C",
                   help="fix the grid for this largest shape (sharded precomputed needs "
                   "it)")  # fmt: skip
    p.add_argument("--mips", type=int, default=None, metavar="N",
                   help="write N pyramid levels as the frames arrive")  # fmt: skip
    p.add_argument("--factor", default="auto", metavar="A,B,C",
                   help="each level's factor per axis (default auto)")  # fmt: skip
    p.add_argument("--method", default="auto", help="pooling: mean, mode, median, ...")
    p.add_argument("--fsync", action="store_true", help="checkpoints survive a power loss")
    p.add_argument("--resume", action="store_true", help="continue an existing DST")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    p.add_argument("--queue", type=_byte_size, default=DEFAULT_QUEUE_BYTES, metavar="BYTES",
                   help="slabs that may wait for the writer (default 1G; K, M, G)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="chunks encoded and written at once")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=run)


def _natural(path: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def _sources(pattern: str) -> list[str]:
    paths = sorted(glob.glob(pattern), key=_natural) if glob.has_magic(pattern) else [pattern]
    paths = [p for p in paths if os.path.isfile(p)]
    if not paths:
        raise UsageError(f"no files match {pattern!r}")
    return paths


def _count(paths: list[str]) -> int:
    import tifffile

    total = 0
    for path in paths:
        if path.endswith(".npy"):
            total += int(np.load(path, mmap_mode="r").shape[0])
        else:
            with tifffile.TiffFile(path) as tif:
                total += len(tif.pages)
    return total


def _frames(paths: list[str], skip: int) -> Iterator[np.ndarray]:
    """The frames of ``paths`` in order, the first ``skip`` left out."""
    import tifffile

    for path in paths:
        if path.endswith(".npy"):
            stack = np.load(path, mmap_mode="r")
            n = stack.shape[0]
            for i in range(min(skip, n), n):
                yield np.asarray(stack[i])
            skip = max(0, skip - n)
            continue
        with tifffile.TiffFile(path) as tif:
            n = len(tif.pages)
            for i in range(min(skip, n), n):
                yield tif.pages[i].asarray()
            skip = max(0, skip - n)


def _ints(text: str | None, name: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"{name} must be integers separated by commas, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    paths = _sources(args.source)
    total = _count(paths)
    if total == 0:
        raise UsageError(f"{args.source!r} holds no frames")
    first = next(_frames(paths, 0))
    dims = None if args.dims is None else tuple(args.dims.split(","))
    precomputed = args.format in (None, "precomputed") and (dims is None or dims[0] == "x")
    options: dict[str, Any] = {
        k: v
        for k, v in {
            "chunks": _ints(args.chunks, "--chunks"), "dims": dims, "format": args.format,
            "compression": args.compression, "sharding": True if args.sharding else None,
            "max_shape": _ints(args.max_shape, "--max-shape"),
        }.items()
        if v is not None
    }  # fmt: skip
    options.update(_store_options(args, args.dst, write=True))
    shape = first.T.shape if precomputed else first.shape
    factor = "auto" if args.factor == "auto" else _ints(args.factor, "--factor")
    s = stream(args.dst, args.axis, shape=shape, dtype=first.dtype, resume=args.resume,
               overwrite=args.overwrite, queue_bytes=args.queue, threads=args.threads,
               mips=args.mips, factor=factor, method=args.method, fsync=args.fsync,
               **options)  # fmt: skip
    flip = s.array.dims[0] == "x"
    start = s.array.bounds.start[s.array.dims.index(args.axis)] if args.resume else 0
    skip = s.position - start
    started = time.perf_counter()
    with s, progress_bar(total - skip, f"ingesting {args.source}", _progress_setting(args)) as step:
        for frame in _frames(paths, skip):
            s.append(frame.T if flip else frame)
            if step is not None:
                step()
    seconds = time.perf_counter() - started
    if not args.quiet:
        stats = s.stats
        print(f"{s.array.url}: {stats.frames} frame(s) appended in {seconds:.1f} s "
              f"({human_bytes(stats.bytes / max(seconds, 1e-9))}/s); "
              f"{args.axis} now ends at {stats.checkpointed}")  # fmt: skip
    return 0
