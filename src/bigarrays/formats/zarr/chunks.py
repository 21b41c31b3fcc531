"""The chunks of one Zarr array (v3, or v2 through numcodecs) as a chunk source for the engine.

Every chunk is one object, named by the array's chunk key encoding, holding the chunk at its full
shape: edge chunks too, whose part past the array's end holds the fill value (the engine pastes
only the part inside the bounds). Chunks come back in C order, the arrays' logical axis order;
the codec chain undoes any ``transpose`` (v3) or F order (v2). A chunk never written reads as the
fill value; a write of part of a chunk is a conditional merge (``formats.merge``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from bigarrays.box import ChunkGrid, ChunkPiece, Vec
from bigarrays.chunk_source import ChunkSourceBase, Order
from bigarrays.errors import UnsupportedError
from bigarrays.fill import filled, is_fill
from bigarrays.formats.merge import merge_into_object
from bigarrays.stores import Store

#: Stored objects may take this many times a chunk's bytes, plus the slack below, before their
#: transfer decoding stops: room for any honest compressor's worst case (incompressible data grows
#: by a few bytes per block), none for a bomb.
STORED_FACTOR = 2
STORED_SLACK = 1 << 20


class Chain(Protocol):
    """A Zarr codec chain (``codecs.chain.CodecChain`` or ``codecs.zarr_v2.V2Chain``)."""

    def encode(self, chunk: np.ndarray) -> bytes: ...
    def decode(self, data: bytes, key: str) -> np.ndarray: ...


class ZarrChunks(ChunkSourceBase):
    """Loads and saves the decoded chunks of one unsharded Zarr array."""

    order: Order = "C"

    def __init__(
        self,
        store: Store,
        prefix: str,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        dtype: np.dtype,
        fill_value: Any,
        chain: Chain,
        chunk_key: Callable[[tuple[int, ...]], str],
    ) -> None:
        self.store = store
        self.grid = ChunkGrid(origin=(0,) * len(shape), size=shape, chunk=chunks)
        self.dtype = np.dtype(dtype)
        self.fill_value = fill_value
        self.chain = chain
        self._chunk_key = chunk_key
        self._prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.chunk_nbytes = math.prod(chunks) * self.dtype.itemsize
        self.merges_safely = store.conditional_writes
        self._max_stored = STORED_FACTOR * self.chunk_nbytes + STORED_SLACK

    @property
    def url(self) -> str:
        return self.store.url

    def key(self, index: Vec) -> str:
        return self._prefix + self._chunk_key(tuple(index))

    # -- reading ---------------------------------------------------------------------------------
    def load(self, index: Vec) -> np.ndarray | None:
        key = self.key(index)
        data = self.store.get(key, max_size=self._max_stored)
        return None if data is None else self.chain.decode(data, key)

    # -- writing ---------------------------------------------------------------------------------
    def _whole(self, part: np.ndarray) -> np.ndarray:
        """The full-shape chunk of ``part`` (an edge chunk's voxels): the rest is fill."""
        shape = self.grid.chunk
        if part.shape == shape:
            return np.ascontiguousarray(part, dtype=self.dtype)
        chunk = filled(shape, self.dtype, self.fill_value, "C")
        chunk[tuple(slice(0, n) for n in part.shape)] = part
        return chunk

    def save(self, index: Vec, chunk: np.ndarray) -> None:
        self.store.put(self.key(index), self.chain.encode(self._whole(chunk)))

    def delete(self, index: Vec) -> None:
        self.store.delete(self.key(index))

    def merge(self, piece: ChunkPiece, part: np.ndarray, *, skip_empty: bool = False) -> None:
        """Write ``part`` over the stored chunk's voxels ``piece.in_chunk``, conditionally."""
        if not self.merges_safely:
            raise UnsupportedError(
                f"the store {self.store.url} has no conditional writes, so writing part of chunk "
                f"{self.key(piece.chunk_index)!r} could lose another writer's voxels; write "
                "whole chunks"
            )
        key = self.key(piece.chunk_index)
        inside = tuple(slice(0, n) for n in piece.chunk_box.shape)

        def write_part(chunk: np.ndarray) -> None:
            chunk[piece.in_chunk] = part

        def decode(stored: bytes) -> np.ndarray:
            return np.array(self.chain.decode(stored, key), dtype=self.dtype, order="C", copy=True)

        def empty(chunk: np.ndarray) -> bool:
            return is_fill(chunk[inside], self.fill_value)

        merge_into_object(
            self.store, key, write_part, decode=decode,
            new=lambda: filled(self.grid.chunk, self.dtype, self.fill_value, "C"),
            encode=lambda chunk: (self.chain.encode(chunk), None),
            is_empty=empty if skip_empty else None, max_size=self._max_stored,
        )  # fmt: skip
