"""A store wrapper that counts the requests passed to the store it wraps.

Tests and benchmarks use it to pin how many round trips an operation costs::

    from bigarrays.testing.counting import CountingStore

    store = CountingStore(open_store("file:///data/vol"))
    vol = ba.open(store)
    vol[0:64, 0:64, 0:64]
    store.counts["get_range"], store.bytes_read

Every request goes to the wrapped store unchanged; the wrapper adds no caching.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from bigarrays.stores.base import Buffer, Store


class CountingStore(Store):
    """Counts ``get``, ``get_range``, ``put``, ``delete``, ``list``... requests by name."""

    def __init__(self, inner: Store) -> None:
        super().__init__(read_only=inner.read_only)
        self.inner = inner
        self.counts: Counter[str] = Counter()
        self.bytes_read = 0
        self.bytes_written = 0
        self._lock = threading.Lock()
        self.conditional_writes = inner.conditional_writes
        self.allow_parent_keys = inner.allow_parent_keys
        # get_ranges merges as the wrapped store would, and counts one get_range per span.
        self.range_policy = inner.range_policy
        self.names_encodings = inner.names_encodings

    def _count(self, name: str, read: int = 0, written: int = 0) -> None:
        with self._lock:
            self.counts[name] += 1
            self.bytes_read += read
            self.bytes_written += written

    @property
    def requests(self) -> int:
        """Requests of every kind since the last :meth:`reset`."""
        with self._lock:
            return sum(self.counts.values())

    @property
    def reads(self) -> int:
        """``get`` + ``get_range`` + ``get_with_version`` requests."""
        with self._lock:
            return self.counts["get"] + self.counts["get_range"] + self.counts["get_with_version"]

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.bytes_read = self.bytes_written = 0

    @property
    def url(self) -> str:
        return self.inner.url

    @property
    def default_concurrency(self) -> int:
        return self.inner.default_concurrency

    def _config(self) -> tuple[Any, ...]:
        return (type(self), self.inner._config())

    def _get(self, key: str) -> bytes | None:
        value = self.inner.get(key)
        self._count("get", len(value or b""))
        return value

    def _get_bounded(self, key: str, max_size: int) -> bytes | None:
        value = self.inner.get(key, max_size=max_size)
        self._count("get", len(value or b""))
        return value

    def _get_encoded_as(self, key: str, encoding: str | None) -> tuple[bytes, str | None] | None:
        stored = self.inner.get_encoded(key, encoding=encoding)
        self._count("get", len(stored[0]) if stored else 0)
        return stored

    def _get_with_version_as(
        self, key: str, max_size: int | None, encoding: str | None
    ) -> tuple[bytes | None, str | None]:
        value, version = self.inner.get_with_version(key, max_size=max_size, encoding=encoding)
        self._count("get_with_version", len(value or b""))
        return value, version

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        value = self.inner.get_range(key, start, length)
        self._count("get_range", len(value or b""))
        return value

    # Versioned ranged reads are ranged reads too: one request each, counted as ``get_range``.
    def _get_range_with_version(
        self, key: str, start: int, length: int | None
    ) -> tuple[bytes | None, str | None]:
        value, version = self.inner.get_range_with_version(key, start, length)
        self._count("get_range", len(value or b""))
        return value, version

    def _get_range_if_version(
        self, key: str, start: int, length: int | None, version: str | None
    ) -> bytes | None:
        try:
            value = self.inner.get_range_if_version(key, start, length, version)
        finally:
            self._count("get_range")
        with self._lock:
            self.bytes_read += len(value or b"")
        return value

    def _put(self, key: str, value: Buffer, content_encoding: str | None) -> str | None:
        version = self.inner.put(key, value, content_encoding=content_encoding)
        self._count("put", written=memoryview(value).nbytes)
        return version

    def _delete(self, key: str) -> None:
        self.inner.delete(key)
        self._count("delete")

    def _exists(self, key: str) -> bool:
        self._count("exists")
        return self.inner.exists(key)

    def _size(self, key: str) -> int | None:
        self._count("size")
        return self.inner.size(key)

    def _list(self, prefix: str) -> Iterator[str]:
        self._count("list")
        return self.inner.list(prefix)

    def _get_with_version(
        self, key: str, max_size: int | None = None
    ) -> tuple[bytes | None, str | None]:
        value, version = self.inner.get_with_version(key, max_size=max_size)
        self._count("get_with_version", len(value or b""))
        return value, version

    # Conditional puts (create-only or at a version) are counted as "put_if_version".
    def _put_if_version(
        self, key: str, value: Buffer, version: str | None, content_encoding: str | None
    ) -> str:
        if version is None:
            new = self.inner.put(key, value, mode="create", content_encoding=content_encoding)
        else:
            new = self.inner.put(
                key, value, mode="if_version", version=version, content_encoding=content_encoding
            )
        self._count("put_if_version", written=memoryview(value).nbytes)
        assert new is not None  # a store with conditional writes has versions
        return new

    def _delete_if_version(self, key: str, version: str | None) -> None:
        self.inner.delete_if_version(key, version)
        self._count("delete_if_version")

    def close(self) -> None:
        self.inner.close()
