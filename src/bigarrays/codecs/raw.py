"""The ``raw`` encoding: the chunk's voxels, little-endian, x fastest, then y, z and channel."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bigarrays.codecs.base import ChunkCodec
from bigarrays.errors import CorruptChunkError


class RawCodec(ChunkCodec):
    name = "raw"

    def __init__(self, dtype: np.dtype, num_channels: int) -> None:
        super().__init__(dtype, num_channels)
        # bool is stored one byte per voxel; read back through uint8 to normalise stray values.
        self._wire = np.dtype("u1") if self.dtype == np.bool_ else self.dtype.newbyteorder("<")

    @classmethod
    def check(cls, dtype: np.dtype, num_channels: int) -> None:
        return None  # raw holds every dtype and channel count

    def encode(self, chunk: np.ndarray) -> bytes:
        if chunk.dtype != self._wire:
            chunk = chunk.astype(self._wire)
        # tobytes(order="F") walks x fastest; a Fortran-contiguous chunk is copied exactly once.
        return chunk.tobytes(order="F")

    def decode(self, data: bytes, shape: Sequence[int], key: str) -> np.ndarray:
        expected = math.prod(shape) * self._wire.itemsize
        if len(data) != expected:
            raise CorruptChunkError(
                key,
                f"raw chunk holds {len(data)} bytes, expected {expected} "
                f"({'x'.join(map(str, shape))} voxels of {self.dtype})",
            )
        arr: np.ndarray = np.frombuffer(data, dtype=self._wire).reshape(tuple(shape), order="F")
        if self.dtype == np.bool_:
            normalised: np.ndarray = arr != 0
            return normalised
        return arr
