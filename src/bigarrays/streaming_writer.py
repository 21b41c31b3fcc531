"""The streaming writer's engine: :class:`Stream` fills slabs of whole write units with frames
and writes them on background threads, moving the stored extent at checkpoints (see
``bigarrays.streaming`` for the design)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.array import BigArray
from bigarrays.box import Box
from bigarrays.errors import (
    DtypeMismatchError,
    InvalidArgumentError,
    ShapeMismatchError,
    StreamClosedError,
    StreamWriteError,
)
from bigarrays.formats.precomputed.chunks import ChunkLayout
from bigarrays.formats.shard_writes import ShardWriter
from bigarrays.formats.zarr.chunks import ZarrChunks
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks
from bigarrays.streaming_in_place import InPlaceSlab, writes_in_place
from bigarrays.streaming_pyramid import StreamPyramid, refuse_moving_grid
from bigarrays.streaming_shards import (
    ChunkSlab,
    fits,
    slab_array,
    write_chunks,
    write_shards,
)
from bigarrays.transpose import fortran_copy

#: What a stream fills with frames: an array, its chunks, or the stored chunks themselves.
Slab = np.ndarray | ChunkSlab | InPlaceSlab

DEFAULT_QUEUE_BYTES = 1 << 30
DEFAULT_CHECKPOINT_SECONDS = 5.0
WRITERS = 2


@dataclass(frozen=True)
class StreamStats:
    """A snapshot of a stream's progress (``s.stats``)."""

    #: Frames appended (steps along the axis), and of them those written to the store.
    frames: int
    written: int
    #: Bytes appended, and the rate they were written at since the stream opened.
    bytes: int
    seconds: float
    mib_per_s: float
    #: Frames appended but not yet written (in the slab being filled or queued).
    lag: int
    #: Checkpoints taken, and the stop along the axis that the last one stored.
    checkpoints: int
    checkpointed: int


