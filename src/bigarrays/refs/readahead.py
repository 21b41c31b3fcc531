"""Merged reads of neighbouring references: one request for a run of chunks of one file.

The chunk engine asks a store for one key at a time, from several threads. For a target on an
object store or HTTP a request costs far more than the bytes between two chunks, so a read of
one reference also fetches the references that follow it in the file (gaps up to the policy's,
the span up to its ``max_span``), and keeps their bytes until their keys are asked for. A key
whose span is already on its way waits for it instead of asking again. The bytes kept, and those
on their way, are bounded (``limit``): a read takes no more pieces than fit under it, so a piece
read ahead for a long read is not dropped and read again. To make room, only stale pieces are
dropped: those not asked for within as many requests as pieces fit under the limit (the
neighbours of an earlier cutout, which it did not need).

A piece handed out is not read ahead again until its key is asked for a second time (a new read
of the region): the engine walks the chunks in its own order (the first axis fastest), not the
file's, so a read of the references after one would otherwise fetch again chunks already handed
out, and keep them, never asked for, until the limit dropped them.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

from bigarrays.refs.model import Target
from bigarrays.stores.ranges import RangePolicy

#: The most bytes of pieces kept for keys not yet asked for.
LIMIT = 256 << 20
#: The longest merged read: longer ones leave the engine's other threads waiting on one request
#: rather than running requests side by side.
MAX_SPAN = 1 << 20

Reader = Callable[[int, int], bytes | None]


class ReadAhead:
    """Pieces of one target file read ahead of the keys that need them."""

    def __init__(self, refs: Iterable[tuple[str, Target]], policy: RangePolicy,
                 limit: int = LIMIT) -> None:  # fmt: skip
        order = sorted(((t.offset or 0, t.length or 0, k) for k, t in refs), key=lambda r: r[:2])
        self._starts = [r[0] for r in order]
        self._order = order
        self._policy = policy
        self._limit = limit
        self._lock = threading.Lock()
        #: Pieces read ahead, oldest first, and the number of requests made before each came.
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._kept_at: dict[str, int] = {}
        self._gets = 0
        mean = sum(r[1] for r in order) / len(order) if order else 1
        #: Requests after which an unclaimed piece is stale.
        self._stale_after = max(64, int(limit / max(1.0, mean)))
        self._kept_bytes = 0
        #: Bytes of pieces on their way, not kept yet: counted against the limit too.
        self._coming_bytes = 0
        self._pending: dict[str, threading.Event] = {}
        #: Keys handed out since the current read began (none is asked twice in one read).
        self._served: set[str] = set()
        #: Requests made (what a merged read saves).
        self.requests = 0

    def get(self, key: str, ref: Target, read: Reader) -> bytes | None:
        """The bytes of ``ref`` (the reference of ``key``), read with ``read(offset, length)``
        together with the references that follow it."""
        with self._lock:
            self._gets += 1
            if key in self._served:  # asked again: a new read of the region begins
                self._served.clear()
            self._served.add(key)
        while True:
            with self._lock:
                if key in self._kept:
                    return self._take(key)
                waiting = self._pending.get(key)
                if waiting is None:
                    run = self._run(key, ref)
                    done = threading.Event()
                    for k, _, _ in run:
                        self._pending[k] = done
                    break
            waiting.wait()
            with self._lock:
                if key in self._kept:
                    continue  # taken below on the next turn
            return self._single(ref, read)  # the span failed or was dropped: read alone
        try:
            return self._fetch(key, run, read)
        finally:
            with self._lock:
                for k, _, _ in run:
                    self._pending.pop(k, None)
                self._coming_bytes -= sum(n for _, _, n in run[1:])
            done.set()

    def _take(self, key: str) -> bytes:
        """Remove the piece of ``key`` from those kept (lock held)."""
        piece = self._kept.pop(key)
        del self._kept_at[key]
        self._kept_bytes -= len(piece)
        return piece

    def _make_room(self, room: int) -> int:
        """Drop stale pieces, oldest first, while ``room`` is short of a span (lock held);
        the room then."""
        span = min(self._policy.max_span, MAX_SPAN)
        while room < span and self._kept:
            oldest = next(iter(self._kept))
            if self._gets - self._kept_at[oldest] <= self._stale_after:
                break
            room += len(self._take(oldest))
        return room

    def _single(self, ref: Target, read: Reader) -> bytes | None:
        with self._lock:
            self.requests += 1
        return read(ref.offset or 0, ref.length or 0)

    def _run(self, key: str, ref: Target) -> list[tuple[str, int, int]]:
        """``key`` and the references after it that one read should fetch (lock held)."""
        run = [(key, ref.offset or 0, ref.length or 0)]
        room = self._make_room(self._limit - self._kept_bytes - self._coming_bytes)
        end = (ref.offset or 0) + (ref.length or 0)
        i = bisect.bisect_left(self._starts, ref.offset or 0)
        for offset, length, k in self._order[i:]:
            if k == key:
                continue
            if k in self._kept or k in self._pending or k in self._served or length > room:
                break
            too_far = offset - end > self._policy.gap
            if too_far or offset + length - run[0][1] > min(self._policy.max_span, MAX_SPAN):
                break
            run.append((k, offset, length))
            room -= length
            end = max(end, offset + length)
        self._coming_bytes += sum(n for _, _, n in run[1:])
        return run

    def _fetch(self, key: str, run: list[tuple[str, int, int]], read: Reader) -> bytes | None:
        start = run[0][1]
        stop = max(o + n for _, o, n in run)
        with self._lock:
            self.requests += 1
        data = read(start, stop - start)
        if data is None:
            return None
        if len(run) == 1:
            return data  # a read of one piece: as it came, not copied
        view = memoryview(data)
        # Cut before taking the lock: the other threads' look-ups do not wait on the copies.
        pieces = [
            (k, bytes(view[offset - start : offset - start + length]))
            for k, offset, length in run[1:]
            if offset + length - start <= len(view)
        ]
        with self._lock:
            for k, piece in pieces:
                self._kept[k] = piece
                self._kept_at[k] = self._gets
                self._kept_bytes += len(piece)
        return bytes(view[: run[0][2]])
