"""What is at a URL: which format's metadata the store holds at its root.

``info`` is a Neuroglancer precomputed volume, ``zarr.json`` a Zarr v3 node, ``.zarray`` or
``.zgroup`` a Zarr v2 node. One read per candidate, in that order, and only until one is found;
the document found is handed on, so that opening the dataset does not read it again.
"""

from __future__ import annotations

from bigarrays.errors import DatasetNotFoundError
from bigarrays.stores import Store

#: The file each format keeps at a dataset's root, in the order they are looked for.
MARKERS = (
    ("info", "precomputed"),
    ("zarr.json", "zarr"),
    (".zarray", "zarr2"),
    (".zgroup", "zarr2"),
)


#: The formats bigarrays reads and writes.
FORMATS = ("precomputed", "zarr", "zarr2")


def detect(store: Store, only: str | None = None) -> tuple[str, bytes]:
    """The name of the format of the dataset at ``store``'s root, and the document that says so;
    with ``only``, that format's marker alone is looked for.

    A read rather than an existence check: some stores let anonymous callers read objects but
    not ask about them (S3 answers HEAD with 403 where GET is allowed).
    """
    if only is not None and only not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {only!r}")
    for key, name in MARKERS:
        if only is not None and name != only:
            continue
        found = store.get(key)
        if found is not None:
            return name, found
    if only is not None:
        wanted = ", ".join(key for key, name in MARKERS if name == only)
        raise DatasetNotFoundError(f"no {only} dataset at {store.url}: no {wanted} there")
    raise DatasetNotFoundError(
        f"no dataset at {store.url}: no precomputed volume (it has no 'info' file) and no Zarr "
        "array or group (no zarr.json, .zarray or .zgroup)"
    )
