"""Turning ``vol[...]`` keys into boxes, and arrays given to ``vol[...] = value`` into blocks.

A level's axes (:class:`~bigarrays.formats.base.Axis`) say how each is indexed. Most take absolute
voxel coordinates: ``-50`` is the voxel at -50, ``:`` is the bounds. A positional axis (a
precomputed volume's channels, when it has several) takes ordinary Python indices; a hidden axis
(a single channel) is never named, and its one entry is always selected.

Indices that NumPy takes and a volume cannot are refused with an
:class:`~bigarrays.errors.InvalidIndexError` that says why: list, mask and array indices, and an
integer after ``...`` that falls outside the last axis (``vol[..., -1]`` on a one-channel volume
means a channel, or "the last", and would otherwise read zeros outside the volume). Writes
broadcast and cast as NumPy assignments do, under ``casting="same_kind"`` unless told otherwise.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bigarrays.box import Box
from bigarrays.errors import (
    DtypeMismatchError,
    InvalidArgumentError,
    InvalidIndexError,
    ShapeMismatchError,
    UnsupportedError,
)

if TYPE_CHECKING:
    from bigarrays.formats.base import Axis


#: NumPy's casting rules, as ``np.can_cast`` names them, from the strictest.
Casting = Literal["no", "equiv", "safe", "same_kind", "unsafe"]
_CASTINGS = ("no", "equiv", "safe", "same_kind", "unsafe")


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
    if isinstance(value, list | tuple | np.ndarray) or (
        hasattr(value, "__array__") and np.ndim(value) > 0
    ):
        kind = "boolean mask" if np.asarray(value).dtype == bool else "list or array"
        raise InvalidIndexError(
            f"a {kind} index on axis {axis} is not supported: volumes take integers and "
            "contiguous slices; cut the box that holds the points (vol[x0:x1, y0:y1, z0:z1]) "
            "and index the NumPy result with the list"
        )
    if isinstance(value, bool | np.bool_):
        raise InvalidIndexError(f"a boolean index on axis {axis} is not supported")
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidIndexError(
            f"index on axis {axis} must be an integer or a slice, got {value!r}"
        ) from None


def expand_key(key: Any, names: Sequence[str], note: str = "") -> tuple[Any, ...]:
    """``key`` as one item per axis (named ``names``): ``...`` expanded, missing ones ``:``."""
    items = key if isinstance(key, tuple) else (key,)
    ndim = len(names)
    # Compare by identity: ``in`` and ``index`` use ==, which an ndarray item turns into an array
    # ("truth value ... is ambiguous") instead of reaching the clear error of _index_int.
    at = [j for j, it in enumerate(items) if it is Ellipsis]
    if len(at) > 1:
        raise InvalidIndexError("an index can only have a single ellipsis ('...')")
    if at:
        fill = ndim - (len(items) - 1)
        items = items[: at[0]] + (slice(None),) * fill + items[at[0] + 1 :]
    if len(items) > ndim:
        raise InvalidIndexError(
            f"too many indices: the array has {ndim} axes ({', '.join(names)}), got "
            f"{len(items)}{note}"
        )
    return items + (slice(None),) * (ndim - len(items))


def parse_key(key: Any, axes: Sequence[Axis], bounds: Box) -> Selection:
    """The selection that ``key`` names in a level with ``axes`` and ``bounds`` (every axis)."""
    plain = plain_selection(key, axes, bounds)
    return plain if plain is not None else _parse_key(key, axes, bounds)


def plain_selection(key: Any, axes: Sequence[Axis], bounds: Box) -> Selection | None:
    """The selection of the common key, one slice per visible axis with integer bounds (or
    none) and no step, on axes that take absolute coordinates; None for any other key.

    It is what the general path gives such a key, without the checks that it passes: a small
    cutout's indexing took a tenth of its time on that path.
    """
    if type(key) is not tuple:
        return None
    starts: list[int] = []
    stops: list[int] = []
    dropped: list[bool] = []
    n = 0
    for axis, lo, hi in zip(axes, bounds.start, bounds.stop, strict=True):
        if axis.hidden:
            starts.append(lo)
            stops.append(lo + 1)
            dropped.append(True)
            continue
        if axis.positional or n >= len(key):
            return None
        item = key[n]
        n += 1
        if type(item) is not slice or item.step is not None:
            return None
        a = lo if item.start is None else item.start
        b = hi if item.stop is None else item.stop
        if type(a) is not int or type(b) is not int:  # bools, NumPy integers: the general path
            return None
        starts.append(a)
        stops.append(b if b > a else a)
        dropped.append(False)
    if n != len(key):
        return None
    return Selection(Box._trusted(tuple(starts), tuple(stops)), tuple(dropped))


def _parse_key(key: Any, axes: Sequence[Axis], bounds: Box) -> Selection:
    visible = [i for i, a in enumerate(axes) if not a.hidden]
    spatial = [i for i in visible if not axes[i].positional]
    if isinstance(key, Box):
        if key.ndim == len(axes):
            return Selection(key, tuple(a.hidden for a in axes))
        if key.ndim != len(spatial):
            raise InvalidArgumentError(
                f"a Box index has {len(spatial)} or {len(axes)} axes, got {key.ndim}"
            )
        by_axis = dict(zip(spatial, zip(key.start, key.stop, strict=True), strict=True))
        key = tuple(slice(*by_axis[i]) if i in by_axis else slice(None) for i in visible)
    note = _ONE_CHANNEL if any(a.hidden for a in axes) else ""
    items = expand_key(key, [axes[i].name for i in visible], note)
    raw = key if isinstance(key, tuple) else (key,)
    if items and any(it is Ellipsis for it in raw) and raw[-1] is not Ellipsis:
        _check_trailing(items[-1], axes, visible, bounds)
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


_ONE_CHANNEL = (
    "; the volume has one channel, which is not an axis: vol.shape is (x, y, z) and a "
    "channel index is not taken"
)


def _check_trailing(item: Any, axes: Sequence[Axis], visible: Sequence[int], bounds: Box) -> None:
    """Refuse ``vol[..., k]`` when ``k`` lies outside the last axis: an index after ``...`` is
    most often meant for channels (or as "from the end"), and reading it as a coordinate outside
    the volume would silently give zeros."""
    last = visible[-1]
    if isinstance(item, slice) or item is None or axes[last].positional:
        return
    k = _index_int(item, axes[last].name)
    lo, hi = bounds.start[last], bounds.stop[last]
    if lo <= k < hi:
        return
    name = axes[last].name
    hidden = any(a.hidden for a in axes)
    why = (
        _ONE_CHANNEL.removeprefix("; ")
        if hidden
        else f"indices are absolute coordinates, so {k} is not counted from the end"
    )
    raise InvalidIndexError(
        f"the index {k} after '...' falls on axis {name} at {name} = {k}, outside its bounds "
        f"{lo}:{hi}: {why}. Write the axes out (vol[{', '.join([':'] * (len(visible) - 1))}, "
        f"{hi - 1}] is the last {name} plane)"
    )


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
        raise InvalidIndexError(
            what if channel else f"index {c} on axis {name} is out of range ({n})"
        )
    return lo + c % n, lo + c % n + 1, True


def coerce_value(
    value: Any, dtype: np.dtype, selection: Selection, casting: Casting = "same_kind"
) -> np.ndarray:
    """An array of ``selection``'s box (a broadcast view where NumPy would broadcast), safe to
    write.

    An array must broadcast to the selection's shape as in a NumPy assignment, and its dtype must
    cast to ``dtype`` under ``casting`` (``np.can_cast``; "same_kind" takes float64 into float32
    but not int64 into uint8); a scalar or a Python list must be representable in ``dtype``
    exactly. Anything else is refused before a byte is written.
    """
    if casting not in _CASTINGS:
        raise UnsupportedError(f"casting must be one of {', '.join(_CASTINGS)}, got {casting!r}")
    arr = np.asarray(value)
    if arr.ndim == 0 and casting != "unsafe":
        converted = exact_values(arr, dtype)
        return np.broadcast_to(converted, selection.box.shape)
    if not isinstance(value, np.ndarray) and arr.dtype != dtype and casting != "unsafe":
        # Python lists carry no dtype of their own (NumPy makes them int64 or float64): judge
        # them by their values, as scalars are, so vol[0, 0, :3] = [1, 2, 3] works on uint8.
        arr = exact_values(arr, dtype)
    elif arr.dtype != dtype and not np.can_cast(arr.dtype, dtype, casting=casting):
        raise DtypeMismatchError(
            f"cannot write {arr.dtype} data into a {dtype} volume with casting={casting!r}: "
            f"{arr.dtype} to {dtype} {_needed_cast(arr.dtype, dtype)}; convert it first "
            f"(data.astype('{dtype}')) or write it with vol.write(box, data, casting='unsafe')"
        )
    shape = selection.result_shape
    # A NumPy assignment drops leading unit axes of the value beyond the target's, then
    # broadcasts: a[0] = b[None] and a[:, :, :] = column[:, :, None] both work.
    while arr.ndim > len(shape) and arr.shape[0] == 1:
        arr = arr[0]
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError:
        raise ShapeMismatchError(
            f"array of shape {np.shape(value)} does not match the selection's shape {shape} "
            f"(box {selection.box}), nor broadcasts to it"
        ) from None
    return selection.expand(arr)


def _needed_cast(src: np.dtype, dst: np.dtype) -> str:
    """Which ``casting`` the conversion needs, for the message that refuses it."""
    levels: tuple[Casting, ...] = ("no", "equiv", "safe", "same_kind", "unsafe")
    for level in levels:
        if np.can_cast(src, dst, casting=level):
            return f"needs casting={level!r}"
    return "is not a NumPy cast"


def exact_values(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
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
