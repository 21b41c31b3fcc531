"""The acquisition writer: frames appended along one axis, written as whole chunks (or shards).

``with ba.stream(url, axis="z", shape=(2048, 2048), dtype="uint16") as s: s.append(frame)``.
Frames are copied into a slab one write unit deep along the axis (a chunk, or a shard on sharded
levels) that spans the stream's region along the others. A full slab goes to a bounded queue; one
writer thread hands it to the chunk engine, which cuts, encodes and puts its units on the pool.
Every unit is written once and nothing is read back, because each slab covers whole units: the
slab past the stored end goes through a source whose grid already reaches it
(``Dataset.ahead``), under the names the chunks keep when the end moves past them. A Zarr slab is
kept as its chunks (``streaming_shards``); a raw one in a local folder is not kept at all, each
frame going straight into the files of its chunks, published when the slab is whole
(``streaming_in_place``).

The stored extent moves at checkpoints only (every ``checkpoint_seconds`` once a slab is written,
and at close), and only over frames fully written, so a reader, a viewer or a process reopening
the dataset after a crash sees every frame up to the last checkpoint and nothing half-written.
A checkpoint never shrinks the extent, so several streams (one per camera or channel, each with
a ``region`` of whole units of its own) can share one array.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Mapping
from typing import Any

from bigarrays.api import _format_of, create, open
from bigarrays.array import BigArray
from bigarrays.errors import DatasetExistsError, DatasetNotFoundError, InvalidArgumentError
from bigarrays.stores.base import Store
from bigarrays.stores.memory import drop_namespace
from bigarrays.streaming_discard import Container, container_before, discard
from bigarrays.streaming_pyramid import add_levels, refuse_moving_grid
from bigarrays.streaming_writer import (
    DEFAULT_CHECKPOINT_SECONDS,
    DEFAULT_QUEUE_BYTES,
    Stream,
    StreamStats,
)

__all__ = ["DEFAULT_CHECKPOINT_SECONDS", "DEFAULT_QUEUE_BYTES", "Stream", "StreamStats", "stream"]


def stream(
    target: str | BigArray | Any,
    axis: int | str = 0,
    *,
    shape: tuple[int, ...] | None = None,
    dtype: Any = None,
    region: Mapping[str, int | slice] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    queue_bytes: int = DEFAULT_QUEUE_BYTES,
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS,
    skip_empty: bool = True,
    threads: int | None = None,
    mips: int | None = None,
    factor: Any = "auto",
    method: str = "auto",
    fsync: bool = False,
    **options: Any,
) -> Stream:
    """A writer that appends frames along ``axis`` (a name of ``vol.dims`` or an index).

    ``target`` is a :class:`BigArray` opened for writing (the stream starts at its end along
    ``axis``) or a URL. A URL that holds no dataset (or ``overwrite=True``) is created from the
    frame ``shape`` and ``dtype`` with an extent of 0 along ``axis``; the other ``options``
    (``chunks``, ``dims``, ``format``, ``compression``, ``sharding``, ``max_shape``, store
    options, ...) go to :func:`bigarrays.create`. An existing dataset is continued with
    ``resume=True`` from its stored end, else refused.

    A stream refused before its first frame (an option that does not fit the dataset, a store
    that refuses a write) deletes the dataset it created, and the folder or file made for it
    (``bigarrays.streaming_discard``); a dataset that was there before is never touched. With
    ``overwrite=True`` the stream is first opened on a copy of the new dataset made in memory,
    so that what the options alone refuse is refused before the old dataset is deleted.

    ``region`` restricts the stream to part of the other axes, ``{"c": 1}`` or
    ``{"x": slice(0, 1024)}``, on whole write units, so that several streams can fill one array.
    ``queue_bytes``: full slabs that may wait before ``append`` blocks (a raw level in a local
    folder holds no slabs: its frames go straight to the chunk files). ``checkpoint_seconds``:
    how often the stored extent follows the frames written. ``skip_empty``: chunks that hold
    only the fill value are not stored (unsharded levels).

    ``fsync=True`` makes each checkpoint durable against a power loss, not only a crash of
    the process: the chunks written since the last one, then the metadata, are flushed to disk
    (a zip file's checkpoints always are).

    ``mips=3`` (with ``factor``, as ``vol.downsample`` takes it, and ``method``) adds the levels
    of a pyramid to a dataset that holds no frames yet and writes them as the frames arrive
    (``bigarrays.streaming_pyramid``); a dataset that has levels already gets them written
    without asking. A precomputed volume with levels needs ``max_shape`` (a fixed grid).
    """
    if isinstance(target, BigArray):
        if mips:
            _add_levels(target, axis, mips, factor, method)
        return Stream(target, axis, region=region, queue_bytes=queue_bytes,
                      checkpoint_seconds=checkpoint_seconds, skip_empty=skip_empty,
                      method=method, fsync=fsync)  # fmt: skip
    vol: BigArray | None = None
    where: Container | None = None
    made = False  # the dataset is this call's: a refused stream deletes it
    if not overwrite:
        store_options = {k: v for k, v in options.items() if k == "format"}
        try:
            vol = open(target, mode="r+", threads=threads, **store_options)
        except DatasetNotFoundError:
            vol = None
        if vol is not None and not resume:
            vol.close()
            raise DatasetExistsError(
                f"{target} holds a dataset already: pass resume=True to append to it, or "
                "overwrite=True to replace it"
            )
    if vol is None:
        if (
            mips
            and _format_of(target, options.get("format")) == "precomputed"
            and not (options.get("max_shape") or options.get("max_bounds"))
        ):
            raise InvalidArgumentError(
                "a precomputed volume streamed with mips= needs max_shape= (or max_bounds=): "
                "its levels' chunk names follow their grids, which must not move as it grows"
            )
        if overwrite:
            _check_in_memory(target, axis, shape, dtype, threads, options, region, mips,
                             factor, method)  # fmt: skip
        where = container_before(target)
        vol = _create(target, axis, shape, dtype, overwrite, threads, options)
        made = True
    try:
        if mips:
            _add_levels(vol, axis, mips, factor, method)
        return Stream(vol, axis, region=region, queue_bytes=queue_bytes,
                      checkpoint_seconds=checkpoint_seconds, skip_empty=skip_empty,
                      owns_array=True, method=method, fsync=fsync)  # fmt: skip
    except BaseException:
        if made:
            discard(vol, where)
        else:
            vol.close()
        raise


#: What ``create`` takes besides the store's own options (which a store in memory refuses).
_CREATE_OPTIONS = frozenset(inspect.signature(create).parameters) - frozenset(
    ("url", "shape", "dtype", "overwrite", "threads")
)


def _check_in_memory(
    target: Any,
    axis: int | str,
    shape: tuple[int, ...] | None,
    dtype: Any,
    threads: int | None,
    options: dict[str, Any],
    region: Mapping[str, int | slice] | None,
    mips: int | None,
    factor: Any,
    method: str,
) -> None:
    """Open the stream on a copy of its new dataset made in memory, then drop it: whatever the
    metadata alone refuses (an axis, a region, a pyramid that does not fit the chunks) is
    refused before ``overwrite=True`` deletes the dataset that is there now."""
    name = target.url if isinstance(target, Store) else os.fspath(target)
    # The name's last part keeps what its suffix tells create (an OME-Zarr image's .ome.zarr).
    tail = name.rstrip("/").rsplit("/", 1)[-1]
    url = f"memory://bigarrays-stream-check-{uuid.uuid4().hex}/{tail}"
    known = {k: v for k, v in options.items() if k in _CREATE_OPTIONS}
    known["format"] = _format_of(target, options.get("format"))
    try:
        vol = _create(url, axis, shape, dtype, False, threads, known)
        try:
            if mips:
                _add_levels(vol, axis, mips, factor, method)
            Stream(vol, axis, region=region, owns_array=True, method=method).abort()
        except BaseException:
            vol.close()
            raise
    finally:
        drop_namespace(url)


def _add_levels(vol: BigArray, axis: int | str, mips: int, factor: Any, method: str) -> None:
    """Add the levels ``mips`` asks for to ``vol``, unless it has them already."""
    refuse_moving_grid(vol)
    if vol.mips > 1:
        if vol.mips - 1 != mips:
            raise InvalidArgumentError(
                f"{vol.url} has {vol.mips - 1} levels after the first; mips={mips} asks for "
                "another pyramid. Leave mips out to keep writing the levels it has"
            )
        return
    dims = vol.dims
    j = dims.index(axis) if isinstance(axis, str) and axis in dims else axis
    if isinstance(j, int) and -len(dims) <= j < len(dims) and vol.shape[j]:
        raise InvalidArgumentError(
            f"{vol.url} holds {vol.shape[j]} frames already: build its pyramid with "
            "vol.downsample(...) first, then stream into it"
        )
    add_levels(vol, mips, factor, method)


def _create(
    target: Any,
    axis: int | str,
    shape: tuple[int, ...] | None,
    dtype: Any,
    overwrite: bool,
    threads: int | None,
    options: dict[str, Any],
) -> BigArray:
    if shape is None or dtype is None:
        raise InvalidArgumentError(
            f"{target} holds no dataset: give the frame shape= and dtype= to create it"
        )
    frame = tuple(int(n) for n in shape)
    precomputed = _format_of(target, options.get("format")) == "precomputed"
    if not precomputed and not options.get("dims") and isinstance(axis, str):
        # A Zarr array's axes are dim_0, dim_1, ... unless named: "t" would name none of them.
        raise InvalidArgumentError(
            f"axis={axis!r} names an axis, but a Zarr array's axes are named by dims=: pass "
            f"dims= (such as ('t', 'y', 'x')) naming {axis!r}, or the axis' index"
        )
    dims = options.get("dims") or ("x", "y", "z", "c")[: len(frame) + 1]
    j = dims.index(axis) if isinstance(axis, str) and axis in dims else axis
    if not isinstance(j, int) or not 0 <= j <= len(frame):
        raise InvalidArgumentError(f"axis must be one of {tuple(dims)} or its index, got {axis!r}")
    full = (*frame[:j], 0, *frame[j:])
    return create(target, shape=full, dtype=dtype, overwrite=overwrite, threads=threads,
                  **options)  # fmt: skip
