"""A file object over one object of a store, read by ranged reads with a read-ahead window.

The indexers hand it to the libraries that know the container formats (``tarfile``,
``zipfile``, ``h5py``, ``tifffile``): they read headers and seek past data, and each miss of the
window costs one ranged read, so a tar on S3 or HTTP is indexed by reading its headers only.
``base`` makes a member of a tar look like a file of its own (an HDF5 file inside a tar).
"""

from __future__ import annotations

import io
import posixpath
from typing import Any

from bigarrays.errors import DatasetNotFoundError
from bigarrays.stores import Store, open_store, split_scheme

#: Read-ahead after a short jump: headers of small members lie close together.
WINDOW = 1 << 20
#: Read-ahead after a jump past a large member: its header and a little more.
SMALL_WINDOW = 16 << 10


def split_url(url: str) -> tuple[str, str]:
    """The store URL of the folder holding ``url``, and the file's name in it."""
    head, name = posixpath.split(url.rstrip("/"))
    scheme, _ = split_scheme(url)
    if not name or (scheme != "file" and head.endswith(":/")):
        raise DatasetNotFoundError(f"{url!r} names no file")
    return head or ".", name


def open_file_store(url: str, **options: Any) -> tuple[Store, str]:
    """The read-only store of the folder holding ``url`` and the key of the file in it."""
    head, name = split_url(url)
    return open_store(head, read_only=True, **options), name


class RangedFile(io.RawIOBase):
    """The bytes ``[base, base + size)`` of ``store[key]`` as a seekable, read-only file."""

    def __init__(self, store: Store, key: str, base: int = 0, size: int | None = None) -> None:
        super().__init__()
        self.store, self.key, self.base = store, key, base
        if size is None:
            total = store.size(key)
            if total is None:
                raise DatasetNotFoundError(f"no file {key!r} in {store.url}")
            size = total - base
        self.length = size
        self.pos = 0
        self._buf = b""
        self._buf_at = 0
        self._last_jump = 0
        #: Ranged reads made so far (what indexing a remote file costs).
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            new = offset
        elif whence == 1:
            new = self.pos + offset
        else:
            new = self.length + offset
        if new < 0:
            raise ValueError(f"negative seek position {new}")
        self._last_jump = max(self._last_jump, new - self.pos)
        self.pos = new
        return new

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self.length - self.pos))
        if want == 0:
            return 0
        inside = self._buf_at <= self.pos and self.pos + want <= self._buf_at + len(self._buf)
        if not inside:
            self._fill(want)
        start = self.pos - self._buf_at
        got = self._buf[start : start + want]
        view[: len(got)] = got
        self.pos += len(got)
        return len(got)

    def _fill(self, want: int) -> None:
        # Start a byte early: tarfile checks the byte before each header for the end of the data.
        start = max(0, self.pos - 1)
        window = SMALL_WINDOW if self._last_jump > WINDOW else WINDOW
        n = min(max(want + (self.pos - start), window), self.length - start)
        data = self.store.get_range(self.key, self.base + start, n)
        self.requests += 1
        self._buf, self._buf_at, self._last_jump = data or b"", start, 0

    def read_at(self, offset: int, n: int) -> bytes:
        """``n`` bytes from ``offset`` of this file (fewer at its end), through the window."""
        self.seek(offset)
        out = self.read(n)
        return out or b""
