"""Local file system store: one file per key under a root folder.

Writes go to a temporary file in the destination folder and are renamed into place, so a reader
never sees a partial file and a crash leaves at worst a stray ``.tmp`` file that no key lists.
Transfer encodings live in the file name (``KEY.gz``), the convention CloudVolume uses.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bigarrays.errors import AccessDeniedError, StoreError
from bigarrays.stores import content_encoding
from bigarrays.stores.base import Buffer, Store

_TMP_MARK = ".bigarrays-tmp-"


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

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        # Keys may climb above the root with ".." (the format allows it); the path stays literal.
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
        path = self._path(key)
        if encoding is not None:
            path = path.with_name(path.name + content_encoding.SUFFIXES[encoding])
        tmp = path.with_name(f"{path.name}{_TMP_MARK}{uuid.uuid4().hex}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb", buffering=0) as f:
                view = memoryview(value).cast("B")
                while view:
                    view = view[f.write(view) :]
            os.replace(tmp, path)
        except PermissionError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise AccessDeniedError(f"cannot write {path}: permission denied") from exc
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if exc.errno == errno.ENOSPC:
                raise StoreError(f"cannot write {path}: no space left on device") from exc
            raise StoreError(f"cannot write {path}: {exc}") from exc
        except BaseException:
            # A value that is no buffer, or an interrupt mid-write, must leave no temp file behind.
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        # The same key under another encoding would shadow or be shadowed by this one.
        self._remove_variants(key, keep=path)

    def _remove_variants(self, key: str, keep: Path | None) -> None:
        base = self._path(key)
        for candidate in [
            base,
            *(base.with_name(base.name + s) for s in content_encoding.SUFFIXES.values()),
        ]:
            if candidate != keep:
                try:
                    candidate.unlink()
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

    def _list(self, prefix: str) -> Iterator[str]:
        # Walk only the folder the prefix lies in, not the whole tree.
        folder, _, _ = prefix.rpartition("/")
        start = self._path(folder)
        suffixes = tuple(content_encoding.SUFFIXES.values())
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            for name in sorted(filenames):
                if _TMP_MARK in name:
                    continue
                for suffix in suffixes:
                    if name.endswith(suffix):
                        name = name[: -len(suffix)]
                        break
                key = rel_dir + name
                if key.startswith(prefix) and key not in seen:
                    seen.add(key)
                    yield key
