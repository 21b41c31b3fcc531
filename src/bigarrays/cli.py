"""The ``bigarrays`` command: info, create, cutout and demo.

Every failure the user can cause prints one line, ``bigarrays: error: ...``, and exits non-zero.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bigarrays import __version__
from bigarrays.api import create, open
from bigarrays.array import BigArray
from bigarrays.box import Box
from bigarrays.errors import (
    BigArraysError,
    MissingDependencyError,
    UnsupportedError,
    ViewerCompatibilityWarning,
)
from bigarrays.stores import normalize_key
from bigarrays.stores.keys import is_outside


class UsageError(BigArraysError, ValueError):
    """A command-line argument that cannot be understood."""


# -- argument parsing helpers --------------------------------------------------------------------


def _parse_vector(text: str, n: int, name: str, kind: type, noun: str) -> tuple[Any, ...]:
    """``"1,2,3"`` (or ``"1x2x3"``) -> ``(1, 2, 3)`` of ``kind``; else a UsageError for ``name``."""
    try:
        values = tuple(kind(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise UsageError(f"{name} must be {n} {noun} separated by commas, got {text!r}")
    return values


def parse_ints(text: str, n: int, name: str) -> tuple[int, ...]:
    return _parse_vector(text, n, name, int, "integers")


def parse_floats(text: str, n: int, name: str) -> tuple[float, ...]:
    return _parse_vector(text, n, name, float, "numbers")


def parse_box(text: str, bounds: Box, names: Sequence[str] = ("x", "y", "z")) -> Box:
    """``"a0:a1,b0:b1,..."``, one range per axis of ``bounds`` (named ``names``), in absolute
    coordinates; an empty side means the bounds."""
    names = tuple(names[: bounds.ndim])
    form = ",".join(f"{n}0:{n}1" for n in names)
    parts = text.split(",")
    if len(parts) != bounds.ndim:
        raise UsageError(f"a box is {form}, got {text!r}")
    start, stop = [], []
    for axis, part in enumerate(parts):
        if ":" not in part:
            raise UsageError(f"a box is {form}, got {text!r} (no ':' in {part!r})")
        a, b = part.split(":", 1)
        try:
            start.append(int(a) if a.strip() else bounds.start[axis])
            stop.append(int(b) if b.strip() else bounds.stop[axis])
        except ValueError:
            raise UsageError(f"a box is {form} of integers, got {text!r}") from None
        if stop[-1] <= start[-1]:
            raise UsageError(f"empty range {part!r} on axis {names[axis]}")
    return Box(start, stop)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _byte_size(text: str) -> int:
    """``"512M"`` -> 536870912; plain digits are bytes; K, M, G, T are powers of 1024."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        value = int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive, got {text!r}")
    return value


def _progress_setting(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "quiet", False) else None


#: Schemes whose stores take ``anonymous`` and ``endpoint`` (--anon, --endpoint).
_CLOUD_SCHEMES = ("s3", "gs")


def _store_options(args: argparse.Namespace, url: str, *, write: bool = False) -> dict[str, Any]:
    """Store options from --anon and --endpoint for ``url`` (only s3:// and gs:// take them),
    and --allow-parent-keys.

    ``write``: the URL is a copy's destination, which --anon leaves alone (anonymous writes are
    for the rare public-write bucket; a public source is the common case).
    """
    from bigarrays.stores import split_scheme

    options: dict[str, Any] = {}
    if getattr(args, "allow_parent_keys", False) and not write:
        options["allow_parent_keys"] = True
    if split_scheme(url)[0] not in _CLOUD_SCHEMES:
        return options
    if getattr(args, "anon", False) and not write:
        options["anonymous"] = True
    if getattr(args, "endpoint", None):
        options["endpoint"] = args.endpoint
    return options


