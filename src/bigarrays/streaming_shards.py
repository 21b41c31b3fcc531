"""Slabs of a Zarr level kept chunk after chunk, and their write.

A stream copies each frame once, into its place in every chunk of the slab (the slab is an
array of chunks, each one contiguous). A slab of whole chunks (or whole shards, whose inner
chunks these are) is then written without cutting its chunks out again: a chunk is compressed
straight from the slab on the pool or, when the chain stores values as they lie in memory
(plain bytes), put as it is, from the slab. The bytes are those the engine writes for the same
voxels: the chain encodes the same values (edge chunks padded with the fill value, as Zarr
stores them), chunks all fill are left out as the engine leaves them out, and the format lays
a shard out (``encode_shard_parts``).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import mmap
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from bigarrays.box import Box
from bigarrays.codecs.chain import BytesCodec, CodecChain
from bigarrays.codecs.zarr_v2 import V2Chain
from bigarrays.fill import is_fill
from bigarrays.formats.sharding import Run, run_few
from bigarrays.formats.shards_in_turn import put_in_turn
from bigarrays.formats.zarr.chunks import ZarrChunks
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks

#: A run of an axis copied in one go: (the block's slice, the chunks' slice, the slice inside
#: them, the shape the block's run takes: (chunks, inside)).
_Run = tuple[slice, slice, slice, tuple[int, int]]


def slab_array(
    shape: Sequence[int], dtype: np.dtype, fill: Any = None, order: Literal["C", "F"] = "C"
) -> np.ndarray:
    """A new array for a slab, in memory of its own (holding ``fill`` unless it is None).

    NumPy asks the kernel for huge pages for large arrays (``madvise``); where the kernel then
    compacts memory to find them on the first touch of each (``defrag`` of ``madvise``, the
    default), a busy machine spent more time there than copying the frames: a slab measured
    twice to four times the system time of one in plain pages. A private anonymous mapping of
    its own gets huge pages only where they are free.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    out = np.frombuffer(_anonymous(max(nbytes, 1)), dtype, math.prod(shape))
    out = out.reshape(shape, order=order)
    if fill is not None and np.asarray(fill, dtype).tobytes() != bytes(dtype.itemsize):
        out[...] = fill  # a fresh mapping reads as zeros already
    return out


def _anonymous(nbytes: int) -> mmap.mmap:
    """Private anonymous memory: a shared mapping (``mmap(-1, n)``'s default) is shmem,
    whose pages cost the kernel a page cache entry each on the first touch and on the free.

    Its pages are made at once (``MAP_POPULATE``, where there is one), as a slab fills all of
    them: a fault per page as the frames first touch them made the first fill of a 512 MiB slab
    take 0.23-0.28 s against 0.16-0.17 s populated and filled (a reused slab: 0.035 s)."""
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    if not flags:
        return mmap.mmap(-1, nbytes)
    return mmap.mmap(-1, nbytes, flags=flags | getattr(mmap, "MAP_POPULATE", 0))


