"""``bigarrays.open`` and ``bigarrays.create``: find or make the dataset, hand back a BigArray.

The format of an existing dataset is found from what its store holds (``formats.detect``); each
format module opens its datasets and makes new ones, and the BigArray it is handed knows no format.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bigarrays import stores as stores_package
from bigarrays.array import BigArray, Mode
from bigarrays.box import Box
from bigarrays.errors import InvalidArgumentError, ReadOnlyError
from bigarrays.formats.base import Dataset
from bigarrays.formats.detect import FORMATS, detect
from bigarrays.formats.existing import clear_destination
from bigarrays.formats.precomputed.format import (
    INFO_KEY,
    PrecomputedDataset,
    create_info,
    open_dataset,
)
from bigarrays.formats.precomputed.resize import fixed_grid
from bigarrays.formats.precomputed.stored_compression import warn_if_suffixes_hide_chunks
from bigarrays.formats.zarr.format import (
    ZarrArray,
    ZarrDataset,
    create_ome_zarr,
    create_zarr,
    open_zarr,
    write_image_metadata,
)
from bigarrays.formats.zarr.metadata_v3 import ArrayMetadataV3
from bigarrays.formats.zarr.sharding import plan_sharding, sharded_metadata
from bigarrays.stores import Store, open_store

D = TypeVar("D", bound=Dataset)


def _check_mode(mode: str) -> Mode:
    if mode not in ("r", "r+"):
        hint = ""
        if mode in ("w", "w-", "x", "a"):
            hint = (
                "; open() opens an existing dataset: a new one is made with "
                "bigarrays.create(url, shape=..., dtype=...), and overwrite=True replaces one"
            )
        raise InvalidArgumentError(
            f"mode must be 'r' (read) or 'r+' (read and write), got {mode!r}{hint}"
        )
    return mode  # type: ignore[return-value]


def _check_writable_store(store: Store, url: str | os.PathLike[str] | Store) -> None:
    """Refuse a read-only store (HTTP, or one opened read_only) before anything is read, rather
    than at the first write."""
    if store.read_only:
        if not isinstance(url, Store):
            store.close()
        raise ReadOnlyError(
            f"{store.url} is read-only ({type(store).__name__}), so it cannot be opened for "
            "writing; open it with mode='r' to read it" + getattr(store, "write_hint", "")
        )


def _require_codec_packages(vol: BigArray) -> None:
    """Refuse a compression whose package is missing when the array is opened for writing,
    naming the extra to install, rather than at the first write."""
    if vol.format == "zarr2" or vol.compression is None:
        return  # numcodecs decodes Zarr v2 compressors itself
    from bigarrays.codecs import blosc, brotli, zstd

    loaders: dict[str, Callable[[], Any]] = {
        "zstd": zstd._zstandard, "br": brotli._brotli, "brotli": brotli._brotli,
        "blosc": blosc._blosc,
    }  # fmt: skip
    load = loaders.get(vol.compression)
    if load is not None:
        load()  # MissingDependencyError names the package and the extra


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
    format: str | None = None,
    update_pyramid: bool = False,
    **store_options: Any,
) -> BigArray:
    """Open an existing dataset at ``url`` (a URL, a plain path or a Store) at level ``mip``.

    The format is found from what is there: an ``info`` file is a Neuroglancer precomputed
    volume, ``zarr.json`` a Zarr v3 array or OME-Zarr image, ``.zarray`` / ``.zgroup`` Zarr v2;
    ``format=`` ("precomputed", "zarr", "zarr2") looks for that one alone. An OME-Zarr image's
    levels are its multiscale's datasets, finest first, as a precomputed volume's are its scales.

    ``cache_bytes`` > 0 keeps up to that many bytes of decoded chunks in an LRU cache, for
    repeated small cutouts of the same region (off by default; writes through this array keep
    it coherent, writes by others are not seen). ``skip_empty=True`` does not write chunks whose
    voxels are all 0 (the fill value) and deletes stored ones (unsharded scales only).

    ``update_pyramid=True`` (``mode="r+"``, mip 0) makes every write also recompute the part of
    the other levels it changes, as ``vol.update_pyramid(box)`` does.

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
    owns = not isinstance(url, Store)
    if checked == "r+":
        _check_writable_store(store, url)
    vol = None
    try:
        found, document = detect(store, format)
        if found == "precomputed":
            dataset: Dataset = open_dataset(
                store, writable=checked == "r+", write_compression=write_compression,
                info_bytes=document,
            )  # fmt: skip
        else:
            if write_compression is not None:
                raise InvalidArgumentError(
                    "write_compression applies to precomputed volumes, not Zarr"
                )
            dataset = open_zarr(store, found, document)
        vol = BigArray(
            dataset, mip=mip, mode=checked, fill_missing=fill_missing, threads=threads,
            progress=progress, owns_store=owns, cache_bytes=cache_bytes, skip_empty=skip_empty,
            update_pyramid=update_pyramid,
        )  # fmt: skip
        if checked == "r+":
            _require_codec_packages(vol)
        return vol
    except BaseException:
        if vol is not None:
            vol.close()  # its threads, and the store if it owns it
        elif owns:
            store.close()
        raise


