"""BigArray: a precomputed volume indexed like a NumPy array, and ``open`` / ``create``."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from bigarrays.box import Box
from bigarrays.codecs import codec_class
from bigarrays.errors import (
    DatasetExistsError,
    DatasetNotFoundError,
    OutOfBoundsError,
    ReadOnlyError,
    ScaleNotFoundError,
    ViewerCompatibilityWarning,
)
from bigarrays.formats.precomputed import Info, Scale, open_layout
from bigarrays.formats.precomputed.info import (
    EXTENSION_DATA_TYPES,
    LAYER_TYPES,
    dtype_to_data_type,
    scale_key_for,
)
from bigarrays.indexing import coerce_value, parse_key
from bigarrays.pipeline import ChunkEngine
from bigarrays.progress import progress_bar
from bigarrays.stores import Store, content_encoding, normalize_key, open_store

INFO_KEY = "info"
Mode = Literal["r", "r+"]


class BigArray:
    """One scale of a precomputed volume. Index it with absolute voxel coordinates.

    Obtain one with :func:`open` or :func:`create` rather than constructing it directly.
    """

    def __init__(
        self,
        store: Store,
        info: Info,
        *,
        mip: int = 0,
        mode: Mode = "r",
        fill_missing: bool = True,
        threads: int | None = None,
        progress: bool | None = None,
    ) -> None:
        if not 0 <= mip < len(info.scales):
            raise ScaleNotFoundError(
                f"{store.url} has {len(info.scales)} scale(s) (mip 0..{len(info.scales) - 1}), "
                f"not mip {mip}"
            )
        self._store = store
        self._info = info
        self._mip = mip
        self._mode = mode
        self.fill_missing = fill_missing
        self.progress = progress
        self._layout = open_layout(store, info, mip)
        self._engine = ChunkEngine(store.default_concurrency if threads is None else threads)

    # -- description -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._store.url

    @property
    def store(self) -> Store:
        return self._store

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def info(self) -> dict[str, Any]:
        """The info document as a dict (a copy: changing it changes nothing on the store)."""
        return copy.deepcopy(self._info.to_json())

    @property
    def scale(self) -> Scale:
        return self._info.scales[self._mip]

    @property
    def mip(self) -> int:
        return self._mip

    @property
    def mips(self) -> int:
        return len(self._info.scales)

    @property
    def dtype(self) -> np.dtype:
        return self._info.dtype

    @property
    def num_channels(self) -> int:
        return self._info.num_channels

    @property
    def layer_type(self) -> str:
        return self._info.type

    @property
    def shape(self) -> tuple[int, ...]:
        size = self.scale.size
        return size if self.num_channels == 1 else (*size, self.num_channels)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def chunks(self) -> tuple[int, int, int]:
        return self.scale.chunk_size

    @property
    def voxel_offset(self) -> tuple[int, int, int]:
        return self.scale.voxel_offset

    @property
    def resolution(self) -> tuple[float, float, float]:
        return self.scale.resolution

    @property
    def encoding(self) -> str:
        return self.scale.encoding

    @property
    def compression(self) -> str | None:
        return self.scale.compression

    @property
    def bounds(self) -> Box:
        """The voxels of the volume, in absolute coordinates (3-D, channels not included)."""
        return Box.from_shape(self.scale.size, self.scale.voxel_offset)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """How many chunks the volume has along x, y and z."""
        gx, gy, gz = self._layout.grid.grid_shape[:3]
        return gx, gy, gz

    @property
    def num_chunks(self) -> int:
        """How many chunks tile the volume (stored or not)."""
        return self._layout.grid.num_chunks

    @property
    def threads(self) -> int:
        return self._engine.threads

    def chunk_key(self, index: Sequence[int]) -> str:
        """The store key of the chunk at grid ``index`` (x, y, z)."""
        return self._layout.key((*index, 0)[:4])

    def __repr__(self) -> str:
        b = self.bounds
        box = ", ".join(f"{a}:{c}" for a, c in zip(b.start, b.stop, strict=True))
        return (
            f"<BigArray {self.url} mip={self.mip} shape={self.shape} dtype={self.dtype} "
            f"chunks={self.chunks} bounds=[{box}] encoding={self.encoding}"
            f"{'+' + self.compression if self.compression else ''} mode={self.mode!r}>"
        )

    def at_mip(self, mip: int) -> BigArray:
        """The same volume at scale ``mip``, sharing the store and settings."""
        return BigArray(
            self._store, self._info, mip=mip, mode=self._mode, fill_missing=self.fill_missing,
            threads=self._engine.threads, progress=self.progress,
        )  # fmt: skip

    # -- reading and writing ---------------------------------------------------------------------
    def __getitem__(self, key: Any) -> np.ndarray:
        selection = parse_key(key, self.bounds, self.num_channels)
        return selection.squeeze(self._read_box(selection.box))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_writable()
        selection = parse_key(key, self.bounds, self.num_channels)
        block = coerce_value(value, self.dtype, selection)
        self._write_box(selection.box, block)

    def read(self, box: Box) -> np.ndarray:
        """The voxels of a 3-D ``box`` as an ``(x, y, z[, c])`` array (like ``vol[box]``)."""
        return self[box]

    def write(self, box: Box, data: Any) -> None:
        """Write ``data`` to a 3-D ``box`` (like ``vol[box] = data``)."""
        self[box] = data

    def _read_box(self, box: Box) -> np.ndarray:
        n = self._layout.grid.count(box)
        with progress_bar(n, f"reading {box}", self.progress) as advance:
            return self._engine.read(
                self._layout, box, fill_missing=self.fill_missing, on_chunk=advance
            )

    def _write_box(self, box: Box, block: np.ndarray) -> None:
        bounds4 = Box((*self.bounds.start, 0), (*self.bounds.stop, self.num_channels))
        if not bounds4.contains(box):
            channels = ""
            if not 0 <= box.start[3] <= box.stop[3] <= self.num_channels:
                channels = f" channels {box.start[3]}:{box.stop[3]} of {self.num_channels},"
            raise OutOfBoundsError(
                f"cannot write box {Box(box.start[:3], box.stop[:3])}:{channels} it reaches "
                f"outside the volume's bounds {self.bounds}; nothing was written"
            )
        if box.empty:
            return
        n = self._layout.grid.count(box)
        with progress_bar(n, f"writing {box}", self.progress) as advance:
            self._engine.write(self._layout, box, block, on_chunk=advance)

    def _check_writable(self) -> None:
        if self._mode == "r":
            raise ReadOnlyError(f"{self.url} is open read-only; open it with mode='r+' to write")

    # -- life cycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker threads and release the store."""
        self._engine.close()

    def __enter__(self) -> BigArray:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "store": self._store, "info": self._info.to_json(), "mip": self._mip,
            "mode": self._mode, "fill_missing": self.fill_missing,
            "threads": self._engine.threads, "progress": self.progress,
        }  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        info = Info.from_json(state.pop("info"))
        self.__init__(state.pop("store"), info, **state)  # type: ignore[misc]


