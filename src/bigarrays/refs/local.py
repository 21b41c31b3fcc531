"""Local target files of references, each opened once and read with ``pread``.

A reference store reads thousands of chunks from one file; through a file store each read opens,
seeks, reads and closes the file (four system calls and a Python file object, ~7% of the CPU time
of reading a gzip'd HDF5 dataset). A descriptor kept per file makes each read one ``pread``,
which has no file position, so every thread shares it.
"""

from __future__ import annotations

import os
import stat
import threading

from bigarrays.stores.file_io import pread_all


class LocalFiles:
    """Open read-only descriptors of local files, by path, until :meth:`close`."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def fd(self, path: str) -> int | None:
        """A descriptor of the file at ``path``; None when it cannot be opened (missing, a
        folder, no permission), for the caller's store to say why."""
        found = self._fds.get(path)
        if found is not None:
            return found
        with self._lock:
            found = self._fds.get(path)
            if found is None:
                try:
                    found = os.open(path, os.O_RDONLY)
                except OSError:
                    return None
                if not stat.S_ISREG(os.fstat(found).st_mode):
                    os.close(found)
                    return None
                self._fds[path] = found
            return found

    @staticmethod
    def read(fd: int, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (fewer at the end of the file)."""
        return pread_all(fd, offset, offset + length)

    def close(self) -> None:
        with self._lock:
            fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            os.close(fd)
