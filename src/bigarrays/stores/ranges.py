"""Many byte ranges of one value: merge the close ones, read each merged span once, cut them out.

This is the one coalescer of the package. :meth:`bigarrays.stores.base.Store.get_ranges` uses it
with the gap and the longest span that suit its backend (:class:`RangePolicy`): on an object store
a request costs far more than the bytes between two ranges, so gaps of up to about a MiB are read
through; on a local disk an extra system call costs little and reading bytes nobody asked for
costs their time, so only ranges that touch (or share a page) are merged. A merged span stops
growing at ``max_span`` so that a long read still runs as several requests in parallel.

The one range of :meth:`Store.get_range` is checked and cut out of a whole value here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: One ``(start, length)`` byte range of a value; ``start >= 0``.
ByteRange = tuple[int, int]


@dataclass(frozen=True)
class RangePolicy:
    """How :meth:`Store.get_ranges` merges ranges: gaps of at most ``gap`` bytes are read
    through, and a merged span grows past ``max_span`` bytes only by a single range."""

    gap: int
    max_span: int

    def __post_init__(self) -> None:
        if self.gap < 0 or self.max_span < 1:
            raise ValueError(f"a range policy needs gap >= 0 and max_span >= 1, got {self}")


#: Local disks and single-file stores: merge only ranges that share a 4 KiB page.
LOCAL = RangePolicy(gap=4 << 10, max_span=8 << 20)
#: Object stores and HTTP: a request costs more than a MiB of bytes in between.
REMOTE = RangePolicy(gap=1 << 20, max_span=8 << 20)


@dataclass(frozen=True)
class Span:
    """A merged byte range ``[start, end)`` and the positions of the ranges it covers."""

    start: int
    end: int
    members: tuple[int, ...]

    @property
    def length(self) -> int:
        return self.end - self.start


def check_ranges(ranges: Sequence[ByteRange]) -> None:
    for start, length in ranges:
        if start < 0 or length < 0:
            raise ValueError(f"ranges are (start >= 0, length >= 0), got {(start, length)}")


def coalesce(ranges: Sequence[ByteRange], policy: RangePolicy) -> list[Span]:
    """The spans to read for ``(start, length)`` ``ranges``, in order of their start."""
    order = sorted(range(len(ranges)), key=lambda i: ranges[i])
    spans: list[Span] = []
    for i in order:
        a, n = ranges[i]
        b = a + n
        if spans:
            last = spans[-1]
            if a - last.end <= policy.gap and max(b, last.end) - last.start <= policy.max_span:
                spans[-1] = Span(last.start, max(b, last.end), (*last.members, i))
                continue
        spans.append(Span(a, b, (i,)))
    return spans


def cut(
    ranges: Sequence[ByteRange], spans: Sequence[Span], parts: Sequence[bytes]
) -> list[memoryview]:
    """The bytes of each range, as a view of the bytes read for its span (``parts[j]`` for
    ``spans[j]``): nothing is copied, so a reader copies (or decodes) one range at a time. A span
    read short (the value ends inside it) gives short ranges, as :meth:`Store.get_range` does
    past the end."""
    empty = memoryview(b"")
    out: list[memoryview] = [empty] * len(ranges)
    for span, data in zip(spans, parts, strict=True):
        view = memoryview(data)
        for i in span.members:
            a, n = ranges[i]
            out[i] = view[a - span.start : a - span.start + n]
    return out


def check_range(start: int, length: int | None) -> None:
    if length is not None and length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    if start < 0 and length is not None:
        raise ValueError("a suffix range (negative start) takes no length")


def cut_range(value: bytes | None, start: int, length: int | None) -> bytes | None:
    """The range ``(start, length)`` of a whole value, as :meth:`Store.get_range` defines it."""
    if value is None:
        return None
    if start < 0:
        return value[start:]
    return value[start:] if length is None else value[start : start + length]