def create(
    url: str | os.PathLike[str] | Store,
    shape: Sequence[int],
    dtype: Any = "uint8",
    chunks: Sequence[int] | None = None,
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
    format: str | None = None,
    dims: Sequence[str] | None = None,
    fill_value: Any = None,
    attributes: dict[str, Any] | None = None,
    max_shape: Sequence[int] | None = None,
    max_bounds: Box | None = None,
    **store_options: Any,
) -> BigArray:
    """Create a one-level dataset at ``url`` and open it for reading and writing.

    ``format`` is ``"precomputed"`` (the default), ``"zarr"`` (Zarr v3) or ``"zarr2"``; a URL
    ending in ``.zarr`` means ``"zarr"``, and one ending in ``.ome.zarr`` an OME-Zarr (NGFF 0.5)
    image: a group whose level ``0`` is the array, placed by ``resolution`` (nm per voxel along
    its space axes). A Zarr array has any number of axes, named by ``dims`` (default ``dim_0``,
    ...; name them ``t``, ``c``, ``z``, ``y``, ``x`` for an image), C-ordered, starting at 0, with
    ``fill_value`` (default 0) for voxels never written, ``compression`` ``"zstd"``, ``"gzip"``,
    ``"blosc"`` (``blosc_cname`` and ``blosc_shuffle`` as below; default zstd, byte shuffle) or
    None, and ``attributes``; ``chunks`` defaults to 64 along the last three axes
    and 1 along the others.

    A sharded Zarr v3 array (``sharding_indexed``) is written as ``zarr.json`` describes it:
    ``chunks`` is the SHARD (one stored object, the array's chunk grid) and
    ``sharding={"chunk_shape": [...]}`` the inner chunk (the unit a read decodes), which must
    divide ``chunks``; ``"index_location"`` is ``"end"`` (default) or ``"start"``. The inner
    chunks take the ``compression``; the index is little-endian uint64 with a crc32c checksum.
    ``sharding=True`` picks the inner chunk: the largest divisor of ``chunks`` that is at most an
    eighth of it along each of the last three axes (all of ``chunks`` along the others and where
    ``chunks`` is under 8); without
    ``chunks``, inner chunks are 64 along the last three axes (1 along the others) and shards
    hold up to 8 of them along each of those axes. A write of part of a shard needs a store with
    conditional writes.

    For a precomputed volume (the rest of this text), ``shape`` is ``(x, y, z)``; pass channels
    as ``num_channels``. An existing dataset (of any format) is refused unless ``overwrite`` is
    True, which deletes it first.

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

    ``max_shape`` (from ``voxel_offset``) or ``max_bounds`` (a Box) fixes a precomputed volume's
    chunk grid for the largest size it will grow to: the info describes that grid, so chunk
    names and shard ids never change, and ``vol.resize`` / ``vol.append`` inside it rewrite the
    info alone (the bounds bigarrays shows are kept in the scale's ``bigarrays`` member; other
    readers see the whole grid, the fill value outside the bounds). A sharded volume grows only
    inside its grid. A Zarr array needs neither (its chunk names never depend on its shape):
    they are checked and have no other effect.
    """
    kind = _format_of(url, format)
    limit = _max_box(shape, voxel_offset, max_shape, max_bounds)
    if kind != "precomputed":
        return _create_zarr(
            url, kind, shape, dtype, chunks, voxel_offset, resolution, num_channels,
            layer_type, encoding, compression, overwrite, compression_level=compression_level,
            sharding=sharding, threads=threads, progress=progress, cache_bytes=cache_bytes,
            skip_empty=skip_empty, dims=dims, fill_value=fill_value, attributes=attributes,
            store_options=store_options, max_box=limit, blosc=(blosc_cname, blosc_shuffle),
        )  # fmt: skip
    for name, value in (("dims", dims), ("fill_value", fill_value), ("attributes", attributes)):
        if value is not None:
            raise InvalidArgumentError(
                f"{name} applies to Zarr arrays (format='zarr'), not precomputed"
            )
    _check_precomputed_shape(shape)
    grid_shape, grid_offset = (shape, voxel_offset) if limit is None else (limit.shape, limit.start)
    info = create_info(
        grid_shape, dtype, (64, 64, 64) if chunks is None else chunks, grid_offset, resolution,
        num_channels, layer_type, encoding,
        compression, compression_level=compression_level, jpeg_quality=jpeg_quality,
        png_level=png_level,
        compressed_segmentation_block_size=compressed_segmentation_block_size,
        blosc_cname=blosc_cname, blosc_shuffle=blosc_shuffle, sharding=sharding,
        shard_size_bytes=shard_size_bytes, skip_empty=skip_empty,
    )  # fmt: skip
    if limit is not None:
        info = fixed_grid(info, Box.from_shape(shape, voxel_offset))
    store = _open_store(create, url, False, store_options)
    _check_writable_store(store, url)
    try:
        warn_if_suffixes_hide_chunks(store, info.scales[0])  # points at the caller's line
    except BaseException:  # a warning made an error by the caller's filters
        if not isinstance(url, Store):
            store.close()
        raise
    return _new_array(
        url, store, lambda: PrecomputedDataset(store, info),
        lambda _: store.put(INFO_KEY, info.to_bytes()),
        overwrite=overwrite, threads=threads, progress=progress, cache_bytes=cache_bytes,
        skip_empty=skip_empty,
    )  # fmt: skip


