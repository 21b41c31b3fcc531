"""The chunk codec interface: one chunk's array <-> bytes.

A chunk array is 4-D ``(x, y, z, channel)``; the codec returns and accepts any memory layout and
never needs to know where the chunk lives.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np


class ChunkCodec(abc.ABC):
    """Encodes and decodes the chunks of one scale (one dtype, one channel count)."""

    #: The value of the info's ``encoding`` field.
    name: str = ""
    #: The keyword options ``make_codec`` hands this codec (info members such as
    #: ``jpeg_quality``); the others it is given are not its business and are dropped.
    option_names: tuple[str, ...] = ()

    def __init__(self, dtype: np.dtype, num_channels: int) -> None:
        self.check(dtype, num_channels)
        self.dtype = np.dtype(dtype)
        self.num_channels = num_channels

    @classmethod
    @abc.abstractmethod
    def check(cls, dtype: np.dtype, num_channels: int) -> None:
        """Raise :class:`~bigarrays.errors.UnsupportedError` if the codec cannot hold these."""

    @abc.abstractmethod
    def encode(self, chunk: np.ndarray) -> bytes | bytearray | memoryview:
        """The bytes of ``chunk`` (a 4-D ``(x, y, z, c)`` array of the codec's dtype)."""

    @abc.abstractmethod
    def decode(self, data: bytes, shape: Sequence[int], key: str) -> np.ndarray:
        """The 4-D array of ``shape`` that ``data`` holds; may be a read-only view of ``data``.

        Raises :class:`~bigarrays.errors.CorruptChunkError` naming ``key`` when ``data`` does not
        decode to exactly ``shape``.
        """

    def options(self) -> dict[str, object]:
        """Codec-specific info members (e.g. ``jpeg_quality``) to record in the scale."""
        return {}

    def check_chunk_size(self, chunk_size: Sequence[int]) -> None:
        """Raise :class:`~bigarrays.errors.UnsupportedError` for a chunk too big to encode.

        Called at create time (JPEG, for one, holds images of at most 65500 pixels a side).
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dtype}, channels={self.num_channels})"
