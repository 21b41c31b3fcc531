"""New scales of a precomputed volume: the levels a pyramid adds after the first.

A scale's resolution is the first scale's times the level's cumulative factor (Neuroglancer's
rule), its key the usual ``X_Y_Z`` of that resolution, its chunks, encoding and compression those
of the first scale unless asked otherwise; a sharded first scale gives sharded levels with a
sharding chosen for each level's own grid. The info is rewritten conditionally (see
``formats.documents``), so a concurrent change of it is never lost.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from bigarrays.arguments import check_codec_choices
from bigarrays.codecs import codec_class
from bigarrays.errors import LevelExistsError, ViewerCompatibilityWarning
from bigarrays.formats.base import LevelSpec
from bigarrays.formats.documents import update_document
from bigarrays.formats.precomputed.format import INFO_KEY
from bigarrays.formats.precomputed.info import EXTENSION_KEY, Info, Scale, scale_key_for
from bigarrays.formats.precomputed.sharding import DEFAULT_SHARD_BYTES, resolve_sharding
from bigarrays.stores import Store, delete_folder


def new_scale(info: Info, spec: LevelSpec, taken: set[str], method: str) -> Scale:
    """The scale of ``spec``, pooled from ``info``'s first scale by ``method`` (recorded in the
    scale's ``bigarrays`` member, which viewers ignore); its key is not in ``taken``."""
    base = info.scales[0]
    factor = spec.factor[:3]
    resolution = tuple(r * f for r, f in zip(base.resolution, factor, strict=True))
    chunks = tuple(spec.chunks[:3]) if spec.chunks is not None else base.chunk_size
    encoding = spec.encoding or base.encoding
    sharded = base.sharding is not None if spec.sharding is None else bool(spec.sharding)
    if spec.compression is not None:
        compression = None if spec.compression == "none" else spec.compression
    elif base.sharding is not None:
        compression = "gzip" if base.sharding.data_encoding == "gzip" else None
    else:
        compression = base.compression
    same_codec = encoding == base.encoding
    options = {
        name: getattr(base, name) for name in codec_class(encoding).option_names if same_codec
    }
    with warnings.catch_warnings():  # the first scale's creation warned of blosc already
        warnings.simplefilter("ignore", ViewerCompatibilityWarning)
        members = check_codec_choices(
            encoding, info.data_type, info.num_channels, chunks, compression,
            base.compression_level if compression == base.compression else None,
            sharded=sharded, layer_type=info.type,
            blosc_cname=base.blosc_cname if compression == "blosc" else None,
            blosc_shuffle=base.blosc_shuffle if compression == "blosc" else None,
            **options,
        )  # fmt: skip
    size = spec.bounds.shape[:3]
    sharding = None
    if sharded:
        wanted: Any = True if spec.sharding is None or spec.sharding is True else spec.sharding
        chunk_bytes = math.prod(chunks) * info.num_channels * info.dtype.itemsize
        target = None
        if wanted is True and spec.shard_bytes is not None:
            # A power of two chunks per shard, at most shard_bytes (choose_sharding rounds to
            # the nearest power, which may be above).
            most = max(1, min(spec.shard_bytes, DEFAULT_SHARD_BYTES) // chunk_bytes)
            target = chunk_bytes << (most.bit_length() - 1)
        sharding = resolve_sharding(
            wanted,
            grid_shape=tuple(-(-s // c) for s, c in zip(size, chunks, strict=True)),
            chunk_bytes=chunk_bytes,
            target_bytes=target,
            compression=compression,
        )
    key = scale_key_for(resolution)
    while key in taken:
        key += "_"
    return Scale(
        key=key, size=size, resolution=resolution,  # type: ignore[arg-type]
        chunk_sizes=(chunks,), encoding=encoding,  # type: ignore[arg-type]
        voxel_offset=spec.bounds.start[:3],  # type: ignore[arg-type]
        sharding=sharding, compression=None if sharding is not None else compression,
        compression_level=None if sharding is not None or compression != base.compression
        else base.compression_level, **members,
        extra={EXTENSION_KEY: {"downsample": {"method": method, "factor": list(factor)}}},
    )  # fmt: skip


def recorded_method(info: Info) -> str | None:
    """The pooling method the info's second scale records, if it does."""
    if len(info.scales) < 2:
        return None
    ext = info.scales[1].extra.get(EXTENSION_KEY)
    entry = ext.get("downsample") if isinstance(ext, dict) else None
    method = entry.get("method") if isinstance(entry, dict) else None
    return method if isinstance(method, str) else None


def _first_scale_only(current: bytes | None, url: str) -> Info:
    if current is None:
        raise LevelExistsError(f"the info of {url} was deleted while levels were added")
    return Info.from_bytes(current, url=f"{url.rstrip('/')}/{INFO_KEY}")


def add_scales(
    store: Store, info: Info, specs: Sequence[LevelSpec], *, method: str, replace_levels: bool
) -> Info:
    """Store the info with ``specs`` as scales 1, 2, ... after ``info``'s first; the new info.

    Existing scales after the first are refused unless ``replace_levels``: then they leave the
    info first and their chunks are deleted, before the new scales are named.
    """
    if len(info.scales) > 1:
        if not replace_levels:
            raise LevelExistsError(_exists_message(store.url, info))
        _drop_levels(store)
    keys = {s.key for s in info.scales[:1]}

    def add(current: bytes | None) -> bytes:
        now = _first_scale_only(current, store.url)
        if len(now.scales) > 1:  # another process added levels meanwhile: keep them
            raise LevelExistsError(_exists_message(store.url, now))
        taken = set(keys)
        scales = [now.scales[0]]
        for spec in specs:
            scale = new_scale(now, spec, taken, method)
            taken.add(scale.key)
            scales.append(scale)
        return now.with_scales(scales).to_bytes()

    stored = update_document(store, INFO_KEY, add)
    return Info.from_bytes(stored)


def _drop_levels(store: Store) -> None:
    """Remove scales 1, 2, ... from the info, then delete their chunks."""
    dropped: list[Scale] = []

    def drop(current: bytes | None) -> bytes:
        now = _first_scale_only(current, store.url)
        dropped[:] = now.scales[1:]
        return now.with_scales(now.scales[:1]).to_bytes()

    stored = Info.from_bytes(update_document(store, INFO_KEY, drop))
    for scale in dropped:
        delete_folder(store, scale.key, keep=[stored.scales[0].key])


def _exists_message(url: str, info: Info) -> str:
    keys = ", ".join(repr(s.key) for s in info.scales[1:])
    return (
        f"{url} has {len(info.scales) - 1} level(s) after the first already ({keys}); pass "
        "overwrite=True to replace them"
    )
