"""Dask arrays out of BigArrays (:func:`to_dask`) and into them (:func:`store`, :func:`from_dask`).

Both sides work on the storage grid. Out: each block of the Dask array is one write unit of the
level (a chunk, or a whole shard on a sharded level) or a box of them, anchored where the grid
is, and is read through the engine as ``vol[box]``. Index 0 of the Dask array is the volume's
first voxel, ``vol.bounds.start``: Dask indexes from 0 where bigarrays takes absolute
coordinates, which is why ``dask.array.from_array(vol)`` would misplace every voxel of a volume
whose offset is not 0.

In: every block edge of the Dask array inside the region must lie on a unit edge of the target:
blocks that do, and are not small, are written as they come; others are rechunked. Each unit is
then written by exactly one task, and no two tasks ever write the same chunk or shard; only the
units that the region's own edges cut are written in part, by the engine's conditional
read-merge-writes, which are safe against other writers. A store without conditional writes
cannot do that safely, so such a region is refused before anything is written, naming the
aligned box to write instead.

The volume travels in the graph once, as a key of its own that the tasks depend on: a worker
unpickles it (it reopens its store from its settings) once, not once per task.
"""

from __future__ import annotations

import math
import operator
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from bigarrays.array import BigArray
from bigarrays.box import Box
from bigarrays.errors import (
    ArrayClosedError,
    InvalidArgumentError,
    InvalidIndexError,
    MissingDependencyError,
    OutOfBoundsError,
    ReadOnlyError,
    ShapeMismatchError,
    UnsupportedError,
)
from bigarrays.indexing import Casting, coerce_value, parse_key
from bigarrays.stores import Store

try:
    import dask.array as da
    from dask.base import compute as dask_compute
    from dask.delayed import delayed
    from dask.layers import ArraySliceDep
except ImportError:  # pragma: no cover - the extra is part of the test environment
    raise MissingDependencyError("dask", "dask", "Dask arrays") from None

__all__ = ["DEFAULT_BLOCK_BYTES", "from_dask", "store", "to_dask"]

#: Bytes of a block of :func:`to_dask` by default: big enough that a block's read fills the
#: engine's threads and Dask's cost per task vanishes beside it, small enough that a few blocks
#: per core keep every core busy and the memory of the blocks in flight modest.
DEFAULT_BLOCK_BYTES = 32 << 20

#: The smallest blocks of a Dask array that :func:`store` writes as they come, when their edges
#: lie on the target's unit edges; smaller ones are merged by a rechunk.
MIN_TASK_BYTES = 1 << 20


