"""An in-memory array (NumPy, Dask, or anything with ``shape``, ``dtype`` and slicing) served as
a Neuroglancer precomputed volume whose ``info`` and chunks are made on request.

Axes are bigarrays' own: ``(x, y, z)`` or ``(x, y, z, channel)``, as ``vol[...]`` returns them; a
2-D array is one z slice. Chunks are raw, or compressed_segmentation for uint32/uint64 labels,
cut to the bounds at the upper edges as precomputed stores them. Arrays of more than one chunk
get downsampled levels, each pooled from the level before it with the pyramid kernels (mean for
images, mode for labels) one chunk at a time, so the viewer can zoom out without reading the
whole array; pooled chunks are kept in an LRU cache, so that each is computed about once.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.box import Box, ChunkGrid, Vec
from bigarrays.cache import ChunkCache
from bigarrays.codecs.compressed_segmentation import CompressedSegmentationCodec
from bigarrays.codecs.raw import RawCodec
from bigarrays.errors import InvalidArgumentError, UnsupportedError
from bigarrays.ops.pooling import pool_levels, pooled_bounds
from bigarrays.viewer.sources import Reply, Source

#: Levels stop once the coarsest fits in one chunk, or at this many.
MAX_LEVELS = 12
DEFAULT_CACHE_BYTES = 256 << 20
_CHUNK_KEY = re.compile(r"^(\d+)/(-?\d+)-(-?\d+)_(-?\d+)-(-?\d+)_(-?\d+)-(-?\d+)$")
_LABEL_TYPES = (np.uint32, np.uint64, np.int32, np.int64)


def _raw_in_memory(dtype: np.dtype) -> bool:
    """Whether ``dtype``'s bytes in memory are raw encoding's (little-endian) bytes."""
    return dtype.byteorder == "|" or (dtype.isnative and sys.byteorder == "little")


@dataclass(frozen=True)
class MemoryLevel:
    #: Voxels of level 0 per voxel of this level, along x, y, z.
    factor: Vec
    grid: ChunkGrid
    resolution: tuple[float, float, float]


def _as_xyzc(array: Any) -> Any:
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
        array = np.asarray(array)
    ndim = len(array.shape)
    if ndim == 2:
        return array[:, :, None, None]
    if ndim == 3:
        return array[:, :, :, None]
    if ndim == 4:
        return array
    raise InvalidArgumentError(
        f"an array to view has 2, 3 or 4 axes ((x, y), (x, y, z) or (x, y, z, channel)), "
        f"got shape {tuple(array.shape)}"
    )


def served_dtype(dtype: np.dtype, layer_type: str) -> np.dtype:
    """The type a voxel is sent as: one Neuroglancer reads (no int64, float64 or bool)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.dtype("uint8")
    if dtype.kind in "iu" and layer_type == "segmentation":
        return np.dtype(f"uint{max(8, dtype.itemsize * 8)}")
    if dtype.kind == "i" and dtype.itemsize == 8:
        return np.dtype("float32")
    if dtype.kind == "u" and dtype.itemsize == 8:
        return dtype
    if dtype.kind == "f":
        return np.dtype("float32")
    if dtype.kind in "iu":
        return dtype
    raise UnsupportedError(f"Neuroglancer cannot show arrays of {dtype}; cast to a number type")


def default_layer_type(dtype: np.dtype) -> str:
    """``segmentation`` for the types labels come in (32- and 64-bit integers), else image."""
    return "segmentation" if np.dtype(dtype) in [np.dtype(t) for t in _LABEL_TYPES] else "image"


def _levels(shape: Vec, chunk: Vec, offset: Vec, resolution: Sequence[float]) -> list[MemoryLevel]:
    """Level 0, then levels halving the finest of the axes that one chunk does not yet span
    (near isotropic) until one chunk holds all: an axis that fits keeps its detail."""
    levels: list[MemoryLevel] = []
    factor: Vec = (1, 1, 1)
    lo, hi = offset, tuple(o + s for o, s in zip(offset, shape, strict=True))
    while True:
        res = tuple(float(r) * f for r, f in zip(resolution, factor, strict=True))
        size = tuple(h - lo_ for lo_, h in zip(lo, hi, strict=True))
        levels.append(MemoryLevel(factor, ChunkGrid(lo, size, chunk), res))  # type: ignore[arg-type]
        if all(s <= c for s, c in zip(size, chunk, strict=True)) or len(levels) >= MAX_LEVELS:
            return levels
        pooled = [i for i in range(3) if size[i] > chunk[i]]
        finest = min(res[i] for i in pooled)
        step = tuple(2 if i in pooled and res[i] <= 1.5 * finest else 1 for i in range(3))
        factor = tuple(f * s for f, s in zip(factor, step, strict=True))
        lo, hi = pooled_bounds(offset, tuple(o + s for o, s in zip(offset, shape, strict=True)),
                               factor, "mean")  # fmt: skip


