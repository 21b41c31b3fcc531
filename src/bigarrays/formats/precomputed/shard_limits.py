"""How big the parts of a shard can be, so that a damaged or hostile shard costs no more.

A shard's indexes give lengths that a reader would otherwise trust: the length of a minishard
index, of a chunk, the size a gzip stream inflates to. Each has a bound that follows from the
scale (how many chunks a shard can hold, how many bytes a chunk decodes to), and a reader checks
every length against it before it reads or allocates anything, so memory stays bounded by what
a real shard of the scale needs. Past a bound the shard is corrupt: :class:`CorruptChunkError`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.errors import CorruptChunkError

#: Chunks a minishard index may list when nothing tighter is known (4 Mi entries, 96 MiB).
MAX_INDEX_CHUNKS = 1 << 22
#: Byte offsets in a shard stay below this: no file, object or range reaches past it.
MAX_OFFSET = 1 << 63


@dataclass(frozen=True)
class IndexLimits:
    """Bounds of one sharded scale's stored parts."""

    #: Chunks one minishard index may list: the chunks a shard can hold.
    max_chunks: int
    #: Bytes one stored chunk (in ``data_encoding``) may have.
    max_chunk_bytes: int
    #: Bytes one chunk may inflate to, when ``data_encoding`` is gzip.
    max_decoded_chunk_bytes: int

    @classmethod
    def of(cls, shard_chunks: int | None, chunk_bytes: int, exact_size: bool) -> IndexLimits:
        """Bounds for shards of at most ``shard_chunks`` chunks (None: unknown) of
        ``chunk_bytes`` bytes decoded; ``exact_size`` when a chunk's encoding (raw) decodes to
        exactly ``chunk_bytes``, else image and segmentation encodings get generous room."""
        chunks = MAX_INDEX_CHUNKS if shard_chunks is None else min(shard_chunks, MAX_INDEX_CHUNKS)
        decoded = chunk_bytes if exact_size else 4 * chunk_bytes + (1 << 20)
        # A gzip stream of incompressible data is a little longer than the data.
        return cls(max(1, chunks), decoded + decoded // 8 + (64 << 10), decoded)

    @classmethod
    def generous(cls) -> IndexLimits:
        """Bounds for a shard of an unknown scale: 4 Mi chunks of up to 4 GiB each."""
        return cls(MAX_INDEX_CHUNKS, 1 << 32, 1 << 32)

    @property
    def max_index_bytes(self) -> int:
        """Bytes a stored minishard index may have (24 per chunk, a little more if gzip'd)."""
        raw = 24 * self.max_chunks
        return raw + raw // 8 + 4096


def _inflate_module() -> Any:
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal is a core dependency
        return zlib
    return isal_zlib


def bounded_gunzip(data: bytes, max_size: int, what: str) -> bytes:
    """Inflate gzip (or zlib) ``data``, at most ``max_size`` bytes of it, with ISA-L (zlib
    when it is missing); a stream that would inflate past ``max_size`` is refused at the bound,
    never inflated whole. Several concatenated gzip members are one value, as ``gunzip`` has it.
    """
    inflate = _inflate_module()
    out: list[bytes] = []
    total = 0
    rest = data
    try:
        while rest:
            d = inflate.decompressobj(47)
            part = d.decompress(rest, max_size - total + 1)
            total += len(part)
            if total > max_size:
                raise CorruptChunkError(
                    what, f"its gzip stream inflates past {max_size} bytes, the most it can hold"
                )
            if not d.eof:
                raise CorruptChunkError(what, "its gzip stream is cut short")
            out.append(part)
            rest = d.unused_data
    except (zlib.error, inflate.error) as exc:
        raise CorruptChunkError(what, f"its gzip stream is damaged: {exc}") from None
    return out[0] if len(out) == 1 else b"".join(out)


def check_index_range(
    start: int, end: int, minishard: int, limits: IndexLimits, what: str
) -> tuple[int, int] | None:
    """A shard-index entry's range of a minishard index: None when the minishard is empty;
    :class:`CorruptChunkError` for a reversed range, or one longer than the index can be."""
    if start > end:
        raise CorruptChunkError(
            what, f"the shard index gives minishard {minishard} the reversed range {start}-{end}"
        )
    if start == end:
        return None
    if end - start > limits.max_index_bytes or end >= MAX_OFFSET:
        raise CorruptChunkError(
            what,
            f"the shard index gives minishard {minishard} an index of {end - start} bytes at "
            f"{start}; it is at most {limits.max_index_bytes} bytes",
        )
    return start, end


def checked_minishard_ranges(
    table: np.ndarray, base: int, limits: IndexLimits, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, starts, ends)`` of a raw minishard index table (``3 x n`` uint64: id deltas,
    offset deltas, sizes), byte ranges made absolute by ``base``; checked as TensorStore checks
    them: ids strictly increasing (no duplicates, no wrap in the delta decode), no chunk longer
    than a chunk can be, no offset that overflows or leaves the 63-bit range of a file."""
    deltas, gaps, sizes = table
    n = deltas.size
    if n > 1 and not bool(np.all(deltas[1:] > 0)):
        raise CorruptChunkError(what, "the minishard index lists a chunk id twice")
    if int(sizes.max()) > limits.max_chunk_bytes:
        raise CorruptChunkError(
            what,
            f"a chunk of {int(sizes.max())} bytes in the minishard index; a chunk of this scale "
            f"is at most {limits.max_chunk_bytes} bytes",
        )
    if int(gaps.max()) >= MAX_OFFSET:
        raise CorruptChunkError(what, "a chunk offset in the minishard index lies past 2**63")
    # Every term is below 2**64 (sizes are bounded, gaps below 2**63), so a cumulative sum that
    # wraps shows as a decrease at the step where it does: checked uint64 arithmetic.
    with np.errstate(over="ignore"):
        ids = np.cumsum(deltas, dtype=np.uint64)
        ends = np.cumsum(gaps + sizes, dtype=np.uint64)
    if n > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        raise CorruptChunkError(what, "the chunk ids of the minishard index overflow 64 bits")
    if (n > 1 and not bool(np.all(ends[1:] >= ends[:-1]))) or int(ends[-1]) + base >= MAX_OFFSET:
        raise CorruptChunkError(what, "the byte ranges of the minishard index overflow")
    b = np.uint64(base)
    return ids, ends - sizes + b, ends + b
