"""The parallel chunk engine: fetch -> decode -> paste for reads, cut -> encode -> put for writes.

Work runs on a bounded thread pool: file and socket reads and the compression libraries release
the GIL, so threads overlap I/O and decoding. At most ``threads`` chunks are in flight, so a read
of a million chunks does not queue a million futures, and the first error stops the rest.

A source reads and writes one chunk at a time (``load`` / ``save``) unless it also offers
``read_pieces`` / ``write_pieces`` (:class:`BatchedChunkSource`): then the engine hands it every
piece of the box at once together with ``run``, the engine's bounded pool, and the source plans
its own tasks (a sharded layout groups chunks by shard, merges byte ranges, puts each shard once).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

import numpy as np

from bigarrays.box import Box, ChunkGrid, ChunkPiece, Vec
from bigarrays.cache import ChunkCache
from bigarrays.errors import ChunkNotFoundError, UnsupportedError
from bigarrays.fill import is_fill

T = TypeVar("T")


class ChunkSource(Protocol):
    """What the engine needs of a layout (see ``formats.precomputed.chunks.ChunkLayout``)."""

    grid: ChunkGrid
    dtype: np.dtype

    @property
    def url(self) -> str: ...

    def key(self, index: Vec) -> str: ...
    def load(self, index: Vec) -> np.ndarray | None: ...
    def save(self, index: Vec, chunk: np.ndarray) -> None: ...

    @property
    def merges_safely(self) -> bool:
        """Whether :meth:`merge` is safe against concurrent writers of the same chunk."""

    def merge(self, piece: ChunkPiece, part: np.ndarray, *, skip_empty: bool = False) -> None:
        """Write ``part`` over the chunk's stored voxels ``piece.in_chunk`` (read-merge-write
        with a conditional put, retried)."""


class Runner(Protocol):
    """The engine's pool as a source sees it: ``run(fn, items)`` calls ``fn`` on every item.

    Call it from the thread that called ``read_pieces`` / ``write_pieces`` only, never from inside
    a task: the pool is bounded, and a task that waits on the pool could wait forever.
    """

    def __call__(self, fn: Callable[[T], None], items: Iterable[T], /) -> None: ...


class BatchedChunkSource(ChunkSource, Protocol):
    """A source that plans reads and writes of many chunks together (see the module notes)."""

    def read_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        run: Runner,
        emit: Callable[[ChunkPiece, np.ndarray | None], None],
    ) -> None:
        """Load every piece's chunk and ``emit(piece, chunk or None)`` it, from any thread."""

    def write_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        part: Callable[[ChunkPiece], np.ndarray],
        run: Runner,
        done: Callable[[int], None],
    ) -> None:
        """Store ``part(piece)`` (the new voxels of ``piece.in_chunk``) for every piece, and
        call ``done(n)`` as chunks are stored."""


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
    worker rather than per item keeps the scheduling cost off the per-chunk path. The first
    exception stops the other workers and is re-raised once every worker has returned, so no
    task touches the caller's buffers after this returns.
    """
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

    futures = [executor.submit(work) for _ in range(workers)]
    try:
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

    @property
    def executor(self) -> cf.ThreadPoolExecutor | None:
        if self.threads == 1:
            return None
        if self._executor is None:
            self._executor = cf.ThreadPoolExecutor(self.threads, thread_name_prefix="bigarrays")
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _run(
        self, fn: Callable[[ChunkPiece], None], pieces: Iterable[ChunkPiece],
        on_done: Callable[[], None] | None,
    ) -> None:  # fmt: skip
        run_bounded(fn, pieces, self.executor, self.threads, on_done)

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
        cache: ChunkCache | None = None,
        count: int | None = None,
    ) -> np.ndarray:
        """A new Fortran-ordered array of ``box`` (4-D); voxels outside the bounds are 0.

        ``count`` is ``source.grid.count(box)`` when the caller has it already.
        """
        # np.zeros maps zero pages lazily: voxels never pasted over cost nothing until read.
        out = np.zeros(box.shape, dtype=source.dtype, order="F")

        read_pieces = getattr(source, "read_pieces", None)
        if read_pieces is not None:
            done = self._counter(on_chunk)

            def paste(piece: ChunkPiece, chunk: np.ndarray | None) -> None:
                if chunk is None:
                    if not fill_missing:
                        raise ChunkNotFoundError(source.key(piece.chunk_index), source.url)
                else:
                    out[piece.in_box] = chunk[piece.in_chunk]
                done(1)

            read_pieces(list(source.grid.pieces(box)), self.run, paste)
            return out

        load_view = getattr(source, "load_view", None)
        nbytes = int(getattr(source, "chunk_nbytes", 0)) + 1
        local = threading.local()

        def fetch_and_paste(piece: ChunkPiece) -> None:
            part = piece.in_chunk
            chunk = None if cache is None else cache.get(piece.chunk_index)
            if chunk is None:
                if load_view is None:
                    chunk = source.load(piece.chunk_index)
                else:
                    # One scratch buffer per thread, reused chunk after chunk: no allocation
                    # and no page faults per chunk (pasted before this thread reads the next).
                    scratch = getattr(local, "scratch", None)
                    if scratch is None:
                        scratch = local.scratch = bytearray(nbytes)
                    if cache is not None:  # the cache keeps whole chunks: read all of it
                        part = tuple(slice(0, n) for n in piece.chunk_box.shape)
                    chunk, part = load_view(piece.chunk_index, piece.chunk_box, scratch, part)
                if chunk is not None and cache is not None:
                    cache.put(piece.chunk_index, chunk)  # a private copy
                    part = piece.in_chunk
            if chunk is None:
                if not fill_missing:
                    raise ChunkNotFoundError(source.key(piece.chunk_index), source.url)
                return
            np.copyto(out[piece.in_box], chunk[part], casting="unsafe")

        pieces = source.grid.pieces(box)
        if count is None:
            count = source.grid.count(box)
        if count <= int(getattr(source, "inline_chunks", 1)):
            run_bounded(fetch_and_paste, pieces, None, 1, on_chunk)  # few chunks: no pool
        else:
            self._run(fetch_and_paste, pieces, on_chunk)
        return out

    def write(
        self,
        source: ChunkSource,
        box: Box,
        data: np.ndarray,
        *,
        on_chunk: Callable[[], None] | None = None,
        skip_empty: bool = False,
        cache: ChunkCache | None = None,
    ) -> None:
        """Write ``data`` (4-D, shape of ``box``, already checked to lie inside the bounds).

        ``skip_empty``: a chunk whose voxels (after merging) are all 0, the fill value, is not
        written, and a stored copy of it is deleted, so it reads back as 0 all the same.
        ``cache`` is kept coherent: every chunk written is dropped from it.
        """
        write_pieces = getattr(source, "write_pieces", None)
        if write_pieces is not None:

            def part(piece: ChunkPiece) -> np.ndarray:
                cut = data[piece.in_box]
                return cut if cut.dtype == source.dtype else cut.astype(source.dtype)

            try:
                write_pieces(list(source.grid.pieces(box)), part, self.run, self._counter(on_chunk))
            finally:
                if cache is not None:
                    for index in source.grid.indices(box):
                        cache.discard(index)
            return

        save_view = getattr(source, "save_view", None)
        delete = getattr(source, "delete", None)
        if skip_empty and delete is None:
            raise TypeError(f"{type(source).__name__} cannot delete chunks: no skip_empty")
        if not source.merges_safely:
            cover = source.grid.cover(box)
            if cover != box.intersect(source.grid.bounds):
                raise UnsupportedError(
                    f"the box {Box(box.start[:3], box.stop[:3])} covers chunks in part, which "
                    f"needs a read-merge-write; the store {source.url} has no conditional writes "
                    "to make that safe against concurrent writers, so nothing was written: write "
                    f"whole chunks, such as the box {Box(cover.start[:3], cover.stop[:3])}"
                )
        nbytes = int(getattr(source, "chunk_nbytes", 0)) + 1
        local = threading.local()

        def cut_and_put(piece: ChunkPiece) -> None:
            part = data[piece.in_box]
            if cache is not None:
                cache.discard(piece.chunk_index)
            if not piece.covers_chunk:
                # A chunk is one object: the voxels the box does not cover are carried over
                # from what is stored, by a merge that no concurrent writer can undo.
                if part.dtype != source.dtype:
                    part = part.astype(source.dtype)
                source.merge(piece, part, skip_empty=skip_empty)
                return
            chunk = part  # the whole chunk is new: nothing to read
            if skip_empty and is_fill(chunk):
                delete(piece.chunk_index)  # type: ignore[misc]
                return
            if save_view is not None:
                scratch = getattr(local, "scratch", None)
                if scratch is None:
                    scratch = local.scratch = bytearray(nbytes)
                save_view(piece.chunk_index, piece.chunk_box, chunk, scratch)
            else:
                if chunk.dtype != source.dtype:
                    chunk = chunk.astype(source.dtype)
                source.save(piece.chunk_index, chunk)

        self._run(cut_and_put, source.grid.pieces(box), on_chunk)
