"""``bigarrays refs``: index a tar, zip, HDF5 or TIFF file (or a folder of TIFFs) where it lies."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bigarrays.cli import UsageError, _byte_size, _store_options


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    from bigarrays.refs import KINDS

    p = sub.add_parser(
        "refs", help="write references to the chunks inside tar, zip, HDF5 or TIFF files",
        description="Index INPUT by ranged reads of its headers (on any store) and write "
        "references that map each chunk of the dataset inside to (file, offset, length): "
        "kerchunk JSON, or the Parquet layout for OUT ending in .parquet. Read the dataset with "
        "bigarrays.open('reference://OUT'), or copy it with bigarrays cp reference://OUT DST. "
        "Whatever cannot be referenced is listed with the reason.", parents=parents,
    )  # fmt: skip
    p.add_argument("input", metavar="INPUT",
                   help="a .tar or .zip of a dataset, an HDF5 file (or a tar of them), a TIFF, "
                   "or a folder of single-page TIFFs")  # fmt: skip
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="refs.json (kerchunk JSON) or refs.parquet (Parquet layout)",
    )
    p.add_argument("--kind", default="auto", choices=KINDS,
                   help="what INPUT is (default: from its name)")  # fmt: skip
    p.add_argument("--json-version", type=int, default=1, choices=(0, 1),
                   help="kerchunk JSON version to write (default 1)")  # fmt: skip
    p.add_argument("--split", type=_byte_size, default=None, metavar="BYTES",
                   help="cut contiguous HDF5 datasets into chunks of about this size "
                   "(default: one chunk each)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigarrays.refs import Target, index, write_references

    started = time.perf_counter()
    found = index(args.input, args.kind, split_bytes=args.split,
                  **_store_options(args, args.input))  # fmt: skip
    for name, reason in found.skipped:
        print(f"not referenced: {name}: {reason}", file=sys.stderr)
    if not any(isinstance(v, Target) for v in found.refs.values()):
        raise UsageError(f"{args.input}: nothing to reference (see the reasons above)")
    write_references(found, args.output, version=args.json_version,
                     **_store_options(args, args.output, write=True))  # fmt: skip
    if not args.quiet:
        targets = sum(isinstance(v, Target) for v in found.refs.values())
        print(f"{args.output}: {len(found.refs)} keys, {targets} ranges of "
              f"{len(found.targets())} file(s), {len(found.skipped)} not referenced, "
              f"in {time.perf_counter() - started:.2f} s")  # fmt: skip
    return 0
