"""Writing a sharded level, for every shard format: grouping, merging, conditional puts, retries.

A write's pieces are grouped by shard (:class:`~bigarrays.formats.sharding.ShardWrite`) and
handled in batches of bounded memory. A shard the write covers wholly is built from the new chunks
alone and put once. A shard covered in part is read with its version, the new chunks are merged
into its stored ones (a chunk covered in part is decoded and written over), and the shard is put
only if still at that version; when another writer got there first it is read and merged again.
Stores without conditional writes refuse a write of part of a shard, naming the shard's box.

The formats differ only in how a chunk is placed in a shard and how chunks and shards are coded;
:class:`ShardWriter` asks them through a few methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from bigarrays.box import Box, ChunkPiece, Vec
from bigarrays.chunk_source import run_serially
from bigarrays.errors import ReadOnlyError, UnsupportedError
from bigarrays.fill import filled
from bigarrays.formats.sharding import (
    Run,
    ShardWrite,
    in_batches,
    put_merged,
    put_whole,
    run_few,
)
from bigarrays.formats.shards_in_turn import MIN_BYTES_IN_TURN, put_in_turn
from bigarrays.stores import Store

#: A write holds the new shards of at most this many uncompressed chunk bytes at once.
DEFAULT_WRITE_BATCH_BYTES = 256 << 20

#: Where each piece of a write goes: its shard and the format's id of the chunk in that shard.
Targets = Sequence[tuple[Any, int]]


class ShardWriter:
    """The write half of a sharded chunk source (mixed into the format's source class).

    The format provides the names and codings below; the chunk source supplies ``store``,
    ``dtype``, ``fill_value``, ``order``, ``grid`` and ``read_pieces``.
    """

    store: Store
    dtype: np.dtype
    fill_value: Any
    order: Any
    grid: Any
    write_batch_bytes: int = DEFAULT_WRITE_BATCH_BYTES
    #: Uncompressed bytes of one chunk: what a batch is measured in.
    chunk_nbytes: int

    # -- what the format says ---------------------------------------------------------------------
    def shard_key(self, shard: Any) -> str:
        raise NotImplementedError

    def write_targets(self, pieces: Sequence[ChunkPiece]) -> Targets:
        """Each piece's shard and the id of its chunk in the shard."""
        raise NotImplementedError

    def chunks_in_shard(self, shard: Any) -> int | None:
        """How many chunks of the array the shard holds (None when too costly to know: such a
        shard is never taken as covered wholly)."""
        raise NotImplementedError

    def split_shard(self, data: bytes, key: str) -> dict[int, bytes]:
        """A stored shard's chunks by id (CorruptChunkError when it cannot be decoded)."""
        raise NotImplementedError

    def encode_shard(self, chunks: Mapping[int, bytes]) -> bytes | None:
        """The bytes of a shard holding ``chunks`` (None when it holds none)."""
        raise NotImplementedError

    def encode_shard_parts(self, chunks: Mapping[int, bytes]) -> Sequence[bytes] | None:
        """:meth:`encode_shard` in pieces to be stored one after another (a format that can
        spares the put of a whole shard a copy of it)."""
        data = self.encode_shard(chunks)
        return None if data is None else [data]

    def encode_chunk(self, chunk: np.ndarray) -> bytes | None:
        """A chunk's stored bytes; None for one all fill (left out of its shard)."""
        raise NotImplementedError

    #: Whether a shard is laid out as its chunks, in an order of the format's, then its index
    #: (:meth:`shard_parts`): whole shards are then put while their chunks are encoded, on a
    #: store that writes parts as they come (``bigarrays.formats.shards_in_turn``).
    chunks_then_index: bool = False

    def shard_parts(self, chunk: Callable[[int], Any]) -> Iterator[Any]:
        """A shard's stored chunks in its order, ``chunk(id)`` giving each (None: absent) when
        its turn comes, then its index (only where :attr:`chunks_then_index`)."""
        raise NotImplementedError

    def chunk_rank(self, cid: int) -> int:
        """Where chunk ``cid`` lies in its shard among the others (where
        :attr:`chunks_then_index`): the order to encode them in."""
        raise NotImplementedError

    def decode_chunk(self, data: bytes, index: Vec, key: str) -> np.ndarray:
        raise NotImplementedError

    def partial_hint(self, shard: Any) -> str:
        """What to write instead of part of ``shard``, on a store without conditional writes."""
        raise NotImplementedError

    def forget_index(self, shard: Any) -> None:
        """Drop what is cached of ``shard``'s index: this process has rewritten it."""
        raise NotImplementedError

    max_shard_bytes: int | None = None

    # -- the write --------------------------------------------------------------------------------
    def write_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        part: Callable[[ChunkPiece], np.ndarray],
        run: Run,
        done: Callable[[int], None],
    ) -> None:
        if not pieces:
            return
        if self.store.read_only:
            raise ReadOnlyError(f"{self.store.url} is opened read-only")
        targets = self.write_targets(pieces)
        by_shard: dict[Any, list[int]] = {}
        for i, (shard, _) in enumerate(targets):
            by_shard.setdefault(shard, []).append(i)
        groups = []
        for shard, positions in sorted(by_shard.items()):
            full = self.chunks_in_shard(shard) == len(positions) and all(
                pieces[i].covers_chunk for i in positions
            )
            groups.append(ShardWrite(shard, self.shard_key(shard), positions, full))
        if not self.store.conditional_writes:
            for g in groups:
                if not g.full:
                    raise self._refuse_partial(g.shard)
        for batch in in_batches(groups, self.chunk_nbytes, self.write_batch_bytes):
            self._write_batch(batch, pieces, targets, part, run, done)

    def _refuse_partial(self, shard: Any) -> UnsupportedError:
        return UnsupportedError(
            f"this write covers part of shard {self.shard_key(shard)!r}, which needs a "
            f"read-merge-write; the store {self.store.url} has no conditional writes to make "
            f"that safe against concurrent writers: {self.partial_hint(shard)}"
        )

    def _read_old(self, g: ShardWrite) -> None:
        data, version = self.store.get_with_version(g.key, max_size=self.max_shard_bytes)
        g.version, g.existed = version, data is not None
        # A shard that cannot be decoded is refused (CorruptChunkError naming it): rewriting it
        # with only the chunks of this write would drop every other chunk it holds.
        g.old = {} if data is None else self.split_shard(data, g.key)

    def _merged(
        self, piece: ChunkPiece, part: np.ndarray, old: bytes | None, key: str
    ) -> np.ndarray:
        """The chunk (clipped to the array) after writing ``part`` over its stored bytes."""
        shape = piece.chunk_box.shape
        if old is None:
            chunk = filled(shape, self.dtype, self.fill_value, self.order)
        else:
            # A format may decode the chunk's full extent where the array cuts it (Zarr pads
            # edge chunks): only the part inside the array is written back.
            decoded = self.decode_chunk(old, piece.chunk_index, key)
            inside = decoded[tuple(slice(0, n) for n in shape)]
            chunk = np.array(inside, dtype=self.dtype, order=self.order, copy=True)
        chunk[piece.in_chunk] = part
        return chunk

    def _encode_piece(
        self, g: ShardWrite, i: int, pieces: Sequence[ChunkPiece], targets: Targets,
        part: Callable[[ChunkPiece], np.ndarray],
    ) -> None:  # fmt: skip
        piece, cid = pieces[i], targets[i][1]
        new = part(piece)
        if not piece.covers_chunk:
            new = self._merged(piece, new, g.old.get(cid), f"{g.key}#{cid}")
        g.new[cid] = self.encode_chunk(new)

    def _write_batch(
        self,
        batch: list[ShardWrite],
        pieces: Sequence[ChunkPiece],
        targets: Targets,
        part: Callable[[ChunkPiece], np.ndarray],
        run: Run,
        done: Callable[[int], None],
    ) -> None:
        whole = [g for g in batch if g.full]
        if (
            whole
            and self.chunks_then_index
            and self.store.writes_parts_in_turn
            and sum(len(g.positions) for g in whole) * self.chunk_nbytes >= MIN_BYTES_IN_TURN
        ):
            self._put_in_turn(whole, pieces, targets, part, run, done)
            batch = [g for g in batch if not g.full]
        run_few(run, self._read_old, [g for g in batch if not g.full])
        run_few(
            run, lambda item: self._encode_piece(item[0], item[1], pieces, targets, part),
            [(g, i) for g in batch for i in g.positions],
        )  # fmt: skip

        def commit(g: ShardWrite) -> None:
            try:
                if g.full:
                    payload = {cid: d for cid, d in g.new.items() if d is not None}
                    self._put_whole(g.key, self.encode_shard_parts(payload))
                else:
                    self._put_merged(g, pieces, targets, part)
            finally:
                self.forget_index(g.shard)
            g.old, g.new = {}, {}
            done(len(g.positions))

        run_few(run, commit, batch)

    def _put_in_turn(
        self,
        groups: list[ShardWrite],
        pieces: Sequence[ChunkPiece],
        targets: Targets,
        part: Callable[[ChunkPiece], np.ndarray],
        run: Run,
        done: Callable[[int], None],
    ) -> None:
        """Put shards the write covers wholly while their chunks are encoded, in the order
        each shard holds them (``bigarrays.formats.shards_in_turn``)."""
        cids = {g.shard: [targets[i][1] for i in g.positions] for g in groups}
        counts = {g.shard: len(g.positions) for g in groups}
        items = [
            (g.shard, targets[i][1], i)
            for g in groups
            for i in sorted(g.positions, key=lambda i: self.chunk_rank(targets[i][1]))
        ]

        def encode(i: int) -> bytes | None:
            return self.encode_chunk(part(pieces[i]))

        put_in_turn(self, cids, items, encode, run, shard_done=lambda shard: done(counts[shard]))

    def _put_whole(self, key: str, parts: Sequence[bytes] | None) -> None:
        if parts is None:
            put_whole(self.store, key, None)  # no chunk left: the shard is deleted
        else:
            # A plain put, as put_whole makes: every backend orders it with conditional writes.
            self.store.put_parts(key, parts)

    def _put_merged(
        self, g: ShardWrite, pieces: Sequence[ChunkPiece], targets: Targets,
        part: Callable[[ChunkPiece], np.ndarray],
    ) -> None:  # fmt: skip
        def refresh(g: ShardWrite) -> None:
            # The chunks this write covers in part are merged again with what the other writer
            # stored; whole ones do not depend on it.
            self._read_old(g)
            for i in g.positions:
                if not pieces[i].covers_chunk:
                    self._encode_piece(g, i, pieces, targets, part)

        put_merged(self.store, g, self.encode_shard, refresh)

    # -- single chunks (the ChunkSource protocol) -------------------------------------------------
    def _whole_piece(self, index: Vec) -> ChunkPiece:
        cbox: Box = self.grid.chunk_box(index)
        full = cbox.slices(cbox.start)
        return ChunkPiece(tuple(index), cbox, full, full)

    def read_pieces(
        self,
        pieces: Sequence[ChunkPiece],
        run: Run,
        emit: Callable[[ChunkPiece, np.ndarray | None], None],
    ) -> None:
        raise NotImplementedError

    def load(self, index: Vec) -> np.ndarray | None:
        """The decoded chunk at grid ``index``, or None when its shard does not hold it."""
        out: list[np.ndarray | None] = [None]

        def keep(_: ChunkPiece, chunk: np.ndarray | None) -> None:
            out[0] = None if chunk is None else chunk.copy(order="K")  # from a reused buffer

        self.read_pieces([self._whole_piece(index)], run_serially, keep)
        return out[0]

    def save(self, index: Vec, chunk: np.ndarray) -> None:
        """Store one whole chunk: a read-merge-write of its shard, unless it is all the shard."""
        self.write_pieces([self._whole_piece(index)], lambda _: chunk, run_serially, lambda _: None)

    def delete(self, index: Vec) -> None:
        fill = filled(self.grid.chunk_box(index).shape, self.dtype, self.fill_value, self.order)
        self.save(index, fill)


__all__ = ["DEFAULT_WRITE_BATCH_BYTES", "ShardWriter", "Targets"]
