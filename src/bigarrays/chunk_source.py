"""The one protocol between the chunk engine and a format's chunks: :class:`ChunkSource`.

A format's level (a precomputed scale, later a Zarr array) hands the engine an object with these
members, and the engine calls nothing else: it never probes for optional methods. What a source
may or may not do is said by plain attributes (``batched``, ``merges_safely``), and
:class:`ChunkSourceBase` gives every optional method a default that falls back on the basic ones,
so a format implements only what it does better.

- One chunk at a time: ``load`` / ``save`` / ``delete`` of decoded chunks by grid index, and
  ``merge`` for a write of part of a chunk (a read-merge-conditional-write). ``load_view`` and
  ``save_view`` may go through a scratch buffer the engine keeps per thread (zero-copy raw chunks).
- Many chunks at once (``batched``): ``read_pieces`` / ``write_pieces`` get every piece of a box
  and the engine's bounded pool, and plan their own requests (shards: one read per byte range, one
  write per shard). ``read_pieces`` may emit a chunk (or the part of it that a piece needs) as a
  view of a buffer it reuses once ``emit`` returns: an ``emit`` that keeps a chunk copies it.

Chunks are decoded arrays of the grid's full chunk axes in the source's ``order`` ("F" for
precomputed); the part of a chunk outside the bounds, if the format stores it, is never pasted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol, TypeVar

import numpy as np

from bigarrays.box import Box, ChunkGrid, ChunkPiece, Vec

T = TypeVar("T")
Order = Literal["C", "F"]

#: ``inline_chunks`` of sources whose chunks are read straight into a buffer (raw chunks of a
#: local file): see ``formats.precomputed.chunks.ChunkLayout.inline_chunks`` for the measurement.
INLINE_CHUNKS = 128

#: ``inline_chunks`` of raw Zarr chunks of a local file. Their pieces paste into C-ordered
#: output more slowly than precomputed's, so the pool pays off sooner: an unaligned 256³ cutout
#: of 125 chunks of 64³ uint8 took 10.3-11.7 ms serial and 7.9-8.3 ms on the pool of 4 (load
#: 0.3; precomputed: 7.5-8.0 serial, 7.7 pool); at 64 chunks serial was as fast or faster.
ZARR_INLINE_CHUNKS = 64

#: ``inline_chunks`` of sharded sources whose raw chunks come from a local file: a request that
#: touches at most a 2x2x2 block of chunks reads a few ranges of a shard through one open, which
#: costs less than the hand-overs to and from the pool (1,000 random 32³ cutouts of a 512³ shard
#: of 64³ raw chunks: see bench/zarr_compare.py).
SHARD_INLINE_CHUNKS = 8


class Runner(Protocol):
    """The engine's pool as a source sees it: ``run(fn, items)`` calls ``fn`` on every item.

    Call it from the thread that called ``read_pieces`` / ``write_pieces`` only, never from inside
    a task: the pool is bounded, and a task that waits on the pool could wait forever.
    """

    def __call__(self, fn: Callable[[T], None], items: Iterable[T], /) -> None: ...


def run_serially(fn: Callable[[T], None], items: Iterable[T], /) -> None:
    """A :class:`Runner` that calls ``fn`` on every item on this thread: for requests too small
    to share out, and for the one-chunk calls of a batched source."""
    for item in items:
        fn(item)


class ChunkSource(Protocol):
    """What the engine needs of a level's chunks (see the module notes)."""

    grid: ChunkGrid
    dtype: np.dtype
    #: The value of voxels never written (a NumPy scalar of ``dtype``).
    fill_value: Any
    #: Memory order of decoded chunks and of the arrays the engine returns.
    order: Order
    #: Bytes of one whole chunk: the size of a thread's scratch buffer for the ``*_view`` calls.
    chunk_nbytes: int
    #: Requests of up to this many chunks run on the calling thread (no pool).
    inline_chunks: int
    #: True when ``read_pieces`` / ``write_pieces`` plan many chunks together.
    batched: bool
    #: True when ``merge`` is safe against concurrent writers of the chunk.
    merges_safely: bool

    @property
    def url(self) -> str: ...

    def key(self, index: Vec) -> str: ...
    def load(self, index: Vec) -> np.ndarray | None: ...
    def load_view(
        self, index: Vec, box: Box, scratch: bytearray, in_chunk: tuple[slice, ...]
    ) -> tuple[np.ndarray | None, tuple[slice, ...]]: ...
    def save(self, index: Vec, chunk: np.ndarray) -> None: ...
    def save_view(self, index: Vec, box: Box, part: np.ndarray, scratch: bytearray) -> None: ...
    def merge(self, piece: ChunkPiece, part: np.ndarray, *, skip_empty: bool = False) -> None: ...
    def delete(self, index: Vec) -> None: ...
    def read_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        run: Runner,
        emit: Callable[[ChunkPiece, np.ndarray | None], None],
    ) -> None: ...
    def write_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        part: Callable[[ChunkPiece], np.ndarray],
        run: Runner,
        done: Callable[[int], None],
    ) -> None: ...


class ChunkSourceBase:
    """Defaults for the optional members of :class:`ChunkSource`: views fall back on ``load`` /
    ``save``; a source that is not ``batched`` has no ``*_pieces``; ``merge`` is refused."""

    fill_value: Any = 0
    order: Order = "F"
    chunk_nbytes = 0
    inline_chunks = 1
    batched = False
    merges_safely = False

    def load(self, index: Vec) -> np.ndarray | None:
        raise NotImplementedError

    def save(self, index: Vec, chunk: np.ndarray) -> None:
        raise NotImplementedError

    def load_view(
        self, index: Vec, box: Box, scratch: bytearray, in_chunk: tuple[slice, ...]
    ) -> tuple[np.ndarray | None, tuple[slice, ...]]:
        """The part ``in_chunk`` of chunk ``index``: by default the whole chunk from ``load``."""
        return self.load(index), in_chunk

    def save_view(self, index: Vec, box: Box, part: np.ndarray, scratch: bytearray) -> None:
        """Store a whole chunk ``part``: by default through ``save``."""
        self.save(index, part)

    def merge(self, piece: ChunkPiece, part: np.ndarray, *, skip_empty: bool = False) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot write part of a chunk")

    def delete(self, index: Vec) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot delete chunks")

    def read_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        run: Runner,
        emit: Callable[[ChunkPiece, np.ndarray | None], None],
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} is not batched")

    def write_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        part: Callable[[ChunkPiece], np.ndarray],
        run: Runner,
        done: Callable[[int], None],
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} is not batched")
