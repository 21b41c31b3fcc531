"""Local file system store: one file per key under a root folder.

Every write of a key (plain, conditional or a delete) holds the key's lock: the file ``KEY`` +
``.bigarrays-tmp-lock`` beside it, opened and locked with ``flock``. The new value is written into
the lock file itself and the lock file is renamed into place, so a reader never sees a partial file,
the rename both publishes the value and hands the lock on, and a write costs no more system calls
than a temp file and a rename would. A waiter that finds the lock file renamed or removed under it
takes a fresh one. Because every write is ordered by the lock, a conditional write
(``put(mode="if_version")``: compare the file's identity, inode, modification time in ns and
size, with the expected version) can never be overtaken by a plain ``put`` between its check and
its rename. A value given in parts (``put_parts``) is written part after part, an iterator's as
it gives them (a shard whose last chunks are still being encoded), and renamed after the last.

A value written at offsets (``open_value``: a stream's raw chunks, filled frame by frame) goes
into a file of its own beside the key (``KEY.bigarrays-tmp-PID-N``), renamed into place under the
key's lock when it is published; the lock is not held while the value is written.

The kernel releases a ``flock`` when its process dies, so a writer killed at any moment leaves at
worst a lock file that no key lists and that the next writer takes over at once: nothing waits for
a timeout. (A value being written at offsets is left as its own temp file, which no key lists
either.) This holds between threads and processes on one machine, and on network file systems
whose ``flock`` is a real lock (NFSv4, or NFSv3 with lockd).

Transfer encodings live in the file name (``KEY.gz``), the convention CloudVolume uses.
"""

from __future__ import annotations

import itertools
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bigarrays.errors import (
    AccessDeniedError,
    InvalidKeyError,
    StaleReadError,
    StoreError,
    VersionConflictError,
)
from bigarrays.stores import content_encoding
from bigarrays.stores.base import ANY_ENCODING, NOT_FOUND, Buffer, Run, Store
from bigarrays.stores.file_io import (
    fstat_of,
    open_to_read,
    pread_all,
    preadv_all,
    write_all,
    write_error,
)
from bigarrays.stores.file_locks import TMP_MARK, lock_key, open_lock, unlock_key
from bigarrays.stores.file_value import FileValue
from bigarrays.stores.ranges import ByteRange, Span
from bigarrays.stores.value_writer import ValueWriter
from bigarrays.stores.versions import ANY_VERSION, PutMode, version_of_put

#: Numbers the files of values written at offsets (``open_value``) within a process.
_VALUE_NUMBERS = itertools.count()


def path_from_url(url: str) -> Path:
    """``file:///a/b``, ``file://localhost/a/b`` or a plain path -> an absolute Path."""
    if url.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise StoreError(f"file URLs name no host, got {url!r}; write file:///absolute/path")
        return Path(unquote(parts.path)).resolve()
    return Path(url).expanduser().resolve()


#: Spans of up to this many bytes in all are read one after the other on the calling thread.
_SERIAL_SPANS = 4 << 20


