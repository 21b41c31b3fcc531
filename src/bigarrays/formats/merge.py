"""Writing part of one chunk object: read it with its version, merge, put only if unchanged.

Every format whose chunks are objects of their own (precomputed unsharded scales, Zarr arrays
without sharding) writes part of a chunk this way, the way TensorStore writes with generations:
the merged chunk is put only if the object is still at the version it was read at; when another
writer got there first, it is read and merged again. No concurrent writer's voxels are lost, on
any store with conditional writes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from bigarrays.errors import VersionConflictError
from bigarrays.stores import Store
from bigarrays.stores.base import ANY_ENCODING, Buffer
from bigarrays.stores.versions import PutMode

#: Attempts of a partial write that keeps losing the race to other writers of its object.
MAX_CONFLICT_RETRIES = 64

T = TypeVar("T")


def retry_conflicts(key: str, url: str, attempt: Callable[[int], T]) -> T:
    """``attempt(n)`` for n = 0, 1, ... until it raises no VersionConflictError (another writer
    got to ``key`` first), at most MAX_CONFLICT_RETRIES times; then VersionConflictError."""
    for n in range(MAX_CONFLICT_RETRIES):
        try:
            return attempt(n)
        except VersionConflictError:
            # Spread the retries of writers that collided, so that they stop colliding.
            time.sleep(random.uniform(0, 0.002 * (n + 1)))
    raise VersionConflictError(key, url)


def merge_into_object(
    store: Store,
    key: str,
    write_part: Callable[[np.ndarray], None],
    *,
    decode: Callable[[bytes], np.ndarray],
    new: Callable[[], np.ndarray],
    encode: Callable[[np.ndarray], tuple[Buffer, str | None]],
    is_empty: Callable[[np.ndarray], bool] | None = None,
    max_size: int | None = None,
    stored_encoding: str | None = ANY_ENCODING,
) -> None:
    """Apply ``write_part`` to the chunk stored at ``key`` and store the result conditionally.

    ``decode`` turns the stored bytes (transfer encoding removed, at most ``max_size``) into a
    private, writable chunk; ``new`` makes the chunk of a key never written; ``encode`` gives the
    bytes to store and their transfer encoding. A merged chunk for which ``is_empty`` is true is
    deleted instead (on the same condition). ``stored_encoding`` is the transfer encoding the
    format's writers use, when it has one (see ``Store.get``): a chunk never written then costs
    one lookup.
    """

    def attempt(_: int) -> None:
        stored, version = store.get_with_version(key, max_size=max_size, encoding=stored_encoding)
        chunk = new() if stored is None else decode(stored)
        write_part(chunk)
        if is_empty is not None and is_empty(chunk):
            if version is not None:
                store.delete_if_version(key, version)
        else:
            data, encoding = encode(chunk)
            mode: PutMode = "create" if version is None else "if_version"
            store.put(key, data, mode=mode, version=version, content_encoding=encoding)

    retry_conflicts(key, store.url, attempt)
