"""Chunks whose transfer compression shows only in how they are stored (``KEY.gz``).

CloudVolume gzips chunks by default without recording it in the info, and on a local disk (or in
a zip) a compressed chunk is the file ``KEY.gz`` (``.br``, ``.zstd``). Two traps follow, and this
module holds what ``open`` and ``create`` do about them: a writer that does not know the volume
is gzip'd writes plain ``KEY`` files beside CloudVolume's ``KEY.gz`` ones (two copies of a chunk,
and CloudVolume's later writes hidden behind the plain one), and TensorStore's file driver, which
asks for ``KEY`` alone, reads a local compressed volume as zeros without an error.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

from bigarrays.errors import KeyOutsideRootError, UnsupportedError, ViewerCompatibilityWarning
from bigarrays.formats.precomputed import Info, Scale, open_layout
from bigarrays.stores import Store, content_encoding, normalize_key

__all__ = ["warn_if_suffixes_hide_chunks", "with_stored_compression"]


def with_stored_compression(store: Store, info: Info) -> Info:
    """``info`` with each unsharded scale that records no compression set to the transfer
    encoding of one of its stored chunks (CloudVolume's unrecorded gzip), if it has one."""
    scales = []
    for mip, scale in enumerate(info.scales):
        if scale.sharding is None and scale.compression is None:
            first = open_layout(store, info, mip).key((0, 0, 0, 0))
            found = _stored_encoding(store, first, normalize_key(scale.key) + "/")
            if found is not None:
                scale = replace(scale, compression=found)
        scales.append(scale)
    return info.with_scales(scales) if scales != list(info.scales) else info


def _stored_encoding(store: Store, first: str, prefix: str) -> str | None:
    """The transfer encoding of the chunk ``first``, or if it was never written of the first
    chunk listed under ``prefix``; None if there is none, it has none, or the store cannot list
    (or may not reach the prefix). The first chunk comes first because a listing of a local
    folder reads all of its (perhaps millions of) names."""
    try:
        stored = store.get_encoded(first)
        if stored is None:
            key = next(iter(store.list(prefix)), None)
            stored = None if key is None else store.get_encoded(key)
    except (UnsupportedError, KeyOutsideRootError):
        return None
    return None if stored is None else stored[1]


#: URL schemes of stores that keep a transfer encoding in the object's name (``KEY.gz``).
_SUFFIXED_SCHEMES = ("file://", "zip://")


def warn_if_suffixes_hide_chunks(store: Store, scale: Scale) -> None:
    """Warn when TensorStore would read the chunks ``scale`` writes to ``store`` as zeros.

    On a local disk (or in a zip) a transfer-compressed chunk is the file ``KEY.gz`` (``.br``,
    ``.zstd``), CloudVolume's convention. TensorStore's file driver asks for ``KEY`` alone,
    finds nothing, and shows the fill value everywhere, without an error. Shards keep their
    compression inside the shard file, so sharded scales are not concerned.
    """
    compression = scale.compression
    if scale.sharding is not None or compression not in content_encoding.SUFFIXES:
        return
    if not store.url.startswith(_SUFFIXED_SCHEMES):
        return
    suffix = content_encoding.SUFFIXES[compression]
    warnings.warn(
        f"{compression} chunks on {store.url} are stored as KEY{suffix} files, which "
        "TensorStore's file driver does not look for: it reads this volume as zeros "
        "(CloudVolume and bigarrays read it). Use compression=None for a local volume that "
        "TensorStore should open, or serve it over HTTP with a Content-Encoding",
        ViewerCompatibilityWarning,
        stacklevel=3,
    )
