"""The plain-I/O limit of a Zarr v3 array on local disk: what bare ``os`` calls reach on the
same stored bytes, with no decoding, no copying into an array and no library in between.

Imported by ``zarr_compare.py`` (run that). Figures are MiB/s of the *uncompressed* voxels the
operation delivers, so they compare with the tools' figures directly.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from extra import readv_seconds  # a sibling script: zarr_compare puts bench/ on the path

MiB = 2**20
NO_CHUNK = 2**64 - 1  # sharding_indexed's mark of an absent inner chunk

T = TypeVar("T")
Box = tuple[tuple[int, int], ...]
Piece = tuple[str, int, int]  # file, offset, length


def _files(path: str) -> list[str]:
    """Every chunk or shard file of the array (its metadata document left out)."""
    out = []
    for dirpath, _, names in os.walk(os.path.join(path, "c")):
        out += [os.path.join(dirpath, n) for n in names]
    return sorted(out)


def pieces(path: str) -> tuple[dict[tuple[int, ...], Piece], tuple[int, ...]]:
    """Where each stored (inner) chunk's bytes are, and the chunk shape that indexes them."""
    with open(os.path.join(path, "zarr.json")) as f:
        meta = json.load(f)
    encoding = meta["chunk_key_encoding"]
    if (
        encoding["name"] != "default"
        or encoding.get("configuration", {}).get("separator", "/") != "/"
    ):
        raise ValueError(f"expected the default chunk key encoding with '/', got {encoding}")
    outer = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    grid = [-(-s // c) for s, c in zip(meta["shape"], outer, strict=True)]
    codec = meta["codecs"][0]
    out: dict[tuple[int, ...], Piece] = {}
    for coord in itertools.product(*map(range, grid)):
        name = os.path.join(path, "c", *map(str, coord))
        if not os.path.exists(name):
            continue
        if codec["name"] != "sharding_indexed":
            out[coord] = (name, 0, os.path.getsize(name))
            continue
        conf = codec["configuration"]
        inner = tuple(conf["chunk_shape"])
        per = [o // i for o, i in zip(outer, inner, strict=True)]
        index_bytes = int(np.prod(per)) * 16
        with_crc = any(c["name"] == "crc32c" for c in conf["index_codecs"])
        size = os.path.getsize(name)
        at = size - index_bytes - 4 * with_crc if conf.get("index_location", "end") == "end" else 0
        with open(name, "rb") as f:
            f.seek(at)
            index = np.frombuffer(f.read(index_bytes), "<u8").reshape(*per, 2)
        for local in itertools.product(*map(range, per)):
            offset, length = (int(v) for v in index[local])
            if offset != NO_CHUNK:
                whole = tuple(c * p + q for c, p, q in zip(coord, per, local, strict=True))
                out[whole] = (name, offset, length)
    if codec["name"] == "sharding_indexed":
        return out, tuple(codec["configuration"]["chunk_shape"])
    return out, outer


def _plan(
    where: dict[tuple[int, ...], Piece], chunk: tuple[int, ...], box: Box
) -> list[tuple[str, list[tuple[int, int]]]]:
    """The byte ranges a reader of ``box`` must read, grouped by file: one open per file."""
    spans = [range(a // c, -(-b // c)) for (a, b), c in zip(box, chunk, strict=True)]
    by_file: dict[str, list[tuple[int, int]]] = {}
    for coord in itertools.product(*spans):
        piece = where.get(coord)
        if piece is not None:
            by_file.setdefault(piece[0], []).append((piece[1], piece[2]))
    return [(name, sorted(ranges)) for name, ranges in by_file.items()]


def read_mib_s(path: str, boxes: list[Box], nbytes: int, repeat: int) -> float:
    """``os.preadv`` of exactly the stored bytes ``boxes`` touch into one reused buffer."""
    where, chunk = pieces(path)
    plans = [_plan(where, chunk, box) for box in boxes]
    size = max((n for _, _, n in where.values()), default=1)
    buf = memoryview(bytearray(size + 1))
    times = []
    for _ in range(max(3, repeat)):
        t0 = time.perf_counter()
        for plan in plans:
            for name, ranges in plan:
                fd = os.open(name, os.O_RDONLY)
                for offset, length in ranges:
                    os.preadv(fd, [buf[:length]], offset)
                os.close(fd)
        times.append(time.perf_counter() - t0)
    return nbytes / MiB / statistics.median(times)


def read_all_mib_s(path: str, nbytes: int, repeat: int) -> float:
    """``os.readv`` of every stored file whole into one preallocated buffer."""
    names = _files(path)
    buf = memoryview(bytearray(max(map(os.path.getsize, names)) + 1))
    return nbytes / MiB / readv_seconds(names, buf, repeat)


def write_mib_s(path: str, nbytes: int, repeat: int, threads: int) -> float:
    """``os.write`` of copies of every stored file to a new tree, ``threads`` at once.

    Each copy goes to a temp name and is renamed, as every atomic writer does; the folders are
    made before the timer starts (a lower bound on the work), ``os.sync()`` runs before each
    repetition, and every repetition's tree is kept until the end: writing just after freeing
    as many page-cache pages runs several times faster than any real write.
    """
    names = _files(path)
    rel = [os.path.relpath(n, path) for n in names]
    blobs = [Path(n).read_bytes() for n in names]
    outs = []
    times = []
    try:
        for rep in range(max(3, repeat)):
            out = f"{path}.plain-write-{rep}"
            outs.append(out)
            for d in {os.path.dirname(r) for r in rel}:
                os.makedirs(os.path.join(out, d), exist_ok=True)

            def write(i: int, out: str = out) -> None:
                final = os.path.join(out, rel[i])
                tmp = final + ".tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, blobs[i])
                finally:
                    os.close(fd)
                os.rename(tmp, final)

            os.sync()
            with ThreadPoolExecutor(threads) as pool:
                t0 = time.perf_counter()
                list(pool.map(write, range(len(names))))
                times.append(time.perf_counter() - t0)
    finally:
        for out in outs:
            shutil.rmtree(out, ignore_errors=True)
    return nbytes / MiB / statistics.median(times)


# -- with the codec: what the stored bytes cost to decode or encode on every core ---------------


def zstd_read_mib_s(path: str, boxes: list[Box], nbytes: int, repeat: int, threads: int) -> float:
    """Every stored (inner) chunk each box touches, ``os.pread`` and zstd-decoded on ``threads``
    threads at once across all the boxes (zstandard releases the GIL): a ceiling for a
    compressed row, whose decoding is work that plain I/O leaves out."""
    import zstandard

    where, chunk = pieces(path)
    work = [(name, offset, length)
            for box in boxes for name, ranges in _plan(where, chunk, box)
            for offset, length in ranges]  # fmt: skip

    def one(item: Piece) -> None:
        name, offset, length = item
        fd = os.open(name, os.O_RDONLY)
        try:
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        zstandard.ZstdDecompressor().decompress(data)

    return nbytes / MiB / _median_seconds(one, work, repeat, threads)


def zstd_write_mib_s(path: str, data: np.ndarray, chunk: int, level: int, nbytes: int,
                     repeat: int, threads: int) -> float:  # fmt: skip
    """zstd-encoding every ``chunk``-edged chunk of ``data`` on ``threads`` threads, then
    :func:`write_mib_s`'s ``os.write`` of the stored files: the two phases one after the
    other."""
    import zstandard

    grid = [range(0, n, chunk) for n in data.shape]
    blocks = [np.ascontiguousarray(data[tuple(slice(a, a + chunk) for a in start)])
              for start in itertools.product(*grid)]  # fmt: skip

    def one(block: np.ndarray) -> None:
        zstandard.ZstdCompressor(level=level).compress(block)

    encode = _median_seconds(one, blocks, repeat, threads)
    write = nbytes / MiB / write_mib_s(path, nbytes, repeat, threads)
    return nbytes / MiB / (encode + write)


def _median_seconds(fn: Callable[[T], None], items: list[T], repeat: int, threads: int) -> float:
    """Median time of ``fn`` over ``items``, cut into ``threads`` runs of items, one per thread
    (no hand-over per item)."""
    runs = [items[i::threads] for i in range(threads)]

    def run(part: list[T]) -> None:
        for item in part:
            fn(item)

    times = []
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(max(3, repeat)):
            t0 = time.perf_counter()
            list(pool.map(run, runs))
            times.append(time.perf_counter() - t0)
    return statistics.median(times)
