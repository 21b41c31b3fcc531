"""The Zarr v3 codec chain: array -> array codecs, one array -> bytes codec, bytes -> bytes codecs.

``CodecChain.from_json(codecs, dtype, chunk_shape)`` builds the chain of a ``zarr.json``'s
``codecs`` list (or of a ``sharding_indexed`` codec's inner ``codecs`` / ``index_codecs``);
``encode`` turns a chunk (its logical axes, full chunk shape) into the stored bytes and ``decode``
turns them back. Decoding is bounded at every step by what the step before can produce from one
chunk, so a small hostile object fails with :class:`~bigarrays.errors.CorruptChunkError` without
inflating.

The codecs of the core spec are built in: ``transpose``; ``bytes``; ``gzip``, ``zstd``,
``blosc``, ``crc32c``. Others join by name through :func:`register_array_bytes_codec` (as the
Zarr format registers ``sharding_indexed``) and :func:`register_bytes_bytes_codec`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Literal, cast

import numpy as np

from bigarrays.codecs.blosc import BloscCodec
from bigarrays.codecs.bytes_bytes import BytesBytesCodec, read_config
from bigarrays.codecs.crc32c import Crc32cCodec
from bigarrays.codecs.gzip import GzipCodec
from bigarrays.codecs.zstd import ZstdCodec
from bigarrays.errors import (
    CorruptChunkError,
    DtypeMismatchError,
    InvalidCodecError,
    ShapeMismatchError,
    UnsupportedError,
)

Shape = tuple[int, ...]


class ArrayArrayCodec(abc.ABC):
    """An array -> array step (``transpose``): it may change the shape, never the dtype."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def encoded_shape(self, shape: Shape) -> Shape:
        """The shape that an array of ``shape`` has after this step."""

    @abc.abstractmethod
    def encode(self, chunk: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def decode(self, chunk: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]: ...


class ArrayBytesCodec(abc.ABC):
    """The array -> bytes step of a chain; built for one dtype and one (encoded) chunk shape."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def encode(self, chunk: np.ndarray) -> bytes:
        """The bytes of ``chunk``, an array of the codec's dtype and shape."""

    @abc.abstractmethod
    def decode(self, data: bytes, key: str) -> np.ndarray:
        """The array of the codec's shape that ``data`` holds (:class:`CorruptChunkError`
        naming ``key`` when it holds no such array)."""

    @abc.abstractmethod
    def max_encoded_size(self) -> int | None:
        """The most bytes a chunk encodes to (None: no bound is known)."""

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]: ...


#: A codec's builder: (its JSON ``configuration`` or None, the dtype, the chunk shape it sees).
ArrayArrayFactory = Callable[[Any, np.dtype, Shape], ArrayArrayCodec]
ArrayBytesFactory = Callable[[Any, np.dtype, Shape], ArrayBytesCodec]
BytesBytesFactory = Callable[[Any, np.dtype, Shape], BytesBytesCodec]


class TransposeCodec(ArrayArrayCodec):
    """Permutes the axes: stored axis ``i`` is logical axis ``order[i]``."""

    name: ClassVar[str] = "transpose"

    def __init__(self, order: Sequence[int]) -> None:
        self.order = tuple(order)
        self._inverse = tuple(int(i) for i in np.argsort(self.order))

    @classmethod
    def from_config(cls, config: Any, dtype: np.dtype, shape: Shape) -> TransposeCodec:
        conf = read_config(cls.name, config, {"order": (lambda v: isinstance(v, list | tuple),
                                                        "a list of axis numbers")})  # fmt: skip
        order = conf.get("order")
        if order is None:
            raise InvalidCodecError(cls.name, "its configuration needs an order")
        if sorted(order) != list(range(len(shape))) or any(isinstance(i, bool) for i in order):
            raise InvalidCodecError(
                cls.name,
                f"order {list(order)} is not a permutation of the {len(shape)} axes "
                f"{list(range(len(shape)))}",
            )
        return cls(order)

    def encoded_shape(self, shape: Shape) -> Shape:
        return tuple(shape[i] for i in self.order)

    def encode(self, chunk: np.ndarray) -> np.ndarray:
        return chunk.transpose(self.order)

    def decode(self, chunk: np.ndarray) -> np.ndarray:
        return chunk.transpose(self._inverse)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "configuration": {"order": list(self.order)}}


