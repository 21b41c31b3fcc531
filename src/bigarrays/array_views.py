"""What NumPy code expects of an array: ``len``, iteration, ``np.asarray``, ``.T`` and
``transpose`` as lazy views, built on ``shape``, ``dtype`` and indexing of a :class:`BigArray`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from bigarrays.box import Box
from bigarrays.errors import (
    ArrayTooLargeError,
    InvalidArgumentError,
    ShapeMismatchError,
    UnsizedArrayError,
    UnsupportedError,
)
from bigarrays.indexing import exact_values, expand_key

if TYPE_CHECKING:
    from bigarrays.array import BigArray

#: What ``np.asarray(vol)`` reads at most, in bytes, unless ``vol.array_limit`` says otherwise.
DEFAULT_ARRAY_LIMIT = 2 << 30


class ArrayManners:
    """What NumPy code expects of an array, built on ``shape``, ``dtype`` and indexing."""

    #: Bytes that ``np.asarray(vol)`` may read into memory; a larger volume is refused with
    #: :class:`~bigarrays.errors.ArrayTooLargeError` (None: no limit).
    array_limit: int | None = DEFAULT_ARRAY_LIMIT

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:
        raise NotImplementedError

    @property
    def dims(self) -> tuple[str, ...]:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> np.ndarray:
        raise NotImplementedError

    def _axis_indices(self) -> list[range]:
        """The indices each axis takes, in the order of :attr:`shape`."""
        raise NotImplementedError

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        if not self.shape:
            raise UnsizedArrayError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        # Without this, Python would iterate by calling self[0], self[1], ... until an
        # IndexError, which absolute coordinates never raise: reads outside are zeros.
        if not self.shape:
            raise UnsizedArrayError("iteration over a 0-d array")
        for i in self._axis_indices()[0]:
            yield self[i]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The whole array in memory, for NumPy functions (``np.asarray(vol)``, ``np.mean``).

        Refused with :class:`~bigarrays.errors.ArrayTooLargeError` beyond :attr:`array_limit`
        bytes: cut out a box instead, or raise the limit.
        """
        if copy is False:
            raise UnsupportedError(
                "np.asarray(vol, copy=False) cannot be honoured: the voxels are read from the "
                "store into a new array"
            )
        limit = self.array_limit
        if limit is not None and self.nbytes > limit:
            raise ArrayTooLargeError(
                f"reading the whole array {self.shape} {self.dtype} into memory takes "
                f"{_gib(self.nbytes)}, more than the limit of {_gib(limit)}: cut out a box "
                "(vol[x0:x1, y0:y1, z0:z1]), or raise vol.array_limit (None for no limit)"
            )
        out = np.asarray(self[...])  # a 0-d array reads as a NumPy scalar
        return out if dtype is None else out.astype(dtype, copy=False)

    @property
    def T(self) -> ArrayManners:
        """The array with its axes reversed: a lazy view (no voxel is read until indexed)."""
        return self.transpose()

    def transpose(self, *axes: Any) -> ArrayManners:
        """A lazy view with its axes permuted (reversed when none are given), as
        ``ndarray.transpose``: indexing it reads, and assigning to it writes, the same voxels
        through the permuted axes. Indices stay absolute coordinates."""
        if len(axes) == 1 and not isinstance(axes[0], int | np.integer):
            axes = tuple(axes[0]) if axes[0] is not None else ()
        n = self.ndim
        order = tuple(range(n))[::-1] if not axes else tuple(_axis(a, n) for a in axes)
        if sorted(order) != list(range(n)):
            raise InvalidArgumentError(
                f"axes {tuple(axes)} are not a permutation of the {n} axes {self.dims}"
            )
        return self._permuted(order)

    def _permuted(self, order: tuple[int, ...]) -> ArrayManners:
        """The view with axis ``j`` along axis ``order[j]`` of this array."""
        raise NotImplementedError


def _axis(a: Any, n: int) -> int:
    try:
        i = int(a)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"an axis is an integer, got {a!r}") from None
    if not -n <= i < n:
        raise InvalidArgumentError(f"axis {i} is out of range for {n} axes")
    return i % n


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


class TransposedArray(ArrayManners):
    """A :class:`BigArray` seen with its axes permuted: ``vol.T`` or ``vol.transpose(...)``.

    Axis ``j`` of the view is axis ``order[j]`` of :attr:`base`. Nothing is read until the view
    is indexed; results are NumPy views of the base's results (no copy), and writes go to the
    base through the same permutation.
    """

    def __init__(self, base: BigArray, order: tuple[int, ...]) -> None:
        self.base = base
        self.order = order
        self.array_limit = base.array_limit

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.base.shape[i] for i in self.order)

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.base.dims[i] for i in self.order)

    def __repr__(self) -> str:
        return f"<TransposedArray order={self.order} dims={self.dims} of {self.base!r}>"

    def _axis_indices(self) -> list[range]:
        ranges = self.base._axis_indices()
        return [ranges[i] for i in self.order]

    def _permuted(self, order: tuple[int, ...]) -> ArrayManners:
        return self.base._permuted(tuple(self.order[i] for i in order))

    def _base_key(self, key: Any) -> tuple[tuple[Any, ...], list[int]]:
        """The base's index for the view's ``key``, and the base axes the result keeps, in the
        view's order."""
        if isinstance(key, Box):
            if key.ndim != self.ndim:
                raise InvalidArgumentError(
                    f"a Box index of this view has its {self.ndim} axes {self.dims}, got {key.ndim}"
                )
            key = tuple(slice(a, b) for a, b in zip(key.start, key.stop, strict=True))
        items = expand_key(key, self.dims)
        given: list[Any] = [slice(None)] * self.ndim
        for j, item in enumerate(items):
            given[self.order[j]] = item
        kept = [self.order[j] for j, item in enumerate(items) if isinstance(item, slice)]
        return tuple(given), kept

    def __getitem__(self, key: Any) -> np.ndarray:
        base_key, kept = self._base_key(key)
        block = self.base[base_key]
        ranked = sorted(kept)  # the base's result has its kept axes in its own order
        return block.transpose([ranked.index(i) for i in kept])

    def __setitem__(self, key: Any, value: Any) -> None:
        base_key, kept = self._base_key(key)
        arr = np.asarray(value)
        if arr.ndim == 0:
            self.base[base_key] = value
            return
        if not isinstance(value, np.ndarray):
            arr = exact_values(arr, self.dtype)  # lists are judged by their values
        # Align the value's axes with the result's as NumPy broadcasting does (from the last),
        # then put them in the base's order; the base broadcasts the unit axes.
        while arr.ndim > len(kept) and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim > len(kept):
            raise ShapeMismatchError(
                f"array of shape {arr.shape} does not broadcast to the selection's {len(kept)} axes"
            )
        arr = arr.reshape((1,) * (len(kept) - arr.ndim) + arr.shape)
        ranked = sorted(kept)
        self.base[base_key] = arr.transpose([kept.index(i) for i in ranked])
