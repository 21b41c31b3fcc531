"""The chunks of one Zarr array (v3, or v2 through numcodecs) as a chunk source for the engine.

Every chunk is one object, named by the array's chunk key encoding, holding the chunk at its full
shape: edge chunks too, whose part past the array's end holds the fill value (the engine pastes
only the part inside the bounds). Chunks come back in the arrays' logical axis order, laid out
in C order, or in F order for an array stored so (Zarr v2's F order, a v3 ``transpose`` that
reverses the axes): the codec chain undoes any ``transpose``, with no copy in that case. A chunk
never written reads as the fill value; a write of part of a chunk is a conditional merge
(``formats.merge``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, Protocol, cast

import numpy as np

from bigarrays.box import Box, ChunkGrid, ChunkPiece, Vec
from bigarrays.chunk_source import ZARR_INLINE_CHUNKS, ChunkSourceBase, Order
from bigarrays.codecs.chain import BytesCodec, CodecChain, TransposeCodec
from bigarrays.codecs.zstd import ZstdCodec
from bigarrays.errors import UnsupportedError
from bigarrays.fill import filled, is_fill
from bigarrays.formats.merge import merge_into_object
from bigarrays.stores import Store
from bigarrays.stores.base import NOT_FOUND

#: Stored objects may take this many times a chunk's bytes, plus the slack below, before their
#: transfer decoding stops: room for any honest compressor's worst case (incompressible data grows
#: by a few bytes per block), none for a bomb.
STORED_FACTOR = 2
STORED_SLACK = 1 << 20


#: Chunk keys an array remembers: a key is string work and a bounds check, paid again by every
#: read of its chunk, and small cutouts of one region ask for the same keys over and over.
KEY_CACHE_SIZE = 8192


class KeyCache:
    """Keys by grid index, computed by ``make`` once while fewer than :data:`KEY_CACHE_SIZE`
    are held (then it starts again); safe to share between threads (a race computes one twice)."""

    def __init__(self, make: Callable[[tuple[int, ...]], str]) -> None:
        self._make = make
        self._keys: dict[tuple[int, ...], str] = {}

    def __call__(self, index: Vec) -> str:
        index = index if type(index) is tuple else tuple(index)
        key = self._keys.get(index)
        if key is None:
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()
            key = self._keys[index] = self._make(index)
        return key


class Chain(Protocol):
    """A Zarr codec chain (``codecs.chain.CodecChain`` or ``codecs.zarr_v2.V2Chain``)."""

    def encode(self, chunk: np.ndarray) -> bytes: ...
    def decode(self, data: bytes, key: str) -> np.ndarray: ...
    def decode_into(self, data: bytes, key: str, out: bytearray) -> np.ndarray: ...


def whole_chunk(
    part: np.ndarray, shape: tuple[int, ...], dtype: np.dtype, fill_value: Any,
    order: Order = "C",
) -> np.ndarray:  # fmt: skip
    """The chunk of ``shape`` whose corner is ``part`` (an edge chunk's voxels, clipped
    to the array), laid out in ``order``; the rest holds the fill value, as Zarr stores edge
    chunks at full shape."""
    if part.shape == shape:
        # As it lies: the chain's serialization gathers it into its order in its one copy.
        return np.asarray(part, dtype=dtype)
    chunk = filled(shape, dtype, fill_value, order)
    chunk[tuple(slice(0, n) for n in part.shape)] = part
    return chunk


def stored_order(chain: Chain) -> Order:
    """The memory order in which ``chain`` stores a chunk's values with no transposing copy:
    "F" for Zarr v2's F order and for a v3 ``transpose`` that reverses every axis, else "C"."""
    if isinstance(chain, CodecChain):
        steps = chain.array_array
        if len(steps) == 1 and isinstance(steps[0], TransposeCodec):
            order = steps[0].order
            if len(order) > 1 and order == tuple(reversed(range(len(order)))):
                return "F"
        return "C"
    return "F" if getattr(chain, "order", "C") == "F" else "C"


