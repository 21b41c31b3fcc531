"""The zip store's archives: one shared archive per file and process, written and read through
the records of :mod:`bigarrays.stores.zip_records`.

An :class:`Archive` owns the file descriptor, the table of live entries and the write lock;
every :class:`~bigarrays.stores.zip.ZipStore` handle on the same file shares it (``acquire`` /
``release``). Entries are stored (method 0) and read in place with ``os.pread``; deflated entries
made by other tools are inflated whole. Zip64 records are written when sizes or counts need them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from bigarrays.errors import (
    AccessDeniedError,
    BigArraysWarning,
    CorruptChunkError,
    StoreError,
    UnsupportedError,
)
from bigarrays.stores.base import Buffer
from bigarrays.stores.zip_records import (
    END,
    LOCAL,
    LOCAL_SIG,
    UTF8_FLAG,
    Entry,
    central_record,
    dos_now,
    end_records,
    find_directory,
    local_header,
    read_at,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; one writer is then on trust
    fcntl = None  # type: ignore[assignment]

try:
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a core dependency
    from zlib import crc32 as _crc32


#: Buffers one ``pwritev`` takes at most (POSIX guarantees 16; Linux and macOS take 1024).
try:
    _IOV_MAX = max(16, os.sysconf("SC_IOV_MAX"))  # -1: no limit known
except (AttributeError, ValueError, OSError):  # pragma: no cover - no sysconf, or no such name
    _IOV_MAX = 16


def _pwrite(fd: int, buffers: Sequence[Buffer], offset: int) -> None:
    views = [memoryview(b).cast("B") for b in buffers]
    views = [v for v in views if len(v)]
    while views:
        n = os.pwritev(fd, views[:_IOV_MAX], offset)
        offset += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]


EntryCheck = Callable[[dict[str, "Entry"]], None]


class Archive:
    """The state of one zip file, shared by every handle on it in this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = os.getpid()  # a forked child gets archives of its own, never its parent's
        self.handles = 0
        self.lock = threading.RLock()
        self.entries: dict[str, Entry] = {}
        self.fd: int | None = None
        self.old_fds: list[int] = []
        self.writer = False
        self.end = 0  # where the next entry goes
        self.directory_end = 0  # the end of the last directory written or read
        self.dirty = False
        self.pending = 0  # puts that reserved space and are writing it
        #: Set by a failed fsync: no later directory may name entries that may be lost.
        #: (The words, not the exception: its traceback would hold the handles that raised it.)
        self.flush_failure: str | None = None
        self.idle = threading.Condition(self.lock)

    # -- opening ---------------------------------------------------------------------------------
    def _load(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0:
            self.entries, self.directory_end = {}, 0
            return
        found = find_directory(fd, size)
        if found is None:
            raise StoreError(
                f"{self.path} is not a zip file, or it is damaged: it has no central directory"
            )
        self.entries, self.directory_end = found.entries, found.end

    def ready(self) -> bool:
        """Open and read the file if it exists (once); False while there is no file."""
        if self.fd is not None:
            return True
        with self.lock:
            return self._open_for_reading()

    def _open_for_reading(self) -> bool:
        if self.fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except IsADirectoryError:
            raise StoreError(f"{self.path} is a folder, not a zip file") from None
        except PermissionError as exc:
            raise AccessDeniedError(f"cannot read {self.path}: permission denied") from exc
        except OSError as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        try:
            self._load(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def refresh(self) -> None:
        with self.lock:
            if self.writer or self.fd is None:
                self.ready()
                return
            self._load(self.fd)

    def start_writing(self) -> int:
        """Become the file's writer (once); the fd to write to. Call with the lock held."""
        if self.writer:
            assert self.fd is not None
            return self.fd
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except IsADirectoryError:
            raise StoreError(f"{self.path} is a folder, not a zip file") from None
        except PermissionError as exc:
            raise AccessDeniedError(f"cannot write {self.path}: permission denied") from exc
        except OSError as exc:
            raise StoreError(f"cannot open {self.path} for writing: {exc}") from exc
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise StoreError(
                        f"another process is writing {self.path}: a zip file has one writer at a "
                        "time; let it finish (close) first, or write to another file"
                    ) from None
            # Read the directory again under the lock: the file may have changed since this
            # process first read it.
            self._load(fd)
            size = os.fstat(fd).st_size
            if size == 0:
                # A new file starts with an empty directory, so that it is a valid zip at once.
                _pwrite(fd, [end_records(0, 0, 0)], 0)
                self.directory_end = END.size
            elif size > self.directory_end:
                # Entries after the last directory were lost in a crash: cut them off.
                os.ftruncate(fd, self.directory_end)
        except BaseException:
            os.close(fd)
            raise
        if self.fd is not None:
            self.old_fds.append(self.fd)  # other threads may still be reading through it
        self.fd = fd
        self.end = self.directory_end
        self.writer = True
        return fd

    # -- reading ---------------------------------------------------------------------------------
    def _data_offset(self, e: Entry, fd: int) -> int:
        """Where the entry's bytes start, from its local header (read once)."""
        head = read_at(fd, LOCAL.size, e.offset)
        if len(head) < LOCAL.size or head[:4] != LOCAL_SIG:
            raise StoreError(f"{self.path} is damaged: no local header at offset {e.offset}")
        nlen, xlen = struct.unpack_from("<HH", head, 26)
        e.data_offset = e.offset + LOCAL.size + nlen + xlen
        return e.data_offset

    def read(self, e: Entry, key: str, start: int = 0, length: int | None = None) -> bytes:
        fd = self.fd
        assert fd is not None
        if e.flags & 1:
            raise UnsupportedError(f"{self.path}: entry {key!r} is encrypted")
        if e.method not in (0, 8):
            raise UnsupportedError(
                f"{self.path}: entry {key!r} uses zip compression method {e.method}; bigarrays "
                "reads stored (0) and deflated (8) entries: repack the archive with `zip -0`"
            )
        whole = e.method != 0 or (start == 0 and length is None)
        offset = e.data_offset if e.data_offset >= 0 else self._data_offset(e, fd)
        if whole:
            # (Reading the local header together with the data would save a call but cost a
            # copy of the data to cut the header off: two reads are faster.)
            raw = read_at(fd, e.size, offset)
            if len(raw) != e.size:
                raise CorruptChunkError(key, f"the zip entry in {self.path} is cut short")
            data = raw if e.method == 0 else self._inflate(raw, key)
            if _crc32(data) != e.crc:
                raise CorruptChunkError(key, f"the zip entry in {self.path} fails its CRC check")
            if start == 0 and length is None:
                return data
            if start < 0:
                return data[start:]
            return data[start:] if length is None else data[start : start + length]
        if start < 0:
            start = max(0, e.size + start)
        stop = e.size if length is None else min(e.size, start + length)
        if start >= stop:
            return b""
        return read_at(fd, stop - start, offset + start)

    @staticmethod
    def _inflate(raw: bytes, key: str) -> bytes:
        try:
            d = zlib.decompressobj(-15)
            return d.decompress(raw) + d.flush()
        except zlib.error as exc:
            raise CorruptChunkError(key, f"cannot inflate the zip entry: {exc}") from None

    # -- writing ---------------------------------------------------------------------------------
    def put(
        self,
        name: str,
        value: Buffer | list[memoryview],
        drop: Sequence[str],
        check: EntryCheck | None = None,
    ) -> int:
        """Append ``value`` (or a list of its parts, written in turn, never joined) as entry
        ``name`` and drop the entries ``drop``; the entry's offset.

        ``check(entries)``, when given, runs under the lock before the write and again before the
        entry is published; an exception from it stops the put (a conditional write).
        """
        parts = [memoryview(p).cast("B") for p in (value if isinstance(value, list) else [value])]
        raw_name = name.encode()
        crc = 0
        for part in parts:
            crc = _crc32(part, crc)
        n = sum(len(part) for part in parts)
        dos_time, dos_date = dos_now()
        header = local_header(raw_name, crc, n, dos_time, dos_date)
        with self.lock:
            # Becoming the writer reads the directory again under the file's lock, so the check
            # compares with what other processes wrote, never with what this one read earlier.
            fd = self.start_writing()
            if check is not None:
                check(self.entries)
            offset = self.end
            self.end += len(header) + n
            self.pending += 1
        published = False
        try:
            try:
                _pwrite(fd, [header, *parts], offset)
            except OSError as exc:
                raise _write_error(self.path, exc) from exc
            entry = Entry(raw_name, offset, n, n, crc, 0, UTF8_FLAG, dos_time, dos_date,
                           offset + len(header))  # fmt: skip
            with self.lock:
                if check is not None:
                    check(self.entries)
                for other in drop:
                    self.entries.pop(other, None)
                self.entries[name] = entry
                self.dirty = True
                published = True
            return offset
        finally:
            with self.lock:
                self.pending -= 1
                if not published:
                    self.dirty = True  # the space is reserved: the next directory goes after it
                self.idle.notify_all()

    def delete(self, names: Sequence[str], check: EntryCheck | None = None) -> None:
        with self.lock:
            if check is not None or any(name in self.entries for name in names):
                self.start_writing()  # the directory as of now (see put)
            if check is not None:
                check(self.entries)
            if not any(name in self.entries for name in names):
                return
            for name in names:
                self.entries.pop(name, None)
            self.dirty = True

    def checkpoint(self) -> None:
        """Write the central directory of the live entries after everything written so far.

        A failed ``fsync`` fails every later checkpoint of this archive (and so the close of
        its last handle): the kernel may have dropped the pages it could not write and reports
        that once, and a directory written after a second, successful ``fsync`` would name
        entries that are not on disk. The last directory written stays the archive's."""
        with self.lock:
            if self.flush_failure is not None:
                raise StoreError(
                    f"cannot write the directory of {self.path}: an earlier flush failed "
                    f"({self.flush_failure}); entries written since may not be on disk"
                )
            if not self.writer or (not self.dirty and self.directory_end == self.end):
                return
            assert self.fd is not None
            live = sorted(self.entries.values(), key=lambda e: e.offset)
            directory = b"".join(central_record(e) for e in live)
            offset = self.end
            blob = directory + end_records(len(live), offset, len(directory))
            self._flush()  # the entries reach the disk before a directory names them
            try:
                _pwrite(self.fd, [blob], offset)
            except OSError as exc:
                raise _write_error(self.path, exc) from exc
            self._flush()
            self.end = self.directory_end = offset + len(blob)
            self.dirty = False

    def _flush(self) -> None:
        assert self.fd is not None
        try:
            os.fsync(self.fd)
        except OSError as exc:
            error = _write_error(self.path, exc)
            self.flush_failure = str(error)
            raise error from exc

    def close(self) -> None:
        with self.lock:
            while self.pending:
                self.idle.wait()
            try:
                self.checkpoint()
            finally:
                for fd in [*self.old_fds, *([self.fd] if self.fd is not None else [])]:
                    with contextlib.suppress(OSError):
                        os.close(fd)  # closing the fd releases the flock
                self.fd, self.old_fds, self.writer = None, [], False


def _write_error(path: Path, exc: OSError) -> StoreError:
    if isinstance(exc, PermissionError):
        return AccessDeniedError(f"cannot write {path}: permission denied")
    return StoreError(f"cannot write {path}: {exc}")


# One archive object per file in this process; handles count themselves in and out.
_ARCHIVES: dict[str, Archive] = {}
_ARCHIVES_LOCK = threading.Lock()
# Releases of handles that garbage collection dropped, done at the next safe point (see
# release_later). list.append and list.pop are atomic, so no lock guards this list.
_PENDING: list[tuple[Archive, bool]] = []


def acquire(path: Path) -> Archive:
    with _ARCHIVES_LOCK:
        _drain_pending()
        archive = _ARCHIVES.get(str(path))
        if archive is None:
            archive = _ARCHIVES[str(path)] = Archive(path)
        archive.handles += 1
        return archive


def release(archive: Archive, writable: bool) -> None:
    """Count a handle out (an explicit close): the last one closes the archive, a writable one
    writes the directory."""
    if archive.pid != os.getpid():
        return  # inherited through fork: the parent process writes and closes it
    with _ARCHIVES_LOCK:
        _release_locked(archive, writable)
        _drain_pending()


def release_later(archive: Archive, writable: bool) -> None:
    """Count out a handle that garbage collection dropped, without waiting or writing now.

    A finalizer runs wherever the collector happens to run, which may be inside this module with
    ``_ARCHIVES_LOCK`` or an archive's lock held by the same thread (a put in progress): taking
    the lock there deadlocks, and writing a directory there would interleave with the put. So the
    release waits for the next acquire or release in this process, or for interpreter exit.
    """
    if archive.pid == os.getpid():
        _PENDING.append((archive, writable))


def _drain_pending() -> None:
    # A dropped handle has no caller to tell that its directory could not be written: the
    # failure is a warning, and neither stops the handles after it nor fails the open or close
    # of another archive that happens to drain it.
    while _PENDING:
        archive, writable = _PENDING.pop()
        try:
            _release_locked(archive, writable)
        except Exception as exc:
            warnings.warn(
                f"a zip store of {archive.path} that was never closed could not be closed: {exc}",
                BigArraysWarning,
                stacklevel=2,
            )


def _drain_at_exit() -> None:
    # Registered at import, before any handle's finalizer exists: atexit runs last-registered
    # first, so this runs after weakref's exit hook has queued the handles still alive.
    with _ARCHIVES_LOCK:
        _drain_pending()


atexit.register(_drain_at_exit)


def _release_locked(archive: Archive, writable: bool) -> None:
    # Called with _ARCHIVES_LOCK held, so that a new handle cannot open the file while it closes.
    if archive.pid != os.getpid():
        return
    archive.handles -= 1
    if archive.handles == 0:
        del _ARCHIVES[str(archive.path)]
        archive.close()
    elif writable:
        archive.checkpoint()


def _forget_archives() -> None:
    """In a forked child: the parent's archives (their fds, locks, write offsets) are not ours."""
    global _ARCHIVES, _ARCHIVES_LOCK
    _ARCHIVES, _ARCHIVES_LOCK = {}, threading.Lock()
    _PENDING.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_archives)
