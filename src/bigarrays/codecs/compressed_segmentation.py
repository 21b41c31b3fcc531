"""The ``compressed_segmentation`` encoding: uint32/uint64 labels, block by block.

Each block of ``compressed_segmentation_block_size`` voxels (default 8x8x8) stores a lookup table
of its distinct labels and, per voxel, an index into it packed in 0-16 bits. Encoding and decoding
go through the ``compressed-segmentation`` package (Neuroglancer's C++ code, the one CloudVolume
uses).

That package's decoder trusts its input: it follows the offsets in the block headers without
bounds checks. Every header is therefore checked here first, in NumPy, against the size of the
data (including the largest lookup-table index each block can use), so that damaged or hostile
bytes raise :class:`~bigarrays.errors.CorruptChunkError` instead of reading outside the buffer.

The package's Python functions hold the GIL while its C++ runs, so a thread pool decoding label
chunks runs one at a time. Its binary also exports the C++ decoder itself,
``compress_segmentation::DecompressChannels<T>(const uint32_t* input, const ptrdiff_t
volume_size[4], const ptrdiff_t block_size[3], const ptrdiff_t strides[4], T* output)``, which
takes only pointers: :func:`nogil_decoder` calls it through :mod:`ctypes`, which releases the GIL
for the call, and decodes straight into the output array (no vector, no copy). Where the symbol
is not there (another build or version of the package, or a platform with another C++ name
mangling), decoding goes through the package's ``decompress`` as before. Encoding always does:
its C++ function fills a ``std::vector``, which ctypes cannot hand over.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from bigarrays.codecs.base import ChunkCodec
from bigarrays.errors import CorruptChunkError, MissingDependencyError, UnsupportedError

DEFAULT_BLOCK_SIZE = (8, 8, 8)
#: Bit widths the format allows for the packed indices.
BIT_WIDTHS = (0, 1, 2, 4, 8, 16, 32)
#: The package decodes 32-bit indices wrongly, and a block needs more than 65536 voxels to use
#: them: blocks are limited to this many voxels.
MAX_BLOCK_VOXELS = 65536


def _cseg() -> Any:
    try:
        import compressed_segmentation
    except ImportError:
        raise MissingDependencyError(
            "compressed-segmentation", "cseg", "the compressed_segmentation encoding"
        ) from None
    return compressed_segmentation


#: The Itanium C++ ABI names (Linux, macOS) of DecompressChannels<uint32_t> / <uint64_t>.
_DECODER_SYMBOLS = {
    "uint32": "_ZN21compress_segmentation18DecompressChannelsIjEEvPKjPKlS4_S4_PT_",
    "uint64": "_ZN21compress_segmentation18DecompressChannelsImEEvPKjPKlS4_S4_PT_",
}


@functools.cache
def nogil_decoder(dtype_name: str) -> Any:
    """The package's C++ ``DecompressChannels`` for ``dtype_name`` as a ctypes function (it runs
    without the GIL), or None where the package's binary does not export it."""
    if sys.byteorder != "little":  # the words are little-endian; the C++ reads them as native
        return None
    try:
        library = ctypes.CDLL(_cseg().__file__)
        function = library[_DECODER_SYMBOLS[dtype_name]]
    except (OSError, AttributeError, KeyError, MissingDependencyError):
        return None
    function.restype = None
    function.argtypes = [ctypes.c_void_p] * 5
    return function


