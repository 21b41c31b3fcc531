"""Where a scale's chunks live and how their bytes are made: keys, codec, transfer compression.

Unsharded scales keep one object per chunk, named by its voxel box in absolute coordinates:
``{scale_key}/{x0}-{x1}_{y0}-{y1}_{z0}-{z1}``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from bigarrays.box import Box, ChunkGrid, ChunkPiece, Vec
from bigarrays.chunk_source import INLINE_CHUNKS, ChunkSourceBase
from bigarrays.codecs import ChunkCodec, make_codec
from bigarrays.codecs.blosc import MAX_OVERHEAD as BLOSC_MAX_OVERHEAD
from bigarrays.codecs.blosc import BloscCompressor
from bigarrays.errors import CorruptChunkError, UnsupportedError
from bigarrays.fill import filled, is_fill
from bigarrays.formats.merge import merge_into_object
from bigarrays.formats.precomputed.info import Info, Scale
from bigarrays.stores import Store, content_encoding, normalize_key
from bigarrays.stores.base import ANY_ENCODING, Buffer

_CHUNK_NAME = re.compile(r"^(-?\d+)-(-?\d+)_(-?\d+)-(-?\d+)_(-?\d+)-(-?\d+)$")


#: How much bigger than its voxels an image or label encoding's bytes can be, and room for headers
#: and metadata segments: the bound on what reading one chunk may decode (see ``max_encoded``).
#: The worst honest cases stay well inside: png stores a filter byte per row (2x for rows one byte
#: wide) plus stored-block and chunk headers; jpeg of noise at quality 100 stays under 2x;
#: compressed_segmentation with 1x1x1 blocks spends an 8-byte block header and a table entry on
#: each uint32 voxel (3x).
ENCODED_FACTOR = 4
ENCODED_SLACK = 1 << 20


def chunk_name(box: Box) -> str:
    """``"0-64_64-128_-64-0"`` for a 3-D box (extra axes, such as channels, are ignored)."""
    return "_".join(f"{a}-{b}" for a, b in zip(box.start[:3], box.stop[:3], strict=True))


def parse_chunk_name(name: str) -> Box:
    """The inverse of :func:`chunk_name`; ``ValueError`` for a name that is not a chunk's."""
    m = _CHUNK_NAME.match(name.rsplit("/", 1)[-1])
    if m is None:
        raise ValueError(f"{name!r} is not a chunk name like '0-64_0-64_0-64'")
    x0, x1, y0, y1, z0, z1 = map(int, m.groups())
    return Box((x0, y0, z0), (x1, y1, z1))


def scale_grid(scale: Scale, num_channels: int) -> ChunkGrid:
    """The 4-D grid ``(x, y, z, channel)`` of a scale; a chunk always holds every channel."""
    return ChunkGrid(
        origin=(*scale.voxel_offset, 0),
        size=(*scale.size, num_channels),
        chunk=(*scale.chunk_size, num_channels),
    )


def scale_codec(info: Info, mip: int) -> ChunkCodec:
    """The codec of scale ``mip``, with the codec options its info members give."""
    scale = info.scales[mip]
    return make_codec(
        scale.encoding, info.dtype, info.num_channels, jpeg_quality=scale.jpeg_quality,
        png_level=scale.png_level,
        compressed_segmentation_block_size=scale.compressed_segmentation_block_size,
    )  # fmt: skip


def blosc_typesize(encoding: str, dtype: np.dtype) -> int:
    """The value width blosc's shuffle should work on for a chunk's encoded bytes."""
    if encoding == "raw":
        return int(np.dtype(dtype).itemsize)
    return 4 if encoding == "compressed_segmentation" else 1


def scale_blosc(info: Info, mip: int) -> BloscCompressor | None:
    """The blosc compressor of scale ``mip``, or None when it is not blosc-compressed."""
    scale = info.scales[mip]
    if scale.compression != "blosc":
        return None
    return BloscCompressor(
        scale.compression_level, scale.blosc_cname, scale.blosc_shuffle,
        typesize=blosc_typesize(scale.encoding, info.dtype),
    )  # fmt: skip


