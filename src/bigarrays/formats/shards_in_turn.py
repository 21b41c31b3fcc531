"""Whole shards put while their chunks are encoded.

A shard laid out as its chunks in a fixed order and then its index (Zarr's ``sharding_indexed``
with the index at the end) can be written front to back before its last chunk is encoded. On a
store that writes a value's parts as they come (``Store.writes_parts_in_turn``: a file), a write
of whole shards then need not hold every encoded chunk of a shard until its put: one thread puts
the shards, in turn, while the pool encodes their chunks in the order the shard holds them, and
each chunk's bytes are let go once written. A shard's put ends soon after its last chunk is
encoded, and the encoded bytes held at once are those not yet written, not a batch's.

The bytes stored are those the format lays out for the same chunks encoded first (both go
through the format's ``shard_parts``); a shard whose chunks are all fill is deleted, as a whole
write deletes it.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from bigarrays.formats.sharding import Run, put_whole, run_few
from bigarrays.stores import Store

#: Writes of whole shards smaller than this (uncompressed) are encoded first and then put: the
#: thread that puts in turn costs more than it saves on a few chunks.
MIN_BYTES_IN_TURN = 8 << 20


class ShardsInOrder(Protocol):
    """What a sharded source gives to put its shards in turn."""

    store: Store

    def shard_key(self, shard: Any) -> str: ...

    def shard_parts(self, chunk: Callable[[int], Any]) -> Iterator[Any]: ...

    def forget_index(self, shard: Any) -> None: ...


class _Abandoned(Exception):
    """The chunks of a shard will not all come: its put stops, storing nothing."""


class ChunksInTurn:
    """The encoded chunks of one shard, handed by the encoders to its put as each one's turn
    comes. ``take`` of a chunk not in ``cids`` (one the write does not give) is None at once."""

    def __init__(self, cids: Sequence[int]) -> None:
        self._expected = set(cids)
        self._ready: dict[int, Any] = {}
        self._cond = threading.Condition()
        self.failed = False
        #: Chunks taken that are stored (not all fill).
        self.present = 0

    def give(self, cid: int, data: Any) -> None:
        with self._cond:
            if not self.failed:
                self._ready[cid] = data
                self._cond.notify_all()

    def take(self, cid: int) -> Any:
        if cid not in self._expected:
            return None
        with self._cond:
            while cid not in self._ready:
                if self.failed:
                    raise _Abandoned
                self._cond.wait()
            data = self._ready.pop(cid)
        self.present += data is not None
        return data

    def fail(self) -> None:
        with self._cond:
            self.failed = True
            self._ready.clear()
            self._cond.notify_all()

    @property
    def held(self) -> int:
        """Bytes encoded and not yet taken."""
        with self._cond:
            return sum(len(d) for d in self._ready.values() if d is not None)


def put_in_turn(
    source: ShardsInOrder,
    cids: Mapping[Any, Sequence[int]],
    items: Sequence[tuple[Any, int, Any]],
    encode: Callable[[Any], Any],
    run: Run,
    *,
    encoding: threading.Lock | contextlib.AbstractContextManager[Any] | None = None,
    encoded: Callable[[int], None] | None = None,
    shard_done: Callable[[Any], None] | None = None,
) -> None:
    """Put the shards of ``cids`` (each with the chunk ids the write gives; the others are left
    out) in their order there, encoding ``items`` — ``(shard, chunk id, what encode takes)``,
    in the order the shards hold their chunks — on ``run`` as they are written.

    ``encode`` gives a chunk's stored bytes (None: all fill, left out). The encoding holds
    ``encoding``; ``encoded(n)`` is told, once every chunk is encoded, the bytes encoded and not
    yet written; ``shard_done(shard)`` follows each shard's put. An error of either side stops
    both, stores nothing more and is raised here.
    """
    shards = list(cids)
    feeds = {shard: ChunksInTurn(cids[shard]) for shard in shards}
    failure: list[BaseException] = []

    def encode_one(item: tuple[Any, int, Any]) -> None:
        shard, cid, what = item
        feed = feeds[shard]
        if not feed.failed:
            feed.give(cid, encode(what))

    def put_all() -> None:
        try:
            for shard in shards:
                feed = feeds[shard]
                parts = source.shard_parts(feed.take)
                first = next(parts)  # the first chunk stored, or the index if there is none
                key = source.shard_key(shard)
                try:
                    if feed.present:
                        source.store.put_parts(key, itertools.chain([first], parts))
                    else:
                        put_whole(source.store, key, None)
                finally:
                    source.forget_index(shard)
                if shard_done is not None:
                    shard_done(shard)
        except _Abandoned:
            pass  # the encoding failed: its error is the one raised
        except BaseException as exc:
            failure.append(exc)
            for feed in feeds.values():
                feed.fail()

    putter = threading.Thread(target=put_all, name="bigarrays-put-in-turn", daemon=True)
    putter.start()
    try:
        with encoding or contextlib.nullcontext():
            run_few(run, encode_one, list(items))
        if encoded is not None:
            encoded(sum(feed.held for feed in feeds.values()))
    except BaseException:
        for feed in feeds.values():
            feed.fail()
        raise
    finally:
        putter.join()
    if failure:
        raise failure[0]


__all__ = ["MIN_BYTES_IN_TURN", "ChunksInTurn", "ShardsInOrder", "put_in_turn"]