class ChunkSlab:
    """A slab of ``shape`` voxels held as an array of contiguous chunks of ``chunk``; the part
    of edge chunks past ``shape`` holds the fill value."""

    def __init__(self, shape: Sequence[int], chunk: Sequence[int], dtype: np.dtype, fill: Any):
        self.shape = tuple(shape)
        self.chunk = tuple(chunk)
        self.counts = tuple(-(-n // c) for n, c in zip(self.shape, self.chunk, strict=True))
        self.data = slab_array((*self.counts, *self.chunk), dtype, fill, "C")
        self.nbytes = int(self.data.nbytes)
        d = len(self.shape)
        # Chunks and voxels interleaved per axis: (n0, c0, n1, c1, ...), a view of ``data``.
        self._blocks = self.data.transpose([k for i in range(d) for k in (i, d + i)])

    def release(self) -> None:
        """Free the slab's memory now, while a writer may still hold the slab (its encoded
        shards being put): it is not used again."""
        self.data = self._blocks = np.empty(0, self.data.dtype)

    def put(self, block: np.ndarray, at: Sequence[int]) -> None:
        """Copy ``block`` into the slab, its corner at ``at``."""
        runs = [_runs(a, n, c) for a, n, c in zip(at, block.shape, self.chunk, strict=True)]
        for combo in itertools.product(*runs):
            src = block[tuple(r[0] for r in combo)]
            dst = self._blocks[tuple(s for r in combo for s in (r[1], r[2]))]
            dst[...] = src.reshape([n for r in combo for n in r[3]])

    def logical(self, stop: Sequence[int]) -> np.ndarray:
        """A copy of the voxels ``[0, stop)`` as one array (for the writes that cut chunks)."""
        whole = self._blocks.reshape([n * c for n, c in zip(self.counts, self.chunk, strict=True)])
        return np.ascontiguousarray(whole[tuple(slice(0, n) for n in stop)])


def _runs(at: int, n: int, chunk: int) -> list[_Run]:
    """``[at, at + n)`` of one axis in runs that each fill whole chunks or lie in one chunk."""
    out: list[_Run] = []
    pos, stop = at, at + n
    while pos < stop:
        q, off = divmod(pos, chunk)
        if off == 0 and stop - pos >= chunk:
            m = (stop - pos) // chunk
            out.append((slice(pos - at, pos - at + m * chunk), slice(q, q + m), slice(0, chunk),
                        (m, chunk)))  # fmt: skip
            pos += m * chunk
        else:
            k = min(stop, (q + 1) * chunk) - pos
            out.append((slice(pos - at, pos - at + k), slice(q, q + 1), slice(off, off + k),
                        (1, k)))  # fmt: skip
            pos += k
    return out


def fits(source: Any, box: Box) -> bool:
    """Whether slabs of ``box`` on ``source`` can be kept as chunks and written whole: a Zarr
    level (C order; sharded or not) and a box that starts on its (inner) chunks."""
    if not isinstance(source, ShardedZarrChunks | ZarrChunks) or source.order != "C":
        return False
    grid = source.grid
    return all((s - o) % c == 0 for s, o, c in zip(box.start, grid.origin, grid.chunk, strict=True))


def as_they_lie(chain: Any, dtype: np.dtype) -> bool:
    """Whether ``chain`` serialises a chunk as its values in C order and this machine's byte
    order (then its bytes-to-bytes codecs, if any): a contiguous chunk is encoded from its own
    memory. A Zarr v2 chain does so with neither filters nor a compressor."""
    if dtype == np.bool_:
        return False
    native = dtype.newbyteorder("=")
    if isinstance(chain, V2Chain):
        return (
            chain.order == "C"
            and not chain.filters
            and chain.compressor is None
            and (dtype.itemsize == 1 or chain.dtype == native)
        )
    if not isinstance(chain, CodecChain) or chain.array_array:
        return False
    codec = chain.array_bytes
    return isinstance(codec, BytesCodec) and (dtype.itemsize == 1 or codec.stored == native)


def stored_as_they_lie(chain: Any, dtype: np.dtype) -> bool:
    """Whether a chunk's stored bytes are its values' memory in C order (:func:`as_they_lie`
    with no bytes-to-bytes codec after)."""
    return as_they_lie(chain, dtype) and not _bytes_bytes(chain)


def _bytes_bytes(chain: Any) -> tuple[Any, ...]:
    """The bytes-to-bytes codecs a chain applies after the values' bytes (a v2 chain that
    :func:`as_they_lie`, none)."""
    return tuple(chain.bytes_bytes) if isinstance(chain, CodecChain) else ()


def _chunk_indices(grid: Any, box: Box, slab: ChunkSlab) -> list[tuple[tuple[int, ...], Any]]:
    """Each chunk of ``slab`` (placed at ``box.start``): its place in the slab, its grid index."""
    first = [(s - o) // c for s, o, c in zip(box.start, grid.origin, grid.chunk, strict=True)]
    return [(g, tuple(f + i for f, i in zip(first, g, strict=True)))
            for g in np.ndindex(*slab.counts)]  # fmt: skip


def _encoder(chain: Any, dtype: np.dtype) -> Callable[[np.ndarray], Any]:
    """A whole chunk's stored bytes, taken from its own memory where the chain allows."""
    if not as_they_lie(chain, dtype):
        return chain.encode  # type: ignore[no-any-return]

    def encode(chunk: np.ndarray) -> Any:
        data: Any = chunk.data.cast("B")
        for bb in _bytes_bytes(chain):
            data = bb.encode(data)
        return data

    return encode


def write_chunks(source: ZarrChunks, box: Box, slab: ChunkSlab, run: Run, skip_empty: bool) -> None:
    """Write the chunks of an unsharded Zarr level that ``slab`` (at ``box.start``) fills, each
    encoded from the slab and put on the pool, as the engine writes whole chunks."""
    encode = _encoder(source.chain, source.dtype)

    def put(item: tuple[tuple[int, ...], Any]) -> None:
        g, index = item
        chunk = slab.data[g]
        if skip_empty and is_fill(chunk, source.fill_value):
            source.delete(index)
        else:
            source.store.put(source.key(index), encode(chunk))

    run_few(run, put, _chunk_indices(source.grid, box, slab))


def write_shards(
    source: ShardedZarrChunks,
    box: Box,
    slab: ChunkSlab,
    run: Run,
    encoded: Callable[[int], None],
    encoding: threading.Lock | None = None,
    putting: threading.Lock | None = None,
) -> None:
    """Write the shards ``slab`` (placed at ``box.start``, whole shards) fills. ``encoded`` is
    told the bytes its chunks were encoded into once they all are, when they no longer point
    into the slab (-1: they still do, and the slab must be kept until this returns).

    The chunks are encoded (on the pool) holding ``encoding``, and encoded shards put holding
    ``putting``, taken before ``encoding`` is let go: so writers sharing them hold one slab's
    shards encoding and one's being put, not more. Raw shards (views of the slab) are put
    without ``putting``: they hold no memory of their own. Where the store writes a value's
    parts as they come (a file) and the index goes last, compressed shards are put while
    their chunks are encoded instead (``bigarrays.formats.shards_in_turn``)."""
    by_shard: dict[Any, list[tuple[int, tuple[int, ...]]]] = {}
    for g, index in _chunk_indices(source.grid, box, slab):
        shard, cid = source.locate(index)
        by_shard.setdefault(shard, []).append((cid, g))
    chain, fill = source.chain, source.fill_value
    views = stored_as_they_lie(chain, source.dtype)
    to_bytes = _encoder(chain, source.dtype)
    if not views and source.chunks_then_index and source.store.writes_parts_in_turn:
        cids = {shard: [cid for cid, _ in by_shard[shard]] for shard in sorted(by_shard)}
        items = [
            (shard, cid, g)
            for shard in cids
            for cid, g in sorted(by_shard[shard], key=lambda m: source.chunk_rank(m[0]))
        ]

        def encode_chunk(g: tuple[int, ...]) -> Any:
            chunk = slab.data[g]
            return None if is_fill(chunk, fill) else to_bytes(chunk)

        put_in_turn(source, cids, items, encode_chunk, run, encoding=encoding, encoded=encoded)
        return
    payloads: dict[Any, dict[int, Any]] = {shard: {} for shard in by_shard}

    def encode(item: tuple[Any, int, tuple[int, ...]]) -> None:
        shard, cid, g = item
        chunk = slab.data[g]
        if not is_fill(chunk, fill):
            payloads[shard][cid] = to_bytes(chunk)

    def put(shard: Any) -> None:
        try:
            source._put_whole(source.shard_key(shard), source.encode_shard_parts(payloads[shard]))
        finally:
            source.forget_index(shard)
        payloads[shard] = {}

    with contextlib.ExitStack() as turn:
        with encoding or contextlib.nullcontext():
            items = [(s, cid, g) for s, items in by_shard.items() for cid, g in items]
            run_few(run, encode, items)
            if putting is not None and not views:
                turn.enter_context(putting)
        encoded(-1 if views else sum(len(d) for p in payloads.values() for d in p.values()))
        run_few(run, put, sorted(by_shard))


__all__ = [
    "ChunkSlab",
    "as_they_lie",
    "fits",
    "slab_array",
    "stored_as_they_lie",
    "write_chunks",
    "write_shards",
]