class Stream:
    """Appends frames to ``vol`` along ``axis``; see :func:`stream`."""

    def __init__(
        self,
        vol: BigArray,
        axis: int | str,
        *,
        region: Mapping[str, int | slice] | None = None,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS,
        skip_empty: bool = True,
        owns_array: bool = False,
        method: str = "auto",
        fsync: bool = False,
    ) -> None:
        self.array = vol
        self._owns_array = owns_array
        level = vol.level
        dims = vol.dims
        j = dims.index(axis) if isinstance(axis, str) and axis in dims else axis
        if not isinstance(j, int) or not -len(dims) <= j < len(dims):
            raise InvalidArgumentError(f"axis must be one of {dims} or its index, got {axis!r}")
        j %= len(dims)
        self._axis = la = level.visible[j]
        if level.axes[la].positional:
            raise InvalidArgumentError(f"cannot stream along {dims[j]!r}: it is a channel axis")
        self._box, self._frame_shape, self._frame_axes = _region(vol, j, region)
        self._unit = level.unit[la]
        self._origin = level.source.grid.origin[la]
        self._skip_empty = skip_empty and level.deletes_chunks
        self._queue_bytes = queue_bytes
        self._checkpoint_seconds = checkpoint_seconds
        self._dtype = vol.dtype
        self._order = level.source.order
        # Where the next frame goes (absolute, along the axis) and the start of the open slab.
        self._stop = level.bounds.stop[la]
        self._slab_start = self._stop - (self._stop - self._origin) % self._unit
        self._slab: Slab | None = None
        # Where the stream began: frames appended are counted from it as they enter a slab.
        self._start = self._stop
        self._frame_bytes = int(np.prod(self._frame_shape, dtype=np.int64)) * self._dtype.itemsize
        self._written_stop = self._checkpointed = self._stop
        self._checkpoints = 0
        self._last_checkpoint = time.monotonic()
        self._started = time.monotonic()
        self._closed = False
        self._error: BaseException | None = None
        # Slabs not yet taken by a writer, numbered in order; the numbers of those written,
        # until every slab before them is written too (the extent may move over them then).
        self._queue: deque[tuple[int, Box, Slab]] = deque()
        self._submitted = self._finished = 0
        self._done: dict[int, int] = {}
        self._queued = 0
        # A written slab, kept for the next one to fill: a fresh one of hundreds of MiB costs
        # the kernel a page fault and a zeroed page for every 4 KiB the frames are copied into.
        # It counts in the queue's bytes until taken, so that the stream holds no more than
        # ``queue_bytes``, the slab being filled and the shards being encoded (one at a time).
        self._spare: Slab | None = None
        self._cond = threading.Condition()
        self._growing = threading.Lock()
        # One slab is encoded at a time (on the whole pool) and one slab's encoded shards put
        # at a time: a second writer overlaps the two (bigarrays.streaming_shards).
        self._encoding = threading.Lock()
        self._putting = threading.Lock()
        self._pyramid: StreamPyramid | None = None
        if vol.mips > 1:
            if region is not None:
                raise InvalidArgumentError(
                    f"{vol.url} has {vol.mips} levels, which a stream writes whole: a region= "
                    "would leave their pooled cells half written; stream the whole frame"
                )
            refuse_moving_grid(vol)
            self._pyramid = StreamPyramid(vol, la, self._box, self._unit, method)
        # A fixed grid too small for even the next slab (a sharded precomputed volume made
        # without max_shape) is refused now rather than by the writer thread later.
        ahead = vol._dataset.ahead(self._slab_box(self._slab_start + self._unit))
        # Slabs of a Zarr level are kept as their (inner) chunks, which are then encoded (or
        # put, raw) from where the frames were copied (bigarrays.streaming_shards).
        self._chunks: tuple[int, ...] | None = None
        if self._pyramid is None and fits(ahead, self._slab_box(self._slab_start + self._unit)):
            self._chunks = tuple(ahead.grid.chunk)
        # Raw chunks on a store that writes at offsets go there frame by frame: no slab in
        # memory, no copy but the one into the store (bigarrays.streaming_in_place).
        self._in_place = self._pyramid is None and writes_in_place(
            ahead, self._slab_box(self._slab_start + self._unit)
        )
        self._fill = level.source.fill_value
        if self._slab_start < self._stop:
            self._resume_partial()
        self._fsync = fsync
        if fsync:
            vol.store.checkpoint()  # stores that count what a checkpoint flushes start here
        # Two writers: one slab's last puts overlap the next slab's encoding. A sharded level
        # written through the engine gets one: a writer holds its whole shard encoded until the
        # put, so a second would hold a second shard beside the queue. Slabs kept as chunks
        # give theirs back as soon as they are encoded (raw ones are put from the slab), and
        # the encoded bytes count in the queue until put.
        one = isinstance(level.source, ShardWriter) and self._chunks is None
        writers = 1 if one else WRITERS
        self._writers = [threading.Thread(target=self._run, name="bigarrays-stream", daemon=True)
                         for _ in range(writers)]  # fmt: skip
        for writer in self._writers:
            writer.start()

    # -- appending ---------------------------------------------------------------------------------
    @property
    def position(self) -> int:
        """The coordinate along the axis where the next frame goes."""
        return self._stop

    def append(self, frame: Any) -> None:
        """Add one frame (the stream's frame shape) or a block of several (that shape with the
        axis in its place, any depth). Blocks while ``queue_bytes`` of slabs wait to be written;
        raises :class:`~bigarrays.errors.StreamWriteError` once a write has failed."""
        self._check()
        block = self._as_block(frame)
        done, depth = 0, block.shape[self._axis]
        while done < depth:
            if self._slab is None:
                self._slab = self._new_slab()
            at = self._stop - self._slab_start
            n = min(depth - done, self._unit - at)
            take: list[Any] = [slice(None)] * block.ndim
            take[self._axis] = slice(done, done + n)
            self._put(self._slab, block[tuple(take)], at)
            done += n
            self._stop += n
            if self._stop - self._slab_start == self._unit:
                self._submit()

    def _as_block(self, frame: Any) -> np.ndarray:
        data = np.asarray(frame)
        if data.dtype != self._dtype:
            raise DtypeMismatchError(
                f"frame {self._stop - self._start} has dtype {data.dtype}; the stream writes "
                f"{self._dtype} (convert it first: frame.astype('{self._dtype}'))"
            )
        shape = self._frame_shape
        if data.shape == shape:
            depth = 1
        elif data.ndim == len(shape) + 1:
            k = self._frame_axes.index(self._axis) if self._axis in self._frame_axes else -1
            with_axis = [n for i, n in enumerate(data.shape) if i != k]
            depth = data.shape[k] if k >= 0 and tuple(with_axis) == shape else -1
        else:
            depth = -1
        if depth < 0:
            raise ShapeMismatchError(
                f"frame {self._stop - self._start} has shape {data.shape}; the stream takes "
                f"frames of shape {shape}, or blocks with the streamed axis added"
            )
        full = list(self._box.shape)
        full[self._axis] = depth
        return data.reshape(full)

    def _put(self, slab: Slab, part: np.ndarray, at: int) -> None:
        """Copy ``part`` into ``slab``, ``at`` frames into it along the axis."""
        if isinstance(slab, InPlaceSlab | ChunkSlab):
            corner = [0] * part.ndim
            corner[self._axis] = at
            try:
                slab.put(part, corner)
            except Exception as exc:
                if not isinstance(slab, InPlaceSlab):
                    raise
                # A write to the store: the stream fails as a writer's failure makes it fail.
                with self._cond:
                    if self._error is None:
                        self._error = exc
                raise self._failure() from exc
            return
        into: list[Any] = [slice(None)] * part.ndim
        into[self._axis] = slice(at, at + part.shape[self._axis])
        if self._order == "F":  # frames come C-ordered: the word-wise transpose
            fortran_copy(part, slab[tuple(into)])
        else:
            slab[tuple(into)] = part

    def _new_slab(self) -> Slab:
        with self._cond:
            spare = self._take_spare()
        if spare is not None:
            return spare
        shape = list(self._box.shape)
        shape[self._axis] = self._unit
        if self._in_place:
            box = self._slab_box(self._slab_start + self._unit)
            source = self.array._dataset.ahead(box)
            assert isinstance(source, ZarrChunks | ShardedZarrChunks | ChunkLayout)
            return InPlaceSlab(source, box, self._axis, self._skip_empty)
        if self._chunks is not None:
            return ChunkSlab(shape, self._chunks, self._dtype, self._fill)
        return slab_array(shape, self._dtype, order=self._order)

    def _slab_box(self, stop: int) -> Box:
        start, end = list(self._box.start), list(self._box.stop)
        start[self._axis], end[self._axis] = self._slab_start, stop
        return Box(start, end)

    def _submit(self) -> None:
        assert self._slab is not None
        nbytes = self._slab.nbytes
        with self._cond:
            # The spare, if any, is the next slab to fill: it leaves the queue as this enters.
            while (
                self._error is None
                and (held := self._queued - self._spare_bytes()) > 0
                and (held + nbytes > self._queue_bytes)
            ):
                self._cond.wait()
            if self._error is not None:
                raise self._failure()
            self._queue.append((self._submitted, self._slab_box(self._stop), self._slab))
            self._submitted += 1
            self._queued += nbytes
            self._slab = self._take_spare()
            self._cond.notify_all()
        self._slab_start = self._stop

    def _spare_bytes(self) -> int:
        return 0 if self._spare is None else self._spare.nbytes

    def _take_spare(self) -> Slab | None:
        """The spare slab, out of the queue's count (the caller holds ``_cond``)."""
        spare, self._spare = self._spare, None
        self._queued -= 0 if spare is None else spare.nbytes
        return spare

    def _give_back(self, slab: Slab) -> None:
        """Keep a written ``slab``, counted in the queue, as the spare; free it if there is
        one, or if the queue holds more than its bytes (encoded shards count there too)
        (the caller holds ``_cond``)."""
        if isinstance(slab, InPlaceSlab):
            return  # it holds no memory, and its values are published or dropped
        if self._spare is None and self._queued <= self._queue_bytes:
            self._spare = slab
            return
        self._queued -= slab.nbytes
        if isinstance(slab, ChunkSlab):
            slab.release()  # its shards, encoded, may still be being put

    def _drop_queue(self) -> None:
        """Forget the slabs not yet taken by a writer (the caller holds ``_cond``)."""
        for _, _, slab in self._queue:
            _drop(slab)
        self._queue.clear()
        self._queued = 0

    def _resume_partial(self) -> None:
        """Load the frames of a slab begun before a clean close, the one read a resume makes
        (a checkpoint taken while streaming lies on a slab boundary: nothing to read)."""
        self._slab = self._new_slab()
        box = self._slab_box(self._stop)
        self._put(self._slab, self.array._engine.read(self.array.level.source, box), 0)

    # -- the writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed and self._error is None:
                    self._cond.wait()
                if not self._queue or self._error is not None:
                    return
                seq, box, slab = self._queue.popleft()
            # The bytes this slab counts for in the queue (its encoded shards once it is given
            # back, as soon as they no longer point into it), and whether it was.
            held = [slab.nbytes, 0]

            def encoded(n: int, slab: Slab = slab, held: list[int] = held) -> None:
                if n < 0:
                    return
                with self._cond:
                    self._queued += n
                    held[:] = [n, 1]
                    self._give_back(slab)
                    self._cond.notify_all()

            try:
                self._write(box, slab, encoded)
                with self._cond:
                    self._done[seq] = box.stop[self._axis]
                    while self._finished in self._done:
                        self._written_stop = self._done.pop(self._finished)
                        self._finished += 1
                if time.monotonic() - self._last_checkpoint >= self._checkpoint_seconds:
                    self._checkpoint()
                with self._cond:  # an append waiting for room sees the checkpoint taken
                    if held[1]:
                        self._queued -= held[0]
                    else:
                        self._give_back(slab)
                    self._cond.notify_all()
                # Not held while waiting for the next: a slab freed by _give_back goes now.
                del slab, encoded
            except BaseException as exc:
                _drop(slab)
                with self._cond:
                    if self._error is None:
                        self._error = exc
                    self._drop_queue()
                    self._cond.notify_all()
                return

    def _write(
        self,
        box: Box,
        slab: Slab,
        encoded: Callable[[int], None] = lambda _: None,
    ) -> None:
        vol = self.array
        if box.start[self._axis] < self._checkpointed < box.stop[self._axis]:
            # A slab begun before a resume: its edge chunk is stored under the name the stored
            # end gives it, which growing renames, so the end moves first and the whole slab
            # then replaces that chunk (frames before the end stay readable throughout).
            self._grow_to(box.stop[self._axis])
        source = vol._dataset.ahead(box)
        if isinstance(slab, InPlaceSlab):
            slab.publish(source)
            return
        if isinstance(slab, ChunkSlab):
            if box.shape[self._axis] == self._unit and isinstance(source, ShardedZarrChunks):
                write_shards(source, box, slab, vol._engine.run, encoded, self._encoding,
                             self._putting)  # fmt: skip
                return
            if box.shape[self._axis] == self._unit and isinstance(source, ZarrChunks):
                write_chunks(source, box, slab, vol._engine.run, self._skip_empty)
                return
            data = slab.logical(box.shape)  # the slab of the last frames, cut at the end
        else:
            data = slab[tuple(slice(0, n) for n in box.shape)]
        vol._engine.write(source, box, data, skip_empty=self._skip_empty)
        if self._pyramid is not None:
            self._pyramid.add(box, data)

    def _checkpoint(self) -> None:
        with self._cond:
            stop = self._written_stop
        if self._pyramid is not None:
            self._pyramid.flush()
        if stop > self._checkpointed:
            self._grow_to(stop)
        self._last_checkpoint = time.monotonic()

    def _grow_to(self, stop: int) -> None:
        """Store an extent reaching ``stop`` along the axis (never less than stored now)."""
        axis = self._axis

        def grow(current: Box) -> Box:
            end = list(current.stop)
            end[axis] = max(end[axis], stop)
            return Box(current.start, end)

        with self._growing:  # one metadata write at a time; a later one may cover this one
            if stop > self._checkpointed:
                levels = None if self._pyramid is None else self._pyramid.levels
                # The chunks reach the disk before the metadata names them, and the metadata
                # (a zip: its directory) before the checkpoint counts: a failing flush leaves
                # the extent of the last checkpoint.
                self.array.store.checkpoint(flush=self._fsync)
                self.array._resized(grow, levels)
                self.array.store.checkpoint(flush=self._fsync)
                self._checkpointed = stop
                self._checkpoints += 1

    # -- state -----------------------------------------------------------------------------------
    @property
    def stats(self) -> StreamStats:
        with self._cond:
            written = self._written_stop
        seconds = time.monotonic() - self._started
        frames = self._stop - self._start
        done = written - self._start
        return StreamStats(
            frames=frames, written=done, bytes=frames * self._frame_bytes, seconds=seconds,
            mib_per_s=done * self._frame_bytes / (1 << 20) / seconds if seconds > 0 else 0.0,
            lag=frames - done, checkpoints=self._checkpoints,
            checkpointed=self._checkpointed,
        )  # fmt: skip

    def _check(self) -> None:
        if self._error is not None:
            raise self._failure()
        if self._closed:
            raise StreamClosedError(f"the stream to {self.array.url} is closed")

    def _failure(self) -> StreamWriteError:
        err = StreamWriteError(
            f"writing to {self.array.url} failed ({type(self._error).__name__}: {self._error}); "
            f"the dataset holds the frames up to {self._checkpointed} along the axis, the last "
            "checkpoint: reopen it with ba.stream(url, resume=True) to continue from there"
        )
        err.__cause__ = self._error
        return err

    def close(self) -> None:
        """Write what is queued and the partial slab, store the extent, stop the writer."""
        if self._closed:
            return
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for writer in self._writers:
            writer.join()
        try:
            if self._error is None:
                if self._slab is not None and self._stop > self._slab_start:
                    self._write(self._slab_box(self._stop), self._slab)
                    self._written_stop = self._stop
                self._checkpoint()
        except BaseException as exc:
            self._error = exc
        finally:
            # What a failure left unwritten: the slab being filled, slabs no writer took.
            with self._cond:
                self._drop_queue()
            if self._slab is not None:
                _drop(self._slab)
                self._slab = None
            if self._owns_array:
                try:
                    self.array.close()  # a zip writes its directory here: it may fail too
                except BaseException as exc:
                    if self._error is None:
                        self._error = exc
        if self._error is not None:
            raise self._failure()

    def abort(self) -> None:
        """Stop without writing what is not written yet (the last checkpoint stays)."""
        with self._cond:
            self._closed = True
            self._drop_queue()
            self._cond.notify_all()
        for writer in self._writers:
            writer.join()
        if self._slab is not None:
            _drop(self._slab)
            self._slab = None
        if self._owns_array:
            self.array.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        # Frames appended before an error in the acquisition loop are valid: they go out too.
        self.close()