# -- commands ------------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    vol = open(args.url, **_store_options(args, args.url))
    if vol.format != "precomputed":
        print("\n".join(_level_lines(vol)))
        return 0
    info = vol.info
    out = [
        f"{vol.url}",
        f"  type         {vol.layer_type}",
        f"  data type    {vol.dtype.name}",
        f"  channels     {vol.num_channels}",
        f"  scales       {vol.mips}",
    ]
    extra = sorted(k for k in info if k not in ("@type", "type", "data_type", "num_channels",
                                                "scales"))  # fmt: skip
    if extra:
        out.append(f"  other keys   {', '.join(extra)}")
    total_bytes = 0
    for mip in range(vol.mips):
        v = vol.at_mip(mip)
        s = v.scale
        b = v.bounds
        encoding = s.encoding + (f" + {s.compression}" if s.compression else "")
        out += [
            f"  mip {mip}: key {s.key!r}",
            f"    size         {' x '.join(map(str, s.size))} voxels "
            f"({human_bytes(v.nbytes)} uncompressed)",
            f"    resolution   {' x '.join(f'{r:g}' for r in s.resolution)} nm",
            f"    bounds       [{b.start[0]}:{b.stop[0]}, {b.start[1]}:{b.stop[1]}, "
            f"{b.start[2]}:{b.stop[2]})",
            f"    chunks       {' x '.join(map(str, s.chunk_size))} "
            f"({v.num_chunks} in a {' x '.join(map(str, v.grid_shape))} grid)",
            f"    encoding     {encoding}",
        ]
        if s.sharding is not None:
            out += _sharding_lines(s, vol.num_channels, vol.dtype.itemsize)
        if not args.no_scan:
            count, nbytes = 0, 0
            if is_outside(normalize_key(s.key)):
                out.append("    stored       not counted: the scale lies outside the dataset")
                continue
            try:
                keys = list(v.store.list(normalize_key(s.key) + "/"))
            except UnsupportedError:  # HTTP servers have no listing
                out.append("    stored       unknown: the store cannot list its keys")
                continue
            decoded, in_chunks = 0, 0
            voxel_bytes = vol.num_channels * vol.dtype.itemsize
            for key in keys:
                size = v.store.size(key)
                if size is not None:
                    count += 1
                    nbytes += size
                    voxels = _chunk_voxels(key) if s.sharding is None else None
                    if voxels is not None:
                        decoded, in_chunks = decoded + voxels * voxel_bytes, in_chunks + size
            total_bytes += nbytes
            # Against the chunks stored, not the whole volume: chunks never written are not
            # "compressed", and shard files hold chunks whose count only their indexes know.
            ratio = f", {decoded / in_chunks:.2f}x smaller" if in_chunks else ""
            out.append(f"    stored       {count} objects, {human_bytes(nbytes)}{ratio}")
    if not args.no_scan and vol.mips > 1:
        out.append(f"  total stored {human_bytes(total_bytes)}")
    print("\n".join(out))
    return 0


def _chunk_voxels(key: str) -> int | None:
    """The voxels of the chunk stored under ``key`` (its name is its box), or None for a key
    that does not name a chunk."""
    from bigarrays.formats.precomputed.chunks import parse_chunk_name

    try:
        return parse_chunk_name(key).size
    except ValueError:
        return None


def _level_lines(vol: BigArray) -> list[str]:
    """What ``info`` prints of a dataset in any format: its levels' axes, sizes and chunks."""
    out = [
        f"{vol.url}",
        f"  format       {vol.format}",
        f"  data type    {vol.dtype.name}",
        f"  axes         {', '.join(vol.dims)}",
        f"  levels       {vol.mips}",
    ]
    for mip in range(vol.mips):
        v = vol.at_mip(mip)
        encoding = v.encoding + (f" + {v.compression}" if v.compression else "")
        out += [
            f"  mip {mip}:",
            f"    shape        {' x '.join(map(str, v.shape))} ({human_bytes(v.nbytes)} "
            "uncompressed)",
            f"    resolution   {' x '.join(f'{r:g}' for r in v.resolution)}",
            f"    chunks       {' x '.join(map(str, v.chunks))} "
            f"({v.num_chunks} in a {' x '.join(map(str, v.grid_shape))} grid)",
            f"    encoding     {encoding}",
            f"    fill value   {v.fill_value}",
        ]
    return out