class FileStore(Store):
    schemes = ("file",)

    def __init__(self, root: str | os.PathLike[str], *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.root = path_from_url(os.fspath(root))
        self._root_str = str(self.root)
        #: Folders known to exist, so that a put does not ask the file system again.
        self._made_dirs: set[str] = set()
        # Files written since the last checkpoint, once a checkpoint was asked for.
        self._unsynced: set[str] | None = None
        # A flush that failed, which every later flush reports again (see checkpoint).
        self._flush_failure: StoreError | None = None

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def _key(self, key: str) -> str:
        norm = super()._key(key)
        if "\\" in norm:
            # A path separator on Windows: "..\\x" would climb out there whatever the checks say.
            raise InvalidKeyError(f"{key!r} is not a key of a file store: it holds a backslash")
        return norm

    def _path(self, key: str) -> Path:
        # ``key`` is checked (Store._key): ".." appears only when allow_parent_keys says so.
        return self.root / key

    def _chunk_path(self, key: str) -> str:
        """The path of ``key`` for the per-chunk reads, a string made without pathlib (which
        cost a tenth of a small sharded read)."""
        if ".." in key or "\\" in key or "\x00" in key or key[:1] == "/":
            # The hot path takes keys as given; only those that might climb out pay the check.
            key = self._key(key)
        return f"{self._root_str}/{key}"

    def _read(self, path: str | Path, start: int = 0, length: int | None = None) -> bytes | None:
        try:
            with open(path, "rb", buffering=0) as f:
                if start < 0:
                    size = os.fstat(f.fileno()).st_size
                    start = max(0, size + start)
                if start:
                    f.seek(start)
                if length is None:
                    return f.readall()
                # One read() of an unbuffered file is one system call, which may return fewer
                # bytes than asked (large ranges, network file systems): loop until done or EOF.
                parts = []
                while length > 0:
                    part = f.read(length)
                    if not part:
                        break
                    parts.append(part)
                    length -= len(part)
                return b"".join(parts)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except IsADirectoryError:
            return None
        except PermissionError as exc:
            raise AccessDeniedError(f"cannot read {path}: permission denied") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc

    reads_into_buffers = True

    def read_into(
        self,
        key: str,
        buffer: memoryview,
        offset: int = 0,
        size: int | None = None,
        *,
        encoding: str | None = ANY_ENCODING,
    ) -> int | None:
        """See :meth:`Store.read_into`: ``os.preadv`` of the plain file (not ``KEY.gz``)."""
        path = self._chunk_path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            # Told that the value is plain, the failed open proves it missing: one lookup.
            return NOT_FOUND if encoding is None else None
        except IsADirectoryError:
            return None
        except PermissionError as exc:
            raise AccessDeniedError(f"cannot read {self._path(key)}: permission denied") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {self._path(key)}: {exc}") from exc
        try:
            if size is not None and os.fstat(fd).st_size != size:
                return -1
            return preadv_all(fd, buffer, offset, path)
        except IsADirectoryError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self._path(key)}: {exc}") from exc
        finally:
            os.close(fd)

    def read_ranges_into(
        self,
        key: str,
        ranges: Sequence[ByteRange],
        buffer: memoryview,
        each: Callable[[int, memoryview], None],
        version: str | None,
    ) -> bool:
        """See :meth:`Store.read_ranges_into`: ``os.preadv`` of the plain file, one open."""
        path = self._chunk_path(key)
        fd = open_to_read(path)
        if fd is None:
            return False
        try:
            st = fstat_of(fd, path)
            if not stat.S_ISREG(st.st_mode):
                return False
            if version != ANY_VERSION and self._version_of(st) != version:
                raise StaleReadError(key, self.url)
            for i, (start, length) in enumerate(ranges):
                view = buffer[:length]
                each(i, view[: preadv_all(fd, view, start, path)])
            return True
        finally:
            os.close(fd)

    def _get(self, key: str) -> bytes | None:
        return content_encoding.decode_stored(self._get_encoded(key), key)

    def _get_encoded(self, key: str) -> tuple[bytes, str | None] | None:
        return self._get_encoded_as(key, ANY_ENCODING)

    names_encodings = True

    def _get_encoded_as(self, key: str, encoding: str | None) -> tuple[bytes, str | None] | None:
        # One open per name: a failed open is the whole lookup (no stat first).
        for path, stored in content_encoding.stored_names(os.path.join(self._root_str, key),
                                                          encoding):  # fmt: skip
            data = self._read(path)
            if data is not None:
                return data, stored
        return None

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        data = self._read(self._path(key), start, length)
        if data is not None:
            return data
        # An encoded file cannot be read by ranges: decode the whole value and cut it.
        return super()._get_range(key, start, length) if self._encoded_path(key) else None

    def _encoded_path(self, key: str) -> Path | None:
        path = self._path(key)
        for suffix in content_encoding.SUFFIXES.values():
            candidate = path.with_name(path.name + suffix)
            if candidate.is_file():
                return candidate
        return None

    def _put(self, key: str, value: Buffer, encoding: str | None) -> str:
        return self._write(key, value, encoding, ANY_VERSION)

    writes_parts_in_turn = True

    def _put_parts(
        self, key: str, parts: list[memoryview], mode: PutMode, version: str | None
    ) -> str:
        return self._write(key, parts, None, version_of_put(mode, version))

    def _put_parts_in_turn(
        self, key: str, parts: Iterator[memoryview], mode: PutMode, version: str | None
    ) -> str:
        return self._write(key, parts, None, version_of_put(mode, version))

    def _write(
        self,
        key: str,
        value: Buffer | list[memoryview] | Iterator[memoryview],
        encoding: str | None,
        version: str | None,
    ) -> str:
        """Put ``value`` (or its parts in turn, an iterator's as it gives them) under the key's
        lock, if the key is at ``version`` (any: ANY_VERSION); the new version."""
        content_encoding.check(encoding)
        # Plain strings and os calls: this runs once per chunk written, and pathlib's objects
        # cost more than the system calls.
        base = os.path.join(self._root_str, key)
        path = base if encoding is None else base + content_encoding.SUFFIXES[encoding]
        views: Iterable[memoryview]
        if isinstance(value, Iterator):
            views = (v.cast("B") for v in value)
        else:  # before the lock: a value that is no buffer
            whole = value if isinstance(value, list) else [value]
            views = [memoryview(v).cast("B") for v in whole]
        fd, lock, held = lock_key(base, self._made_dirs)
        published = False
        try:
            if version != ANY_VERSION:
                self._check_version(key, version)
            for view in views:  # an iterator's own errors go out as they are
                try:
                    write_all(fd, view)
                except OSError as exc:
                    raise write_error(path, exc) from exc
            version_now = self._publish(fd, lock, base, path)
            published = True
            return version_now
        finally:
            unlock_key(fd, lock, held, published)

    def _publish(self, fd: int, written: str, base: str, path: str) -> str:
        """Rename the file ``written`` (open as ``fd``, the new value in it) to ``path``, the key's
        lock held; the new value's version."""
        # The same key under another encoding would shadow or be shadowed by this one; removed
        # before the rename, while the lock still orders writes of this key.
        self._remove_variants(base, keep=path)
        try:
            # A version is (inode, mtime, size). Inodes are reused at once and the kernel's own
            # mtime may be a coarse tick, so two values of one key written within a tick could
            # share a version; a clock read in ns keeps them apart.
            stamp = time.time_ns()
            os.utime(fd, ns=(stamp, stamp))
            os.replace(written, path)
        except OSError as exc:
            raise write_error(path, exc) from exc
        if self._unsynced is not None:
            self._unsynced.add(path)
        # The renamed file is the open one: its identity is the version of what was put.
        return self._version_of(os.fstat(fd))

    writes_at_offsets = True

    def _open_value(self, key: str) -> ValueWriter:
        base = os.path.join(self._root_str, key)
        # A file of its own (the temp mark keeps it out of listings), renamed into place
        # under the key's lock: the lock is held for the publish only, not while the value is
        # written (a stream's slab, for as long as its frames take to come).
        temp = f"{base}{TMP_MARK}{os.getpid()}-{next(_VALUE_NUMBERS)}"
        fd = open_lock(temp, self._made_dirs)  # folder made, file created
        return FileValue(self, base, temp, fd)

    def _remove_variants(self, base: str, keep: str | None) -> None:
        for candidate in (base, *(base + s for s in content_encoding.SUFFIXES.values())):
            if candidate != keep:
                try:
                    os.unlink(candidate)
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    pass
                except PermissionError as exc:
                    raise AccessDeniedError(
                        f"cannot remove {candidate}: permission denied"
                    ) from exc

    def _delete(self, key: str) -> None:
        self._delete_if_version(key, ANY_VERSION)

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file() or self._encoded_path(key) is not None

    def _size(self, key: str) -> int | None:
        for path in [self._path(key), self._encoded_path(key)]:
            if path is not None:
                try:
                    st = path.stat()
                except (FileNotFoundError, NotADirectoryError):
                    continue
                # A folder of keys is no key (get and exists say so); its size is the inode's.
                if stat.S_ISREG(st.st_mode):
                    return st.st_size
        return None

    def checkpoint(self, *, flush: bool = True) -> None:
        """With ``flush``, flush to disk the files written since the last such checkpoint, then
        their folders (the renames). The first call starts keeping count: a store never
        checkpointed pays nothing, and what it wrote before is the page cache's to flush.

        A failed flush fails every later one too: the kernel may have dropped the pages it
        could not write and reports that once, so a second ``fsync`` could succeed over lost
        data (and the files it did not reach would go unflushed). Open the store again to go
        on after checking what reached the disk."""
        if not flush:
            return
        if self._flush_failure is not None:
            raise StoreError(
                f"cannot flush {self.url}: an earlier flush failed ({self._flush_failure}); "
                "what was written since may not be on disk"
            ) from self._flush_failure
        if self._unsynced is None:
            self._unsynced = set()
            return
        paths, self._unsynced = self._unsynced, set()
        for path in [*sorted(paths), *sorted({os.path.dirname(p) for p in paths})]:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # replaced or deleted since: its successor is in the set
            try:
                os.fsync(fd)
            except OSError as exc:
                self._flush_failure = write_error(path, exc)
                raise self._flush_failure from exc
            finally:
                os.close(fd)

    # -- conditional writes ----------------------------------------------------------------------
    conditional_writes = True

    @staticmethod
    def _version_of(st: os.stat_result) -> str:
        return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"

    def _stored_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else self._encoded_path(key)

    def _current_version(self, key: str) -> str | None:
        path = self._stored_path(key)
        if path is None:
            return None
        try:
            return self._version_of(path.stat())
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _get_with_version_as(
        self, key: str, max_size: int | None, encoding: str | None
    ) -> tuple[bytes | None, str | None]:
        if encoding == ANY_ENCODING:
            return self._get_with_version(key, max_size)
        ((path, _),) = content_encoding.stored_names(os.path.join(self._root_str, key), encoding)
        try:
            with open(path, "rb", buffering=0) as f:
                # fstat and read the same open file: the version names exactly these bytes.
                version = self._version_of(os.fstat(f.fileno()))
                data = f.readall()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None, None
        except PermissionError as exc:
            raise AccessDeniedError(f"cannot read {path}: permission denied") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        data = content_encoding.decode(data, encoding, key, max_size) if encoding else data
        return data, version

    def _get_with_version(
        self, key: str, max_size: int | None = None
    ) -> tuple[bytes | None, str | None]:
        for _ in range(100):
            path = self._stored_path(key)
            if path is None:
                return None, None
            try:
                with open(path, "rb", buffering=0) as f:
                    # fstat and read the same open file: the version names exactly these bytes.
                    version = self._version_of(os.fstat(f.fileno()))
                    data = f.readall()
            except (FileNotFoundError, NotADirectoryError):
                continue  # replaced or deleted between the look and the open: look again
            except PermissionError as exc:
                raise AccessDeniedError(f"cannot read {path}: permission denied") from exc
            except OSError as exc:
                raise StoreError(f"cannot read {path}: {exc}") from exc
            if path.name != self._path(key).name:
                encoding = next(e for e, sfx in content_encoding.SUFFIXES.items()
                                if path.name.endswith(sfx))  # fmt: skip
                data = content_encoding.decode(data, encoding, key, max_size)
            return data, version
        raise StoreError(f"cannot read {self._path(key)}: it keeps changing")

    def _get_range_with_version(
        self, key: str, start: int, length: int | None
    ) -> tuple[bytes | None, str | None]:
        got = self._read_at_version(key, start, length)
        if got is not None:
            return got
        # An encoded file (KEY.gz) cannot be read by ranges: the whole value, then cut.
        return super()._get_range_with_version(key, start, length)

    def _get_range_if_version(
        self, key: str, start: int, length: int | None, version: str | None
    ) -> bytes | None:
        got = self._read_at_version(key, start, length)
        if got is None:
            return super()._get_range_if_version(key, start, length, version)
        if version != ANY_VERSION and got[1] != version:
            raise StaleReadError(key, self.url)
        return got[0]

    def _read_at_version(
        self, key: str, start: int, length: int | None
    ) -> tuple[bytes, str] | None:
        """A range of the plain file and its version, fstat'ed on the same open file (so the
        version names exactly these bytes); None when there is no plain file."""
        path = self._path(key)
        fd = open_to_read(path)
        if fd is None:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            version = self._version_of(st)
            if start < 0:
                start = max(0, st.st_size + start)
            stop = st.st_size if length is None else min(st.st_size, start + length)
            return pread_all(fd, start, stop), version
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        finally:
            os.close(fd)

    def _get_spans(
        self, key: str, spans: Sequence[Span], checked: bool, version: str | None,
        run: Run | None,
    ) -> list[bytes | None]:  # fmt: skip
        """Every span of the plain file through one open and one ``fstat``: the spans of a shard
        come from one version of it, and a few small chunks cost one open, not one each. Short
        spans are read on this thread (a hand-over costs more than a page-cache read); long
        ones go through ``run`` to overlap."""
        if run is not None and len(spans) > 1 and sum(s.length for s in spans) > _SERIAL_SPANS:
            return super()._get_spans(key, spans, checked, version, run)
        path = self._path(key)
        fd = open_to_read(path)
        if fd is None:  # no plain file: perhaps KEY.gz, which the generic path reads and cuts
            return super()._get_spans(key, spans, checked, version, None)
        try:
            st = os.fstat(fd)
            plain = stat.S_ISREG(st.st_mode)
            stale = checked and version != ANY_VERSION and self._version_of(st) != version
            parts = None if not plain or stale else [
                pread_all(fd, s.start, min(s.end, st.st_size)) for s in spans
            ]  # fmt: skip
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        finally:
            os.close(fd)
        if parts is None:
            if not plain:
                return super()._get_spans(key, spans, checked, version, None)
            raise StaleReadError(key, self.url)
        return [*parts]

    def _check_version(self, key: str, version: str | None) -> None:
        if version != ANY_VERSION and self._current_version(key) != version:
            raise VersionConflictError(key, self.url)

    def _put_if_version(
        self, key: str, value: Buffer, version: str | None, encoding: str | None
    ) -> str:
        return self._write(key, value, encoding, version)

    def _delete_if_version(self, key: str, version: str | None) -> None:
        base = os.path.join(self._root_str, key)
        if version == ANY_VERSION and not self._exists(key):
            return  # nothing to delete: take no lock (and make no folder) for it
        fd, lock, held = lock_key(base, self._made_dirs)
        try:
            if version != ANY_VERSION:
                self._check_version(key, version)
            self._remove_variants(base, keep=None)
        finally:
            unlock_key(fd, lock, held, published=False)

    def _list(self, prefix: str) -> Iterator[str]:
        # Walk only the folder the prefix lies in, not the whole tree.
        folder, _, _ = prefix.rpartition("/")
        start = self._path(folder)

        def stored() -> Iterator[str]:
            for dirpath, dirnames, filenames in os.walk(start):
                dirnames.sort()
                rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                rel_dir = "" if rel_dir == "." else rel_dir + "/"
                yield from (rel_dir + name for name in sorted(filenames) if TMP_MARK not in name)

        yield from content_encoding.keys_of(stored(), prefix)
