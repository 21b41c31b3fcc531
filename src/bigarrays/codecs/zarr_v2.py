"""The Zarr v2 codec chain: ``.zarray``'s ``filters`` and ``compressor``, through numcodecs.

numcodecs (extra ``zarr2``) builds every codec from its ``{"id": ...}`` configuration, so whatever
a Zarr v2 writer used (blosc, zstd, gzip, zlib, lz4, bz2, delta, shuffle, ...) is read with the
library that wrote it, and written byte for byte as zarr-python writes it.

Decoding is bounded where the stream allows it. The compressor's output size is known (the
chunk's bytes, or what size-keeping filters make of them); blosc and lz4 frames announce theirs,
which is checked before anything is allocated; gzip, zlib and zstd streams are inflated by
bigarrays' own bounded decoders (:mod:`bigarrays.codecs.gzip`, :mod:`~bigarrays.codecs.zstd`),
which stop at that size. The others (bz2, lzma) are decoded whole and then refused if their size
is wrong. In every case a chunk that decodes to another size than the chunk's is refused.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bigarrays.codecs import blosc, gzip, zstd
from bigarrays.errors import (
    CorruptChunkError,
    DtypeMismatchError,
    InvalidCodecError,
    MissingDependencyError,
    ShapeMismatchError,
    UnsupportedError,
)

#: Filters whose output size depends only on the chunk's shape and dtype, never on its values.
_FIXED_SIZE_FILTERS = frozenset(
    {"delta", "shuffle", "bitround", "quantize", "fixedscaleoffset", "astype", "packbits"}
)


def _numcodecs() -> Any:
    try:
        import numcodecs
    except ImportError:
        raise MissingDependencyError(
            "numcodecs", "zarr2", "Zarr v2 compressors and filters"
        ) from None
    return numcodecs


def _codec(config: Any, role: str) -> Any:
    numcodecs = _numcodecs()
    if not isinstance(config, dict) or not isinstance(config.get("id"), str):
        raise InvalidCodecError(str(config), f"a {role} is an object with a string id")
    try:
        return numcodecs.get_codec(config)
    except numcodecs.errors.UnknownCodecError:
        raise UnsupportedError(
            f"unknown Zarr v2 {role} {config['id']!r}: numcodecs has no such codec"
        ) from None
    except Exception as exc:  # TypeError / ValueError of a codec's constructor
        raise InvalidCodecError(config["id"], f"cannot build it from {config}: {exc}") from None


#: Per thread, where shuffled chunks are inflated before they are unshuffled.
_THREAD = threading.local()
#: The largest buffer a thread keeps: a larger chunk gets one of its own, freed after it.
KEEP_BYTES = 16 << 20


def _inflate_buffer(n: int) -> bytearray:
    """A buffer of at least ``n`` bytes: this thread's, kept for its next chunks (the largest
    asked for so far, up to ``KEEP_BYTES``)."""
    buffer: bytearray | None = getattr(_THREAD, "inflated", None)
    if buffer is not None and len(buffer) >= n:
        return buffer
    buffer = bytearray(n)
    if n <= KEEP_BYTES:
        _THREAD.inflated = buffer
    return buffer


_WIDER: dict[int, np.dtype[Any]] = {1: np.dtype("<u2"), 2: np.dtype("<u4")}


def unshuffle(planes: np.ndarray, out: bytearray) -> None:
    """Interleave the ``k`` byte planes of shuffled data (``(k, m)`` uint8: byte j of every
    element in plane j) into ``out``, as numcodecs' ``shuffle`` decodes them, with NumPy
    operations that release the GIL.

    On a little-endian machine element sizes 2 and 4 are merged pairwise into wider integers
    (``plane_0 | plane_1 << 8``, then pairs of those): 4x and 2x faster for a 512 KiB chunk than
    the general way, one strided copy per plane (as fast for size 8).
    """
    k, m = planes.shape
    if sys.byteorder == "little" and k in (2, 4):
        level, width = planes, 1
        while level.shape[0] > 1:
            wide = _WIDER[width]
            half = level.shape[0] // 2
            merged = (
                np.frombuffer(out, wide, m).reshape(1, m)
                if half == 1
                else np.empty((half, m), wide)
            )
            np.left_shift(level[1::2], 8 * width, out=merged, dtype=wide)
            np.bitwise_or(merged, level[0::2], out=merged)
            level, width = merged, width * 2
        return
    elements = np.frombuffer(out, np.uint8, k * m).reshape(m, k)
    for j in range(k):
        elements[:, j] = planes[j]


@dataclass(frozen=True, eq=False)
class V2Chain:
    """The filters and compressor of one Zarr v2 array."""

    dtype: np.dtype  # as stored, byte order included (``<u2``, ``>f8``)
    chunk_shape: tuple[int, ...]
    order: Literal["C", "F"]
    filters: tuple[Any, ...]
    compressor: Any
    #: The size of the compressor's output for one chunk, when filters cannot change it.
    filtered_size: int | None

    @classmethod
    def from_zarray(
        cls,
        compressor: dict[str, Any] | None,
        filters: Sequence[dict[str, Any]] | None,
        dtype: Any,
        chunk_shape: Sequence[int],
        order: str = "C",
    ) -> V2Chain:
        """The chain of a ``.zarray``'s members; raises :class:`UnsupportedError` for an id
        numcodecs lacks, :class:`InvalidCodecError` for a malformed configuration and
        :class:`MissingDependencyError` when numcodecs is not installed."""
        if order not in ("C", "F"):
            raise InvalidCodecError("order", f'order must be "C" or "F", got {order!r}')
        if filters is not None and not isinstance(filters, list | tuple):
            raise InvalidCodecError(str(filters), "filters must be a list or null")
        layout: Literal["C", "F"] = "C" if order == "C" else "F"
        dt = np.dtype(dtype)
        shape = tuple(int(n) for n in chunk_shape)
        built = tuple(_codec(f, "filter") for f in filters or ())
        comp = None if compressor is None else _codec(compressor, "compressor")
        size: int | None = math.prod(shape) * dt.itemsize
        if built:
            size = None
            if all(f.codec_id in _FIXED_SIZE_FILTERS for f in built):
                probe: Any = np.zeros(shape, dt, order=layout)
                for f in built:
                    probe = f.encode(probe)
                size = len(_numcodecs().compat.ensure_bytes(probe))
        return cls(dt, shape, layout, built, comp, size)

    @property
    def nbytes(self) -> int:
        return math.prod(self.chunk_shape) * self.dtype.itemsize

    def encode(self, chunk: np.ndarray) -> bytes:
        """The stored bytes of ``chunk`` (logical axes, full chunk shape), as zarr-python
        writes them."""
        if chunk.shape != self.chunk_shape:
            raise ShapeMismatchError(
                f"a chunk of shape {chunk.shape} given to a codec chain for chunks of shape "
                f"{self.chunk_shape}"
            )
        if chunk.dtype.newbyteorder("=") != self.dtype.newbyteorder("="):
            raise DtypeMismatchError(
                f"a {chunk.dtype.name} chunk given to a codec chain for {self.dtype.name}"
            )
        data: Any = chunk.astype(self.dtype, order=self.order, copy=False)
        for f in self.filters:
            data = f.encode(data)
        if self.compressor is not None:
            data = self.compressor.encode(data)
        out: bytes = _numcodecs().compat.ensure_bytes(data)
        return out

    def _decompress(self, data: bytes, key: str) -> Any:
        codec_id = self.compressor.codec_id
        size = self.filtered_size
        if codec_id in ("gzip", "zlib"):
            return gzip.decompress(data, key, size)
        if codec_id == "zstd" and zstd.available():
            return zstd.decompress(data, key, size)
        if size is not None:
            announced = self._announced_size(data, codec_id, key)
            if announced is not None and announced != size:
                raise CorruptChunkError(
                    key, f"{codec_id} data announces {announced} bytes, expected {size}"
                )
        return self.compressor.decode(data)

    @staticmethod
    def _announced_size(data: bytes, codec_id: str, key: str) -> int | None:
        """The decoded size a blosc or lz4 frame announces (what its decoder allocates)."""
        if codec_id == "blosc":
            if len(data) < blosc.HEADER.size:
                raise CorruptChunkError(key, f"{len(data)} bytes is too short for a blosc frame")
            *_, nbytes, _, cbytes = blosc.HEADER.unpack_from(data)
            if cbytes != len(data):
                raise CorruptChunkError(
                    key, f"blosc frame says it is {cbytes} bytes long, but {len(data)} were stored"
                )
            return int(nbytes)
        if codec_id == "lz4":  # numcodecs' lz4 puts the decoded size first
            if len(data) < 4:
                raise CorruptChunkError(key, f"{len(data)} bytes is too short for lz4 data")
            return int.from_bytes(data[:4], "little")
        return None

    def decode(self, data: bytes, key: str) -> np.ndarray:
        """The chunk that ``data`` holds: logical axes, full chunk shape, native byte order
        (F-contiguous when the array is stored in F order).

        Damage, or data that is not one chunk's worth, raise :class:`CorruptChunkError`
        naming ``key``.
        """
        chunk: Any = data
        try:
            if self.compressor is not None:
                chunk = self._decompress(data, key)
            for f in reversed(self.filters):
                chunk = f.decode(chunk)
            flat = _numcodecs().compat.ensure_ndarray_like(chunk).reshape(-1, order="A")
            values = flat.view(self.dtype)
        except (CorruptChunkError, MissingDependencyError):
            raise
        except Exception as exc:  # numcodecs' RuntimeError / ValueError / library errors
            raise CorruptChunkError(key, f"cannot decode Zarr v2 chunk: {exc}") from None
        if values.nbytes != self.nbytes:
            raise CorruptChunkError(
                key, f"decodes to {values.nbytes} bytes, expected {self.nbytes} for a "
                f"{self.chunk_shape} {self.dtype.name} chunk",
            )  # fmt: skip
        out: np.ndarray = values.reshape(self.chunk_shape, order=self.order)
        return out if self.dtype.isnative else out.astype(self.dtype.newbyteorder("="))

    @functools.cached_property  # asked once per chunk decoded
    def _into_shuffle(self) -> int | None:
        """The element size of the chain's one ``shuffle`` filter (1: no filter) when
        :meth:`decode_into` can inflate and unshuffle its chunks itself; None when it cannot."""
        if self.compressor is None or self.compressor.codec_id not in ("gzip", "zlib"):
            return None
        if not self.dtype.isnative or self.dtype.hasobject:
            return None
        if not self.filters:
            return 1
        if len(self.filters) > 1 or self.filters[0].codec_id != "shuffle":
            return None
        size = int(self.filters[0].elementsize)
        return size if size >= 1 and self.nbytes % size == 0 else None

    def decode_into(self, data: bytes, key: str, out: bytearray) -> np.ndarray:
        """:meth:`decode`, into ``out`` (at least a chunk's bytes) when the chain is a gzip or
        zlib compressor and at most a ``shuffle`` filter: HDF5's deflate chunks, Zarr v2's gzip
        ones. libdeflate inflates without the GIL straight into the buffer, and the unshuffle
        is NumPy copies, which release it too (numcodecs' holds it), so a chunk is decoded on
        every core with no allocation. The returned array is a view of ``out``; any other
        chain, or a stream this path declines, goes through :meth:`decode`.
        """
        k = self._into_shuffle
        n = self.nbytes
        if k is None or len(out) < n:
            return self.decode(data, key)
        if k == 1:
            if gzip.inflate_into(data, memoryview(out)[:n]) is None:
                return self.decode(data, key)
        else:
            inflated = _inflate_buffer(n)
            if gzip.inflate_into(data, memoryview(inflated)[:n]) is None:
                return self.decode(data, key)
            unshuffle(np.frombuffer(inflated, np.uint8, n).reshape(k, n // k), out)
        values: np.ndarray = np.frombuffer(out, self.dtype, n // self.dtype.itemsize)
        return values.reshape(self.chunk_shape, order=self.order)

    def to_zarray(self) -> dict[str, Any]:
        """The ``compressor`` and ``filters`` members of the ``.zarray``."""
        return {
            "compressor": None if self.compressor is None else self.compressor.get_config(),
            "filters": [f.get_config() for f in self.filters] or None,
        }
