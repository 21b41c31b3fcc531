"""BigArray: a precomputed volume indexed like a NumPy array, and ``open`` / ``create``."""

from __future__ import annotations

import copy
import difflib
import inspect
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from bigarrays import stores as stores_package
from bigarrays.arguments import check_codec_choices, real3, whole, whole3
from bigarrays.box import Box
from bigarrays.cache import CachedSource, ChunkCache
from bigarrays.chunk_source import ChunkSource
from bigarrays.errors import (
    ArrayClosedError,
    DatasetExistsError,
    DatasetNotFoundError,
    InvalidInfoError,
    OutOfBoundsError,
    ReadOnlyError,
    ScaleNotFoundError,
    UnsupportedError,
    ViewerCompatibilityWarning,
)
from bigarrays.formats.precomputed import Info, Scale, open_layout
from bigarrays.formats.precomputed.info import (
    EXTENSION_DATA_TYPES,
    LAYER_TYPES,
    check_chunk_bytes,
    check_extent,
    check_volume_bytes,
    dtype_to_data_type,
    scale_key_for,
)
from bigarrays.formats.precomputed.sharding import resolve_sharding
from bigarrays.indexing import coerce_value, parse_key
from bigarrays.pipeline import ChunkEngine
from bigarrays.progress import progress_bar, wants_bar
from bigarrays.stored_compression import warn_if_suffixes_hide_chunks, with_stored_compression
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
        owns_store: bool = False,
        cache_bytes: int = 0,
        skip_empty: bool = False,
    ) -> None:
        if not 0 <= mip < len(info.scales):
            raise ScaleNotFoundError(
                f"{store.url} has {len(info.scales)} scale(s) (mip 0..{len(info.scales) - 1}), "
                f"not mip {mip}"
            )
        self._store = store
        self._info = info
        self._bounds = Box.from_shape(info.scales[mip].size, info.scales[mip].voxel_offset)
        self._mip = mip
        self._mode = mode
        self.fill_missing = fill_missing
        self.progress = progress
        # open() and create() own the store they opened from a URL, and close it with the array;
        # a Store passed in belongs to the caller, and at_mip() views share their parent's.
        self._owns_store = owns_store
        self._closed = False
        self._layout = open_layout(store, info, mip)
        self._engine = ChunkEngine(store.default_concurrency if threads is None else threads)
        #: Decoded chunks kept for repeated reads (``cache_bytes`` > 0), or None.
        self.cache: ChunkCache | None = ChunkCache(cache_bytes) if cache_bytes > 0 else None
        self._source: ChunkSource = (
            self._layout if self.cache is None else CachedSource(self._layout, self.cache)
        )
        if skip_empty and self.scale.sharding is not None:
            raise UnsupportedError(
                "skip_empty applies to unsharded scales: a shard holds its chunks together"
            )
        #: When True, chunks whose voxels are all 0 (the fill value) are not written (and a
        #: stored copy is deleted): they read back as 0, and the store holds fewer objects.
        self.skip_empty = skip_empty

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
        return self._bounds

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
        self._check_open()
        return BigArray(
            self._store, self._info, mip=mip, mode=self._mode, fill_missing=self.fill_missing,
            threads=self._engine.threads, progress=self.progress,
            cache_bytes=self.cache.max_bytes if self.cache is not None else 0,
            skip_empty=self.skip_empty
            and 0 <= mip < self.mips
            and self._info.scales[mip].sharding is None,
        )  # fmt: skip

    # -- reading and writing ---------------------------------------------------------------------
    def __getitem__(self, key: Any) -> np.ndarray:
        self._check_open()
        selection = parse_key(key, self.bounds, self.num_channels)
        return selection.squeeze(self._read_box(selection.box))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_open()
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
        if not wants_bar(self.progress, n):  # the common case, kept cheap for small cutouts
            return self._engine.read(self._source, box, fill_missing=self.fill_missing, count=n)
        with progress_bar(n, f"reading {box}", self.progress) as advance:
            return self._engine.read(
                self._source, box, fill_missing=self.fill_missing, on_chunk=advance, count=n
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
            self._engine.write(
                self._source, box, block, on_chunk=advance, skip_empty=self.skip_empty
            )

    def _check_open(self) -> None:
        if self._closed:
            # The store may be closed with it (a zip's directory written): a write now would be
            # lost or land after the finished file, a read could see a released handle.
            raise ArrayClosedError(f"{self.url} is closed; open it again to read or write it")

    def _check_writable(self) -> None:
        if self._mode == "r":
            raise ReadOnlyError(f"{self.url} is open read-only; open it with mode='r+' to write")

    # -- life cycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker threads and close the store if this array opened it from a URL.

        Closing is what writes a zip file's central directory; a Store object passed to
        ``open`` / ``create`` is left open for its owner to close. Reading or writing a closed
        array raises :class:`~bigarrays.errors.ArrayClosedError`.
        """
        self._closed = True
        self._engine.close()
        if self._owns_store:
            self._owns_store = False
            self._store.close()

    def __enter__(self) -> BigArray:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "store": self._store, "info": self._info.to_json(), "mip": self._mip,
            "mode": self._mode, "fill_missing": self.fill_missing,
            "threads": self._engine.threads, "progress": self.progress,
            "owns_store": self._owns_store,
            "cache_bytes": self.cache.max_bytes if self.cache is not None else 0,
            "skip_empty": self.skip_empty,
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


def _open_store(
    caller: Callable[..., Any],
    url: str | os.PathLike[str] | Store,
    read_only: bool,
    options: dict[str, Any],
) -> Store:
    """``open_store``, with a clear error for a keyword neither ``caller`` nor the store takes.

    ``caller``'s unknown keywords are passed on as store options, so a misspelt one (such as
    ``chunk_size=`` for ``chunks=``) would otherwise surface as the store class's TypeError.
    """
    if isinstance(url, Store) and options:
        name = next(iter(options))
        why = (
            f"; store options apply only when {caller.__name__}() opens a store from a URL, not "
            f"to the open store {url.url!r}"
        )
    else:
        try:
            return open_store(url, read_only=read_only, **options)
        except TypeError as exc:
            found = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
            if found is None or found.group(1) not in options or not _raised_by_the_call(exc):
                raise
            name = found.group(1)
            where = url.url if isinstance(url, Store) else os.fspath(url)
            why = f": it is neither one of its own options nor one of the store's for {where!r}"
    own = [
        p.name
        for p in inspect.signature(caller).parameters.values()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    close = difflib.get_close_matches(name, own, n=1)
    hint = f"; did you mean {close[0]}=?" if close else ""
    raise TypeError(f"{caller.__name__}() got an unknown keyword {name}={why}{hint}") from None


def _raised_by_the_call(exc: TypeError) -> bool:
    """True when ``exc`` came from calling the store class, not from deeper inside it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    # The store classes are called from bigarrays.stores' open_store (or its lazy factories).
    return tb is not None and tb.tb_frame.f_code.co_filename == stores_package.__file__