# -- geometry --------------------------------------------------------------------------------------
def block_sizes(lo: int, hi: int, origin: int, block: int) -> tuple[int, ...]:
    """Sizes of the blocks that tile ``[lo, hi)`` with their edges on ``origin + k * block``
    (the first and last cut short where ``lo`` and ``hi`` fall between edges)."""
    if hi <= lo:
        return (0,)
    sizes = []
    a = lo
    while a < hi:
        b = min(hi, origin + ((a - origin) // block + 1) * block)
        sizes.append(b - a)
        a = b
    return tuple(sizes)


def block_shape(
    chunks: Any,
    units: Sequence[int],
    shape: Sequence[int],
    dtype: np.dtype,
    default: Sequence[int],
) -> tuple[int, ...]:
    """The block along each axis: ``chunks`` (None: ``default``; ``"auto"``: Dask's choice for
    blocks of ``array.chunk-size`` bytes; an int for every axis, or one per axis, -1 or None
    for the whole axis), rounded up to whole ``units``."""
    n = len(units)
    if chunks is None:
        wanted = list(default)
    elif isinstance(chunks, str):
        if chunks != "auto":
            raise InvalidArgumentError(
                f"blocks are None, 'auto', an int or a tuple of ints, got {chunks!r}"
            )
        if any(s == 0 for s in shape):
            wanted = list(units)
        else:
            auto = da.core.normalize_chunks(  # type: ignore[no-untyped-call]
                "auto", tuple(shape), dtype=dtype, previous_chunks=tuple(units)
            )
            wanted = [max(c) for c in auto]
    else:
        items = (chunks,) * n if isinstance(chunks, int | np.integer) else tuple(chunks)
        if len(items) != n:
            raise InvalidArgumentError(
                f"blocks {chunks!r} name {len(items)} axes; the array has {n}"
            )
        wanted = []
        for item, size in zip(items, shape, strict=True):
            if item is None or (isinstance(item, int | np.integer) and item == -1):
                wanted.append(max(int(size), 1))
            elif isinstance(item, int | np.integer) and not isinstance(item, bool) and item > 0:
                wanted.append(int(item))
            else:
                raise InvalidArgumentError(
                    f"a block size is a positive int (-1 or None: the whole axis), got {item!r}"
                )
    return tuple(max(1, -(-int(w) // u)) * u for w, u in zip(wanted, units, strict=True))


def grown_units(
    units: Sequence[int], spans: Sequence[int], itemsize: int, target: int, order: str
) -> tuple[int, ...]:
    """Whole ``units`` grown to about ``target`` bytes, the axis that is fastest in memory
    first (``order`` "F": the first axis, "C": the last), never past the ``spans`` (units
    the array touches along each axis)."""
    n = [1] * len(units)
    budget = max(1, target // max(1, itemsize))
    axes = range(len(units)) if order == "F" else reversed(range(len(units)))
    for axis in axes:
        others = math.prod(k * u for j, (k, u) in enumerate(zip(n, units, strict=True))
                           if j != axis)  # fmt: skip
        n[axis] = max(1, min(int(spans[axis]), budget // max(1, others * units[axis])))
    return tuple(k * u for k, u in zip(n, units, strict=True))


def unit_cover(vol: BigArray, box: Box) -> Box:
    """The write units that ``box`` (over every grid axis) touches, as one box clipped to the
    bounds: the box a writer without conditional writes may write whole."""
    level = vol.level
    grid, unit, bounds = level.source.grid, level.unit, level.bounds
    start, stop = [], []
    for a, b, o, u, lo, hi in zip(
        box.start, box.stop, grid.origin, unit, bounds.start, bounds.stop, strict=True
    ):
        start.append(max(lo, o + (a - o) // u * u))
        stop.append(min(hi, o - (-(b - o) // u) * u))
    return Box(start, stop)


# -- out -----------------------------------------------------------------------------------------
class BoxReader:
    """A BigArray seen from index 0, as ``dask.array.from_array`` indexes it: key ``k`` along
    an axis is voxel ``bounds.start + k``. Takes what Dask's getters pass (one int or slice per
    axis, any step) and reads only the box that the key spans."""

    def __init__(self, vol: BigArray) -> None:
        self.vol = vol
        self.shape = vol.shape
        self.dtype = vol.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        items = key if isinstance(key, tuple) else (key,)
        if len(items) > self.ndim:
            raise InvalidIndexError(f"{len(items)} indices for an array of {self.ndim} axes")
        items = items + (slice(None),) * (self.ndim - len(items))
        level = self.vol.level
        bounds = level.bounds
        start, stop = list(bounds.start), [a + 1 for a in bounds.start]  # hidden axes: 1 voxel
        local: list[Any] = []
        for g, n, item in zip(level.visible, self.shape, items, strict=True):
            a, b, pick = _span(item, n)
            start[g], stop[g] = bounds.start[g] + a, bounds.start[g] + b
            local.append(pick)
        block: np.ndarray = self.vol[Box(start, stop)][tuple(local)]
        return block

    def __dask_tokenize__(self) -> object:
        return (type(self).__name__, self.vol.url, self.vol.mip, id(self))


def _span(item: Any, n: int) -> tuple[int, int, Any]:
    """The contiguous range ``[a, b)`` of an axis of ``n`` that ``item`` selects, and the index
    that takes ``item``'s elements from that range."""
    if isinstance(item, slice):
        r = range(*item.indices(n))
        if not r:
            return 0, 0, slice(None)
        a = min(r[0], r[-1])
        first, last = r[0] - a, r[-1] - a
        end = last + (1 if r.step > 0 else -1)
        return a, max(r[0], r[-1]) + 1, slice(first, end if end >= 0 else None, r.step)
    try:
        i = operator.index(item)
    except TypeError:
        raise InvalidIndexError(
            f"a Dask block is read by ints and slices, got {type(item).__name__}"
        ) from None
    if not -n <= i < n:
        raise InvalidIndexError(f"index {i} is out of range for an axis of {n}")
    i %= n
    return i, i + 1, 0


def to_dask(vol: BigArray, chunks: Any = None) -> da.Array:
    """The volume as a Dask array whose index 0 is ``vol.bounds.start`` (see
    :meth:`BigArray.to_dask`)."""
    if vol._closed:
        raise ArrayClosedError(f"{vol.url} is closed; open it again to read it")
    level = vol.level
    grid, bounds, visible = level.source.grid, level.bounds, level.visible
    units = [level.unit[g] for g in visible]
    spans = [len(block_sizes(bounds.start[g], bounds.stop[g], grid.origin[g], u))
             for g, u in zip(visible, units, strict=True)]  # fmt: skip
    default = grown_units(units, spans, vol.dtype.itemsize, DEFAULT_BLOCK_BYTES,
                          level.source.order)  # fmt: skip
    blocks = block_shape(chunks, units, vol.shape, vol.dtype, default)
    dask_chunks = tuple(
        block_sizes(bounds.start[g], bounds.stop[g], grid.origin[g], b)
        for g, b in zip(visible, blocks, strict=True)
    )
    offset = ",".join(str(v) for v in vol.bounds.start)
    # A fresh token: two arrays of one volume read at different times must never share keys
    # that a cluster keeps results under.
    name = f"bigarrays-offset({offset})-{uuid.uuid4().hex}"
    array: da.Array = da.from_array(  # type: ignore[no-untyped-call]
        BoxReader(vol), chunks=dask_chunks, name=name, lock=False, asarray=False, fancy=False,
        meta=np.empty((0,) * vol.ndim, dtype=vol.dtype),
    )  # fmt: skip
    return array


# -- in --------------------------------------------------------------------------------------------
class BoxWriter:
    """Writes the blocks of a Dask array that fills ``box`` (over every grid axis): the block at
    ``index`` (slices of the Dask array) is written to its place in the volume."""

    def __init__(self, vol: BigArray, box: Box, dropped: Sequence[bool], casting: Casting) -> None:
        self.vol = vol
        self.box = box
        self.kept = tuple(g for g, d in enumerate(dropped) if not d)
        # Axes the caller indexed with an int: a block has none, a box write wants extent 1.
        visible = vol.level.visible
        self.expand = tuple(j for j, g in enumerate(visible) if dropped[g])
        self.casting = casting
        self.gate = PoolGate(vol.threads)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["gate"]  # a lock: each process that unpickles the writer makes its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.gate = PoolGate(self.vol.threads)

    def write(self, block: np.ndarray, index: Sequence[slice]) -> int:
        start, stop = list(self.box.start), list(self.box.stop)
        for g, s in zip(self.kept, index, strict=True):
            start[g], stop[g] = self.box.start[g] + s.start, self.box.start[g] + s.stop
        if block.size:
            # A C-ordered block goes to the engine as it is: it transposes each chunk's piece
            # word-wise as it cuts it, with no copy of the whole block.
            value = np.expand_dims(block, self.expand) if self.expand else block
            box = Box(start, stop)
            with self.gate.hold(self.vol.level.source.grid.count(box)):
                self.vol.write(box, value, casting=self.casting)
        return int(block.size)


class PoolGate:
    """Lets the writes of Dask's threads into one volume share its engine's pool of ``slots``
    threads rather than crowd it.

    A write of ``n`` chunks keeps ``min(n, slots)`` of the pool's workers (the calling thread
    among them) busy until its last chunk. Two Dask threads writing big blocks at once asked
    for twice the pool: the second write's workers queued behind the first's while its calling
    thread cut chunks beside them, more threads than cores switching over one GIL (on 2 cores,
    a 512³ write of 256³ blocks into precomputed took 4-5% longer than the direct write with
    the blocks written one after another, 13-19% with two at once; see docs/dask.md). A write waits
    here until its workers fit beside those already running; blocks of a few chunks still
    write side by side, and an engine of one thread, which never uses a pool, is not gated.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.busy = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, chunks: int) -> Iterator[None]:
        if self.slots <= 1:
            yield
            return
        need = max(1, min(chunks, self.slots))
        with self._cond:
            while self.busy and self.busy + need > self.slots:
                self._cond.wait()
            self.busy += need
        try:
            yield
        finally:
            with self._cond:
                self.busy -= need
                self._cond.notify_all()


def _write_block(block: np.ndarray, writer: BoxWriter, index: Sequence[slice]) -> np.ndarray:
    return np.full((1,) * block.ndim, writer.write(block, index), dtype=np.int64)


def store(
    darr: da.Array,
    vol: BigArray,
    region: Any = None,
    *,
    blocks: Any = None,
    casting: Casting = "same_kind",
    compute: bool = True,
    **compute_kwargs: Any,
) -> da.Array | None:
    """Write the Dask array ``darr`` into ``vol`` at ``region``, one task per block of whole
    write units (``ba.store``).

    ``region`` is any index that ``vol[...]`` takes (absolute coordinates; None: the whole
    volume) and ``darr`` has the shape ``vol[region]`` would have. Its block edges inside the
    region must lie on the edges of the level's write units (chunks, or whole shards on a
    sharded level), anchored at the grid's origin, so that no two tasks write the same chunk or
    shard: ``darr`` is rechunked unless they do. A block is ``blocks`` (as ``chunks`` of
    :meth:`BigArray.to_dask`) rounded up to whole units; with None, ``darr``'s own blocks when
    they lie so and hold at least :data:`MIN_TASK_BYTES`, else the multiple of the unit nearest
    them (grown to about :data:`DEFAULT_BLOCK_BYTES` if smaller).

    The units that the region's edges cut are merged by conditional writes; on a store without
    conditional writes such a region is refused with
    :class:`~bigarrays.errors.UnsupportedError`, naming the aligned box. That, the shape, the
    dtype (``casting`` as in :meth:`BigArray.write`), the bounds and the mode are all checked
    before anything is written.

    ``compute=True`` writes now (``compute_kwargs`` go to ``dask.compute``, such as
    ``scheduler=``) and returns None; ``compute=False`` returns a 0-d Dask array whose
    computation writes and gives the number of voxels written.
    """
    if not isinstance(darr, da.Array):
        raise InvalidArgumentError(
            f"store() writes a Dask array, got {type(darr).__name__}: write a NumPy array "
            "with vol[region] = data"
        )
    box, dropped = _target_box(vol, region, darr, casting)
    source = _aligned(darr, vol, box, dropped, blocks)
    tag = uuid.uuid4().hex
    writer = delayed(
        BoxWriter(vol, box, dropped, casting), name=f"bigarrays-target-{tag}", traverse=False
    )
    written = da.map_blocks(  # type: ignore[no-untyped-call]
        _write_block, source, writer, ArraySliceDep(source.chunks),
        chunks=tuple((1,) * len(c) for c in source.chunks), dtype=np.int64,
        meta=np.empty((0,) * source.ndim, dtype=np.int64), name=f"bigarrays-store-{tag}",
    )  # fmt: skip
    if compute:
        # The counts as they are: summing them would double the tasks of a graph of small
        # blocks, each costing the scheduler as much as the write of a chunk.
        dask_compute(written, **compute_kwargs)  # type: ignore[no-untyped-call]
        return None
    parts = written.to_delayed(optimize_graph=False).ravel().tolist()
    total = delayed(_total, pure=True)(*parts, dask_key_name=f"bigarrays-written-{tag}")
    lazy: da.Array = da.from_delayed(total, shape=(), dtype=np.int64)  # type: ignore[no-untyped-call]
    return lazy


def _total(*counts: np.ndarray) -> np.int64:
    return np.int64(sum(int(c.sum()) for c in counts))


def _aligned(
    darr: da.Array, vol: BigArray, box: Box, dropped: Sequence[bool], blocks: Any
) -> da.Array:
    """``darr`` with its block edges inside ``box`` on the edges of the level's write units:
    as it is if they lie there already and its blocks are not small (with ``blocks`` None),
    else rechunked into blocks of ``blocks`` or of about :data:`DEFAULT_BLOCK_BYTES`."""
    level = vol.level
    kept = [g for g, d in enumerate(dropped) if not d]
    units = [level.unit[g] for g in kept]
    origin = level.source.grid.origin
    if blocks is None and _on_unit_edges(darr.chunks, box, kept, units, origin):
        # A rechunk copies every voxel once more, where a task more costs the scheduler about
        # what the copy of a megabyte does: blocks of whole units are written as they are.
        typical = math.prod(max(c, default=0) for c in darr.chunks)
        if typical * darr.dtype.itemsize >= MIN_TASK_BYTES:
            return darr
    natural = [
        max(1, round(max(c, default=1) / u)) * u for c, u in zip(darr.chunks, units, strict=True)
    ]
    if math.prod(natural) * darr.dtype.itemsize < DEFAULT_BLOCK_BYTES:
        # Small blocks cost more in tasks than the rechunk that merges them costs in copies.
        spans = [len(block_sizes(box.start[g], box.stop[g], origin[g], u))
                 for g, u in zip(kept, units, strict=True)]  # fmt: skip
        natural = list(grown_units(units, spans, darr.dtype.itemsize, DEFAULT_BLOCK_BYTES,
                                   level.source.order))  # fmt: skip
    shape = block_shape(blocks, units, darr.shape, darr.dtype, natural)
    aligned = tuple(
        block_sizes(box.start[g], box.stop[g], origin[g], b)
        for g, b in zip(kept, shape, strict=True)
    )
    if darr.chunks == aligned:
        return darr
    rechunked: da.Array = darr.rechunk(aligned)  # type: ignore[no-untyped-call]
    return rechunked


def _on_unit_edges(
    chunks: Sequence[Sequence[int]],
    box: Box,
    kept: Sequence[int],
    units: Sequence[int],
    origin: Sequence[int],
) -> bool:
    """Whether every block edge inside ``box`` lies on a unit edge of the grid."""
    for sizes, g, u in zip(chunks, kept, units, strict=True):
        edge = box.start[g]
        for n in sizes[:-1]:
            edge += n
            if (edge - origin[g]) % u:
                return False
    return True


def _target_box(
    vol: BigArray, region: Any, darr: da.Array, casting: Casting
) -> tuple[Box, tuple[bool, ...]]:
    """The box (over every grid axis) that ``region`` names, and the axes it drops, once every
    reason to refuse the write is ruled out; nothing is written before."""
    if vol._closed:
        raise ArrayClosedError(f"{vol.url} is closed; open it again to write it")
    if vol.mode != "r+":
        raise ReadOnlyError(f"{vol.url} is open read-only; open it with mode='r+' to write")
    level = vol.level
    selection = parse_key(Ellipsis if region is None else region, level.axes, level.bounds)
    box = selection.box
    if not level.bounds.contains(box):
        raise OutOfBoundsError(
            f"cannot write to {_shown(vol, box)}: it reaches outside the volume's bounds "
            f"{vol.bounds}; nothing was written"
        )
    if any(isinstance(n, float) and np.isnan(n) for n in darr.shape):
        raise ShapeMismatchError(
            f"the Dask array's shape {darr.shape} is not known; call compute_chunk_sizes() first"
        )
    if tuple(darr.shape) != selection.result_shape:
        raise ShapeMismatchError(
            f"a Dask array of shape {darr.shape} cannot fill {_shown(vol, box)}, of shape "
            f"{selection.result_shape}"
        )
    # The volume's own rules for dtypes, on a view that holds no memory.
    coerce_value(np.broadcast_to(np.zeros((), darr.dtype), darr.shape), vol.dtype, selection,
                 casting)  # fmt: skip
    if not vol.store.conditional_writes and not box.empty:
        cover = unit_cover(vol, box)
        if cover != box:
            raise UnsupportedError(
                f"writing {_shown(vol, box)} covers chunks or shards in part, which needs a "
                f"read-merge-write; the store {vol.url} has no conditional writes to make that "
                f"safe against concurrent writers, so nothing was written: write whole units, "
                f"such as the box {_shown(vol, cover)}"
            )
    return box, selection.dropped


def _shown(vol: BigArray, box: Box) -> Box:
    """``box`` (over every grid axis) over the axes of ``vol.bounds``, as errors show it."""
    axes = vol.level.spatial
    return Box(tuple(box.start[i] for i in axes), tuple(box.stop[i] for i in axes))


def from_dask(
    darr: da.Array,
    url_or_array: str | os.PathLike[str] | Store | BigArray,
    offset: Sequence[int] | None = None,
    *,
    blocks: Any = None,
    casting: Casting = "same_kind",
    compute: bool = True,
    scheduler: Any = None,
    **create_options: Any,
) -> BigArray | da.Array:
    """Write the Dask array ``darr`` into a new dataset at a URL, or into an open BigArray
    (``ba.from_dask``).

    - A URL (or Store): the dataset is created with ``darr``'s shape and dtype and
      ``create_options`` (anything :func:`bigarrays.create` takes: ``chunks``, ``encoding``,
      ``sharding``, ``resolution``, ``overwrite``, ``format``, ``dims`` ...); ``offset`` is its
      ``voxel_offset`` (precomputed: ``darr`` is (x, y, z) or (x, y, z, c)).
    - A BigArray opened ``"r+"``: ``darr``'s index 0 goes to ``offset`` (one value per axis of
      ``vol.bounds``; None: ``vol.bounds.start``).

    Written as :func:`store` writes (``blocks``, ``casting`` as there; ``scheduler`` as
    ``dask.compute`` takes it: ``"threads"``, ``"processes"``, a ``distributed.Client``...).
    Returns the BigArray, or with ``compute=False`` the Dask array whose computation writes
    (the dataset's metadata is written already).
    """
    if not isinstance(darr, da.Array):
        raise InvalidArgumentError(f"from_dask() writes a Dask array, got {type(darr).__name__}")
    if isinstance(url_or_array, BigArray):
        if create_options:
            raise InvalidArgumentError(
                f"{', '.join(create_options)}: options of a new dataset; the target is an open "
                "array"
            )
        vol = url_or_array
        region = _region_at(vol, darr, offset)
    else:
        vol = _create_for(darr, url_or_array, offset, create_options)
        region = None
    run = {} if scheduler is None else {"scheduler": scheduler}
    result = store(darr, vol, region, blocks=blocks, casting=casting, compute=compute, **run)
    return vol if compute else result  # type: ignore[return-value]


def _region_at(vol: BigArray, darr: da.Array, offset: Sequence[int] | None) -> tuple[slice, ...]:
    """The region of ``vol`` that ``darr`` fills when its index 0 sits at ``offset`` (one value
    per axis of ``vol.bounds``; None: ``vol.bounds.start``); positional axes start at 0."""
    level = vol.level
    spatial = level.spatial
    start = vol.bounds.start if offset is None else tuple(int(v) for v in offset)
    if len(start) != len(spatial):
        raise InvalidArgumentError(
            f"offset {tuple(offset or ())} names {len(start)} axes; the volume's bounds have "
            f"{len(spatial)} ({', '.join(level.axes[g].name for g in spatial)})"
        )
    if darr.ndim != vol.ndim:
        raise ShapeMismatchError(
            f"a Dask array of {darr.ndim} axes cannot fill a volume of {vol.ndim} {vol.dims}"
        )
    at = dict(zip(spatial, start, strict=True))
    region = []
    for g, n in zip(level.visible, darr.shape, strict=True):
        a = at.get(g, 0)
        region.append(slice(a, a + int(n)))
    return tuple(region)


def _create_for(
    darr: da.Array,
    url: str | os.PathLike[str] | Store,
    offset: Sequence[int] | None,
    options: dict[str, Any],
) -> BigArray:
    """A new dataset at ``url`` shaped like ``darr`` (``create`` takes ``options``)."""
    from bigarrays.api import _format_of, create

    for name in ("shape", "dtype", "voxel_offset"):
        if name in options:
            raise InvalidArgumentError(
                f"{name} of the new dataset comes from the Dask array"
                + (" and offset=" if name == "voxel_offset" else "")
            )
    shape = tuple(int(n) for n in darr.shape)
    if _format_of(url, options.get("format")) == "precomputed":
        if darr.ndim == 4:
            if "num_channels" in options:
                raise InvalidArgumentError(
                    "num_channels of the new volume is the Dask array's 4th axis"
                )
            options = {**options, "num_channels": shape[3]}
            shape = shape[:3]
        options = {**options, "voxel_offset": tuple(offset) if offset is not None else (0, 0, 0)}
    elif offset is not None:
        options = {**options, "voxel_offset": tuple(offset)}
    return create(url, shape=shape, dtype=darr.dtype, **options)