def _drop(slab: Slab) -> None:
    """Let go of a slab that will not be written (its values stored in place are dropped)."""
    if isinstance(slab, InPlaceSlab):
        slab.discard()


def _region(
    vol: BigArray, j: int, region: Mapping[str, int | slice] | None
) -> tuple[Box, tuple[int, ...], tuple[int, ...]]:
    """The box over every grid axis a stream fills (its start along the axis unset), the shape
    of a frame, and the grid axes a block has (the frame's and the streamed one)."""
    level = vol.level
    dims = vol.dims
    bounds = level.bounds
    start, stop = list(bounds.start), list(bounds.stop)
    dropped: set[int] = set()
    for name, sel in (region or {}).items():
        if name not in dims or dims.index(name) == j:
            raise InvalidArgumentError(
                f"region names the axes {tuple(d for k, d in enumerate(dims) if k != j)}; "
                f"got {name!r}"
            )
        i = level.visible[dims.index(name)]
        if isinstance(sel, slice):
            a = bounds.start[i] if sel.start is None else sel.start
            b = bounds.stop[i] if sel.stop is None else sel.stop
        else:
            a, b = int(sel), int(sel) + 1
            dropped.add(i)
        if level.axes[i].positional:
            a, b = a + bounds.start[i], b + bounds.start[i]
        unit, origin = level.unit[i], level.source.grid.origin[i]
        aligned = all(v in (bounds.start[i], bounds.stop[i]) or (v - origin) % unit == 0
                      for v in (a, b))  # fmt: skip
        if not bounds.start[i] <= a < b <= bounds.stop[i] or not aligned:
            raise InvalidArgumentError(
                f"region {name}={sel!r} must lie inside {bounds.start[i]}:{bounds.stop[i]} on "
                f"whole write units of {unit} (so that no other stream shares a unit)"
            )
        start[i], stop[i] = a, b
    box = Box(start, stop)
    axes = tuple(i for i in level.visible if i not in dropped)
    frame = tuple(box.shape[i] for i in axes if i != level.visible[j])
    return box, frame, axes