def _max_box(
    shape: Sequence[int],
    voxel_offset: Sequence[int],
    max_shape: Sequence[int] | None,
    max_bounds: Box | None,
) -> Box | None:
    """The grid ``max_shape`` / ``max_bounds`` fix, checked to hold the array's bounds."""
    if max_shape is None and max_bounds is None:
        return None
    if max_shape is not None and max_bounds is not None:
        raise InvalidArgumentError("give max_shape or max_bounds, not both")
    try:
        if max_bounds is None:
            offset = [0] * len(shape) if len(voxel_offset) != len(shape) else voxel_offset
            max_bounds = Box.from_shape(max_shape or (), offset)
        bounds = Box.from_shape(shape, voxel_offset if len(voxel_offset) == len(shape) else [0]
                                * len(shape))  # fmt: skip
        inside = max_bounds.ndim == bounds.ndim and max_bounds.contains(bounds)
    except (TypeError, ValueError):
        inside = False
    if not inside:
        raise InvalidArgumentError(
            f"max_shape={max_shape!r} / max_bounds={max_bounds!r} must hold the array's bounds "
            f"(shape {tuple(shape)} at voxel_offset {tuple(voxel_offset)}), one extent per axis"
        )
    return max_bounds


def _check_precomputed_shape(shape: Any) -> None:
    """Refuse a shape of other than three numbers, with what to do about a channel axis."""
    if isinstance(shape, str | bytes) or not hasattr(shape, "__len__") or len(shape) == 3:
        return  # create_info says what is wrong with anything else
    given = tuple(shape)
    hint = ""
    if len(given) == 4:
        hint = (
            f": channels are not an axis of a precomputed volume's shape; pass "
            f"shape={given[:3]}, num_channels={given[3]} (vol.shape is then {given})"
        )
    raise InvalidArgumentError(
        f"shape must be three numbers (x, y, z) for a precomputed volume, got {given}{hint}; "
        "other axes need a Zarr array (format='zarr')"
    )


