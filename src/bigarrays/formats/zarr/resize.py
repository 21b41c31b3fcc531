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
from bigarrays.stores import Store


def resize(
    dataset: ZarrDataset,
    change: Callable[[Box], Box],
    levels: Callable[[int, Box], Box] | None = None,
) -> Resized:
    """Store the shape ``change`` makes of the stored one (see ``Dataset.resized``); with
    ``levels``, then each other level's shape, growth only."""
    store = dataset.store
    if dataset.num_levels > 1 and levels is None:
        raise ResizeRefusedError(
            f"{store.url} is an image of {dataset.num_levels} levels; a resize would leave "
            "levels 1.. no longer level 0 pooled. Resize an image of one level, then build "
            "its pyramid again (vol.downsample(overwrite=True))"
        )
    array = dataset.arrays[0]
    old, new, before, after = _resize_array(store, array, change, grow_only=levels is not None)
    metas = [new]
    for k, level in enumerate(dataset.arrays[1:], start=1):
        assert levels is not None
        metas.append(_resize_array(store, level, _to(levels(k, after)), grow_only=True)[1])

    def with_meta(meta: ArrayMetadata, rest: list[ArrayMetadata]) -> ZarrDataset:
        arrays = [ZarrArray(a.path, m, a.attributes)
                  for a, m in zip(dataset.arrays, [meta, *rest], strict=True)]  # fmt: skip
        return ZarrDataset(store, arrays, dataset.group, dataset.multiscale)

    rest = metas[1:]
    chunk = with_meta(new, rest).level(0).source.grid.chunk
    whole = tuple(
        -(-b // c) * c if b > a else b
        for a, b, c in zip(before.stop, after.stop, chunk, strict=True)
    )
    grow = with_meta(replace(new, shape=whole), rest).level(0).source
    return Resized(with_meta(new, rest), before, after, with_meta(old, rest).level(0).source,
                   grow)  # fmt: skip


def _to(box: Box) -> Callable[[Box], Box]:
    return lambda _: box


def _resize_array(
    store: Store, array: ZarrArray, change: Callable[[Box], Box], *, grow_only: bool
) -> tuple[ArrayMetadata, ArrayMetadata, Box, Box]:
    """Store ``change`` of one array's shape, conditionally: its metadata and shape before and
    after."""
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
        if grow_only:  # levels that follow level 0 never shrink: nothing of them to clear
            after = Box(after.start, tuple(max(a, b) for a, b in
                                           zip(before.stop, after.stop, strict=True)))  # fmt: skip
        new = replace(old, shape=after.stop).checked()
        seen[:] = [(old, new, before, after)]
        return new.to_bytes()

    update_document(store, key, edit)
    return seen[0]
