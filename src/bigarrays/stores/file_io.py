"""Plain file I/O on descriptors, as the folder store does it: writes and reads carried on where a
system call does less than asked, and what fails turned into the store's errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from bigarrays.errors import AccessDeniedError, StoreError


def write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def pread_all(fd: int, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of an open file (fewer at its end), read on where a ``pread``
    returns less than asked before the end."""
    parts, pos = [], start
    while pos < stop:  # pread may return less than asked (huge ranges, network disks)
        part = os.pread(fd, stop - pos, pos)
        if not part:
            break
        parts.append(part)
        pos += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def open_to_read(path: str | Path) -> int | None:
    """A descriptor of the file at ``path`` opened to read, or None when there is no file."""
    try:
        return os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except PermissionError as exc:
        raise AccessDeniedError(f"cannot read {path}: permission denied") from exc
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def fstat_of(fd: int, path: str | Path) -> os.stat_result:
    try:
        return os.fstat(fd)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def preadv_all(fd: int, view: memoryview, start: int, path: str | Path) -> int:
    """Fill ``view`` from byte ``start`` of an open file; the bytes read (fewer at its end)."""
    try:
        total = os.preadv(fd, [view], start)
        while 0 < total < len(view):  # short reads: network file systems, huge files
            n = os.preadv(fd, [view[total:]], start + total)
            if n == 0:
                break
            total += n
        return total
    except IsADirectoryError:
        raise  # the caller's "no plain value"
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def write_error(path: str, exc: OSError) -> StoreError:
    if isinstance(exc, PermissionError):
        return AccessDeniedError(f"cannot write {path}: permission denied")
    if exc.errno == errno.ENOSPC:
        return StoreError(f"cannot write {path}: no space left on device")
    return StoreError(f"cannot write {path}: {exc}")