def plain_bytes(chain: Chain, dtype: np.dtype) -> bool:
    """Whether ``chain`` stores a chunk as its values in C order and this machine's byte order."""
    if not isinstance(chain, CodecChain) or chain.array_array or chain.bytes_bytes:
        return False
    codec = chain.array_bytes
    if not isinstance(codec, BytesCodec) or dtype == np.bool_:
        return False
    return dtype.itemsize == 1 or codec.stored == dtype.newbyteorder("=")


def decodes_buffers(chain: Chain) -> bool:
    """Whether ``chain`` is compressed by codecs that decode from any buffer into new memory
    (zstd), so that a chunk's stored bytes may be read into a reused buffer."""
    return (
        isinstance(chain, CodecChain)
        and bool(chain.bytes_bytes)
        and all(isinstance(c, ZstdCodec) for c in chain.bytes_bytes)
    )


def stored_buffer_bytes(chunk_nbytes: int) -> int:
    """A thread's buffer for compressed chunks' stored bytes: room for zstd's worst case
    (``ZSTD_compressBound``: a few bytes per 128 KiB block, and the frame's header)."""
    return chunk_nbytes + chunk_nbytes // 128 + 4096


def stored_buffer(local: threading.local, chunk_nbytes: int) -> memoryview:
    """This thread's buffer for compressed chunks' stored bytes, kept in ``local``."""
    buffer: memoryview | None = getattr(local, "stored", None)
    if buffer is None:
        buffer = local.stored = memoryview(bytearray(stored_buffer_bytes(chunk_nbytes)))
    return buffer


