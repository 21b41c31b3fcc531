"""Single-file zip store: a whole dataset in one ``.zip``, read in place and appended to.

URLs: ``zip:///data/vol.zip``, or a plain path (or ``file://`` URL) ending in ``.zip``;
``zip:///data/vol.zip/inner/folder`` names a folder inside the archive (``zip -r vol.zip vol``
makes entries ``vol/info``, ``vol/8_8_40/...``: open ``zip:///data/vol.zip/vol``).

Reading: the central directory (the archive's table of contents) is read once, at the first use.
An entry's bytes are read with ``os.pread`` at its offset, so reads run from many threads at once
and a byte range costs what it reads; nothing is extracted. Stored entries (method 0, which is
what bigarrays writes: chunks are compressed already) are read in place; deflated entries (what
``zip`` makes by default) are inflated whole on every read.

Writing appends. A ``put`` writes a local header and the value at the end of the file, and the new
entry supersedes an older one of the same name (a value given in pieces, ``put_parts``, is
written from them in turn with ``pwritev``, never joined); the central directory, which lists
only live entries, is written by :meth:`ZipStore.checkpoint`, :meth:`ZipStore.close` (so by
``BigArray.close()`` and ``with ba.open(...)``); a handle dropped without ``close`` is settled at
the next open or close of a zip handle in the process, at interpreter exit at the latest (never
from inside the garbage collector, which may run while a write holds the archive). The
trade-offs:

- Rewrites and deletes leave the old bytes behind as dead space (the directory stops naming them),
  so a volume rewritten in place grows; ``bigarrays cp old.zip new.zip`` copies only live entries.
- A crash (``kill -9``, power loss) loses what was written after the last checkpoint and no more:
  every checkpoint flushes the entries to disk, then writes and flushes a complete directory. The
  file then ends in entries no directory names; bigarrays finds the last complete directory and
  opens the file as it was at that checkpoint, and the next writer cuts the lost tail off. Other
  zip tools want the directory at the very end: open it for writing with bigarrays and close it.
- One writer process at a time: the first write takes an exclusive ``flock`` on the file, and a
  second process that writes gets a :class:`~bigarrays.errors.StoreError` that says so. Readers in
  other processes see the archive as of the last checkpoint before their first read;
  :meth:`ZipStore.refresh` reads the directory again.
- Within a process every handle on one file shares one archive: a read-only handle sees the
  writes of a writable one at once. A forked child never writes through its parent's archive: its
  handles open the file afresh (and may write only once the parent has closed it).
- Conditional writes (``put(mode="create" | "if_version")``) are checked under the archive's
  lock; an entry's version is its offset in the file, which no other write shares.
- Transfer encodings are kept in the entry's name (``KEY.gz``), as on disk.
- Zip64 records are written when needed (more than 65,534 entries, or offsets or sizes of 4 GiB
  and more), so there is no limit but the disk's.
"""

from __future__ import annotations

import os
import posixpath
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from bigarrays.errors import (
    StoreError,
    UnsupportedError,
    VersionConflictError,
)
from bigarrays.stores import content_encoding
from bigarrays.stores.base import ANY_ENCODING, Buffer, Store, local_disk_concurrency
from bigarrays.stores.file import path_from_url
from bigarrays.stores.keys import normalize_key
from bigarrays.stores.versions import ANY_VERSION, PutMode, version_of_put
from bigarrays.stores.zip_archive import Archive, EntryCheck, acquire, release, release_later
from bigarrays.stores.zip_records import Entry


def split_zip_path(url: str) -> tuple[Path, str]:
    """``(zip file, folder inside it)`` for a ``zip://`` URL, a ``file://`` URL or a plain path."""
    if url[:6].lower() == "zip://":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise StoreError(
                f"zip URLs name no host, got {url!r}; write zip:///absolute/path/file.zip"
            )
        path = Path(unquote(parts.path)).expanduser()
    else:
        path = path_from_url(url)
    path = Path(os.path.abspath(path))
    parts_ = path.parts
    for i, part in enumerate(parts_):
        if part.lower().endswith(".zip"):
            candidate = Path(*parts_[: i + 1])
            if not candidate.is_dir():
                return candidate.resolve(), normalize_key("/".join(parts_[i + 1 :]))
    return path.resolve(), ""


