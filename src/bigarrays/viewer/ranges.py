"""HTTP ``Range`` headers as a file server answers them: one range, suffix ranges, 416.

Neuroglancer reads sharded files by range (a shard's index, then the minishard index, then the
chunk), and asks for suffix ranges (``bytes=-N``) where it does not know a file's size (after a
``HEAD``). A range with a start is answered without the object's size (``Content-Range: bytes
a-b/*``, which Neuroglancer reads): one read of the store, not a size lookup first. Several
ranges in one header are answered with the whole object (RFC 9110 lets a server ignore Range),
which no reader of ours asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    start: int
    #: One past the last byte.
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self, total: int) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{total}"


class Unsatisfiable(Exception):
    """The range lies wholly past the end of the object (416)."""


def explicit_range(header: str | None) -> tuple[int, int | None] | None:
    """``(start, stop)`` of a header ``bytes=a-b`` (stop one past ``b``) or ``bytes=a-`` (stop
    None: to the end), which a server can answer without knowing the object's size; None for
    any other header (a suffix range, several ranges, or one to ignore)."""
    found = _RANGE.match(header or "")
    if found is None or not found.group(1):
        return None
    start, last = int(found.group(1)), found.group(2)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored, as parse_range does
    return start, int(last) + 1 if last else None


def parse_range(header: str | None, total: int) -> ByteRange | None:
    """The range of an object of ``total`` bytes that ``header`` asks for; None for the whole
    object (no header, or one this server ignores); :class:`Unsatisfiable` for a range past
    the end."""
    if not header:
        return None
    found = _RANGE.match(header)
    if found is None:
        return None  # several ranges, or another unit: the whole object
    first, last = found.group(1), found.group(2)
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0:
            raise Unsatisfiable
        return ByteRange(max(0, total - suffix), total)
    start = int(first)
    if start >= total:
        raise Unsatisfiable
    stop = total if not last else min(int(last) + 1, total)
    if stop <= start:
        return None  # last < first: syntactically invalid, so ignored
    return ByteRange(start, stop)