class ZarrChunks(ChunkSourceBase):
    """Loads and saves the decoded chunks of one unsharded Zarr array."""

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
        #: Chunks are decoded and encoded in the order the chain stores them in, so an array
        #: kept in F order moves in F order, never transposed twice.
        self.order: Order = stored_order(chain)
        self._chunk_key = chunk_key
        self._prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._keys = KeyCache(lambda index: self._prefix + self._chunk_key(index))
        self.chunk_nbytes = math.prod(chunks) * self.dtype.itemsize
        self.merges_safely = store.conditional_writes
        self._max_stored = STORED_FACTOR * self.chunk_nbytes + STORED_SLACK
        #: Chunks whose stored bytes are the array's memory (the ``bytes`` codec alone, in this
        #: machine's byte order), on a store that reads into buffers: read straight into the
        #: engine's scratch buffer, as precomputed's raw chunks are.
        self.fast_raw = store.reads_into_buffers and plain_bytes(chain, self.dtype)
        #: A few raw chunks cost less than handing them to the pool (``ZARR_INLINE_CHUNKS``).
        self.inline_chunks = ZARR_INLINE_CHUNKS if self.fast_raw else 1
        #: zstd chunks of a local file: their stored bytes are read into a buffer of this
        #: thread's, and decoded from there into the engine's scratch buffer (no allocation).
        self.stored_in_place = store.reads_into_buffers and decodes_buffers(chain)
        self._local = threading.local()

    @property
    def url(self) -> str:
        return self.store.url

    def key(self, index: Vec) -> str:
        return self._keys(index)

    # -- reading ---------------------------------------------------------------------------------
    def load(self, index: Vec) -> np.ndarray | None:
        key = self.key(index)
        # Zarr keeps no transfer encoding in a chunk's name: the plain key is the only place.
        data = self.store.get(key, max_size=self._max_stored, encoding=None)
        return None if data is None else self.chain.decode(data, key)

    def load_view(
        self, index: Vec, box: Box, scratch: bytearray, in_chunk: tuple[slice, ...]
    ) -> tuple[np.ndarray | None, tuple[slice, ...]]:
        """The part ``in_chunk`` of chunk ``index``; with :attr:`fast_raw`, only the rows along
        the first axis that ``in_chunk`` needs, read straight into ``scratch``."""
        if not self.fast_raw:
            # Decoded into the scratch buffer where the chain can: no new chunk's memory.
            key = self.key(index)
            data = self._stored(key)
            return (None if data is None else self.chain.decode_into(data, key, scratch)), in_chunk
        shape = self.grid.chunk
        row = math.prod(shape[1:]) * self.dtype.itemsize
        rows = in_chunk[0] if shape else slice(0, 1)
        start, stop = (rows.start, rows.stop) if shape else (0, 1)
        nbytes = (stop - start) * row
        n = self.store.read_into(self.key(index), memoryview(scratch)[:nbytes], start * row,
                                 self.chunk_nbytes, encoding=None)  # fmt: skip
        if n == NOT_FOUND:
            return None, in_chunk
        if n != nbytes:  # missing, stored encoded, or not of a chunk's size: the general path
            return self.load(index), in_chunk
        arr = np.frombuffer(scratch, self.dtype, nbytes // self.dtype.itemsize)
        if not shape:
            return arr.reshape(()), in_chunk
        part = (slice(0, stop - start), *in_chunk[1:])
        return arr.reshape((stop - start, *shape[1:])), part

    def _stored(self, key: str) -> bytes | None:
        """The stored bytes of ``key``: with :attr:`stored_in_place`, a view of this thread's
        buffer, valid until its next read (zstd decodes them into other memory)."""
        if not self.stored_in_place:
            return self.store.get(key, max_size=self._max_stored, encoding=None)
        buffer = stored_buffer(self._local, self.chunk_nbytes)
        n = self.store.read_into(key, buffer, encoding=None)
        if n == NOT_FOUND:
            return None
        if n is None or n < 0 or n >= len(buffer):  # larger than zstd makes: the bounded get
            return self.store.get(key, max_size=self._max_stored, encoding=None)
        return cast(bytes, buffer[:n])  # the chain decodes from any buffer

    # -- writing ---------------------------------------------------------------------------------
    def save(self, index: Vec, chunk: np.ndarray) -> None:
        whole = whole_chunk(chunk, self.grid.chunk, self.dtype, self.fill_value, self.order)
        self.store.put(self.key(index), self.chain.encode(whole))

    def save_view(self, index: Vec, box: Box, part: np.ndarray, scratch: bytearray) -> None:
        """Store ``part`` (the chunk's voxels inside the array, any layout) through ``scratch``
        when it can: with :attr:`fast_raw`, copied once into it at the chunk's full shape (the
        rest of an edge chunk filled) and written from there, with no bytes object per chunk.
        A whole chunk already laid out as stored (C order, the array's dtype) is written from
        its own memory, with no copy. Otherwise this is :meth:`save`."""
        if not self.fast_raw:
            self.save(index, part)
            return
        shape = self.grid.chunk
        if part.dtype == self.dtype and part.shape == shape and part.flags.c_contiguous:
            self.store.put(self.key(index), part.reshape(-1).view(np.uint8).data)
            return
        arr = np.frombuffer(scratch, self.dtype, math.prod(shape)).reshape(shape)
        if part.shape != shape:
            arr[...] = self.fill_value
        inside: tuple[Any, ...] = tuple(slice(0, n) for n in part.shape)
        # The trailing ... keeps a 0-d chunk an array to copy into, not a scalar.
        np.copyto(arr[(*inside, ...)], part, casting="unsafe")
        self.store.put(self.key(index), memoryview(scratch)[: self.chunk_nbytes])

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
            return np.array(self.chain.decode(stored, key), dtype=self.dtype, order=self.order,
                            copy=True)  # fmt: skip

        def empty(chunk: np.ndarray) -> bool:
            return is_fill(chunk[inside], self.fill_value)

        merge_into_object(
            self.store, key, write_part, decode=decode,
            new=lambda: filled(self.grid.chunk, self.dtype, self.fill_value, self.order),
            encode=lambda chunk: (self.chain.encode(chunk), None),
            is_empty=empty if skip_empty else None, max_size=self._max_stored,
            stored_encoding=None,
        )  # fmt: skip