def open(
    url: str | os.PathLike[str] | Store,
    mode: str = "r",
    mip: int = 0,
    *,
    fill_missing: bool = True,
    threads: int | None = None,
    progress: bool | None = None,
    cache_bytes: int = 0,
    skip_empty: bool = False,
    write_compression: str | None = None,
    **store_options: Any,
) -> BigArray:
    """Open an existing volume at ``url`` (a URL, a plain path or a Store) at scale ``mip``.

    ``cache_bytes`` > 0 keeps up to that many bytes of decoded chunks in an LRU cache, for
    repeated small cutouts of the same region (off by default; writes through this array keep
    it coherent, writes by others are not seen). ``skip_empty=True`` does not write chunks whose
    voxels are all 0 (the fill value) and deletes stored ones (unsharded scales only).

    ``write_compression`` ("gzip", "br" or "zstd") is the transfer compression of the chunks
    this array writes to unsharded scales whose info records none: CloudVolume gzips by default
    without saying so in the info, and writing plain chunks among its ``.gz`` ones would leave
    two copies of a chunk once CloudVolume writes it again. It is not saved in the info. Left
    None with ``mode="r+"``, each such scale writes the compression its stored chunks have (one
    chunk is looked at); ``"none"`` writes plain chunks whatever is stored.

    ``allow_parent_keys=True`` (a store option) reads and writes scales whose key points beside
    the dataset (``"../other/8_8_40"``); without it such keys are refused with
    :class:`~bigarrays.errors.KeyOutsideRootError`.
    """
    checked = _check_mode(mode)
    store = _open_store(open, url, checked == "r", store_options)
    info = read_info(store)
    if write_compression is None and checked == "r+":
        info = with_stored_compression(store, info)
    elif write_compression is not None and write_compression != "none":
        info = _with_write_compression(info, write_compression)
    return BigArray(
        store, info, mip=mip, mode=checked, fill_missing=fill_missing,
        threads=threads, progress=progress, owns_store=not isinstance(url, Store),
        cache_bytes=cache_bytes, skip_empty=skip_empty,
    )  # fmt: skip