def open_layout(store: Store, info: Info, mip: int) -> ChunkLayout:
    """The layout that reads and writes the chunks of scale ``mip`` (sharded or not)."""
    if info.scales[mip].sharding is not None:
        from bigarrays.formats.precomputed.sharded_layout import ShardedLayout

        return ShardedLayout(store, info, mip)
    return ChunkLayout(store, info, mip)


class ChunkLayout(ChunkSourceBase):
    """Loads and saves the decoded chunks of one unsharded scale."""

    #: Subclasses that store chunks inside shards set this (see ``sharded_layout``).
    handles_sharding = False
    #: Voxels per axis of a box-shaped shard (see ``sharded_layout``); None: chunks stand alone.
    shard_shape: tuple[int, ...] | None = None

    def __init__(self, store: Store, info: Info, mip: int) -> None:
        scale = info.scales[mip]
        if scale.sharding is not None and not self.handles_sharding:
            raise UnsupportedError(
                f"scale {scale.key!r} is sharded: open it with open_layout(), which returns the "
                "sharded layout"
            )
        self.store = store
        self.scale = scale
        #: A write of part of a chunk is safe against other writers where the store has
        #: conditional writes (see :meth:`merge`); elsewhere such writes are refused.
        self.merges_safely = store.conditional_writes
        self.grid = scale_grid(scale, info.num_channels)
        self.dtype = info.dtype
        self.codec: ChunkCodec = scale_codec(info, mip)
        self.compression = scale.compression
        # blosc is applied here, to the encoded bytes; the others travel as a transfer encoding.
        self.blosc = scale_blosc(info, mip)
        self.transfer_encoding = None if self.blosc is not None else self.compression
        content_encoding.check(self.transfer_encoding)
        # Where a store that keeps encodings in names (KEY.gz) looks for a chunk: under the one
        # name this scale's writers use when its compression is known; else (no compression
        # recorded: plain, or CloudVolume's unrecorded gzip) under every name.
        self.stored_encoding = self.transfer_encoding if scale.compression else ANY_ENCODING
        if self.blosc is not None and scale.sharding is not None:
            raise UnsupportedError(
                f"scale {scale.key!r} is sharded and blosc-compressed; bigarrays writes blosc "
                "to unsharded scales only"
            )
        self._raw_itemsize = info.dtype.itemsize if scale.encoding == "raw" else None
        self._prefix = normalize_key(scale.key)
        self._key_head = f"{self._prefix}/" if self._prefix else ""
        # Raw chunks whose bytes are the array's memory, so they can be read into a buffer.
        raw_in_place = (
            scale.encoding == "raw"
            and not self.handles_sharding
            and info.dtype != np.bool_
            and info.dtype.newbyteorder("<") == info.dtype  # the file's byte order
        )
        # The zero-copy path: no compression, a store that reads into a buffer.
        self.fast_raw = raw_in_place and self.compression is None and store.reads_into_buffers
        # gzip'd raw chunks (CloudVolume's default): inflated straight into the buffer.
        self.gunzip_raw = raw_in_place and self.transfer_encoding == "gzip"
        #: Bytes of one whole chunk, the size of a pipeline thread's scratch buffer.
        self.chunk_nbytes = math.prod(self.grid.chunk) * info.dtype.itemsize
        #: Requests of up to this many chunks run on the calling thread (no pool). Local raw
        #: chunks cost tens of microseconds each, and every system call of a chunk hands the GIL
        #: over; measured with a warm page cache on 2 cores, serial was faster up to ~200 chunks
        #: of 64³ (a 256³ cutout: 6.7 ms serial, 7.1 with 2 threads, 9.6 with 4), threads faster
        #: beyond (448³: 64 ms serial, 47 with 2). A cold, slow disk would want threads sooner.
        self.inline_chunks = INLINE_CHUNKS if self.fast_raw else 1

    @property
    def url(self) -> str:
        return self.store.url

    def key(self, index: Sequence[int]) -> str:
        return self.key_of(self.grid.chunk_box(index))

    def key_of(self, box: Box) -> str:
        """The key of the chunk whose (clipped) voxels are ``box``."""
        a, b = box.start, box.stop
        return f"{self._key_head}{a[0]}-{b[0]}_{a[1]}-{b[1]}_{a[2]}-{b[2]}"

    def load_view(
        self, index: Vec, box: Box, scratch: bytearray, in_chunk: tuple[slice, ...]
    ) -> tuple[np.ndarray | None, tuple[slice, ...]]:
        """The part ``in_chunk`` of chunk ``index`` (voxels ``box``), read into ``scratch``.

        Returns an array and the slices of it that hold ``in_chunk``. With :attr:`fast_raw`,
        only the z-slab of the file that ``in_chunk`` needs is read, straight into ``scratch``
        (at least ``chunk_nbytes + 1`` bytes, reused by the caller's thread), and the array is a
        view of it, valid until the next call with the same buffer; with :attr:`gunzip_raw`,
        the gzip'd chunk is inflated into ``scratch`` in the same way. Otherwise, or when the
        chunk is missing, encoded otherwise or of the wrong size, the array is :meth:`load`'s.
        """
        if self.gunzip_raw:
            return self._load_gunzipped(box, scratch), in_chunk
        if self.fast_raw:
            shape = box.shape
            itemsize = self.dtype.itemsize
            full = math.prod(shape) * itemsize
            zs = in_chunk[2]
            if shape[3] == 1 and (zs.start != 0 or zs.stop != shape[2]):
                plane = shape[0] * shape[1] * itemsize
                start, nbytes = zs.start * plane, (zs.stop - zs.start) * plane
                view = memoryview(scratch)[:nbytes]
                n = self.store.read_into(self.key_of(box), view, start, full)
                if n == nbytes:
                    slab = (shape[0], shape[1], zs.stop - zs.start, 1)
                    arr: np.ndarray = np.frombuffer(scratch, self.dtype, nbytes // itemsize)
                    part = (in_chunk[0], in_chunk[1], slice(0, slab[2]), in_chunk[3])
                    return arr.reshape(slab, order="F"), part
            else:
                n = self.store.read_into(self.key_of(box), memoryview(scratch))
                if n == full:
                    arr = np.frombuffer(scratch, self.dtype, full // itemsize)
                    return arr.reshape(shape, order="F"), in_chunk
        return self.load(index), in_chunk

    def _load_gunzipped(self, box: Box, scratch: bytearray) -> np.ndarray | None:
        key = self.key_of(box)
        stored = self.store.get_encoded(key, encoding=self.stored_encoding)
        if stored is None:
            return None
        full = math.prod(box.shape) * self.dtype.itemsize
        if stored[1] == "gzip" and content_encoding.gunzip_into(
            stored[0], memoryview(scratch)[:full]
        ):
            arr: np.ndarray = np.frombuffer(scratch, self.dtype, full // self.dtype.itemsize)
            return arr.reshape(box.shape, order="F")
        data = content_encoding.decode_stored(stored, key, self.max_stored(box.shape))
        assert data is not None  # stored was not None
        return self.decode(data, box.shape, key)

    def save_view(self, index: Vec, box: Box, part: np.ndarray, scratch: bytearray) -> None:
        """Store ``part`` (the whole chunk ``box``, any layout) through ``scratch`` when it can.

        With :attr:`fast_raw`, ``part`` is written as it lies when it is laid out as the file
        (the engine's transposed copy of a C-ordered piece is), else copied once into
        ``scratch`` in the file's layout and written from there: no bytes object per chunk.
        Otherwise this is :meth:`save`.
        """
        if not self.fast_raw:
            self.save(index, part)
            return
        shape = box.shape
        if part.dtype == self.dtype and part.shape == shape and part.flags.f_contiguous:
            self.store.put(self.key_of(box), part.reshape(-1, order="F").view(np.uint8).data)
            return
        count = math.prod(shape)
        arr = np.frombuffer(scratch, self.dtype, count).reshape(shape, order="F")
        np.copyto(arr, part, casting="unsafe")
        self.store.put(self.key_of(box), memoryview(scratch)[: count * self.dtype.itemsize])

    def load(self, index: Vec) -> np.ndarray | None:
        """The decoded chunk at grid ``index`` (4-D, clipped shape), or None if never written."""
        box = self.grid.chunk_box(index)
        key = self.key_of(box)
        data = self.store.get(
            key, max_size=self.max_stored(box.shape), encoding=self.stored_encoding
        )
        if data is None:
            return None
        return self.decode(data, box.shape, key)

    def max_encoded(self, shape: Sequence[int]) -> int:
        """The most bytes the codec's input for a chunk of ``shape`` can honestly take.

        Exactly the voxels' bytes for raw; for the other encodings a safe multiple of them plus
        room for headers (see :data:`ENCODED_FACTOR`). Decoding stops past it, so a small
        hostile chunk cannot inflate to gigabytes before its size is checked.
        """
        nbytes = math.prod(shape) * self.dtype.itemsize
        if self._raw_itemsize is not None:
            return nbytes
        return ENCODED_FACTOR * nbytes + ENCODED_SLACK

    def max_stored(self, shape: Sequence[int]) -> int:
        """The most bytes a chunk of ``shape`` can take once its transfer encoding is undone."""
        extra = BLOSC_MAX_OVERHEAD if self.blosc is not None else 0
        return self.max_encoded(shape) + extra

    def decode(self, data: bytes, shape: Sequence[int], key: str) -> np.ndarray:
        """The chunk of ``shape`` that the stored ``data`` (transfer encoding removed) holds."""
        if self.blosc is not None:
            expected = None if self._raw_itemsize is None else math.prod(shape) * self._raw_itemsize
            data = self.blosc.decode(data, key, expected, self.max_encoded(shape))
        try:
            return self.codec.decode(data, shape, key)
        except CorruptChunkError:
            # gzip bytes stored without a suffix or header (e.g. copied off a cloud bucket with
            # the encoding dropped): recognise them by their magic number.
            encoding = content_encoding.sniff(data)
            if encoding is None:
                raise
            plain = content_encoding.decode(data, encoding, key, self.max_encoded(shape))
            return self.codec.decode(plain, shape, key)

    def encode(self, chunk: np.ndarray) -> bytes | bytearray | memoryview:
        """The bytes of one chunk before any transfer encoding: codec, then blosc if chosen."""
        data = self.codec.encode(chunk)
        return data if self.blosc is None else self.blosc.encode(data)

    def save(self, index: Vec, chunk: np.ndarray) -> None:
        """Encode, compress and store one whole (clipped) chunk."""
        data = content_encoding.encode(
            self.encode(chunk), self.transfer_encoding, self.scale.compression_level
        )
        self.store.put(self.key(index), data, content_encoding=self.transfer_encoding)

    def delete(self, index: Vec) -> None:
        self.store.delete(self.key(index))

    def merge(self, piece: ChunkPiece, part: np.ndarray, *, skip_empty: bool = False) -> None:
        """Write ``part`` (the voxels ``piece.in_chunk``) over what the chunk holds.

        A read-merge-write made safe against every other writer of the chunk, threads and
        processes alike, the way TensorStore writes with generations: the chunk is read with
        its version and the merge is put only if the chunk is still at that version; when
        another writer got there first, it is read and merged again. With ``skip_empty``, a
        merged chunk of the fill value is deleted (on the same condition) instead of written.
        """
        if not self.merges_safely:
            raise UnsupportedError(
                f"the store {self.store.url} has no conditional writes, so writing part of chunk "
                f"{self.key(piece.chunk_index)!r} could lose another writer's voxels; write "
                "whole chunks"
            )
        box = piece.chunk_box
        key = self.key_of(box)

        def write_part(chunk: np.ndarray) -> None:
            chunk[piece.in_chunk] = part

        def decode(stored: bytes) -> np.ndarray:
            decoded = self.decode(stored, box.shape, key)
            return np.array(decoded, dtype=self.dtype, order=self.order, copy=True)

        def encode(chunk: np.ndarray) -> tuple[Buffer, str | None]:
            data = content_encoding.encode(
                self.encode(chunk), self.transfer_encoding, self.scale.compression_level
            )
            return data, self.transfer_encoding

        merge_into_object(
            self.store, key, write_part, decode=decode, encode=encode,
            new=lambda: filled(box.shape, self.dtype, self.fill_value, self.order),
            is_empty=(lambda chunk: is_fill(chunk, self.fill_value)) if skip_empty else None,
            max_size=self.max_stored(box.shape), stored_encoding=self.stored_encoding,
        )  # fmt: skip
