"""Rewriting a metadata document (an ``info``, a ``zarr.json``) without losing a concurrent change.

Two processes that add levels, resize or append at once each read the document, change it and
write it back; a plain write would keep only the last one's change. Where the store has
conditional writes, the document is put only if it is still at the version it was read at, and
re-read and changed again otherwise, the way chunk merges are (``formats.merge``).
"""

from __future__ import annotations

from collections.abc import Callable

from bigarrays.formats.bounded_json import MAX_JSON_BYTES
from bigarrays.formats.merge import retry_conflicts
from bigarrays.stores import Store
from bigarrays.stores.versions import PutMode


def update_document(store: Store, key: str, change: Callable[[bytes | None], bytes]) -> bytes:
    """Store ``change(current bytes or None)`` at ``key``, conditionally; returns what was stored.

    ``change`` may be called more than once (after each lost race) and must not have other effects;
    an exception from it leaves the document as it was.
    """
    if not store.conditional_writes:
        new = change(store.get(key, max_size=MAX_JSON_BYTES))
        store.put(key, new)
        return new

    def attempt(_: int) -> bytes:
        current, version = store.get_with_version(key, max_size=MAX_JSON_BYTES)
        new = change(current)
        mode: PutMode = "create" if version is None else "if_version"
        store.put(key, new, mode=mode, version=version)
        return new

    return retry_conflicts(key, store.url, attempt)