class MemorySource(Source):
    """``array`` as a precomputed volume (see the module notes)."""

    def __init__(
        self,
        array: Any,
        *,
        resolution: Sequence[float] | None = None,
        voxel_offset: Sequence[int] | None = None,
        layer_type: str | None = None,
        chunks: Sequence[int] | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if isinstance(array, list | tuple):
            array = np.asarray(array)
        self.array = _as_xyzc(array)
        self.numpy = isinstance(self.array, np.ndarray)
        dtype = np.dtype(self.array.dtype)
        self.layer_type = layer_type or default_layer_type(dtype)
        if self.layer_type not in ("image", "segmentation"):
            raise InvalidArgumentError(
                f"layer_type must be 'image' or 'segmentation', got {self.layer_type!r}"
            )
        self.dtype = served_dtype(dtype, self.layer_type)
        shape = tuple(int(n) for n in self.array.shape)
        self.shape3: Vec = shape[:3]
        self.channels = shape[3]
        self.resolution = tuple(float(r) for r in (resolution or (1.0, 1.0, 1.0)))
        self.offset: Vec = tuple(int(v) for v in (voxel_offset or (0, 0, 0)))
        if len(self.resolution) != 3 or len(self.offset) != 3:
            raise InvalidArgumentError(
                f"resolution and voxel_offset have 3 entries (x, y, z), got {resolution!r} "
                f"and {voxel_offset!r}"
            )
        if chunks is None:
            chunks = (256, 256, 1) if self.shape3[2] == 1 else (64, 64, 64)
        self.chunk: Vec = tuple(max(1, min(int(c), max(s, 1)))
                                for c, s in zip(chunks, self.shape3, strict=True))  # fmt: skip
        self.levels = _levels(self.shape3, self.chunk, self.offset, self.resolution)
        self.method = "mode" if self.layer_type == "segmentation" else "mean"
        self.encoding = "raw"
        codec: RawCodec | CompressedSegmentationCodec = RawCodec(self.dtype, self.channels)
        if self.layer_type == "segmentation" and self.dtype in (np.uint32, np.uint64):
            self.encoding = "compressed_segmentation"
            codec = CompressedSegmentationCodec(self.dtype, self.channels)
        self.codec = codec
        self.cache = ChunkCache(cache_bytes)
        self._info = json.dumps(self.info()).encode()

    # -- metadata ---------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        scales = []
        for k, level in enumerate(self.levels):
            scale: dict[str, Any] = {
                "key": str(k), "size": list(level.grid.size),
                "voxel_offset": list(level.grid.origin), "resolution": list(level.resolution),
                "chunk_sizes": [list(self.chunk)], "encoding": self.encoding,
            }  # fmt: skip
            if self.encoding == "compressed_segmentation":
                scale["compressed_segmentation_block_size"] = [8, 8, 8]
            scales.append(scale)
        return {
            "@type": "neuroglancer_multiscale_volume", "type": self.layer_type,
            "data_type": self.dtype.name, "num_channels": self.channels, "scales": scales,
        }  # fmt: skip

    @property
    def bounds(self) -> Box:
        return self.levels[0].grid.bounds

    # -- serving ----------------------------------------------------------------------------------
    def get(self, key: str, accept: Container[str]) -> Reply | None:
        if key == "info":
            return Reply(self._info, "application/json")
        found = self._chunk_of(key)
        if found is None:
            return None
        k, index = found
        chunk = self.chunk_array(k, index)
        if self.encoding == "raw" and chunk.flags.f_contiguous and _raw_in_memory(chunk.dtype):
            return Reply(chunk.reshape(-1, order="F").data.cast("B"))  # no copy
        return Reply(bytes(self.codec.encode(chunk)))

    def _chunk_of(self, key: str) -> tuple[int, Vec] | None:
        """The level and grid index that ``key`` names, or None for a key of no chunk."""
        m = _CHUNK_KEY.match(key)
        if m is None or int(m.group(1)) >= len(self.levels):
            return None
        k = int(m.group(1))
        grid = self.levels[k].grid
        ends = [int(v) for v in m.groups()[1:]]
        index = []
        for axis in range(3):
            start, stop = ends[2 * axis], ends[2 * axis + 1]
            rel = start - grid.origin[axis]
            if rel < 0 or rel % grid.chunk[axis] or rel >= grid.size[axis]:
                return None
            index.append(rel // grid.chunk[axis])
            if stop != min(start + grid.chunk[axis], grid.origin[axis] + grid.size[axis]):
                return None
        return k, tuple(index)

    def chunk_array(self, k: int, index: Vec) -> np.ndarray:
        """Chunk ``index`` of level ``k``: an (x, y, z, c) array of the served type."""
        cached = self.cache.get((k, *index))
        if cached is not None:
            return cached
        box = self.levels[k].grid.chunk_box(index)
        chunk = self.read(0, box) if k == 0 else self._pooled(k, box)
        if k > 0 or not self.numpy:
            self.cache.put((k, *index), chunk)
        return chunk

    def _pooled(self, k: int, box: Box) -> np.ndarray:
        before, level = self.levels[k - 1], self.levels[k]
        step = tuple(f // b for f, b in zip(level.factor, before.factor, strict=True))
        wanted = Box(tuple(s * f for s, f in zip(box.start, step, strict=True)),
                     tuple(s * f for s, f in zip(box.stop, step, strict=True)))  # fmt: skip
        source = wanted.intersect(before.grid.bounds)
        block = self.read(k - 1, source)
        ((pooled, start),) = pool_levels(block, (*source.start, 0), [(*step, 1)], self.method)
        assert tuple(start[:3]) == box.start, (start, box)
        return pooled

    def read(self, k: int, box: Box) -> np.ndarray:
        """The voxels of ``box`` (inside the bounds) of level ``k``, (x, y, z, c), Fortran."""
        if k == 0:
            rel = box.shift(tuple(-o for o in self.offset))
            return _fortran(np.asarray(self.array[(*rel.slices(), slice(None))]), self.dtype)
        grid = self.levels[k].grid
        out = np.empty((*box.shape, self.channels), dtype=self.dtype, order="F")
        for index in grid.indices(box):
            chunk_box = grid.chunk_box(index)
            common = chunk_box.intersect(box)
            chunk = self.chunk_array(k, index)
            out[(*common.slices(box.start), slice(None))] = chunk[
                (*common.slices(chunk_box.start), slice(None))
            ]
        return out

    def sample(self, max_voxels: int = 1 << 20) -> np.ndarray:
        """A bounded sample of the data for a contrast range: a strided view of a NumPy array,
        else (a Dask array, whose every voxel may cost a computation) a central box of level 0
        of at most ``max_voxels``, flat in z."""
        if self.numpy:
            n = max(1, math.prod(self.shape3))
            stride = max(1, round((n / max_voxels) ** (1 / 3)))
            return np.asarray(self.array[::stride, ::stride, ::stride, :])
        return self.read(0, _central(self.bounds, max_voxels))

    def refresh(self) -> None:
        self.cache.clear()

    def close(self) -> None:
        self.cache.clear()


def _fortran(part: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``part`` (x, y, z, c) as a Fortran-ordered array of ``dtype``.

    A box of an array is copied in the array's own memory order first (long runs read from
    memory), and a C-ordered copy is then reordered while it is small enough for the cache:
    reordering straight out of a large C-ordered array misses the cache on every voxel
    (measured 15x slower on a 64**3 uint8 box of a 512x512x256 array). Reversing the axes of
    a C-ordered 3-D array is the reordering NumPy does fastest (4x a 4-D ``order="F"`` copy).
    """
    if part.dtype != dtype:
        part = part.astype(dtype, order="K")
    if part.flags.f_contiguous:
        return part
    part = part.copy(order="K")
    if part.flags.f_contiguous:
        return part
    if part.shape[3] == 1:
        flat = np.ascontiguousarray(part[..., 0].transpose(2, 1, 0)).transpose(2, 1, 0)
        return flat[..., None]
    return np.asarray(part, order="F")


def _central(bounds: Box, max_voxels: int) -> Box:
    """The central part of ``bounds`` (x, y, z) of at most ``max_voxels`` voxels: a slab of
    4 z slices, as the first view shows the middle xy plane."""
    side = max(1, int((max_voxels / 4) ** 0.5))
    start, stop = [], []
    for axis, (lo, hi) in enumerate(zip(bounds.start, bounds.stop, strict=True)):
        n = min(hi - lo, side if axis < 2 else 4)
        a = lo + (hi - lo - n) // 2
        start.append(a)
        stop.append(a + n)
    return Box(start, stop)
