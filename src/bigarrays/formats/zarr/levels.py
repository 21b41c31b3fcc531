"""New levels of an OME-Zarr image: arrays beside level 0 and their place in ``multiscales``.

Each new level is an array at path ``"1"``, ``"2"``, ... (another name if level 0 holds that
one) with level 0's data type, fill value and codecs, its chunk (or shard) shape unless asked
otherwise, and the level's shape. Its NGFF dataset entry scales level 0's by the factor and
translates it by ``(factor - 1) / 2`` of level 0's voxels, the centre of the pooled block, so the
levels overlay exactly in every viewer. The group is rewritten conditionally (see
``formats.documents``) after the arrays' metadata, so a reader never meets a level named before
its array exists, and a concurrent change of the group is never lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bigarrays.errors import LevelExistsError, UnsupportedError
from bigarrays.formats.base import LevelSpec
from bigarrays.formats.documents import update_document
from bigarrays.formats.zarr.format import ZarrArray, ZarrDataset
from bigarrays.formats.zarr.metadata_v2 import (
    ARRAY_KEY,
    ATTRIBUTES_KEY,
    ArrayMetadataV2,
    attributes_to_bytes,
    parse_attributes,
)
from bigarrays.formats.zarr.metadata_v3 import METADATA_KEY, ArrayMetadataV3, GroupMetadataV3
from bigarrays.formats.zarr.ome import Dataset as OmeDataset
from bigarrays.formats.zarr.ome import Multiscale, OmeAttributes
from bigarrays.formats.zarr.sharding import ShardingConfig, is_sharded
from bigarrays.stores import Store, delete_folder


def add_levels(
    dataset: ZarrDataset, specs: Sequence[LevelSpec], *, method: str, replace_levels: bool
) -> ZarrDataset:
    """Store ``specs`` as levels 1, 2, ... of ``dataset``'s image; the dataset with them."""
    multiscale = dataset.multiscale
    if multiscale is None:
        raise UnsupportedError(
            f"{dataset.store.url} is a Zarr array, which holds one level: pyramids live in "
            "OME-Zarr images (create one with a URL ending in .ome.zarr, or convert this array "
            "with `bigarrays cp SRC DST.ome.zarr --format zarr`)"
        )
    for spec in specs:
        for name in ("encoding", "compression", "sharding"):
            if getattr(spec, name) is not None:
                raise UnsupportedError(
                    f"{name}= for the levels of a Zarr image: they take level 0's codecs"
                )
    store = dataset.store
    if len(dataset.arrays) > 1:
        if not replace_levels:
            raise LevelExistsError(_exists_message(store.url, multiscale))
        _rewrite_group(dataset, multiscale.datasets[:1], expect=None)
        for array in dataset.arrays[1:]:
            delete_folder(store, array.path, keep=[dataset.arrays[0].path])
    first = dataset.arrays[0]
    taken = {first.path}
    arrays = [first]
    entries = [multiscale.datasets[0]]
    for k, spec in enumerate(specs, start=1):
        path = str(k)
        while path in taken:
            path = f"s{path}"
        taken.add(path)
        delete_folder(store, path, keep=[first.path])  # what a crashed earlier attempt left there
        array = ZarrArray(path, _level_meta(first, spec), {})
        _put_array(store, array)
        arrays.append(array)
        entries.append(_entry(multiscale, spec.factor, path))
    new = replace(
        multiscale, datasets=tuple(entries), type=method,
        metadata={"method": "bigarrays.downsample", "pooling": method,
                  "anchor": "blocks of the factor from index 0, as tensorstore.downsample"},
    )  # fmt: skip
    group = _rewrite_group(dataset, new.datasets, expect=1, multiscale=new)
    return ZarrDataset(store, arrays, group, new)