def is_zip_path(path: str) -> bool:
    """True for a plain path or ``file://`` URL that names a ``.zip`` file (not a folder)."""
    trimmed = path.rstrip("/")
    if not trimmed.lower().endswith(".zip"):
        return False
    try:
        return not path_from_url(trimmed).is_dir()
    except StoreError:
        return False


class ZipStore(Store):
    """A dataset in one zip file (see the module notes for what writing costs)."""

    schemes = ("zip",)

    def __init__(self, url: str | os.PathLike[str], *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.path, self.inner = split_zip_path(os.fspath(url))
        self._archive = acquire(self.path)
        self._closed = False
        self._finalizer = weakref.finalize(self, release_later, self._archive, not read_only)

    @property
    def url(self) -> str:
        inner = "/" + quote(self.inner) if self.inner else ""
        return "zip://" + self.path.as_uri().removeprefix("file://") + inner

    @property
    def default_concurrency(self) -> int:
        return local_disk_concurrency()

    def __getstate__(self) -> dict[str, Any]:
        return self._reopen_state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], read_only=state["read_only"])  # type: ignore[misc]
        self.allow_parent_keys = state.get("allow_parent_keys", False)

    # -- life cycle ------------------------------------------------------------------------------
    def checkpoint(self, *, flush: bool = True) -> None:
        """Write the central directory now: a crash after this loses nothing written before
        (the entries and the directory are flushed to disk whatever ``flush`` says)."""
        self._usable()
        self._check_writable()
        self._archive.checkpoint()

    def refresh(self) -> None:
        """Read the directory again, to see what another process has checkpointed since."""
        self._usable()
        self._archive.refresh()

    def close(self) -> None:
        """Write the central directory (for a writable handle) and let go of the file."""
        if not self._closed:
            self._closed = True
            self._finalizer.detach()
            release(self._archive, not self.read_only)

    def _usable(self) -> Archive:
        if self._closed:
            raise StoreError(f"{self.url} is closed; open it again to use it")
        if self._archive.pid != os.getpid():
            # A handle inherited through fork: appending at the parent's offsets would corrupt
            # the file, so this process opens the file afresh (and writes only if it may).
            self._finalizer.detach()
            self._archive = acquire(self.path)
            self._finalizer = weakref.finalize(
                self, release_later, self._archive, not self.read_only
            )
        return self._archive

    # -- names -----------------------------------------------------------------------------------
    def _name(self, key: str) -> str | None:
        """The entry name of ``key``; None when it climbs above the archive's root."""
        name = posixpath.normpath(f"{self.inner}/{key}") if self.inner else key
        return None if name == ".." or name.startswith("../") else name

    @staticmethod
    def _variants(name: str) -> list[tuple[str, str | None]]:
        return content_encoding.stored_names(name)

    def _lookup(
        self, key: str, encoding: str | None = ANY_ENCODING
    ) -> tuple[Entry, str | None] | None:
        archive = self._usable()
        name = self._name(key)
        if name is None or not archive.ready():
            return None
        for candidate, stored in content_encoding.stored_names(name, encoding):
            entry = archive.entries.get(candidate)
            if entry is not None:
                return entry, stored
        return None

    # -- the contract ----------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        return content_encoding.decode_stored(self._get_encoded(key), key)

    def _get_encoded(self, key: str) -> tuple[bytes, str | None] | None:
        return self._get_encoded_as(key, ANY_ENCODING)

    names_encodings = True

    def _get_encoded_as(self, key: str, encoding: str | None) -> tuple[bytes, str | None] | None:
        found = self._lookup(key, encoding)
        if found is None:
            return None
        entry, stored = found
        return self._archive.read(entry, key), stored

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        found = self._lookup(key)
        if found is None:
            return None
        entry, encoding = found
        if encoding is not None:
            return super()._get_range(key, start, length)
        return self._archive.read(entry, key, start, length)

    def _put(
        self,
        key: str,
        value: Buffer | list[memoryview],
        encoding: str | None,
        version: str | None = ANY_VERSION,
    ) -> str:
        content_encoding.check(encoding)
        archive = self._usable()
        name = self._name(key)
        if name is None:
            raise UnsupportedError(
                f"cannot write {key!r} to {self.url}: a zip entry cannot lie above the "
                "archive's root"
            )
        target = name + content_encoding.SUFFIXES[encoding] if encoding else name
        drop = [n for n, _ in self._variants(name) if n != target]
        return f"{archive.put(target, value, drop, self._checker(key, name, version)):x}"

    def _put_parts(
        self, key: str, parts: list[memoryview], mode: PutMode, version: str | None
    ) -> str:
        # The parts are appended to the entry one after another: a shard is never joined.
        return self._put(key, parts, None, version_of_put(mode, version))

    def _delete(self, key: str, version: str | None = ANY_VERSION) -> None:
        archive = self._usable()
        name = self._name(key)
        if name is None or not archive.ready():
            if version not in (None, ANY_VERSION):
                raise VersionConflictError(key, self.url)
            return
        archive.delete([n for n, _ in self._variants(name)], self._checker(key, name, version))

    def _exists(self, key: str) -> bool:
        return self._lookup(key) is not None

    def _size(self, key: str) -> int | None:
        found = self._lookup(key)
        return None if found is None else found[0].size

    # -- conditional writes: an entry's version is its offset, unique within the file ----------
    conditional_writes = True

    def _get_with_version(
        self, key: str, max_size: int | None = None
    ) -> tuple[bytes | None, str | None]:
        return self._get_with_version_as(key, max_size, ANY_ENCODING)

    def _get_with_version_as(
        self, key: str, max_size: int | None, encoding: str | None
    ) -> tuple[bytes | None, str | None]:
        found = self._lookup(key, encoding)
        if found is None:
            return None, None
        entry, encoding = found
        data = self._archive.read(entry, key)
        data = content_encoding.decode(data, encoding, key, max_size) if encoding else data
        return data, f"{entry.offset:x}"

    def _get_range_with_version(
        self, key: str, start: int, length: int | None
    ) -> tuple[bytes | None, str | None]:
        found = self._lookup(key)
        if found is None:
            return None, None
        entry, encoding = found
        if encoding is not None:  # an encoded entry cannot be read by ranges
            return super()._get_range_with_version(key, start, length)
        return self._archive.read(entry, key, start, length), f"{entry.offset:x}"

    def _checker(self, key: str, name: str, version: str | None) -> EntryCheck | None:
        if version == ANY_VERSION:
            return None
        variants = [n for n, _ in self._variants(name)]

        def check(entries: dict[str, Entry]) -> None:
            entry = next((entries[n] for n in variants if n in entries), None)
            if (None if entry is None else f"{entry.offset:x}") != version:
                raise VersionConflictError(key, self.url)

        return check

    def _put_if_version(
        self, key: str, value: Buffer, version: str | None, encoding: str | None
    ) -> str:
        return self._put(key, value, encoding, version)

    def _delete_if_version(self, key: str, version: str | None) -> None:
        self._delete(key, version)

    def _list(self, prefix: str) -> Iterator[str]:
        archive = self._usable()
        if not archive.ready():
            return
        base = self.inner + "/" if self.inner else ""
        with archive.lock:
            names = list(archive.entries)
        inside = (name[len(base) :] for name in sorted(names) if name.startswith(base))
        yield from content_encoding.keys_of(inside, prefix)