class BytesCodec(ArrayBytesCodec):
    """The ``bytes`` codec: the chunk's values in C order, in ``endian`` byte order (None for
    one-byte types, which have none)."""

    name: ClassVar[str] = "bytes"

    def __init__(self, dtype: np.dtype, shape: Shape, endian: str | None) -> None:
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self.shape = shape
        self.endian = endian
        order: dict[str | None, Literal["<", ">", "|"]] = {"little": "<", "big": ">", None: "|"}
        self.stored = (
            self.dtype if self.dtype.itemsize == 1 else self.dtype.newbyteorder(order[endian])
        )
        self.nbytes = math.prod(shape) * self.dtype.itemsize

    @classmethod
    def from_config(cls, config: Any, dtype: np.dtype, shape: Shape) -> BytesCodec:
        conf = read_config(cls.name, config, {
            "endian": (lambda v: v in ("little", "big"), '"little" or "big"'),
        })  # fmt: skip
        endian = conf.get("endian")
        if endian is None and np.dtype(dtype).itemsize > 1:
            raise InvalidCodecError(
                cls.name, f"{np.dtype(dtype).name} values need an endian (little or big)"
            )
        return cls(dtype, shape, endian)

    def encode(self, chunk: np.ndarray) -> bytes:
        if chunk.dtype == self.stored:
            # One copy, gathered in C order from whatever layout the chunk has.
            return chunk.tobytes(order="C")
        return np.ascontiguousarray(chunk, dtype=self.stored).tobytes()

    def decode(self, data: bytes, key: str) -> np.ndarray:
        if len(data) != self.nbytes:
            raise CorruptChunkError(
                key, f"holds {len(data)} bytes, expected {self.nbytes} for a {self.shape} "
                f"{self.dtype.name} chunk",
            )  # fmt: skip
        out = np.frombuffer(data, self.stored).reshape(self.shape)
        return out if self.stored.isnative else out.astype(self.dtype)

    def max_encoded_size(self) -> int:
        return self.nbytes

    def to_json(self) -> dict[str, Any]:
        if self.endian is None:
            return {"name": self.name}
        return {"name": self.name, "configuration": {"endian": self.endian}}


_ARRAY_ARRAY: dict[str, ArrayArrayFactory] = {"transpose": TransposeCodec.from_config}
_ARRAY_BYTES: dict[str, ArrayBytesFactory] = {"bytes": BytesCodec.from_config}
_BYTES_BYTES: dict[str, BytesBytesFactory] = {
    "gzip": lambda config, dtype, shape: GzipCodec.from_config(config),
    "zstd": lambda config, dtype, shape: ZstdCodec.from_config(config),
    "blosc": lambda config, dtype, shape: BloscCodec.from_config(config, dtype.itemsize),
    "crc32c": lambda config, dtype, shape: Crc32cCodec.from_config(config),
}


def register_array_bytes_codec(name: str, factory: ArrayBytesFactory) -> None:
    """Let chains use the array -> bytes codec ``name``, built by ``factory(configuration,
    dtype, chunk_shape)``; registering a name again replaces its factory."""
    _ARRAY_BYTES[name] = factory


def register_bytes_bytes_codec(name: str, factory: BytesBytesFactory) -> None:
    """Let chains use the bytes -> bytes codec ``name`` (see :func:`register_array_bytes_codec`)."""
    _BYTES_BYTES[name] = factory


def known_codecs() -> list[str]:
    return sorted({*_ARRAY_ARRAY, *_ARRAY_BYTES, *_BYTES_BYTES})


def _name_and_config(entry: Any) -> tuple[str, Any]:
    if isinstance(entry, str):  # the spec's short form of a codec without configuration
        return entry, None
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise InvalidCodecError(str(entry), "a codec is an object with a string name")
    extra = set(entry) - {"name", "configuration", "must_understand"}
    if extra:
        raise InvalidCodecError(entry["name"], f"unknown member(s) {sorted(extra)}")
    return entry["name"], entry.get("configuration")