def check_block_size(block: Any) -> tuple[int, int, int]:
    try:
        items = tuple(int(b) for b in block)
        ok = (
            len(items) == 3
            and all(b >= 1 for b in items)
            and all(not isinstance(b, bool) and int(b) == b for b in block)
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UnsupportedError(
            f"compressed_segmentation_block_size must be three positive integers (x, y, z), "
            f"got {block!r}"
        )
    if math.prod(items) > MAX_BLOCK_VOXELS:
        raise UnsupportedError(
            f"a compressed_segmentation block of {items} holds {math.prod(items)} voxels; at "
            f"most {MAX_BLOCK_VOXELS} are supported (8x8x8 is usual)"
        )
    return items[0], items[1], items[2]


#: bit width (0-255) -> whether the package decodes it (32 is refused, see MAX_BLOCK_VOXELS).
_DECODABLE = np.zeros(256, dtype=bool)
_DECODABLE[list(BIT_WIDTHS[:-1])] = True


@functools.lru_cache(maxsize=64)
def _last_positions(shape: tuple[int, int, int], block: tuple[int, int, int]) -> np.ndarray:
    """Per block (x fastest), the bit position index of the last voxel the decoder reads."""
    sx, sy, sz = shape
    bx, by, bz = block
    gx, gy, gz = -(-sx // bx), -(-sy // by), -(-sz // bz)
    ib = np.arange(gx * gy * gz, dtype=np.int64)
    ix, iy, iz = ib % gx, (ib // gx) % gy, ib // (gx * gy)
    # The decoder walks only the voxels inside the chunk: the last one a block touches.
    dx = np.minimum(bx, sx - ix * bx) - 1
    dy = np.minimum(by, sy - iy * by) - 1
    dz = np.minimum(bz, sz - iz * bz) - 1
    last: np.ndarray = bx * (dz * by + dy) + dx
    last.flags.writeable = False
    return last


def validate(
    words: np.ndarray, shape: Sequence[int], block: Sequence[int], entry_words: int
) -> str | None:
    """Why ``words`` (uint32) cannot be a chunk of ``shape`` (x, y, z, c), or None if it can.

    Mirrors every read the decoder makes: the channel offsets, each block's two header words,
    the packed words of the voxels it covers, and the lookup-table entries those can index.
    """
    n = int(words.size)
    sx, sy, sz, channels = (int(s) for s in shape)
    bx, by, bz = (int(b) for b in block)
    if n < channels:
        return f"{n} words cannot hold the offsets of {channels} channel(s)"
    last_pos = _last_positions((sx, sy, sz), (bx, by, bz))
    nblocks = last_pos.size
    for c in range(channels):
        base = int(words[c])
        if base < channels or base + 2 * nblocks > n:
            return f"channel {c} starts at word {base}, but its block headers do not fit in {n}"
        header = words[base : base + 2 * nblocks].reshape(nblocks, 2).astype(np.int64)
        table = header[:, 0] & 0xFFFFFF
        bits = header[:, 0] >> 24
        values = header[:, 1]
        # Every encoder (Neuroglancer's, TensorStore's, this package's) puts the first block's
        # values or table right after the headers: data of another block count starts elsewhere.
        first = int(min(table.min(), values[bits > 0].min(initial=table.min())))
        if first != 2 * nblocks:
            return (
                f"channel {c}'s data starts at word {first}, not after the {nblocks} block "
                f"headers of a {sx}x{sy}x{sz} chunk"
            )
        if not _DECODABLE[bits].all():
            bad = sorted(set(bits.tolist()) - set(BIT_WIDTHS[:-1]))
            return f"channel {c} has blocks of {bad} bits per voxel"
        # Entry 0 of every table; and the packed words of every block that has any.
        if (base + table + entry_words > n).any():
            return f"channel {c} has a lookup table beyond the end of the data"
        packed = bits > 0
        last_word = base + values + (last_pos * bits) // 32
        if (packed & (last_word >= n)).any():
            return f"channel {c} has packed values beyond the end of the data"
        # The table must hold the largest index a block uses; where even the largest index its
        # width allows fits, no need to look at the values.
        roomy = base + table + (np.left_shift(1, bits)) * entry_words <= n
        suspects = packed & ~roomy
        for width in np.unique(bits[suspects]).tolist():
            sel = np.flatnonzero(suspects & (bits == width))
            nwords = -(-(bx * by * bz * width) // 32)
            starts = base + values[sel]
            index = starts[:, None] + np.arange(nwords, dtype=np.int64)[None, :]
            used = index <= last_word[sel][:, None]
            packed_words = np.where(used, words[np.minimum(index, n - 1)], 0).astype(np.uint32)
            per_word = 32 // width
            shifts = (np.arange(per_word, dtype=np.uint32) * width).astype(np.uint32)
            fields = (packed_words[:, :, None] >> shifts) & np.uint32((1 << width) - 1)
            largest = fields.reshape(len(sel), -1).max(axis=1).astype(np.int64)
            if (base + table[sel] + (largest + 1) * entry_words > n).any():
                return f"channel {c} indexes past the end of a lookup table"
    return None


class CompressedSegmentationCodec(ChunkCodec):
    name = "compressed_segmentation"
    option_names = ("compressed_segmentation_block_size",)

    def __init__(
        self,
        dtype: np.dtype,
        num_channels: int,
        *,
        compressed_segmentation_block_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__(dtype, num_channels)
        block = compressed_segmentation_block_size
        self.block_size = check_block_size(DEFAULT_BLOCK_SIZE if block is None else block)
        self._cseg = _cseg()
        self._wire = self.dtype.newbyteorder("=")
        self._entry_words = self.dtype.itemsize // 4

    @classmethod
    def check(cls, dtype: np.dtype, num_channels: int) -> None:
        if np.dtype(dtype) not in (np.uint32, np.uint64):
            raise UnsupportedError(
                f"the compressed_segmentation encoding holds uint32 or uint64 labels, not "
                f"{np.dtype(dtype).name}"
            )

    def options(self) -> dict[str, object]:
        return {"compressed_segmentation_block_size": self.block_size}

    def encode(self, chunk: np.ndarray) -> bytes:
        channels = []
        for c in range(chunk.shape[3]):
            # The package reads the memory it is given as x-fastest when order="F": hand it a
            # writeable Fortran-contiguous copy of the channel in the machine's byte order.
            part = np.require(chunk[:, :, :, c], dtype=self._wire, requirements=["F", "W"])
            try:
                encoded = self._cseg.compress(part, block_size=self.block_size, order="F")
            except OverflowError:
                raise UnsupportedError(
                    "this chunk has too many distinct labels for compressed_segmentation (its "
                    "lookup tables pass 2**24 words): choose smaller chunks"
                ) from None
            channels.append(encoded)
        if len(channels) == 1:
            out: bytes = channels[0]
            return out
        # One channel is [1, data...]; several are [offset_0 .. offset_n-1, data_0, data_1 ...]
        # with offsets in words from the start; offsets inside each channel are relative to it.
        bodies = [np.frombuffer(e, dtype="<u4")[1:] for e in channels]
        sizes = np.array([len(b) for b in bodies], dtype=np.int64)
        offsets = len(bodies) + np.concatenate([[0], np.cumsum(sizes)[:-1]])
        return np.concatenate([offsets.astype("<u4"), *bodies]).tobytes()

    def decode(self, data: bytes, shape: Sequence[int], key: str) -> np.ndarray:
        if len(data) % 4:
            raise CorruptChunkError(key, f"{len(data)} bytes is not a whole number of words")
        words = np.frombuffer(data, dtype="<u4")
        reason = validate(words, shape, self.block_size, self._entry_words)
        if reason is not None:
            raise CorruptChunkError(key, f"compressed_segmentation: {reason}")
        decoder = nogil_decoder(self.dtype.name)
        if decoder is not None:
            return self._decode_nogil(decoder, words, shape)
        try:
            out: np.ndarray = self._cseg.decompress(
                bytes(data), tuple(int(s) for s in shape), self._wire, self.block_size, order="F"
            )
        except Exception as exc:
            raise CorruptChunkError(key, f"cannot decode compressed_segmentation: {exc}") from None
        return out

    def _decode_nogil(self, decoder: Any, words: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """Decode checked ``words`` with the package's C++ decoder, straight into the output."""
        sx, sy, sz, channels = (int(n) for n in shape)
        if words.ctypes.data % 4:  # a view into a larger buffer: give the C++ aligned words
            words = words.copy()
        out = np.empty((sx, sy, sz, channels), dtype=self._wire, order="F")
        four = ctypes.c_int64 * 4
        decoder(
            words.ctypes.data,
            four(sx, sy, sz, channels),
            (ctypes.c_int64 * 3)(*self.block_size),
            four(1, sx, sx * sy, sx * sy * sz),  # x fastest, then y, z and the channel
            out.ctypes.data,
        )
        return out
