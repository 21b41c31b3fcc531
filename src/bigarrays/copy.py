"""Copy a dataset between any two stores, object by object (``bigarrays cp SRC DST``).

Every object under the source's root is copied: the info, the chunks of every scale, and whatever
else lives there (meshes, skeletons, segment properties, shard files). Nothing outside the root is
read or written: a scale whose key points beside the dataset (``../other/8_8_40``) is left out with
a :class:`~bigarrays.errors.BigArraysWarning` that names it, since following such keys would let an
info copy any file beside the source to any place beside the destination. Objects travel as stored:
a gzip chunk is read with :meth:`~bigarrays.stores.Store.get_encoded` and put back with its
encoding, never decoded and compressed again. The copies run on a bounded pool of threads (the
smaller of the two stores' ``default_concurrency`` unless ``threads`` says otherwise) with a
progress bar.

A source that cannot list its keys (HTTP) is copied by the keys its info implies: every chunk
or shard of every scale, the missing ones skipped; other objects are not found that way.

A Zarr array or OME-Zarr image is copied the same way, every object under its root, its metadata
documents (``zarr.json``, ``.zarray``, ``.zgroup``, ``.zattrs``) after the chunks, the deepest
first and the root's last; it needs a source that lists its keys.

With ``scheduler`` (a ``distributed.Client``, a scheduler's address, or a local Dask scheduler's
name) the objects are copied by Dask tasks of about ``memory_target`` bytes of objects each (see
:mod:`bigarrays.adapters.dask_copy`), the metadata still last, from the calling process.

The info (or the root's metadata) is written last, so a copy that fails half-way leaves no
dataset at the destination, only objects that the next attempt overwrites. Copying into a zip
closes it (writing its central directory); copying out of one takes only its live entries, which
compacts it.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bigarrays.errors import BigArraysWarning, InvalidArgumentError, UnsupportedError
from bigarrays.formats.detect import detect
from bigarrays.formats.existing import clear_destination
from bigarrays.formats.precomputed import Info, chunk_name, scale_grid
from bigarrays.formats.precomputed.format import INFO_KEY, open_dataset
from bigarrays.formats.precomputed.sharding import shard_key_name
from bigarrays.formats.zarr.format import open_zarr
from bigarrays.pipeline import run_bounded
from bigarrays.progress import progress_bar
from bigarrays.stores import Store, normalize_key, open_store
from bigarrays.stores.keys import is_outside

__all__ = ["CopyResult", "copy_dataset", "copy_objects"]

#: Bytes of objects (counted uncompressed) a Dask task copies unless told otherwise.
DEFAULT_MEMORY_TARGET = 256 << 20


@dataclass(frozen=True)
class CopyResult:
    """What a copy moved: objects, bytes as stored, and the time it took."""

    objects: int
    bytes: int
    seconds: float


def copy_dataset(
    src: str | os.PathLike[str] | Store,
    dst: str | os.PathLike[str] | Store,
    *,
    threads: int | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    scheduler: Any = None,
    memory_target: int = DEFAULT_MEMORY_TARGET,
) -> CopyResult:
    """Copy the dataset at ``src`` to ``dst`` (URLs, paths or stores) and return what moved.

    A dataset already at ``dst`` raises :class:`~bigarrays.errors.DatasetExistsError` unless
    ``overwrite`` is True, which deletes its info and scales first. ``progress`` True/False forces
    the bar on or off; None shows it on a terminal for long copies. Stores opened here from URLs
    are closed at the end; Store objects passed in are left open. ``scheduler``: copy on Dask
    (see the module's text), both stores reachable from every worker; ``threads`` is then the
    requests each task keeps in flight.
    """
    if threads is not None and threads < 1:
        raise InvalidArgumentError(f"threads must be >= 1, got {threads}")
    if isinstance(memory_target, bool) or not isinstance(memory_target, int) or memory_target < 1:
        raise InvalidArgumentError(
            f"memory_target is a positive number of bytes, got {memory_target!r}"
        )
    started = time.perf_counter()
    source = open_store(src, read_only=True)
    try:
        found, document = detect(source)
        if found == "precomputed":
            info = Info.from_bytes(source.get(INFO_KEY) or b"", url=f"{source.url}/{INFO_KEY}")
            keys, last = _keys(source, info), [INFO_KEY]
        else:
            keys, last = _zarr_keys(source)
        target = open_store(dst, read_only=False)
        try:
            if scheduler is None:
                result = _copy(source, target, keys, last, threads, progress, overwrite)
            else:
                batch = max(1, memory_target // _largest_object(source, found, document))
                result = _copy_on_dask(source, target, keys, last, threads, progress, overwrite,
                                       scheduler, batch)  # fmt: skip
        finally:
            if not isinstance(dst, Store):
                target.close()  # a zip writes its central directory here
    finally:
        if not isinstance(src, Store):
            source.close()
    return CopyResult(result[0], result[1], time.perf_counter() - started)


#: The names of Zarr's metadata documents, at the root and in every group and array below it.
ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def _zarr_keys(source: Store) -> tuple[list[str], list[str]]:
    """Every key of a Zarr dataset: chunks first, then the metadata, deepest first and the
    root's last, so that an interrupted copy leaves no dataset that looks whole."""
    try:
        keys = list(source.list(""))
    except UnsupportedError:
        raise UnsupportedError(
            f"{source.url} cannot list its keys, which copying a Zarr dataset object by object "
            "needs; convert it instead (bigarrays cp SRC DST --format zarr)"
        ) from None
    metadata = [k for k in keys if k.rsplit("/", 1)[-1] in ZARR_METADATA]
    metadata.sort(key=lambda k: (-k.count("/"), k))
    return [k for k in keys if k.rsplit("/", 1)[-1] not in ZARR_METADATA], metadata


def _keys(source: Store, info: Info) -> list[str]:
    """Every key to copy but the info: all under the root (scales beside it are left out).

    A store that cannot list (a plain web server) gets every key the info implies instead: each
    scale's chunk names, or its shard file names; the ones never written are skipped as missing.
    Objects the info does not name (meshes, skeletons) cannot be found that way.
    """
    inside = [mip for mip, s in enumerate(info.scales) if not is_outside(normalize_key(s.key))]
    if len(inside) < len(info.scales):
        beside = [s.key for s in info.scales if is_outside(normalize_key(s.key))]
        warnings.warn(
            f"{source.url}: scale key(s) {', '.join(map(repr, beside))} lie outside the "
            "dataset's folder and are not copied; copy the folder they share with the dataset "
            "to keep them",
            BigArraysWarning,
            stacklevel=3,
        )
    try:
        keys = [k for k in source.list("") if k != INFO_KEY]
    except UnsupportedError:
        return [key for mip in inside for key in _implied_keys(info, mip)]
    return keys


def _implied_keys(info: Info, mip: int) -> list[str]:
    scale = info.scales[mip]
    prefix = normalize_key(scale.key)
    if scale.sharding is not None:
        bits = scale.sharding.shard_bits
        return [f"{prefix}/{shard_key_name(shard, bits)}" for shard in range(1 << bits)]
    grid = scale_grid(scale, info.num_channels)
    return [f"{prefix}/{chunk_name(grid.chunk_box(index))}" for index in grid.indices()]


def _largest_object(source: Store, found: str, document: bytes) -> int:
    """Bytes (uncompressed) of the largest write unit of any level: what one object may hold."""
    dataset = (
        open_dataset(source, writable=False, info_bytes=document)
        if found == "precomputed" else open_zarr(source, found, document)
    )  # fmt: skip
    itemsize = dataset.dtype.itemsize
    return max(math.prod(dataset.level(k).unit) * itemsize for k in range(dataset.num_levels))


def copy_objects(
    source: Store, target: Store, keys: Sequence[str], threads: int,
    on_done: Callable[[], None] | None = None,
) -> tuple[int, int]:  # fmt: skip
    """Copy ``keys`` as stored (encoding kept), ``threads`` at a time, calling ``on_done`` after
    each: (objects, bytes) moved."""
    moved: list[int] = []

    def one(key: str) -> None:
        found = source.get_encoded(key)
        if found is None:
            return  # deleted since it was listed
        data, encoding = found
        target.put(key, data, content_encoding=encoding)
        moved.append(len(data))  # list.append holds the GIL: no lock needed

    workers = min(threads, len(keys))
    if workers > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="bigarrays-cp") as pool:
            run_bounded(one, keys, pool, workers, on_done)
    else:
        run_bounded(one, keys, None, 1, on_done)
    return len(moved), sum(moved)


