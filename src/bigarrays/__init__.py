"""bigarrays: index Neuroglancer precomputed volumes and Zarr arrays far larger than memory like
NumPy arrays.

import bigarrays as ba
vol = ba.create("file:///data/vol", shape=(2048, 2048, 512), dtype="uint8")
vol[100:356, -50:50, 0:64] = cut
cut = ba.open("file:///data/vol")[100:356, -50:50, 0:64]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bigarrays import errors
from bigarrays.api import create, open
from bigarrays.array import BigArray
from bigarrays.box import Box
from bigarrays.errors import (
    ArrayClosedError,
    ArrayTooLargeError,
    BigArraysError,
    ChunkNotFoundError,
    CorruptChunkError,
    DatasetExistsError,
    DatasetNotFoundError,
    InvalidArgumentError,
    InvalidIndexError,
    InvalidInfoError,
    InvalidKeyError,
    InvalidMetadataError,
    KeyOutsideRootError,
    OutOfBoundsError,
    ReadOnlyError,
    ViewerPortInUseError,
)
from bigarrays.streaming import Stream, StreamStats, stream

__version__ = "0.1.0"

if TYPE_CHECKING:
    from bigarrays.adapters.dask import from_dask, store
    from bigarrays.viewer import view

#: Names served by an adapter module, imported on first use so that ``import bigarrays`` does not
#: import Dask.
_LAZY = {
    "from_dask": "bigarrays.adapters.dask",
    "store": "bigarrays.adapters.dask",
    "view": "bigarrays.viewer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bigarrays' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "ArrayClosedError",
    "ArrayTooLargeError",
    "BigArray",
    "BigArraysError",
    "Box",
    "ChunkNotFoundError",
    "CorruptChunkError",
    "DatasetExistsError",
    "DatasetNotFoundError",
    "InvalidArgumentError",
    "InvalidIndexError",
    "InvalidInfoError",
    "InvalidKeyError",
    "InvalidMetadataError",
    "KeyOutsideRootError",
    "OutOfBoundsError",
    "ReadOnlyError",
    "Stream",
    "StreamStats",
    "ViewerPortInUseError",
    "__version__",
    "create",
    "errors",
    "from_dask",
    "open",
    "store",
    "stream",
    "view",
]