@dataclass(frozen=True, eq=False)
class CodecChain:
    """A built chain for chunks of ``dtype`` and ``chunk_shape`` (logical axes)."""

    dtype: np.dtype
    chunk_shape: Shape
    array_array: tuple[ArrayArrayCodec, ...]
    array_bytes: ArrayBytesCodec
    bytes_bytes: tuple[BytesBytesCodec, ...]

    @classmethod
    def from_json(cls, codecs: Sequence[Any], dtype: Any, chunk_shape: Sequence[int]) -> CodecChain:
        """Build and check the chain of a ``codecs`` list.

        Raises :class:`UnsupportedError` for a codec name that is not registered and
        :class:`InvalidCodecError` for a malformed list or configuration.
        """
        dtype = np.dtype(dtype).newbyteorder("=")
        shape = tuple(int(n) for n in chunk_shape)
        if not isinstance(codecs, list | tuple):
            raise InvalidCodecError(str(codecs), "codecs must be a list")
        aa: list[ArrayArrayCodec] = []
        ab: ArrayBytesCodec | None = None
        bb: list[BytesBytesCodec] = []
        encoded_shape = shape
        for entry in codecs:
            name, config = _name_and_config(entry)
            if name in _ARRAY_ARRAY:
                if ab is not None:
                    raise InvalidCodecError(name, "an array -> array codec comes before the "
                                            "array -> bytes codec")  # fmt: skip
                codec = _ARRAY_ARRAY[name](config, dtype, encoded_shape)
                encoded_shape = codec.encoded_shape(encoded_shape)
                aa.append(codec)
            elif name in _ARRAY_BYTES:
                if ab is not None:
                    raise InvalidCodecError(
                        name, f"a second array -> bytes codec after {ab.name!r}"
                    )
                ab = _ARRAY_BYTES[name](config, dtype, encoded_shape)
            elif name in _BYTES_BYTES:
                if ab is None:
                    raise InvalidCodecError(name, "a bytes -> bytes codec comes after the "
                                            "array -> bytes codec")  # fmt: skip
                bb.append(_BYTES_BYTES[name](config, dtype, encoded_shape))
            else:
                raise UnsupportedError(
                    f"unknown codec {name!r}; bigarrays knows {', '.join(known_codecs())}"
                )
        if ab is None:
            if dtype.itemsize > 1:
                raise InvalidCodecError("bytes", "the chain has no array -> bytes codec")
            ab = BytesCodec(dtype, encoded_shape, None)  # one-byte values need no endian
        return cls(dtype, shape, tuple(aa), ab, tuple(bb))

    def to_json(self) -> list[dict[str, Any]]:
        codecs: list[ArrayArrayCodec | ArrayBytesCodec | BytesBytesCodec] = [
            *self.array_array, self.array_bytes, *self.bytes_bytes,
        ]  # fmt: skip
        return [c.to_json() for c in codecs]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CodecChain):
            return NotImplemented
        return (self.dtype, self.chunk_shape, self.to_json()) == (
            other.dtype, other.chunk_shape, other.to_json(),
        )  # fmt: skip

    def __hash__(self) -> int:
        return hash((self.dtype, self.chunk_shape, repr(self.to_json())))

    @cached_property
    def _bounds(self) -> list[int | None]:
        """The most bytes that the input of each bytes -> bytes codec can hold."""
        bounds: list[int | None] = []
        size = self.array_bytes.max_encoded_size()
        for codec in self.bytes_bytes:
            bounds.append(size)
            size = None if size is None else codec.max_encoded_size(size)
        return bounds

    def encode(self, chunk: np.ndarray) -> bytes:
        """The stored bytes of ``chunk``: an array of the chain's dtype and full chunk shape."""
        if chunk.shape != self.chunk_shape:
            raise ShapeMismatchError(
                f"a chunk of shape {chunk.shape} given to a codec chain for chunks of shape "
                f"{self.chunk_shape}"
            )
        if chunk.dtype.newbyteorder("=") != self.dtype:
            raise DtypeMismatchError(
                f"a {chunk.dtype.name} chunk given to a codec chain for {self.dtype.name}"
            )
        for aa in self.array_array:
            chunk = aa.encode(chunk)
        data: bytes = self.array_bytes.encode(chunk)
        for bb in self.bytes_bytes:
            data = bb.encode(data)
        return data

    def decode(self, data: bytes, key: str) -> np.ndarray:
        """The chunk that ``data`` holds, in logical axis order and the chain's native dtype.

        The result may be a read-only view of ``data``, and with a ``transpose`` it is a
        transposed view rather than a C-ordered copy. Damage, a wrong size, or output past what
        a chunk can take raise :class:`CorruptChunkError` naming ``key``.
        """
        return self._decode(data, key, None)

    def decode_into(self, data: bytes, key: str, out: bytearray) -> np.ndarray:
        """:meth:`decode`, with the serialized chunk decoded straight into ``out`` (of at least
        a chunk's bytes) where the innermost bytes codec can (zstd, gzip, blosc): no
        allocation per chunk. The result may be a view of ``out``, valid until it is reused."""
        return self._decode(data, key, out)

    @cached_property
    def _serialized_nbytes(self) -> int | None:
        """The size of a serialized chunk where it is fixed (the ``bytes`` codec's), else None."""
        if not isinstance(self.array_bytes, BytesCodec):
            return None
        return self.array_bytes.nbytes

    def _decode(self, data: bytes, key: str, out: bytearray | None) -> np.ndarray:
        steps = list(zip(self.bytes_bytes, self._bounds, strict=True))
        size = self._serialized_nbytes
        view = None
        if out is not None and steps and size is not None and len(out) >= size:
            # The innermost codec (the first applied when encoding) decodes into ``out``.
            view, (into, _), steps = memoryview(out)[:size], steps[0], steps[1:]
        for bb, bound in reversed(steps):
            data = bb.decode(data, key, bound)
        if view is not None:
            if into.decode_into(data, view):
                data = cast(bytes, view)  # the bytes codec takes any buffer
            else:  # not this path, or damage: the codec's decode names which
                data = into.decode(data, key, self._bounds[0])
        chunk = self.array_bytes.decode(data, key)
        for aa in reversed(self.array_array):
            chunk = aa.decode(chunk)
        return chunk


__all__ = [
    "ArrayArrayCodec",
    "ArrayBytesCodec",
    "BytesCodec",
    "CodecChain",
    "TransposeCodec",
    "known_codecs",
    "register_array_bytes_codec",
    "register_bytes_bytes_codec",
]