def _sharding_lines(scale: Any, num_channels: int, itemsize: int) -> list[str]:
    from bigarrays.formats.precomputed.sharded_layout import summarize_sharding

    sm = summarize_sharding(scale, num_channels, itemsize)
    sh = sm.spec
    count = f"{sm.num_shards}" if sm.num_shards_exact else f"at most {sm.num_shards}"
    lines = [
        f"    sharding     {sh.hash}, preshift {sh.preshift_bits}, minishard "
        f"{sh.minishard_bits}, shard {sh.shard_bits} bits; minishard index "
        f"{sh.minishard_index_encoding}, data {sh.data_encoding}",
        f"    shards       {count} shard files, {'' if sm.shard_chunks else 'about '}"
        f"{sm.chunks_per_shard} chunks per shard "
        f"({human_bytes(sm.shard_bytes)} uncompressed)",
    ]
    if sm.shard_voxels is not None and sm.shard_chunks is not None:
        lines.append(
            f"    shard box    {' x '.join(map(str, sm.shard_voxels))} voxels "
            f"({' x '.join(map(str, sm.shard_chunks))} chunks)"
        )
    else:
        lines.append("    shard box    none: the hash scatters a shard's chunks over the volume")
    return lines


def cmd_create(args: argparse.Namespace) -> int:
    block = args.cseg_block_size
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ViewerCompatibilityWarning)
        vol = _create_from_args(
            args, None if block is None else parse_ints(block, 3, "--cseg-block-size")
        )
    for warning in caught:
        print(f"bigarrays: warning: {warning.message}", file=sys.stderr)
    print(f"created {vol!r}")
    return 0


def _create_from_args(args: argparse.Namespace, block: tuple[int, ...] | None) -> BigArray:
    return create(
        args.url,
        shape=parse_ints(args.shape, 3, "--shape"),
        dtype=args.dtype,
        chunks=parse_ints(args.chunks, 3, "--chunks"),
        voxel_offset=parse_ints(args.offset, 3, "--offset"),
        resolution=parse_floats(args.resolution, 3, "--resolution"),
        num_channels=args.channels,
        layer_type=args.layer_type,
        encoding=args.encoding,
        compression=args.compression,
        compression_level=args.compression_level,
        overwrite=args.overwrite,
        sharding=True if args.sharded else None,
        shard_size_bytes=args.shard_size,
        jpeg_quality=args.jpeg_quality,
        png_level=args.png_level,
        compressed_segmentation_block_size=block,
        blosc_cname=args.blosc_cname,
        blosc_shuffle=args.blosc_shuffle,
        **_store_options(args, args.url),
    )