def _new_array(
    url: str | os.PathLike[str] | Store,
    store: Store,
    make: Callable[[], D],
    write: Callable[[D], object],
    *,
    overwrite: bool,
    threads: int | None,
    progress: bool | None,
    cache_bytes: int,
    skip_empty: bool,
) -> BigArray:
    """The array of a new dataset: ``make`` builds it, an old one is cleared, ``write`` stores
    its metadata; on any failure the store ``create`` opened is closed."""
    vol = None
    try:
        dataset = make()
        # The array first: its own arguments (threads, cache_bytes) are refused before any
        # write, and before an old dataset is deleted.
        vol = BigArray(dataset, mode="r+", threads=threads, progress=progress,
                       owns_store=not isinstance(url, Store), cache_bytes=cache_bytes,
                       skip_empty=skip_empty)  # fmt: skip
        _require_codec_packages(vol)
        clear_destination(store, overwrite)
        write(dataset)
    except BaseException:
        if vol is not None:
            vol.close()
        elif not isinstance(url, Store):
            store.close()
        raise
    return vol


def _format_of(url: str | os.PathLike[str] | Store, format: str | None) -> str:
    """The format ``create`` writes: the one named, else what the URL's suffix says."""
    if format is not None:
        if format not in FORMATS:
            raise InvalidArgumentError(
                f"format must be one of {', '.join(FORMATS)}, got {format!r}"
            )
        return format
    name = url.url if isinstance(url, Store) else os.fspath(url)
    return "zarr" if name.rstrip("/").lower().endswith(".zarr") else "precomputed"


def _is_ome(url: str | os.PathLike[str] | Store) -> bool:
    name = url.url if isinstance(url, Store) else os.fspath(url)
    return name.rstrip("/").lower().endswith(".ome.zarr")


def _create_zarr(
    url: str | os.PathLike[str] | Store,
    kind: str,
    shape: Sequence[int],
    dtype: Any,
    chunks: Sequence[int] | None,
    voxel_offset: Sequence[int],
    resolution: Sequence[float],
    num_channels: int,
    layer_type: str,
    encoding: str,
    compression: str | None,
    overwrite: bool,
    *,
    compression_level: int | None,
    sharding: Any,
    threads: int | None,
    progress: bool | None,
    cache_bytes: int,
    skip_empty: bool,
    dims: Sequence[str] | None,
    fill_value: Any,
    attributes: dict[str, Any] | None,
    store_options: dict[str, Any],
    max_box: Box | None = None,
    blosc: tuple[str | None, str | None] = (None, None),
) -> BigArray:
    """``create`` of a Zarr array or OME-Zarr image (see ``create``)."""
    ome = _is_ome(url)
    refused = [
        ("voxel_offset", any(int(o) != 0 for o in voxel_offset),
         "a Zarr array starts at 0 on every axis"),
        ("num_channels", num_channels != 1, "give the array a 'c' axis instead"),
        ("layer_type", layer_type != "image", "Zarr arrays have no layer type"),
        ("encoding", encoding != "raw", "Zarr chunks are encoded by their codecs"),
        ("sharding", bool(sharding) and kind != "zarr", "Zarr v2 has no sharding"),
        ("resolution", not ome and tuple(resolution) != (1, 1, 1),
         "a plain Zarr array has no resolution; write an OME-Zarr image (URL ending .ome.zarr)"),
    ]  # fmt: skip
    for name, bad, why in refused:
        if bad:
            raise InvalidArgumentError(f"{name} does not apply to a Zarr array: {why}")
    inner: tuple[int, ...] | None = None
    index_location = "end"
    if sharding:  # ``chunks`` is the shard; the inner chunk comes from ``sharding``
        chunks, inner, index_location = plan_sharding(shape, chunks, sharding)
    store = _open_store(create, url, False, store_options)
    _check_writable_store(store, url)

    def make() -> ZarrDataset:
        dataset = create_zarr(
            store, version=3 if kind == "zarr" else 2, shape=shape, dtype=dtype, chunks=chunks,
            dims=dims, fill_value=fill_value, compression=compression,
            compression_level=compression_level, attributes=attributes, blosc=blosc,
        )  # fmt: skip
        meta = dataset.meta
        if inner is not None and isinstance(meta, ArrayMetadataV3):
            meta = sharded_metadata(meta, inner, index_location)
            dataset = ZarrDataset(store, [ZarrArray("", meta, dict(meta.attributes))])
        if not ome:
            return dataset
        # The default (1, 1, 1) is precomputed's three axes; an image of other space axes
        # takes 1 along each of them.
        default = tuple(resolution) == (1, 1, 1)
        return create_ome_zarr(dataset, None if default else resolution)

    return _new_array(
        url, store, make, write_image_metadata, overwrite=overwrite, threads=threads,
        progress=progress, cache_bytes=cache_bytes, skip_empty=skip_empty,
    )  # fmt: skip
