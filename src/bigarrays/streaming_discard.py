"""Undoing the dataset a stream made when the stream is refused before its first frame.

``ba.stream(url, ...)`` creates the dataset before it can check the stream's own options (an
axis, a region, a pyramid that does not fit the chunks) against it. When those are refused,
nothing of the call may stay behind: the dataset's keys go, by the format's own rule of what a
dataset owns (as ``create(..., overwrite=True)`` would delete it), and so do the folder, zip
file or LMDB database the store made for it, when the call made them; an existing folder or file
keeps whatever else it held. A dataset that was there before the call is never touched: a stream
that continues one (``resume=True``, or an array passed in) discards nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bigarrays.array import BigArray
from bigarrays.errors import BigArraysError
from bigarrays.formats.existing import clear_destination
from bigarrays.stores import open_store, split_scheme

#: The schemes whose stores keep a dataset in a local folder or file.
LOCAL_SCHEMES = ("file", "zip", "lmdb")


@dataclass(frozen=True)
class Container:
    """The local folder or file a new dataset's store uses, as it was before the call."""

    path: Path
    #: The outermost part of ``path`` that did not exist (None: ``path`` existed).
    first_new: Path | None


def container_before(target: Any) -> Container | None:
    """Where ``target`` (a URL or path) keeps its data on the local disk, noted before a
    dataset is created there; None for any other store."""
    if not isinstance(target, str | os.PathLike):
        return None
    if split_scheme(os.fspath(target))[0] not in LOCAL_SCHEMES:
        return None
    try:
        store = open_store(target, read_only=True)  # a read-only store makes nothing
    except (BigArraysError, OSError, TypeError, ValueError):
        return None
    try:
        path = getattr(store, "root", None) or getattr(store, "path", None)
    finally:
        store.close()
    if not isinstance(path, Path):
        return None
    first_new = None
    for part in (path, *path.parents):
        if os.path.lexists(part):
            break
        first_new = part
    return Container(path, first_new)


def discard(vol: BigArray, container: Container | None) -> None:
    """Delete the dataset ``vol`` that this call created, then the local container the call
    made for it; close ``vol``. A failure here is left out: the caller raises the refusal."""
    try:
        clear_destination(vol.store, overwrite=True)
    except (BigArraysError, OSError):
        pass  # the store that refused the stream may refuse this too: the refusal matters
    finally:
        vol.close()
    if container is not None and container.first_new is not None:
        _remove_new(container)


def _remove_new(container: Container) -> None:
    """Remove what the store made below ``container.first_new``: empty folders, a zip file,
    an LMDB database (its data and lock files), and never a folder that holds anything else."""
    path = container.path
    if path.is_file():
        for made in (path, Path(f"{path}-lock")):  # an LMDB database without a folder
            made.unlink(missing_ok=True)
    elif (path / "data.mdb").is_file() and set(os.listdir(path)) <= {"data.mdb", "lock.mdb"}:
        shutil.rmtree(path, ignore_errors=True)
    assert container.first_new is not None
    top = container.first_new
    if not top.is_dir():
        return
    for folder, _, _ in os.walk(top, topdown=False):
        with contextlib.suppress(OSError):  # not empty: something else lives there now
            os.rmdir(folder)