# -- open and create -----------------------------------------------------------------------------


def _check_mode(mode: str) -> Mode:
    if mode not in ("r", "r+"):
        raise ValueError(f"mode must be 'r' (read) or 'r+' (read and write), got {mode!r}")
    return mode  # type: ignore[return-value]


def read_info(store: Store) -> Info:
    data = store.get(INFO_KEY)
    if data is None:
        raise DatasetNotFoundError(f"no precomputed volume at {store.url}: it has no 'info' file")
    return Info.from_bytes(data, url=f"{store.url.rstrip('/')}/{INFO_KEY}")


def open(
    url: str | os.PathLike[str] | Store,
    mode: str = "r",
    mip: int = 0,
    *,
    fill_missing: bool = True,
    threads: int | None = None,
    progress: bool | None = None,
    **store_options: Any,
) -> BigArray:
    """Open an existing volume at ``url`` (a URL, a plain path or a Store) at scale ``mip``."""
    checked = _check_mode(mode)
    store = open_store(url, read_only=checked == "r", **store_options)
    return BigArray(
        store, read_info(store), mip=mip, mode=checked, fill_missing=fill_missing,
        threads=threads, progress=progress,
    )  # fmt: skip


def _vec3(value: Sequence[Any], name: str, cast: type = int) -> tuple[Any, Any, Any]:
    try:
        items = tuple(cast(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be three numbers (x, y, z), got {value!r}") from None
    if len(items) != 3:
        raise ValueError(f"{name} must be three numbers (x, y, z), got {value!r}")
    return items[0], items[1], items[2]


def create(
    url: str | os.PathLike[str] | Store,
    shape: Sequence[int],
    dtype: Any = "uint8",
    chunks: Sequence[int] = (64, 64, 64),
    voxel_offset: Sequence[int] = (0, 0, 0),
    resolution: Sequence[float] = (1, 1, 1),
    num_channels: int = 1,
    layer_type: str = "image",
    encoding: str = "raw",
    compression: str | None = None,
    overwrite: bool = False,
    *,
    compression_level: int | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    **store_options: Any,
) -> BigArray:
    """Create a one-scale volume at ``url`` and open it for reading and writing.

    ``shape`` is ``(x, y, z)``; pass channels as ``num_channels``. An existing dataset is refused
    unless ``overwrite`` is True, which deletes its info and the chunks of its scales first.
    """
    size = _vec3(shape, "shape")
    if any(s < 0 for s in size):
        raise ValueError(f"shape must not be negative, got {size}")
    chunk_size = _vec3(chunks, "chunks")
    if any(c < 1 for c in chunk_size):
        raise ValueError(f"chunks must be positive, got {chunk_size}")
    offset = _vec3(voxel_offset, "voxel_offset")
    res = _vec3(resolution, "resolution", float)
    if any(not r > 0 for r in res):
        raise ValueError(f"resolution must be positive (nm per voxel), got {res}")
    data_type = dtype_to_data_type(dtype)
    if not isinstance(num_channels, int) or num_channels < 1:
        raise ValueError(f"num_channels must be an integer >= 1, got {num_channels!r}")
    if layer_type not in LAYER_TYPES:
        raise ValueError(f"layer_type must be one of {', '.join(LAYER_TYPES)}, got {layer_type!r}")
    if layer_type == "segmentation" and num_channels != 1:
        raise ValueError("a segmentation volume has one channel")
    codec_class(encoding).check(np.dtype(data_type), num_channels)
    content_encoding.check(compression)
    if data_type in EXTENSION_DATA_TYPES:
        warnings.warn(
            f"data type {data_type!r} is a bigarrays extension: Neuroglancer and TensorStore "
            "cannot read this volume (CloudVolume can)",
            ViewerCompatibilityWarning,
            stacklevel=2,
        )

    store = open_store(url, read_only=False, **store_options)
    existing = store.get(INFO_KEY)
    if existing is not None:
        if not overwrite:
            raise DatasetExistsError(
                f"a dataset already exists at {store.url}; pass overwrite=True to replace it"
            )
        _delete_dataset(store, existing)

    scale = Scale(
        key=scale_key_for(res),
        size=size,
        resolution=res,
        voxel_offset=offset,
        chunk_sizes=(chunk_size,),
        encoding=encoding,
        compression=compression,
        compression_level=compression_level,
    )
    info = Info(data_type=data_type, num_channels=num_channels, scales=(scale,), type=layer_type)
    store.put(INFO_KEY, info.to_bytes())
    return BigArray(store, info, mode="r+", threads=threads, progress=progress)


def _delete_dataset(store: Store, info_bytes: bytes) -> None:
    """Remove the chunks of every scale the old info names, then the info itself."""
    try:
        old = Info.from_bytes(info_bytes)
        prefixes = [normalize_key(s.key) + "/" for s in old.scales]
    except ValueError:
        prefixes = []  # an unreadable info names no scales; replace the file alone
    for prefix in prefixes:
        if prefix.startswith("../"):
            continue  # never delete outside the dataset's own folder
        for key in list(store.list(prefix)):
            store.delete(key)
    store.delete(INFO_KEY)