def _with_write_compression(info: Info, compression: str) -> Info:
    if compression not in content_encoding.SUFFIXES:
        raise ValueError(
            f"write_compression must be one of {', '.join(content_encoding.known())} or "
            f"'none', got {compression!r}"
        )
    scales = []
    for scale in info.scales:
        if scale.sharding is None and scale.compression is None:
            scale = replace(scale, compression=compression)
        scales.append(scale)
    return info.with_scales(scales)


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
    jpeg_quality: int | None = None,
    png_level: int | None = None,
    compressed_segmentation_block_size: Sequence[int] | None = None,
    blosc_cname: str | None = None,
    blosc_shuffle: str | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    sharding: bool | dict[str, Any] | None = None,
    shard_size_bytes: int | None = None,
    cache_bytes: int = 0,
    skip_empty: bool = False,
    **store_options: Any,
) -> BigArray:
    """Create a one-scale volume at ``url`` and open it for reading and writing.

    ``shape`` is ``(x, y, z)``; pass channels as ``num_channels``. An existing dataset is refused
    unless ``overwrite`` is True, which deletes its info and the chunks of its scales first.

    ``sharding=True`` stores the chunks in shard files, each an aligned box of chunks of about
    ``shard_size_bytes`` uncompressed (default 1 GiB); ``sharding={...}`` takes a
    ``neuroglancer_uint64_sharded_v1`` spec as given. A sharded scale's ``compression`` is the
    spec's ``data_encoding`` (None or "gzip").

    Encodings: ``"raw"``; ``"jpeg"`` (uint8, 1 or 3 channels; ``jpeg_quality`` 0-100, default
    85); ``"png"`` (uint8/uint16, 1-4 channels; ``png_level`` 0-9, default 6);
    ``"compressed_segmentation"`` (uint32/uint64; ``compressed_segmentation_block_size``, default
    (8, 8, 8)). Compressions: ``"gzip"`` (levels 1-9, default 6), ``"zstd"`` (-7-22, default 3),
    ``"br"`` (brotli, 0-11, default 5), which viewers read, and ``"blosc"`` (1-9, default 5;
    ``blosc_cname`` blosclz/lz4/lz4hc/zstd/zlib, default lz4; ``blosc_shuffle`` none/byte/bit,
    default byte for multi-byte images, none for bytes and segmentation), which only bigarrays
    reads: creating it warns.

    ``cache_bytes`` and ``skip_empty`` are as in :func:`open`.
    """
    size = whole3(shape, "shape")
    if any(s < 0 for s in size):
        raise InvalidInfoError(f"shape must not be negative, got {size}")
    chunk_size = whole3(chunks, "chunks")
    if any(c < 1 for c in chunk_size):
        raise InvalidInfoError(f"chunks must be positive, got {chunk_size}")
    offset = whole3(voxel_offset, "voxel_offset")
    res = real3(resolution, "resolution")
    if any(not r > 0 for r in res):
        raise InvalidInfoError(f"resolution must be positive (nm per voxel), got {res}")
    data_type = dtype_to_data_type(dtype)
    if whole(num_channels, "num_channels") < 1:
        raise InvalidInfoError(f"num_channels must be an integer >= 1, got {num_channels!r}")
    num_channels = int(num_channels)
    if layer_type not in LAYER_TYPES:
        raise InvalidInfoError(
            f"layer_type must be one of {', '.join(LAYER_TYPES)}, got {layer_type!r}"
        )
    if layer_type == "segmentation" and num_channels != 1:
        raise InvalidInfoError("a segmentation volume has one channel")
    codec_members = check_codec_choices(
        encoding, data_type, num_channels, chunk_size, compression, compression_level,
        sharded=bool(sharding), layer_type=layer_type, jpeg_quality=jpeg_quality,
        png_level=png_level,
        compressed_segmentation_block_size=compressed_segmentation_block_size,
        blosc_cname=blosc_cname, blosc_shuffle=blosc_shuffle,
    )  # fmt: skip
    itemsize = np.dtype(data_type).itemsize
    check_extent(size, offset, ("shape", "voxel_offset"))
    check_chunk_bytes(chunk_size, num_channels, itemsize, "chunks")
    check_volume_bytes(size, num_channels, itemsize, "shape")
    sharding_spec = resolve_sharding(
        sharding,
        grid_shape=tuple(-(-s // c) for s, c in zip(size, chunk_size, strict=True)),
        chunk_bytes=math.prod(chunk_size) * num_channels * itemsize,
        target_bytes=shard_size_bytes,
        compression=compression,
    )
    if sharding_spec is not None and skip_empty:
        raise UnsupportedError(
            "skip_empty applies to unsharded scales: a shard holds its chunks together"
        )
    if sharding_spec is not None and compression_level is not None:
        raise InvalidInfoError(
            "compression_level does not apply to a sharded scale (gzip's default)"
        )
    if data_type in EXTENSION_DATA_TYPES:
        warnings.warn(
            f"data type {data_type!r} is a bigarrays extension: Neuroglancer and TensorStore "
            "cannot read this volume (CloudVolume can)",
            ViewerCompatibilityWarning,
            stacklevel=2,
        )

    scale = Scale(
        key=scale_key_for(res),
        size=size,
        resolution=res,
        voxel_offset=offset,
        chunk_sizes=(chunk_size,),
        encoding=encoding,
        compression=None if sharding_spec is not None else compression,
        compression_level=compression_level,
        sharding=sharding_spec,
        **codec_members,
    )
    info = Info(data_type=data_type, num_channels=num_channels, scales=(scale,), type=layer_type)
    # What open() would make of it: a create never writes an info its own reader refuses.
    info_bytes = info.to_bytes()
    info = Info.from_bytes(info_bytes)

    store = _open_store(create, url, False, store_options)
    vol = None
    try:
        warn_if_suffixes_hide_chunks(store, scale)
        # The array first: its own arguments (threads, cache_bytes) are refused before any
        # write, and before an old dataset is deleted.
        vol = BigArray(store, info, mode="r+", threads=threads, progress=progress,
                       owns_store=not isinstance(url, Store), cache_bytes=cache_bytes,
                       skip_empty=skip_empty)  # fmt: skip
        clear_destination(store, overwrite)
        store.put(INFO_KEY, info_bytes)
    except BaseException:
        if vol is not None:
            vol.close()
        elif not isinstance(url, Store):
            store.close()
        raise
    return vol


def clear_destination(store: Store, overwrite: bool) -> None:
    """Make ``store`` ready to receive a new dataset: refuse, or with ``overwrite`` delete, one
    that is already there (``bigarrays cp`` and the resharding converter share this rule)."""
    existing = store.get(INFO_KEY)
    if existing is None:
        return
    if not overwrite:
        raise DatasetExistsError(
            f"a dataset already exists at {store.url}; pass overwrite=True (--overwrite on the "
            "command line) to replace it"
        )
    delete_dataset(store, existing)


def delete_dataset(store: Store, info_bytes: bytes) -> None:
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
