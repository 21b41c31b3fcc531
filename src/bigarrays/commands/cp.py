"""``bigarrays cp``: copy a dataset between stores, and reshard or convert it on the way."""

from __future__ import annotations

import argparse
import time
from typing import Any

from bigarrays.cli import (
    UsageError,
    _byte_size,
    _progress_setting,
    _store_options,
    human_bytes,
    parse_ints,
)

#: Bytes of voxels one Dask task holds (uncompressed) unless --memory says otherwise.
DEFAULT_TASK_BYTES = 256 << 20


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cp", help="copy a dataset between stores (and shard, unshard or "
                       "convert it)",
                       description="Copy the dataset at SRC to DST, chunk by chunk, between any "
                       "two stores. --shard converts an unsharded volume to a sharded one, "
                       "--unshard the other way. --format converts every level to another "
                       "format: precomputed scales become an OME-Zarr image (levels '0', '1', "
                       "...; axes (c,) z, y, x), and an OME-Zarr image or Zarr array becomes "
                       "precomputed scales (raw encoding), each level at the same physical "
                       "place, sharded as the source is unless --shard or --unshard says "
                       "otherwise. --dask runs any of these as tasks on a dask.distributed "
                       "cluster. --anon applies to SRC only.",
                       parents=parents)  # fmt: skip
    p.add_argument("src", metavar="SRC", help="source dataset URL or path")
    p.add_argument("dst", metavar="DST", help="destination dataset URL or path")
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--shard", action="store_true", help="write DST sharded")
    layout.add_argument("--unshard", action="store_true", help="write DST unsharded")
    p.add_argument("--format", default=None, choices=("zarr", "zarr2", "precomputed"),
                   help="convert to this format: zarr = OME-Zarr (NGFF 0.5, Zarr v3), zarr2 = "
                   "OME-Zarr NGFF 0.4 over Zarr v2 (no sharding), precomputed")  # fmt: skip
    p.add_argument("--chunks", default=None, metavar="X,Y,Z",
                   help="with --format: chunk size of every level along x, y, z as precomputed "
                   "counts them; a Zarr chunk is the reverse, z, y, x (and 1 along c). Default: "
                   "each level keeps its source chunks")  # fmt: skip
    p.add_argument("--compression", default=None, choices=("zstd", "gzip", "blosc", "br", "none"),
                   help="with --format: chunk compression (default zstd for Zarr, none for "
                   "precomputed, which every reader takes; br is precomputed only)")  # fmt: skip
    p.add_argument(
        "--shard-size",
        type=_byte_size,
        default=None,
        metavar="BYTES",
        help="target shard size, uncompressed, of a sharded DST (default 1GiB)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a dataset at DST")
    p.add_argument("--threads", type=int, default=None, help="I/O threads (default: auto)")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run the copy as tasks on the dask.distributed scheduler at ADDRESS "
                   "(tcp://host:8786), one per destination shard or block of whole chunks; SRC "
                   "and DST must be on stores every worker reaches")  # fmt: skip
    p.add_argument("--memory", type=_byte_size, default=DEFAULT_TASK_BYTES, metavar="BYTES",
                   help="with --dask: voxels one task holds, uncompressed (default 256M; "
                   "suffixes K, M, G)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Copy a dataset between any two stores; --shard / --unshard also convert its layout."""
    if args.format is None and (args.chunks is not None or args.compression is not None):
        raise UsageError("--chunks and --compression apply to a conversion: give --format too")
    src_options = _store_options(args, args.src)
    dst_options = _store_options(args, args.dst, write=True)
    if src_options or dst_options:  # --anon / --endpoint: open the stores here
        from bigarrays.stores import open_store

        args.src = open_store(args.src, read_only=True, **src_options)
        args.dst = open_store(args.dst, **dst_options)
    common: dict[str, Any] = {"threads": args.threads, "progress": _progress_setting(args),
                              "overwrite": args.overwrite}  # fmt: skip
    on_dask = {} if args.dask is None else {"scheduler": args.dask, "memory_target": args.memory}
    if args.format is not None:
        chunks = None if args.chunks is None else parse_ints(args.chunks, 3, "--chunks")
        shard = True if args.shard else False if args.unshard else None
        if args.shard_size is not None and shard is False:
            raise UsageError("--shard-size is the size of a sharded DST: not with --unshard")
        if args.shard_size is not None:
            shard = True
        options = {"chunks": chunks, "compression": args.compression, "shard": shard,
                   "shard_size_bytes": args.shard_size, **common}  # fmt: skip
        if on_dask:
            from bigarrays.adapters.dask_copy import convert_on_dask

            done = convert_on_dask(args.src, args.dst, args.format, **options, **on_dask)
        else:
            from bigarrays.convert import convert_format

            done = convert_format(args.src, args.dst, args.format, **options)
        summary = f"converted {done.levels} level(s), {done.voxels} voxels in {done.seconds:.2f} s"
    elif args.shard or args.unshard:
        started = time.perf_counter()
        options = {"shard": args.shard, "shard_size_bytes": args.shard_size, **common}
        if on_dask:
            from bigarrays.adapters.dask_copy import reshard_on_dask

            info = reshard_on_dask(args.src, args.dst, **options, **on_dask)
        else:
            from bigarrays.resharding import convert_dataset

            info = convert_dataset(args.src, args.dst, **options)
        summary = (
            f"{'sharded' if args.shard else 'unsharded'} {len(info.scales)} scale(s) in "
            f"{time.perf_counter() - started:.2f} s"
        )
    else:
        from bigarrays.copy import copy_dataset

        copied = copy_dataset(args.src, args.dst, **common, **on_dask)
        rate = copied.bytes / (1 << 20) / max(copied.seconds, 1e-9)
        summary = (
            f"copied {copied.objects} objects, {human_bytes(copied.bytes)} in "
            f"{copied.seconds:.2f} s ({rate:.1f} MiB/s)"
        )
    if not args.quiet:
        print(summary)
    return 0
