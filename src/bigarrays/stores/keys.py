"""Store keys, checked and normalized alike by every backend and for every method.

A key is a ``/``-separated path relative to the store's root; ``.`` and ``..`` segments are
resolved, and a key that then lies outside the root is refused with
:class:`~bigarrays.errors.KeyOutsideRootError`, on every backend and for every method, so that
a hostile ``info`` (a scale key ``../../home/.ssh``) cannot make a read, a write, a delete or a copy
reach past the dataset. The precomputed format does allow a scale's key to point beside the dataset
(``../other/8_8_40``) for datasets that share data; a store opened with ``allow_parent_keys=True``
(``open_store(url, allow_parent_keys=True)``, ``bigarrays.open(url, allow_parent_keys=True)``)
serves such keys. Absolute keys (``/a``) and keys with NUL bytes are never valid.
"""

from __future__ import annotations

import posixpath

from bigarrays.errors import InvalidKeyError, KeyOutsideRootError


def object_key(key: str, allow_parent: bool = False, url: str | None = None) -> str:
    """A checked, normalized key that names an object: never empty (that is the store's root)."""
    norm = check_key(key, allow_parent, url)
    if not norm:
        raise InvalidKeyError(f"{key!r} is not a key: keys name objects below the store's root")
    return norm


def check_key(key: str, allow_parent: bool = False, url: str | None = None) -> str:
    """The normalized ``key`` (see :func:`normalize_key`), refused when it is no safe key.

    Refused: NUL bytes (C APIs would cut the name short), absolute keys (``/a``: a key is
    relative to the root, and a file store would otherwise join it onto ``/``), and unless
    ``allow_parent`` a key that resolves outside the root (``..``, ``a/../../b``).
    """
    if not isinstance(key, str):
        raise TypeError(f"store keys are strings, got {type(key).__name__}")
    if "\x00" in key:
        raise InvalidKeyError(f"{key!r} is not a key: it holds a NUL byte")
    if key.startswith("/"):
        raise InvalidKeyError(f"{key!r} is not a key: keys are relative to the store's root")
    norm = normalize_key(key)
    if not allow_parent and is_outside(norm):
        raise KeyOutsideRootError(key, url)
    return norm


def is_outside(key: str) -> bool:
    """True when the normalized ``key`` lies outside the root it is relative to."""
    return key == ".." or key.startswith("../")


def normalize_key(key: str) -> str:
    """Collapse ``.``, ``..`` and repeated slashes; a key never starts with ``/``."""
    if not isinstance(key, str):
        raise TypeError(f"store keys are strings, got {type(key).__name__}")
    norm = posixpath.normpath(key.strip("/")) if key.strip("/") else ""
    return "" if norm == "." else norm
