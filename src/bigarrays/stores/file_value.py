"""A folder store's value written at offsets (:meth:`~bigarrays.stores.base.Store.open_value`):
a file of its own beside the key, renamed into place under the key's lock when it is published."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from bigarrays.stores.base import Buffer
from bigarrays.stores.file_io import pread_all, write_error
from bigarrays.stores.file_locks import lock_key, unlock_key
from bigarrays.stores.value_writer import ValueWriter

if TYPE_CHECKING:
    from bigarrays.stores.file import FileStore


class FileValue(ValueWriter):
    """A key's new value written at offsets into a file of its own, renamed into place by the
    publish under the key's lock. The file stays open between writes until released."""

    def __init__(self, store: FileStore, base: str, temp: str, fd: int) -> None:
        self._store, self._base, self._temp = store, base, temp
        self._fd: int | None = fd
        self._done = False

    def _file(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self._temp, os.O_RDWR | os.O_CLOEXEC)
            except OSError as exc:
                raise write_error(self._base, exc) from exc
        return self._fd

    def write_at(self, offset: int, data: Buffer) -> None:
        view = memoryview(data).cast("B")
        fd = self._file()
        try:
            while view.nbytes:
                n = os.pwrite(fd, view, offset)
                view, offset = view[n:], offset + n
        except OSError as exc:
            raise write_error(self._base, exc) from exc

    def read_at(self, offset: int, size: int) -> bytes:
        return pread_all(self._file(), offset, offset + size)

    def truncate(self, size: int) -> None:
        try:
            os.ftruncate(self._file(), size)
        except OSError as exc:
            raise write_error(self._base, exc) from exc

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def publish(self) -> str:
        store = self._store
        try:
            fd = self._file()
            lock_fd, lock, held = lock_key(self._base, store._made_dirs)
            try:
                version = store._publish(fd, self._temp, self._base, self._base)
                self._done = True
                return version
            finally:
                unlock_key(lock_fd, lock, held, published=False)
        finally:
            self.discard()

    def discard(self) -> None:
        self.release()
        if not self._done:
            self._done = True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp)
