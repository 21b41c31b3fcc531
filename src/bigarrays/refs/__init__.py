"""References: datasets read where they lie, inside tar, zip, HDF5 and TIFF files.

An indexer reads a container's headers (by ranged reads, wherever it is stored) and returns
:class:`References`, each key of a dataset mapped to inline bytes or ``(url, offset, length)``;
:func:`write_references` saves them as kerchunk JSON or the Parquet layout, and
``bigarrays.open("reference://refs.json")`` reads the dataset through them.
"""

from __future__ import annotations

import os
from typing import Any

from bigarrays.errors import UnsupportedError
from bigarrays.refs.hdf5 import index_hdf5
from bigarrays.refs.model import Ref, References, Target
from bigarrays.refs.tar import HDF5_SUFFIXES, index_tar
from bigarrays.refs.tiff import TIFF_SUFFIXES, index_tiff, index_tiff_folder
from bigarrays.refs.write import to_json, write_references
from bigarrays.refs.zip import index_zip
from bigarrays.stores import split_scheme

#: What :func:`index` can make references of.
KINDS = ("auto", "tar", "zip", "hdf5", "tiff", "tiff-folder")


def kind_of(url: str) -> str:
    """The indexer for ``url`` by its name: a folder (no suffix) is a folder of TIFFs."""
    name = url.rstrip("/").lower()
    if name.endswith(".tar"):
        return "tar"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(HDF5_SUFFIXES):
        return "hdf5"
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    if name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")):
        raise UnsupportedError(
            f"{url} is a compressed tar: its members lie in no byte range; decompress it first"
        )
    return "tiff-folder"


def index(url: str, kind: str = "auto", *, split_bytes: int | None = None,
          **options: Any) -> References:  # fmt: skip
    """References to what ``url`` holds; ``kind`` is one of :data:`KINDS` ("auto": by name).
    ``options`` open the store the input is read from."""
    if kind not in KINDS:
        raise UnsupportedError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if split_scheme(url)[0] == "file" and not url.startswith("file:"):
        url = os.path.abspath(url)  # targets name the file wherever the references are read
    kind = kind_of(url) if kind == "auto" else kind
    if kind == "tar":
        return index_tar(url, **options)
    if kind == "zip":
        return index_zip(url, **options)
    if kind == "hdf5":
        return index_hdf5(url, split_bytes=split_bytes, **options)
    if kind == "tiff":
        return index_tiff(url, **options)
    return index_tiff_folder(url, **options)


__all__ = [
    "KINDS",
    "Ref",
    "References",
    "Target",
    "index",
    "index_hdf5",
    "index_tar",
    "index_tiff",
    "index_tiff_folder",
    "index_zip",
    "kind_of",
    "to_json",
    "write_references",
]
