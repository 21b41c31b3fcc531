"""The parallel chunk engine: fetch -> decode -> paste for reads, cut -> encode -> put for writes.

Work runs on a bounded thread pool: file and socket reads and the compression libraries release
the GIL, so threads overlap I/O and decoding. At most ``threads`` chunks are in flight, so a read
of a million chunks does not queue a million futures, and the first error stops the rest.

The engine talks to a level's chunks through :class:`~bigarrays.chunk_source.ChunkSource` alone.
A source reads and writes one chunk at a time (``load`` / ``save`` / ``merge``) unless it is
``batched``: then the engine hands it every piece of the box at once together with ``run``, the
engine's bounded pool, and the source plans its own tasks (a sharded layout groups chunks by shard,
merges byte ranges, puts each shard once).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import threading
from collections.abc import Callable, Iterable, Sized
from typing import TypeVar

import numpy as np

from bigarrays.box import Box, ChunkPiece
from bigarrays.chunk_source import ChunkSource, run_serially
from bigarrays.errors import ChunkNotFoundError, UnsupportedError
from bigarrays.fill import filled, is_fill
from bigarrays.transpose import ordered_copy

T = TypeVar("T")


def run_bounded(
    fn: Callable[[T], None],
    items: Iterable[T],
    executor: cf.Executor | None,
    workers: int,
    on_done: Callable[[], None] | None = None,
) -> None:
    """Call ``fn`` on every item with ``workers`` tasks on ``executor`` (inline when None).

    Each worker pulls the next item from the shared iterator, so nothing is queued ahead and a
    request of a million chunks holds no more than ``workers`` of them at a time; one future per
    worker rather than per item keeps the scheduling cost off the per-chunk path. The calling
    thread is one of the workers (it would only wait otherwise), and a sized ``items`` gets no
    more workers than it has items: a request of three chunks hands two to the pool. The first
    exception stops the other workers and is re-raised once every worker has returned, so no
    task touches the caller's buffers after this returns.
    """
    if isinstance(items, Sized):
        workers = min(workers, len(items))
    if executor is None or workers <= 1:
        for item in items:
            fn(item)
            if on_done is not None:
                on_done()
        return
    iterator = iter(items)
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        while not stop.is_set():
            with lock:
                item = next(iterator, _END)
            if item is _END:
                return
            try:
                fn(item)  # type: ignore[arg-type]
            except BaseException as exc:
                errors.append(exc)
                stop.set()
                return
            if on_done is not None:
                on_done()

    futures = [executor.submit(work) for _ in range(workers - 1)]
    try:
        work()
        cf.wait(futures)
    except BaseException:  # e.g. KeyboardInterrupt in the caller: stop the workers first
        stop.set()
        cf.wait(futures)
        raise
    if errors:
        raise errors[0]


_END = object()


class ChunkEngine:
    """Runs reads and writes of boxes over a chunk source with ``threads`` workers."""

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self._executor: cf.ThreadPoolExecutor | None = None
        # Pyramid and Dask blocks call one engine from several threads: one pool, made once.
        self._executor_lock = threading.Lock()

    @property
    def executor(self) -> cf.ThreadPoolExecutor | None:
        if self.threads == 1:
            return None
        with self._executor_lock:
            if self._executor is None:
                self._executor = cf.ThreadPoolExecutor(self.threads, thread_name_prefix="bigarrays")
            return self._executor

    def close(self) -> None:
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _run(
        self, fn: Callable[[ChunkPiece], None], pieces: Iterable[ChunkPiece],
        on_done: Callable[[], None] | None, count: int | None = None,
    ) -> None:  # fmt: skip
        """``run_bounded`` of the pieces of a box; ``count``, how many there are, spares a
        request of a few chunks the hand-over of idle workers to the pool."""
        workers = self.threads if count is None else min(self.threads, count)
        run_bounded(fn, pieces, self.executor, workers, on_done)

    def run(self, fn: Callable[[T], None], items: Iterable[T]) -> None:
        """The :class:`Runner` handed to batched sources."""
        run_bounded(fn, items, self.executor, self.threads)

    @staticmethod
    def _counter(on_chunk: Callable[[], None] | None) -> Callable[[int], None]:
        """``done(n)``, callable from any thread, that calls ``on_chunk`` n times."""
        lock = threading.Lock()

        def done(n: int) -> None:
            if on_chunk is not None:
                with lock:
                    for _ in range(n):
                        on_chunk()

        return done

    def read(
        self,
        source: ChunkSource,
        box: Box,
        *,
        fill_missing: bool = True,
        on_chunk: Callable[[], None] | None = None,
        count: int | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """A new array of ``box`` in the source's order; voxels outside the bounds, and chunks
        never written, hold the fill value.

        ``count`` is ``source.grid.count(box)`` when the caller has it already. ``out``: an
        array of the box's shape and the source's dtype to read into instead, for a box within
        the source's chunk grid (a caller that reads many boxes reuses one array, which spares
        the zeroing of fresh pages box after box); missing chunks are filled in it.
        """
        # Whether every voxel of ``out`` gets pasted over or filled piece by piece.
        unfilled = out is not None
        if out is None and source.grid.bounds.contains(box):
            # Every voxel is inside a piece: a zeroed array would be written twice (a large
            # one is often reused heap memory, which calloc has to clear).
            out = np.empty(box.shape, source.dtype, order=source.order)
            unfilled = True
        elif out is None:
            # np.zeros maps zero pages lazily: voxels never pasted over cost nothing until read.
            out = filled(box.shape, source.dtype, source.fill_value, source.order)

        def missing(piece: ChunkPiece) -> None:
            if unfilled:
                out[piece.in_box] = source.fill_value

        if source.batched:
            done = self._counter(on_chunk)

            def paste(piece: ChunkPiece, chunk: np.ndarray | None) -> None:
                if chunk is None:
                    if not fill_missing:
                        raise ChunkNotFoundError(source.key(piece.chunk_index), source.url)
                    missing(piece)
                else:
                    paste_into(out[piece.in_box], chunk[piece.in_chunk])
                done(1)

            listed = list(source.grid.pieces(box, source.order))
            source.read_pieces(listed, run_serially if len(listed) <= source.inline_chunks
                               else self.run, paste)  # fmt: skip
            return out

        nbytes = source.chunk_nbytes + 1
        local = threading.local()

        def fetch_and_paste(piece: ChunkPiece) -> None:
            # One scratch buffer per thread, reused chunk after chunk: no allocation and no page
            # faults per chunk (pasted before this thread reads the next).
            scratch = getattr(local, "scratch", None)
            if scratch is None:
                scratch = local.scratch = bytearray(nbytes)
            chunk, part = source.load_view(piece.chunk_index, piece.chunk_box, scratch,
                                           piece.in_chunk)  # fmt: skip
            if chunk is None:
                if not fill_missing:
                    raise ChunkNotFoundError(source.key(piece.chunk_index), source.url)
                missing(piece)
                return
            # out[()] of a 0-d array is a scalar, not a view to paste into.
            paste_into(out[piece.in_box] if out.ndim else out[...], chunk[part])

        # Chunks in the order they lie in the output (and, for Zarr, in a shard): C-ordered
        # sources last axis fastest.
        pieces = source.grid.pieces(box, source.order)
        if count is None:
            count = source.grid.count(box)
        if count <= source.inline_chunks:
            run_bounded(fetch_and_paste, pieces, None, 1, on_chunk)  # few chunks: no pool
        else:
            self._run(fetch_and_paste, pieces, on_chunk, count)
        return out

    def write(
        self,
        source: ChunkSource,
        box: Box,
        data: np.ndarray,
        *,
        on_chunk: Callable[[], None] | None = None,
        skip_empty: bool = False,
    ) -> None:
        """Write ``data`` (the shape of ``box``, already checked to lie inside the bounds).

        ``skip_empty``: a chunk whose voxels (after merging) all hold the fill value is not
        written, and a stored copy of it is deleted, so it reads back the same.
        """
        if source.batched:

            def part(piece: ChunkPiece) -> np.ndarray:
                return _cut(data, piece, source)

            source.write_pieces(list(source.grid.pieces(box, source.order)), part, self.run,
                                self._counter(on_chunk))  # fmt: skip
            return

        if not source.merges_safely:
            cover = source.grid.cover(box)
            if cover != box.intersect(source.grid.bounds):
                raise UnsupportedError(
                    f"the box {Box(box.start[:3], box.stop[:3])} covers chunks in part, which "
                    f"needs a read-merge-write; the store {source.url} has no conditional writes "
                    "to make that safe against concurrent writers, so nothing was written: write "
                    f"whole chunks, such as the box {Box(cover.start[:3], cover.stop[:3])}"
                )
        nbytes = source.chunk_nbytes + 1
        local = threading.local()

        def cut_and_put(piece: ChunkPiece) -> None:
            # The piece is saved or merged before this returns: a buffer of this thread's takes
            # its transposed copy, chunk after chunk.
            ordered = getattr(local, "ordered", None)
            if ordered is None:
                ordered = local.ordered = bytearray(nbytes)
            part = _cut(data, piece, source, ordered)
            if not piece.covers_chunk:
                # A chunk is one object: the voxels the box does not cover are carried over
                # from what is stored, by a merge that no concurrent writer can undo.
                source.merge(piece, part, skip_empty=skip_empty)
                return
            if skip_empty and is_fill(part, source.fill_value):
                source.delete(piece.chunk_index)
                return
            scratch = getattr(local, "scratch", None)
            if scratch is None:
                scratch = local.scratch = bytearray(nbytes)
            source.save_view(piece.chunk_index, piece.chunk_box, part, scratch)

        self._run(cut_and_put, source.grid.pieces(box, source.order), on_chunk,
                  source.grid.count(box))  # fmt: skip


@functools.lru_cache(maxsize=64)
def _row_type(nbytes: int) -> np.dtype:
    return np.dtype((np.void, nbytes))


def paste_into(dst: np.ndarray, src: np.ndarray) -> None:
    """``np.copyto(dst, src, casting="unsafe")``, a row at a time where it can.

    A chunk's part pasted into a larger array is a copy of many short rows (64 bytes for 64³
    chunks of uint8), and NumPy's strided copy pays per element within a row; with the rows
    viewed as one opaque element each (C or F order alike) it is one memcpy per row, about
    twice as fast.
    """
    if dst.ndim > 1 and dst.dtype == src.dtype and not dst.dtype.hasobject:
        k = dst.dtype.itemsize
        if dst.strides[-1] == k and src.strides[-1] == k and dst.shape[-1] > 1:
            row = _row_type(k * dst.shape[-1])
            np.copyto(dst.view(row), src.view(row))
            return
        if dst.strides[0] == k and src.strides[0] == k and dst.shape[0] > 1:
            row = _row_type(k * dst.shape[0])
            np.copyto(dst.T.view(row), src.T.view(row))
            return
    np.copyto(dst, src, casting="unsafe")


def _cut(
    data: np.ndarray, piece: ChunkPiece, source: ChunkSource, buffer: bytearray | None = None
) -> np.ndarray:
    """The voxels of ``piece`` in ``data``, of the source's dtype, laid out in its order (in
    ``buffer`` when given and they need moving).

    A piece in the other memory order (a C-ordered array into a precomputed volume, which
    stores x fastest) would be copied into the chunk element by element, which for small
    elements runs far below a plain copy; a word-wise transposing copy of the piece first is
    several times faster, and costs one piece's memory, not the whole block's.
    """
    part = data[piece.in_box]
    if part.dtype != source.dtype:
        part = part.astype(source.dtype)
    ordered = ordered_copy(part, source.order, buffer)
    return part if ordered is None else ordered