def _copy_on_dask(
    source: Store, target: Store, keys: list[str], last: list[str], threads: int | None,
    progress: bool | None, overwrite: bool, scheduler: Any, batch: int,
) -> tuple[int, int]:  # fmt: skip
    """:func:`_copy` with ``keys`` copied by Dask tasks of ``batch`` keys each."""
    from bigarrays.adapters.dask_copy import copy_on_dask
    from bigarrays.adapters.dask_run import check_reachable

    _refuse_same(source, target)
    check_reachable(source, target, scheduler)
    clear_destination(target, overwrite)
    workers = threads or min(source.default_concurrency, target.default_concurrency)
    objects, size = copy_on_dask(source, target, keys, batch, workers, scheduler, progress)
    more, extra = copy_objects(source, target, last, 1)  # the metadata last, from here
    return objects + more, size + extra


def _refuse_same(source: Store, target: Store) -> None:
    if source.url.rstrip("/") == target.url.rstrip("/"):
        raise UnsupportedError(
            f"cannot copy {source.url} onto itself; copy it to another place (to compact a zip "
            "file, copy it to a new file and replace the old one)"
        )


def _copy(
    source: Store,
    target: Store,
    keys: list[str],
    last: list[str],
    threads: int | None,
    progress: bool | None,
    overwrite: bool,
) -> tuple[int, int]:
    """Copy ``keys`` on a pool of threads, then ``last`` one by one in their order."""
    _refuse_same(source, target)
    clear_destination(target, overwrite)

    workers = threads or min(source.default_concurrency, target.default_concurrency)
    description = f"copying {source.url} to {target.url}"
    with progress_bar(len(keys) + len(last), description, progress) as advance:
        objects, size = copy_objects(source, target, keys, workers, advance)
        # The metadata last, so that an interrupted copy leaves no dataset behind.
        more, extra = copy_objects(source, target, last, 1, advance)
    return objects + more, size + extra