def write_cutout(path: Path, cut: np.ndarray, dims: Sequence[str] = ("x", "y", "z", "c")) -> None:
    """Save a cutout as .npy (its axes as indexed) or .tif: a precomputed ``(x, y, z[, c])``
    cutout as ``(z, y, x[, c])`` pages, as viewers expect; other axes as they are, named in the
    file when they are OME's (t, c, z, y, x)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, cut)
    elif suffix in (".tif", ".tiff"):
        try:
            import tifffile
        except ImportError:
            raise MissingDependencyError("tifffile", "tiff", "writing .tif cutouts") from None
        names = tuple(dims[: cut.ndim])
        if names[:3] == ("x", "y", "z"):
            pages = np.ascontiguousarray(np.moveaxis(cut, (0, 1, 2), (2, 1, 0)))
            axes: str | None = "ZYX" if cut.ndim == 3 else "ZYXC"
        else:
            pages = np.ascontiguousarray(cut)
            letters = "".join(n.upper() for n in names)
            known = len(set(letters)) == len(letters) and all(n in "tczyx" for n in names)
            axes = letters if known and cut.ndim >= 2 else None
        metadata = {"axes": axes} if axes else None
        tifffile.imwrite(path, pages, metadata=metadata, photometric="minisblack")
    else:
        raise UsageError(f"cannot write {path.name!r}: the output must end in .npy or .tif")


def cmd_cutout(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix.lower() not in (".npy", ".tif", ".tiff"):
        raise UsageError(f"cannot write {out.name!r}: the output must end in .npy or .tif")
    vol = open(args.url, mip=args.mip, fill_missing=not args.strict,
               progress=_progress_setting(args), **_store_options(args, args.url))  # fmt: skip
    box = parse_box(args.box, vol.bounds, vol.dims)
    cut = vol[box]
    write_cutout(out, cut, vol.dims)
    if not args.quiet:
        print(f"wrote {out} ({' x '.join(map(str, cut.shape))} {cut.dtype}, {box})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bigarrays.demo import run_demo

    shape = parse_ints(args.shape, 3, "--shape")
    return run_demo(Path(args.dir), shape=shape, threads=args.threads, quiet=args.quiet,
                    compression=args.compression)  # fmt: skip


# -- the parser ----------------------------------------------------------------------------------


def _add_store_arguments(parser: argparse.ArgumentParser, default: Any) -> None:
    """--anon and --endpoint, for s3:// and gs:// URLs (other URLs ignore them), and
    --allow-parent-keys."""
    parser.add_argument("--anon", action="store_true", default=default,
                        help="anonymous access to s3:// and gs:// URLs (public buckets): no "
                        "credentials are read or sent")  # fmt: skip
    parser.add_argument("--endpoint", metavar="URL", default=default,
                        help="the server of s3:// or gs:// URLs (MinIO, Ceph, an emulator); "
                        "default: AWS_ENDPOINT_URL / STORAGE_EMULATOR_HOST, else the cloud's "
                        "own")  # fmt: skip
    parser.add_argument("--allow-parent-keys", action="store_true", default=default,
                        help="read scales whose key points beside the dataset ('../other/8_8_40'); "
                        "refused by default, and cp never copies them")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bigarrays",
        description="Read and write boxes of Neuroglancer precomputed volumes.",
    )
    parser.add_argument("--version", action="version", version=f"bigarrays {__version__}")
    _add_store_arguments(parser, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # The same options after the command name (``bigarrays info --anon s3://...``); their
    # default is "not given", so they never undo one given before the command.
    store_args = argparse.ArgumentParser(add_help=False)
    _add_store_arguments(store_args, argparse.SUPPRESS)

    p = sub.add_parser("info", help="summarise a volume: scales, sizes, chunks, bytes stored",
                       description="Print a readable summary of the volume at URL.",
                       parents=[store_args])  # fmt: skip
    p.add_argument("url", metavar="URL", help="dataset URL or path (file://, memory://, ...)")
    p.add_argument("--no-scan", action="store_true",
                   help="do not list the store to count stored chunks and bytes")  # fmt: skip
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("create", help="create an empty volume",
                       description="Create an empty one-scale volume at URL.",
                       parents=[store_args])  # fmt: skip
    p.add_argument("url", metavar="URL")
    p.add_argument("--shape", required=True, help="size in voxels: X,Y,Z")
    p.add_argument(
        "--dtype",
        default="uint8",
        help="uint8 int8 uint16 int16 uint32 int32 uint64 float32 (default uint8)",
    )
    p.add_argument("--chunks", default="64,64,64", help="chunk size: X,Y,Z (default 64,64,64)")
    p.add_argument("--offset", default="0,0,0", help="voxel offset: X,Y,Z (may be negative)")
    p.add_argument("--resolution", default="1,1,1", help="nm per voxel: X,Y,Z (default 1,1,1)")
    p.add_argument("--channels", type=int, default=1, help="number of channels (default 1)")
    p.add_argument("--layer-type", default="image", choices=("image", "segmentation"))
    p.add_argument("--encoding", default="raw",
                   help="raw, jpeg, png or compressed_segmentation (default raw)")  # fmt: skip
    p.add_argument("--jpeg-quality", type=int, default=None, metavar="0-100",
                   help="jpeg quality (default 85)")  # fmt: skip
    p.add_argument("--png-level", type=int, default=None, metavar="0-9",
                   help="png deflate level (default 6)")  # fmt: skip
    p.add_argument("--cseg-block-size", default=None, metavar="X,Y,Z",
                   help="compressed_segmentation block size (default 8,8,8)")  # fmt: skip
    p.add_argument("--compression", default=None, choices=("gzip", "zstd", "br", "blosc"),
                   help="whole-chunk compression (default none); gzip, zstd and br are read by "
                   "viewers, blosc by bigarrays only")  # fmt: skip
    p.add_argument("--compression-level", type=int, default=None,
                   help="gzip 1-9 (6), zstd -7-22 (3), br 0-11 (5), blosc 1-9 (5)")  # fmt: skip
    p.add_argument("--blosc-cname", default=None,
                   choices=("blosclz", "lz4", "lz4hc", "zstd", "zlib"),
                   help="blosc's inner codec (default lz4)")  # fmt: skip
    p.add_argument("--blosc-shuffle", default=None, choices=("none", "byte", "bit"),
                   help="blosc's shuffle (default byte for multi-byte types)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--sharded", action="store_true",
                   help="store chunks in shard files, each an aligned box of chunks")  # fmt: skip
    p.add_argument("--shard-size", type=_byte_size, default=None, metavar="BYTES",
                   help="target shard size, uncompressed, with --sharded (default 1GiB; "
                   "suffixes K, M, G)")  # fmt: skip
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("cutout", help="save a box of a volume to .npy or .tif",
                       description="Read a box (absolute voxel coordinates) and save it. A .npy "
                       "keeps the axes as indexed; a precomputed (x, y, z[, c]) box is written "
                       "to a .tif as (z, y, x[, c]) pages, as image viewers expect, and a Zarr "
                       "array's box in its own axis order.", parents=[store_args])  # fmt: skip
    p.add_argument("url", metavar="URL")
    p.add_argument("box", metavar="BOX", help="x0:x1,y0:y1,z0:z1 for precomputed, one range "
                   "per axis for Zarr, e.g. c0:c1,z0:z1,y0:y1,x0:x1 (an empty side means the "
                   "bounds)")  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="output file, .npy or .tif")
    p.add_argument("--mip", type=int, default=0, help="scale to read (default 0)")
    p.add_argument("--strict", action="store_true",
                   help="fail on a missing chunk instead of reading zeros")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    p.set_defaults(func=cmd_cutout)

    p = sub.add_parser(
        "demo",
        help="write, cut out and verify a synthetic EM-like volume",
        description="Make a synthetic EM-like volume in DIR, save it, cut out "
        "unaligned boxes, verify them against the truth, and print throughput.",
    )
    p.add_argument("dir", metavar="DIR", nargs="?", default="bigarrays-demo",
                   help="folder for the demo volume (default ./bigarrays-demo)")  # fmt: skip
    p.add_argument("--shape", default="1024,1024,256",
                   help="volume size X,Y,Z (default 1024,1024,256: 256 MiB)")  # fmt: skip
    p.add_argument("--compression", default=None, choices=("gzip",))
    p.add_argument("--threads", type=int, default=None, help="I/O threads (default: auto)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    from bigarrays.commands import cp, downsample, ingest, refs, view

    cp.add_parser(sub, [store_args])
    downsample.add_parser(sub, [store_args])
    ingest.add_parser(sub, [store_args])
    refs.add_parser(sub, [store_args])
    view.add_parser(sub, [store_args])
    _accept_negative_values(parser)
    return parser


# argparse takes a word that starts with '-' for an option unless it looks like a negative
# number; negative offsets and boxes ("-10,0,5", "-50:50,0:64,0:64") are common here, so widen
# what counts as one on every (sub)parser. "--offset=-10,0,5" works regardless.
_NEGATIVE_VALUE = re.compile(r"^-\d[\d,:x.\-]*$")


def _accept_negative_values(parser: argparse.ArgumentParser) -> None:
    parser._negative_number_matcher = _NEGATIVE_VALUE
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _accept_negative_values(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: Any = args.func(args)
        return int(result or 0)
    except BigArraysError as exc:
        print(f"bigarrays: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        # Builtin errors from the OS or NumPy (disk full, a path that is a file...): one line too.
        print(f"bigarrays: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bigarrays: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
