"""Key -> bytes stores and the URL table that picks one for a URL.

``open_store("file:///data/vol")``, ``open_store("/data/vol")`` and ``open_store("memory://x")``
return a :class:`Store`. Other backends register a factory for their scheme with
:func:`register_store`; a backend whose optional package is missing is still listed, and opening
it says which extra to install.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from bigarrays.errors import UnknownSchemeError
from bigarrays.stores.base import Store
from bigarrays.stores.file import FileStore
from bigarrays.stores.keys import normalize_key
from bigarrays.stores.memory import MemoryStore

StoreFactory = Callable[..., Store]


def _lazy(module: str, name: str) -> StoreFactory:
    """A factory that imports ``bigarrays.stores.<module>`` only when a URL needs it."""

    def factory(url: str, **options: Any) -> Store:
        import importlib

        cls: StoreFactory = getattr(importlib.import_module(f"bigarrays.stores.{module}"), name)
        return cls(url, **options)

    factory.__name__ = factory.__qualname__ = name
    return factory


_TABLE: dict[str, StoreFactory] = {
    "file": FileStore,
    "memory": MemoryStore,
    # Network backends: their client packages are optional extras (s3, gcs, http).
    "s3": _lazy("s3", "S3Store"),
    "gs": _lazy("gcs", "GCSStore"),
    "http": _lazy("http", "HTTPStore"),
    "https": _lazy("http", "HTTPStore"),
}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")

# Single-file stores, and fsspec for everything else. A "NAME+*" entry serves every URL that
# starts with "NAME+" (fsspec+sftp://..., fsspec+simplecache::s3://...); a plain path ending in
# .zip opens the zip store; a scheme no entry serves but fsspec knows falls back to fsspec.
_TABLE.update({
    "zip": _lazy("zip", "ZipStore"),
    "lmdb": _lazy("lmdb", "LmdbStore"),
    "fsspec+*": _lazy("fsspec", "FsspecStore"),
    # Read-only: keys that name byte ranges of other files (kerchunk references).
    "reference": _lazy("reference", "ReferenceStore"),
})  # fmt: skip
_FAMILY = re.compile(r"^([A-Za-z][A-Za-z0-9.\-]*)\+")


def register_store(scheme: str, factory: StoreFactory) -> None:
    """Make ``scheme://...`` URLs open with ``factory(url, read_only=..., **options)``."""
    _TABLE[scheme.lower()] = factory


def known_schemes() -> list[str]:
    return sorted(_TABLE)


def split_scheme(url: str) -> tuple[str, str]:
    """``("s3", "s3://b/p")`` for a URL; ``("file", path)`` for a plain path."""
    m = _SCHEME.match(url)
    if m is None:
        return ("file", url)
    # Schemes are case-insensitive (RFC 3986) but backends match their prefix literally: hand them
    # the lower-case form, or "FILE:///x" would be taken for the relative path "FILE:/x".
    scheme = m.group(1).lower()
    return (scheme, scheme + url[m.end(1) :])


def open_store(
    url: str | os.PathLike[str] | Store,
    *,
    read_only: bool = False,
    allow_parent_keys: bool = False,
    **options: Any,
) -> Store:
    """The store for ``url``; a Store passes through unchanged (and takes no options).

    ``allow_parent_keys=True`` serves keys that resolve beside the root (``../other/8_8_40``, a
    precomputed scale stored beside its dataset); by default they are refused with
    :class:`~bigarrays.errors.KeyOutsideRootError` (see :mod:`bigarrays.stores.keys`).
    """
    if isinstance(url, Store):
        if allow_parent_keys and not url.allow_parent_keys:
            options = {"allow_parent_keys": True, **options}
        if options:
            names = ", ".join(f"{k}=" for k in options)
            raise TypeError(
                f"{names}: store options apply when a store is opened from a URL, not to the "
                f"open store {url.url!r}"
            )
        return url
    url = os.fspath(url)  # accepts pathlib.Path too
    scheme, rest = split_scheme(url)
    factory, rest = _factory_for(url, scheme, rest)
    store = factory(rest, read_only=read_only, **options)
    if allow_parent_keys:
        store.allow_parent_keys = True
    return store


def _factory_for(url: str, scheme: str, rest: str) -> tuple[StoreFactory, str]:
    """The factory for ``url`` and the URL to hand it (see the notes above ``_TABLE.update``)."""
    family = _FAMILY.match(url)
    if family is not None and f"{family.group(1).lower()}+*" in _TABLE:
        return _TABLE[f"{family.group(1).lower()}+*"], url
    factory = _TABLE.get(scheme)
    if scheme == "file" and rest.rstrip("/").lower().endswith(".zip"):
        from bigarrays.stores.zip import is_zip_path

        if is_zip_path(rest):
            return _TABLE["zip"], rest
    if factory is None:
        from bigarrays.stores.fsspec import fsspec_knows

        if "fsspec+*" in _TABLE and fsspec_knows(scheme):
            return _TABLE["fsspec+*"], rest
        raise UnknownSchemeError(scheme, _TABLE)
    return factory, rest


def join_url(url: str, key: str) -> str:
    """The URL of ``key`` under the store URL ``url``."""
    return url.rstrip("/") + "/" + normalize_key(key) if key else url


def delete_folder(store: Store, folder: str, *, keep: Sequence[str] = ()) -> None:
    """Delete every key below ``folder``; nothing at all when the folder is the store's root, lies
    outside it, or holds or lies inside one of the ``keep`` folders (a dataset's first level,
    say; the root as a kept folder keeps only itself): deleting a dataset's part must never
    reach past it."""
    prefix = normalize_key(folder) + "/"
    if prefix == "/" or prefix.startswith("../"):
        return
    for kept in keep:
        other = normalize_key(kept) + "/"
        if other != "/" and (other.startswith(prefix) or prefix.startswith(other)):
            return
    for key in list(store.list(prefix)):
        store.delete(key)


__all__ = [
    "FileStore",
    "MemoryStore",
    "Store",
    "delete_folder",
    "join_url",
    "known_schemes",
    "normalize_key",
    "open_store",
    "register_store",
    "split_scheme",
]
