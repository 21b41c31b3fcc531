"""Bounds every metadata reader keeps, whatever the format: integers, extents, chunk bytes.

Metadata comes from anywhere (a bucket, an HTTP server): these bounds make a hostile document
fail while it is read, as the format's typed error, instead of as an OverflowError, MemoryError
or RecursionError deep inside a read. Writers apply the same ones, so nothing is written that a
reader would refuse. Each check takes ``fail(field, message) -> Exception``, the format's way to
build its error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

#: Builds the format's error for a field and a message.
Fail = Callable[[str, str], Exception]

#: TensorStore's finite index range (``kInfIndex``): a coordinate, and coordinate + extent, stay
#: within +-(2**62 - 2), so coordinates and extents are int64s with room for arithmetic.
MAX_INDEX = 2**62 - 2
#: Bytes of one decoded chunk (all channels). A read decodes whole chunks and the pipeline keeps
#: a chunk-sized buffer per thread, so reading one voxel costs a chunk of memory: 2 GiB is what a
#: workstation can spare per thread. Real chunks are kilobytes to a few megabytes.
MAX_CHUNK_BYTES = 2**31
#: Bytes of the whole array (all channels): ``nbytes`` must be an int64.
MAX_VOLUME_BYTES = 2**63 - 1
#: Dimensions of an array: TensorStore's maximum rank; NumPy allows 64.
MAX_RANK = 32


def integer(value: Any, name: str, fail: Fail, *, minimum: int | None = None) -> int:
    """``value`` as an int, refusing booleans, fractions, NaN and infinities."""
    # Python's json reads NaN and Infinity: int() of them raises ValueError/OverflowError, not ours.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
        or value != int(value)
    ):
        raise fail(name, f"expected an integer, got {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise fail(name, f"must be >= {minimum}, got {out}")
    return out


def _shape_text(shape: Sequence[int], channels: int | None) -> str:
    dims = " x ".join(map(str, shape)) or "0-d"
    return f"{dims} voxels x {channels} channel(s)" if channels is not None else f"{dims} elements"


def check_chunk_bytes(
    chunk: Sequence[int], itemsize: int, name: str, fail: Fail, *, channels: int | None = None
) -> None:
    """Refuse a chunk of more than :data:`MAX_CHUNK_BYTES` bytes when decoded."""
    nbytes = math.prod(chunk) * (channels or 1) * itemsize
    if nbytes > MAX_CHUNK_BYTES:
        raise fail(name, f"a chunk of {_shape_text(chunk, channels)} x {itemsize} byte(s) is "
                   f"{nbytes} bytes; at most 2 GiB (2**31) are decoded at once")  # fmt: skip


def check_volume_bytes(
    shape: Sequence[int], itemsize: int, name: str, fail: Fail, *, channels: int | None = None
) -> None:
    """Refuse an array whose byte count (``nbytes``) does not fit in an int64."""
    nbytes = math.prod(shape) * (channels or 1) * itemsize
    if nbytes > MAX_VOLUME_BYTES:
        raise fail(name, f"{_shape_text(shape, channels)} x {itemsize} byte(s) is {nbytes} "
                   "bytes; at most 2**63 - 1")  # fmt: skip
