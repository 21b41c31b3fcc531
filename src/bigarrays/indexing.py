"""Turning ``vol[...]`` keys into boxes, and arrays given to ``vol[...] = value`` into blocks.

Spatial axes take absolute voxel coordinates: ``-50`` is the voxel at -50, ``:`` is the bounds.
The channel axis (present when a volume has several channels) takes ordinary Python indices.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.box import Box
from bigarrays.errors import DtypeMismatchError, ShapeMismatchError, UnsupportedError


@dataclass(frozen=True)
class Selection:
    """A 4-D box ``(x, y, z, channel)`` plus which axes the caller's result leaves out."""

    box: Box
    dropped: tuple[bool, bool, bool, bool]

    @property
    def result_shape(self) -> tuple[int, ...]:
        return tuple(n for n, d in zip(self.box.shape, self.dropped, strict=True) if not d)

    def squeeze(self, block: np.ndarray) -> np.ndarray:
        """The caller's view of a 4-D block: dropped axes removed (a view, no copy)."""
        return block[tuple(0 if d else slice(None) for d in self.dropped)]

    def expand(self, value: np.ndarray) -> np.ndarray:
        """The 4-D view of an array shaped like the caller's result (unit axes put back)."""
        return np.expand_dims(value, tuple(i for i, d in enumerate(self.dropped) if d))


def _index_int(value: Any, axis: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"index on axis {axis} must be an integer or a slice, got {value!r}"
        ) from None


def parse_key(key: Any, bounds: Box, num_channels: int) -> Selection:
    """The selection that ``key`` names in a volume with ``bounds`` (3-D) and channels."""
    if isinstance(key, Box):
        if key.ndim == 3:
            key = tuple(slice(a, b) for a, b in zip(key.start, key.stop, strict=True))
        elif key.ndim == 4:
            return Selection(key, (False, False, False, num_channels == 1))
        else:
            raise ValueError(f"a Box index has 3 or 4 axes, got {key.ndim}")
    items = key if isinstance(key, tuple) else (key,)
    ndim = 3 if num_channels == 1 else 4
    if sum(1 for it in items if it is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    # Compare by identity: ``in`` and ``index`` use ==, which an ndarray item turns into an array
    # ("truth value ... is ambiguous") instead of reaching the clear TypeError below.
    if any(it is Ellipsis for it in items):
        i = next(j for j, it in enumerate(items) if it is Ellipsis)
        fill = ndim - (len(items) - 1)
        items = items[:i] + (slice(None),) * fill + items[i + 1 :]
    if len(items) > ndim:
        raise IndexError(f"too many indices: the volume has {ndim} axes, got {len(items)}")
    items = items + (slice(None),) * (ndim - len(items))

    starts, stops, dropped = [], [], []
    for axis, item in enumerate(items[:3]):
        name = "xyz"[axis]
        if isinstance(item, slice):
            if item.step not in (None, 1):
                raise UnsupportedError(
                    f"step {item.step} on axis {name}: only contiguous boxes can be read or "
                    "written; cut the box, then stride the NumPy result"
                )
            a = bounds.start[axis] if item.start is None else _index_int(item.start, name)
            b = bounds.stop[axis] if item.stop is None else _index_int(item.stop, name)
            starts.append(a)
            stops.append(max(a, b))
            dropped.append(False)
        elif item is None:
            raise UnsupportedError("np.newaxis is not supported in volume indices")
        else:
            v = _index_int(item, name)
            starts.append(v)
            stops.append(v + 1)
            dropped.append(True)

    if num_channels == 1:
        starts.append(0)
        stops.append(1)
        dropped.append(True)
    else:
        item = items[3]
        if isinstance(item, slice):
            c0, c1, step = item.indices(num_channels)
            if step != 1:
                raise UnsupportedError(f"step {step} on the channel axis is not supported")
            starts.append(c0)
            stops.append(max(c0, c1))
            dropped.append(False)
        else:
            c = _index_int(item, "channel")
            if not -num_channels <= c < num_channels:
                raise IndexError(f"channel {c} is out of range for {num_channels} channels")
            c %= num_channels
            starts.append(c)
            stops.append(c + 1)
            dropped.append(True)
    d = (dropped[0], dropped[1], dropped[2], dropped[3])
    return Selection(Box(starts, stops), d)


def coerce_value(value: Any, dtype: np.dtype, selection: Selection) -> np.ndarray:
    """A 4-D array (or a broadcast view of a scalar) of ``selection``'s box, safe to write.

    An array must have the selection's shape and a dtype that casts safely to ``dtype``; a scalar
    must be representable in ``dtype`` exactly. Anything else is refused before a byte is written.
    """
    arr = np.asarray(value)
    if arr.ndim == 0:
        converted = _exact_values(arr, dtype)
        return np.broadcast_to(converted, selection.box.shape)
    if not isinstance(value, np.ndarray) and arr.dtype != dtype:
        # Python lists carry no dtype of their own (NumPy makes them int64 or float64): judge
        # them by their values, as scalars are, so vol[0, 0, :3] = [1, 2, 3] works on uint8.
        arr = _exact_values(arr, dtype)
    elif arr.dtype != dtype and not np.can_cast(arr.dtype, dtype, casting="safe"):
        raise DtypeMismatchError(
            f"cannot write {arr.dtype} data into a {dtype} volume without losing values; "
            f"convert it first, e.g. data.astype('{dtype}')"
        )
    if arr.shape != selection.result_shape:
        raise ShapeMismatchError(
            f"array of shape {arr.shape} does not match the selection's shape "
            f"{selection.result_shape} (box {selection.box})"
        )
    return selection.expand(arr)


def _exact_values(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``arr`` as ``dtype`` if every value survives the conversion, else DtypeMismatchError."""
    if arr.dtype.kind not in "biuf":
        raise DtypeMismatchError(f"cannot write {arr.dtype} values into a {dtype} volume")
    with np.errstate(invalid="ignore", over="ignore"):
        converted = arr.astype(dtype)
    # Into a float volume any number goes (rounding is what floats do); into an integer or bool
    # volume the value must survive the trip exactly: 300 is not a uint8, 1.5 is not an int.
    if dtype.kind != "f":
        with np.errstate(invalid="ignore"):
            lost = converted != arr
        if np.any(lost):
            bad = arr[lost].ravel()[0].item()
            raise DtypeMismatchError(f"the value {bad!r} cannot be stored exactly as {dtype}")
    return converted
