"""Versions and put modes: the words of the optional conditional writes of
:class:`~bigarrays.stores.base.Store`."""

from __future__ import annotations

from typing import Literal

#: The ``version`` of ``put(mode="if_version")`` and ``delete_if_version`` that matches whatever is
#: stored (or nothing), while still taking part in the backend's ordering of conditional writes.
ANY_VERSION = "*"

#: How :meth:`Store.put` writes: whatever is stored, only where nothing is, or only at a version.
PutMode = Literal["overwrite", "create", "if_version"]


def version_of_put(mode: PutMode, version: str | None) -> str | None:
    """The version a put in ``mode`` is held to, as ``_put_if_version`` takes it (overwrite:
    :data:`ANY_VERSION`; create: None, no value)."""
    return ANY_VERSION if mode == "overwrite" else version


def check_mode(mode: str, version: str | None) -> None:
    """Refuse a put mode that is unknown or given the wrong version."""
    if mode == "overwrite":
        if version is not None:
            raise ValueError(f"version={version!r} is for mode='if_version', not 'overwrite'")
    elif mode == "create":
        if version is not None:
            raise ValueError(f"version={version!r} is for mode='if_version', not 'create'")
    elif mode == "if_version":
        if version is None:
            raise ValueError(
                "mode='if_version' needs the version to write at (from get_with_version); "
                "mode='create' writes only where there is no value"
            )
    else:
        raise ValueError(f"mode is 'overwrite', 'create' or 'if_version', got {mode!r}")
