"""Growing and shrinking a Zarr array: a new ``shape`` in its metadata, nothing else.

A Zarr chunk (or shard) is named by its place in the grid, which starts at 0 whatever the
shape, and edge chunks are stored whole; so a resize rewrites the array's ``zarr.json`` (or
``.zarray``) alone, conditionally, and grows at the high end only. What a shrink crops stays in
the edge chunks until the caller clears it (``Resized.clear``: the source of the array as it
was), so that a later growth shows the fill value there. An OME-Zarr image of one level resizes
its array; its ``multiscales`` hold no shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bigarrays.box import Box
from bigarrays.errors import DatasetNotFoundError, ResizeRefusedError
from bigarrays.formats.base import Resized
from bigarrays.formats.documents import update_document
from bigarrays.formats.zarr.format import ArrayMetadata, ZarrArray, ZarrDataset
from bigarrays.formats.zarr.metadata_v2 import ARRAY_KEY, ArrayMetadataV2
from bigarrays.formats.zarr.metadata_v3 import METADATA_KEY, ArrayMetadataV3


def resize(dataset: ZarrDataset, change: Callable[[Box], Box]) -> Resized:
    """Store the shape ``change`` makes of the stored one (see ``Dataset.resized``)."""
    store = dataset.store
    if dataset.num_levels > 1:
        raise ResizeRefusedError(
            f"{store.url} is an image of {dataset.num_levels} levels; a resize would leave "
            "levels 1.. no longer level 0 pooled. Resize an image of one level, then build "
            "its pyramid again (vol.downsample(overwrite=True))"
        )
    array = dataset.arrays[0]
    head = f"{array.path.strip('/')}/" if array.path.strip("/") else ""
    v3 = isinstance(array.meta, ArrayMetadataV3)
    key = head + (METADATA_KEY if v3 else ARRAY_KEY)
    url = f"{store.url.rstrip('/')}/{key}"
    seen: list[tuple[ArrayMetadata, ArrayMetadata, Box, Box]] = []

    def edit(current: bytes | None) -> bytes:
        if current is None:
            raise DatasetNotFoundError(f"{url} was deleted while the array was resized")
        old: ArrayMetadata = (
            ArrayMetadataV3.from_json(current, url=url)
            if v3
            else ArrayMetadataV2.from_json(current, url=url)
        )
        before = Box.from_shape(old.shape)
        after = change(before)
        if any(after.start):
            raise ResizeRefusedError(
                f"cannot resize {store.url} to {after}: a Zarr array starts at 0 on every axis, "
                "so it grows and shrinks at the high end only"
            )
        new = replace(old, shape=after.stop).checked()
        seen[:] = [(old, new, before, after)]
        return new.to_bytes()

    update_document(store, key, edit)
    old, new, before, after = seen[0]

    def with_meta(meta: ArrayMetadata) -> ZarrDataset:
        arrays = [ZarrArray(array.path, meta, array.attributes)]
        return ZarrDataset(store, arrays, dataset.group, dataset.multiscale)

    chunk = with_meta(new).level(0).source.grid.chunk
    whole = tuple(
        -(-b // c) * c if b > a else b
        for a, b, c in zip(before.stop, after.stop, chunk, strict=True)
    )
    grow = with_meta(replace(new, shape=whole)).level(0).source
    return Resized(with_meta(new), before, after, with_meta(old).level(0).source, grow)