def _level_meta(first: ZarrArray, spec: LevelSpec) -> ArrayMetadataV3 | ArrayMetadataV2:
    meta = first.meta
    shape = spec.bounds.shape
    if isinstance(meta, ArrayMetadataV3):
        if spec.chunks is not None and is_sharded(meta):
            raise UnsupportedError("chunks= for the levels of a sharded Zarr image: they take "
                                   "level 0's shard and chunk shapes")  # fmt: skip
        chunks = meta.chunk_shape if spec.chunks is None else spec.chunks
        if is_sharded(meta) and spec.shard_bytes is not None:
            inner = ShardingConfig.of(meta).chunk_shape
            chunks = _smaller_shard(chunks, inner, spec.shard_bytes // meta.data_type.itemsize)
        return replace(meta, shape=shape, chunk_shape=chunks, attributes={}).checked()
    chunks = meta.chunks if spec.chunks is None else spec.chunks
    return replace(meta, shape=shape, chunks=chunks).checked()


def _smaller_shard(shard: Sequence[int], inner: Sequence[int], voxels: int) -> tuple[int, ...]:
    """``shard`` halved, a multiple of ``inner`` at a time along its longest axis, until it holds
    at most ``voxels`` (never below one inner chunk)."""
    counts = [s // c for s, c in zip(shard, inner, strict=True)]
    while math.prod(counts) * math.prod(inner) > voxels and max(counts) > 1:
        axis = max(range(len(counts)), key=lambda i: counts[i] * inner[i])
        counts[axis] = max(1, counts[axis] // 2)
    return tuple(n * c for n, c in zip(counts, inner, strict=True))


def _entry(multiscale: Multiscale, factor: Sequence[int], path: str) -> OmeDataset:
    base = multiscale.datasets[0]
    scale = tuple(s * f for s, f in zip(base.scale, factor, strict=True))
    shift = tuple((f - 1) / 2 * s for s, f in zip(base.scale, factor, strict=True))
    start = base.translation or (0.0,) * len(scale)
    translation = tuple(t + d for t, d in zip(start, shift, strict=True))
    keep = base.translation is not None or any(d != 0 for d in shift)
    return OmeDataset(path, scale, translation if keep else None)


def _put_array(store: Store, array: ZarrArray) -> None:
    head = f"{array.path}/"
    if isinstance(array.meta, ArrayMetadataV3):
        store.put(head + METADATA_KEY, array.meta.to_bytes())
    else:
        store.put(head + ARRAY_KEY, array.meta.to_bytes())


def _rewrite_group(
    dataset: ZarrDataset,
    datasets: Sequence[OmeDataset],
    *,
    expect: int | None,
    multiscale: Multiscale | None = None,
) -> dict[str, Any]:
    """Store the group naming ``datasets`` as its first multiscale's levels; its document.

    ``expect``: how many levels the stored multiscale must name now (a concurrent change that
    added some is refused rather than overwritten); None accepts any number.
    """
    store = dataset.store
    v3 = isinstance(dataset.meta, ArrayMetadataV3)
    key = METADATA_KEY if v3 else ATTRIBUTES_KEY
    result: dict[str, Any] = {}

    def change(current: bytes | None) -> bytes:
        if current is None:
            raise LevelExistsError(f"the group metadata of {store.url} was deleted meanwhile")
        group = GroupMetadataV3.from_json(current) if v3 else None
        attrs = dict(group.attributes) if group is not None else parse_attributes(current)
        ome = OmeAttributes.from_json(attrs)
        now = ome.multiscales[0]
        if expect is not None and len(now.datasets) != expect:
            raise LevelExistsError(_exists_message(store.url, now))
        new = replace(multiscale or now, datasets=tuple(datasets))
        ome = replace(ome, multiscales=(new, *ome.multiscales[1:]))
        if group is not None:
            doc = replace(group, attributes=ome.to_json()).to_json()
            result.update(doc)
            return GroupMetadataV3.from_json(doc).to_bytes()
        doc = _v04_attributes(ome)
        result.update(doc)
        return attributes_to_bytes(doc)

    update_document(store, key, change)
    return result


def _v04_attributes(ome: OmeAttributes) -> dict[str, Any]:
    """A Zarr v2 group's attributes in NGFF 0.4 form: each multiscale carries its version."""
    multiscales = [{**m.to_json(), "version": m.version} for m in ome.multiscales]
    return {**dict(ome.other), **dict(ome.ome_extra), "multiscales": multiscales}


def _exists_message(url: str, multiscale: Multiscale) -> str:
    paths = ", ".join(repr(d.path) for d in multiscale.datasets[1:])
    return (
        f"{url} has {len(multiscale.datasets) - 1} level(s) after the first already ({paths}); "
        "pass overwrite=True to replace them"
    )
