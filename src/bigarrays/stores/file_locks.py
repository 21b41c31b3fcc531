"""A key's lock in a folder store: the file ``KEY`` + ``.bigarrays-tmp-lock`` beside it, locked with
``flock``, into which a write puts the new value before renaming it into place (see
:mod:`bigarrays.stores.file`)."""

from __future__ import annotations

import fcntl
import os

from bigarrays.stores.file_io import write_error

#: Marks the files beside the keys that are no keys (locks, values being written): listings skip
#: them.
TMP_MARK = ".bigarrays-tmp-"
#: Suffix of a key's lock file (it carries the temp mark, so listings never show it).
_LOCK_SUFFIX = TMP_MARK + "lock"


def open_lock(lock: str, made_dirs: set[str]) -> int:
    """The file ``lock`` opened to read and write, made (and its folder) where missing;
    ``made_dirs`` holds the folders known to exist, so that the file system is asked once."""
    parent = os.path.dirname(lock)
    if parent not in made_dirs:
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise write_error(lock, exc) from exc
        made_dirs.add(parent)
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:  # the folder was removed behind our back: make it again
        made_dirs.discard(parent)
        return open_lock(lock, made_dirs)
    except OSError as exc:
        raise write_error(lock, exc) from exc


def lock_key(base: str, made_dirs: set[str]) -> tuple[int, str, os.stat_result]:
    """Take the lock of the key stored at ``base``: the lock file's fd, path and identity.

    The caller may write the new value into the fd and rename the lock file into place,
    which hands the lock to the next writer; :func:`unlock_key` ends it either way.
    """
    lock = base + _LOCK_SUFFIX
    while True:
        fd = open_lock(lock, made_dirs)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(lock)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            break
        # The previous holder renamed or removed this file: it is no longer the lock.
        os.close(fd)
    if held.st_size:  # what a writer killed before its rename left in the file
        try:
            os.ftruncate(fd, 0)
        except BaseException:
            unlock_key(fd, lock, held, published=False)
            raise
    return fd, lock, held


def unlock_key(fd: int, lock: str, held: os.stat_result, published: bool) -> None:
    """Release a lock from :func:`lock_key`; ``published``: the lock file was renamed away."""
    if not published:
        try:
            # Removed before it is released, so that a waiter sees it is no longer the lock.
            now = os.stat(lock)
            if (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
                os.unlink(lock)
        except OSError:
            pass
    os.close(fd)
