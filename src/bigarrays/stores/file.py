"""Local file system store: one file per key under a root folder.

Writes go to a temporary file in the destination folder and are renamed into place, so a reader
never sees a partial file and a crash leaves at worst a stray ``.tmp`` file that no key lists.
Transfer encodings live in the file name (``KEY.gz``), the convention CloudVolume uses.

Conditional writes (``put_if_version``) take a lock file beside the key (``KEY`` +
``.bigarrays-tmp-lock``, created with ``O_CREAT | O_EXCL``), compare the file's identity (inode,
modification time in ns, size) with the expected version, write a temp file and rename it into
place, then remove the lock. A lock left by a crashed process is broken when its process is gone
(same host) or when it is older than ``LOCK_STALE_SECONDS``. This holds between processes on one
machine and on file systems whose ``O_EXCL`` and ``rename`` are atomic (local disks, NFSv3+).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bigarrays.errors import (
    AccessDeniedError,
    InvalidKeyError,
    StoreError,
    VersionConflictError,
)
from bigarrays.stores import content_encoding
from bigarrays.stores.base import ANY_VERSION, Buffer, Store

_TMP_MARK = ".bigarrays-tmp-"
#: Suffix of a key's lock file (it carries the temp mark, so listings never show it).
_LOCK_SUFFIX = _TMP_MARK + "lock"
#: A lock file older than this is taken for the leftover of a crashed writer and broken.
LOCK_STALE_SECONDS = 120.0


def path_from_url(url: str) -> Path:
    """``file:///a/b``, ``file://localhost/a/b`` or a plain path -> an absolute Path."""
    if url.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise StoreError(f"file URLs name no host, got {url!r}; write file:///absolute/path")
        return Path(unquote(parts.path)).resolve()
    return Path(url).expanduser().resolve()


