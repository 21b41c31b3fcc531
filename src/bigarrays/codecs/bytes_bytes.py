"""The bytes -> bytes codecs' common ground: their interface and how their failures read.

A bytes codec (gzip, zstd, blosc, crc32c) turns one buffer into another. Decoding takes a
``max_size``: a reader that knows how big the output can be (a chunk's size) passes it, and
decoding stops with :class:`~bigarrays.errors.CorruptChunkError` as soon as the output passes it,
so that a small hostile object costs no more memory than one honest chunk.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn

from bigarrays.errors import CorruptChunkError, InvalidCodecError, MissingDependencyError

Buffer = bytes | bytearray | memoryview


class TooLarge(Exception):
    """Decoded output passed the caller's ``max_size``."""


def compressed_bound(size: int) -> int:
    """The most bytes a compressor turns ``size`` bytes into.

    zlib's bound is ``size`` plus 0.1%, zstd's plus 0.4%, brotli's less: 1.6% and 1 KiB more is
    safe for all, and still keeps a bomb (which inflates a thousandfold) far out.
    """
    return size + (size >> 6) + 1024


def raise_corrupt(
    exc: BaseException, what: str, key: str, size: int, max_size: int | None
) -> NoReturn:
    """Raise the CorruptChunkError that failing (``exc``) to decode ``size`` bytes means.

    Library errors (zlib.error, ZstdError, brotli.error, ...) all mean damaged data; a missing
    optional package and errors that are already typed pass through unchanged.
    """
    if isinstance(exc, MissingDependencyError | CorruptChunkError):
        raise exc
    if isinstance(exc, TooLarge):
        raise CorruptChunkError(
            key,
            f"{size} bytes of {what} decode to more than the {max_size} bytes expected at most "
            "(a damaged or hostile object)",
        ) from None
    if isinstance(exc, MemoryError):
        raise CorruptChunkError(key, f"{what} decodes to more than fits in memory") from None
    raise CorruptChunkError(key, f"cannot decode {what}: {exc}") from None


class BytesBytesCodec(abc.ABC):
    """One bytes -> bytes step of a codec chain; immutable once built."""

    #: The codec's name in a Zarr v3 ``codecs`` list.
    name: ClassVar[str] = ""

    @abc.abstractmethod
    def encode(self, data: Buffer) -> bytes:
        """The encoded form of ``data``."""

    @abc.abstractmethod
    def decode(self, data: bytes, key: str = "", max_size: int | None = None) -> bytes:
        """The bytes ``data`` holds; :class:`CorruptChunkError` naming ``key`` when it cannot be
        decoded or decodes to more than ``max_size`` bytes."""

    def decode_into(self, data: Buffer, out: memoryview) -> bool:
        """Decode ``data`` straight into ``out`` if it holds exactly ``len(out)`` bytes: no
        allocation, so a reused buffer costs no page faults. False whenever this path does not
        apply or the data is damaged, and the caller then calls :meth:`decode`, which names what
        is wrong; ``out`` may then hold anything. The default has no such path."""
        return False

    @abc.abstractmethod
    def configuration(self) -> dict[str, Any] | None:
        """The ``configuration`` member of the codec's JSON (None: the codec has none)."""

    def max_encoded_size(self, size: int) -> int:
        """The most bytes ``size`` bytes can encode to (what bounds the decoding of the step
        before this one in a chain)."""
        return compressed_bound(size)

    def to_json(self) -> dict[str, Any]:
        config = self.configuration()
        return (
            {"name": self.name} if config is None else {"name": self.name, "configuration": config}
        )

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(repr(self.to_json()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.configuration() or ''})"


#: A configuration member's test and what it expects, for the message when the test fails.
Member = tuple[Callable[[Any], bool], str]


def read_config(name: str, config: Any, known: dict[str, Member]) -> dict[str, Any]:
    """``config`` checked against ``known`` (member -> test of its value, what it expects); a
    member that is unknown or fails its test raises :class:`InvalidCodecError`."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidCodecError(name, f"its configuration must be an object, got {config!r}")
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise InvalidCodecError(
            name, f"unknown configuration member(s) {unknown}; known: {sorted(known)}"
        )
    for member, (ok, expected) in known.items():
        if member in config and not ok(config[member]):
            raise InvalidCodecError(name, f"{member} must be {expected}, got {config[member]!r}")
    return config


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
