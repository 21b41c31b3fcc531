"""Turning ``vol[...]`` keys into boxes, and arrays given to ``vol[...] = value`` into blocks.

A level's axes (:class:`~bigarrays.formats.base.Axis`) say how each is indexed. Most take absolute
voxel coordinates: ``-50`` is the voxel at -50, ``:`` is the bounds. A positional axis (a
precomputed volume's channels, when it has several) takes ordinary Python indices; a hidden axis
(a single channel) is never named, and its one entry is always selected.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bigarrays.box import Box
from bigarrays.errors import DtypeMismatchError, ShapeMismatchError, UnsupportedError

if TYPE_CHECKING:
    from bigarrays.formats.base import Axis


@dataclass(frozen=True)
class Selection:
    """A box over every axis of a level's grid, plus which axes the caller's result leaves out."""

    box: Box
    dropped: tuple[bool, ...]

    @property
    def result_shape(self) -> tuple[int, ...]:
        return tuple(n for n, d in zip(self.box.shape, self.dropped, strict=True) if not d)

    def squeeze(self, block: np.ndarray) -> np.ndarray:
        """The caller's view of a block of the box: dropped axes removed (a view, no copy)."""
        return block[tuple(0 if d else slice(None) for d in self.dropped)]

    def expand(self, value: np.ndarray) -> np.ndarray:
        """The view of an array shaped like the caller's result over the box (unit axes put
        back)."""
        return np.expand_dims(value, tuple(i for i, d in enumerate(self.dropped) if d))


def _index_int(value: Any, axis: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"index on axis {axis} must be an integer or a slice, got {value!r}"
        ) from None


def parse_key(key: Any, axes: Sequence[Axis], bounds: Box) -> Selection:
    """The selection that ``key`` names in a level with ``axes`` and ``bounds`` (every axis)."""
    visible = [i for i, a in enumerate(axes) if not a.hidden]
    spatial = [i for i in visible if not axes[i].positional]
    if isinstance(key, Box):
        if key.ndim == len(axes):
            return Selection(key, tuple(a.hidden for a in axes))
        if key.ndim != len(spatial):
            raise ValueError(f"a Box index has {len(spatial)} or {len(axes)} axes, got {key.ndim}")
        by_axis = dict(zip(spatial, zip(key.start, key.stop, strict=True), strict=True))
        key = tuple(slice(*by_axis[i]) if i in by_axis else slice(None) for i in visible)
    items = key if isinstance(key, tuple) else (key,)
    ndim = len(visible)
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
    given = dict(zip(visible, items, strict=True))

    starts, stops, dropped = [], [], []
    for i, axis in enumerate(axes):
        lo, hi = bounds.start[i], bounds.stop[i]
        if axis.hidden:
            a, b, drop = lo, lo + 1, True
        elif axis.positional:
            a, b, drop = _positional(given[i], axis.name, lo, hi)
        else:
            a, b, drop = _absolute(given[i], axis.name, lo, hi)
        starts.append(a)
        stops.append(b)
        dropped.append(drop)
    return Selection(Box(starts, stops), tuple(dropped))


def _absolute(item: Any, name: str, lo: int, hi: int) -> tuple[int, int, bool]:
    """``(start, stop, dropped)`` of an index in absolute coordinates (``:`` is ``lo:hi``)."""
    if isinstance(item, slice):
        if item.step not in (None, 1):
            raise UnsupportedError(
                f"step {item.step} on axis {name}: only contiguous boxes can be read or "
                "written; cut the box, then stride the NumPy result"
            )
        a = lo if item.start is None else _index_int(item.start, name)
        b = hi if item.stop is None else _index_int(item.stop, name)
        return a, max(a, b), False
    if item is None:
        raise UnsupportedError("np.newaxis is not supported in volume indices")
    v = _index_int(item, name)
    return v, v + 1, True


def _positional(item: Any, name: str, lo: int, hi: int) -> tuple[int, int, bool]:
    """``(start, stop, dropped)`` of a Python sequence index into the ``hi - lo`` entries."""
    n = hi - lo
    channel = name == "c"
    if isinstance(item, slice):
        a, b, step = item.indices(n)
        if step != 1:
            where = "the channel axis" if channel else f"axis {name}"
            raise UnsupportedError(f"step {step} on {where} is not supported")
        return lo + a, lo + max(a, b), False
    if item is None:
        raise UnsupportedError("np.newaxis is not supported in volume indices")
    c = _index_int(item, "channel" if channel else name)
    if not -n <= c < n:
        what = f"channel {c} is out of range for {n} channels"
        raise IndexError(what if channel else f"index {c} on axis {name} is out of range ({n})")
    return lo + c % n, lo + c % n + 1, True


def coerce_value(value: Any, dtype: np.dtype, selection: Selection) -> np.ndarray:
    """An array (or a broadcast view of a scalar) of ``selection``'s box, safe to write.

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