class FileStore(Store):
    schemes = ("file",)

    def __init__(self, root: str | os.PathLike[str], *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.root = path_from_url(os.fspath(root))
        self._root_str = str(self.root)
        #: Folders known to exist, so that a put does not ask the file system again.
        self._made_dirs: set[str] = set()
        # Temp names: a tag unique to this store object and a counter (no urandom per put).
        self._tmp_tag = uuid.uuid4().hex[:16] + "-"
        self._tmp_counter = itertools.count()

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

    def _read(self, path: Path, start: int = 0, length: int | None = None) -> bytes | None:
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
        self, key: str, buffer: memoryview, offset: int = 0, size: int | None = None
    ) -> int | None:
        """See :meth:`Store.read_into`: ``os.preadv`` of the plain file (not ``KEY.gz``)."""
        if ".." in key or "\\" in key or "\x00" in key or key[:1] == "/":
            # The hot path takes keys as given; only those that might climb out pay the check.
            key = self._key(key)
        try:
            fd = os.open(f"{self._root_str}/{key}", os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except PermissionError as exc:
            raise AccessDeniedError(f"cannot read {self._path(key)}: permission denied") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {self._path(key)}: {exc}") from exc
        try:
            if size is not None and os.fstat(fd).st_size != size:
                return -1
            total = os.preadv(fd, [buffer], offset)
            while 0 < total < len(buffer):  # short reads: network file systems, huge files
                n = os.preadv(fd, [buffer[total:]], offset + total)
                if n == 0:
                    break
                total += n
            return total
        except IsADirectoryError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self._path(key)}: {exc}") from exc
        finally:
            os.close(fd)

    def _get(self, key: str) -> bytes | None:
        path = self._path(key)
        data = self._read(path)
        if data is not None:
            return data
        for encoding, suffix in content_encoding.SUFFIXES.items():
            data = self._read(path.with_name(path.name + suffix))
            if data is not None:
                return content_encoding.decode(data, encoding, key)
        return None

    def _get_encoded(self, key: str) -> tuple[bytes, str | None] | None:
        path = self._path(key)
        data = self._read(path)
        if data is not None:
            return data, None
        for encoding, suffix in content_encoding.SUFFIXES.items():
            data = self._read(path.with_name(path.name + suffix))
            if data is not None:
                return data, encoding
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

    def _put(self, key: str, value: Buffer, encoding: str | None) -> None:
        content_encoding.check(encoding)
        # Plain strings and os calls: this runs once per chunk written, and pathlib's objects
        # cost more than the system calls.
        base = os.path.join(self._root_str, key)
        path = base if encoding is None else base + content_encoding.SUFFIXES[encoding]
        parent = os.path.dirname(path)
        tmp = f"{path}{_TMP_MARK}{self._tmp_tag}{next(self._tmp_counter)}"
        try:
            if parent not in self._made_dirs:
                os.makedirs(parent, exist_ok=True)
                self._made_dirs.add(parent)
            try:
                f = open(tmp, "wb", buffering=0)  # noqa: SIM115 - closed by the with below
            except FileNotFoundError:  # the folder was removed behind our back: make it again
                os.makedirs(parent, exist_ok=True)
                f = open(tmp, "wb", buffering=0)  # noqa: SIM115
            with f:
                view = memoryview(value).cast("B")
                while view:
                    view = view[f.write(view) :]
            os.replace(tmp, path)
        except PermissionError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise AccessDeniedError(f"cannot write {path}: permission denied") from exc
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if exc.errno == errno.ENOSPC:
                raise StoreError(f"cannot write {path}: no space left on device") from exc
            raise StoreError(f"cannot write {path}: {exc}") from exc
        except BaseException:
            # A value that is no buffer, or an interrupt mid-write, must leave no temp file behind.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # The same key under another encoding would shadow or be shadowed by this one.
        self._remove_variants(key, keep=path)

    def _remove_variants(self, key: str, keep: str | None) -> None:
        base = os.path.join(self._root_str, key)
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
        self._remove_variants(key, keep=None)

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

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        lock = self._path(key).with_name(self._path(key).name + _LOCK_SUFFIX)
        lock.parent.mkdir(parents=True, exist_ok=True)
        token = f"{socket.gethostname()} {os.getpid()} {uuid.uuid4().hex}".encode()
        delay = 0.001
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._lock_is_stale(lock):
                    # Rename before unlinking, so that two processes breaking the same stale lock
                    # cannot remove the fresh lock that a third one has just taken.
                    with contextlib.suppress(OSError):
                        broken = lock.with_name(f"{lock.name}-broken-{uuid.uuid4().hex}")
                        os.rename(lock, broken)
                        os.unlink(broken)
                    continue
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
                continue
            except PermissionError as exc:
                raise AccessDeniedError(f"cannot lock {lock}: permission denied") from exc
            except OSError as exc:
                raise StoreError(f"cannot lock {lock}: {exc}") from exc
            try:
                os.write(fd, token)
            finally:
                os.close(fd)
            break
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)

    @staticmethod
    def _lock_is_stale(lock: Path) -> bool:
        try:
            st = lock.stat()
            owner = lock.read_bytes().split()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError:
            return False
        if time.time() - st.st_mtime > LOCK_STALE_SECONDS:
            return True
        if len(owner) >= 2 and owner[0].decode(errors="replace") == socket.gethostname():
            try:
                pid = int(owner[1])
            except ValueError:
                return False
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except OSError:
                return False
        return False

    def _check_version(self, key: str, version: str | None) -> None:
        if version != ANY_VERSION and self._current_version(key) != version:
            raise VersionConflictError(key, self.url)

    def _put_if_version(
        self, key: str, value: Buffer, version: str | None, encoding: str | None
    ) -> None:
        with self._locked(key):
            self._check_version(key, version)
            self._put(key, value, encoding)

    def _delete_if_version(self, key: str, version: str | None) -> None:
        with self._locked(key):
            self._check_version(key, version)
            self._delete(key)

    def _list(self, prefix: str) -> Iterator[str]:
        # Walk only the folder the prefix lies in, not the whole tree.
        folder, _, _ = prefix.rpartition("/")
        start = self._path(folder)

        def stored() -> Iterator[str]:
            for dirpath, dirnames, filenames in os.walk(start):
                dirnames.sort()
                rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                rel_dir = "" if rel_dir == "." else rel_dir + "/"
                yield from (rel_dir + name for name in sorted(filenames) if _TMP_MARK not in name)

        yield from content_encoding.keys_of(stored(), prefix)
