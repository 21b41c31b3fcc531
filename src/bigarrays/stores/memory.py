"""In-memory store, shared within the process by name (``memory://name``).

Useful for tests, for scratch volumes, and as the reference backend of the conformance suite.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

from bigarrays.errors import VersionConflictError
from bigarrays.stores import content_encoding
from bigarrays.stores.base import Buffer, Store
from bigarrays.stores.ranges import cut_range
from bigarrays.stores.versions import ANY_VERSION

# name -> {key: bytes}; one lock guards every namespace (operations are dictionary-sized).
_NAMESPACES: dict[str, dict[str, bytes]] = {}
# name -> {key: (decoded value, bytes as put, encoding)} for values put with a content encoding,
# so that get_encoded hands them back as they came (a copy to another store keeps gzip as gzip).
_ENCODED: dict[str, dict[str, tuple[bytes, bytes, str]]] = {}
_LOCK = threading.Lock()
# name -> {key: version}: a number drawn from one process-wide counter at every write, so a put
# returns its version without hashing the value, and no two values ever share one.
_VERSIONS: dict[str, dict[str, str]] = {}
_COUNTER = itertools.count(1)


class MemoryStore(Store):
    schemes = ("memory",)

    def __init__(self, name: str = "", *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.name = name.removeprefix("memory://").strip("/")
        with _LOCK:
            self._data = _NAMESPACES.setdefault(self.name, {})
            self._encoded = _ENCODED.setdefault(self.name, {})
            self._versions = _VERSIONS.setdefault(self.name, {})

    @property
    def url(self) -> str:
        return f"memory://{self.name}"

    @property
    def default_concurrency(self) -> int:
        return 4

    def __getstate__(self) -> dict[str, object]:
        # A pickled memory store names its namespace; unpickled in the same process it shares it.
        return {"name": self.name, "read_only": self.read_only,
                "allow_parent_keys": self.allow_parent_keys}  # fmt: skip

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(str(state["name"]), read_only=bool(state["read_only"]))  # type: ignore[misc]
        self.allow_parent_keys = bool(state.get("allow_parent_keys", False))

    def _get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def _put(self, key: str, value: Buffer, encoding: str | None) -> str:
        return self._put_if_version(key, value, ANY_VERSION, encoding)

    def _get_bounded(self, key: str, max_size: int) -> bytes | None:
        return self._data.get(key)  # decoded (and so bounded by memory) when it was put

    def _get_encoded(self, key: str) -> tuple[bytes, str | None] | None:
        value = self._data.get(key)
        if value is None:
            return None
        entry = self._encoded.get(key)
        # Only if the value is still the one that was put encoded.
        if entry is not None and entry[0] is value:
            return entry[1], entry[2]
        return value, None

    def _delete(self, key: str) -> None:
        self._delete_if_version(key, ANY_VERSION)

    def _exists(self, key: str) -> bool:
        return key in self._data

    def _list(self, prefix: str) -> Iterator[str]:
        with _LOCK:
            keys = sorted(k for k in self._data if k.startswith(prefix))
        yield from keys

    # -- conditional writes: the version is the write's number, checked under the lock ---------
    conditional_writes = True

    def _get_with_version(
        self, key: str, max_size: int | None = None
    ) -> tuple[bytes | None, str | None]:
        with _LOCK:  # the value and its version as one pair
            value = self._data.get(key)
            return (None, None) if value is None else (value, self._versions[key])

    def _get_range_with_version(
        self, key: str, start: int, length: int | None
    ) -> tuple[bytes | None, str | None]:
        value, version = self._get_with_version(key)
        return cut_range(value, start, length), version

    def _check_version(self, key: str, version: str | None) -> None:
        # Called with _LOCK held.
        if version != ANY_VERSION and self._versions.get(key) != version:
            raise VersionConflictError(key, self.url)

    def _put_if_version(
        self, key: str, value: Buffer, version: str | None, encoding: str | None
    ) -> str:
        content_encoding.check(encoding)
        # Keep the decoded bytes: memory has no headers, and reads must return plain bytes.
        raw = bytes(value)
        data = content_encoding.decode(raw, encoding, key) if encoding else raw
        with _LOCK:
            self._check_version(key, version)
            self._data[key] = data
            new = self._versions[key] = f"{next(_COUNTER):x}"
            if encoding:
                self._encoded[key] = (data, raw, encoding)
            else:
                self._encoded.pop(key, None)
        return new

    def _delete_if_version(self, key: str, version: str | None) -> None:
        with _LOCK:
            self._check_version(key, version)
            self._data.pop(key, None)
            self._encoded.pop(key, None)
            self._versions.pop(key, None)

    def clear(self) -> None:
        """Forget every key of this namespace."""
        with _LOCK:
            self._data.clear()
            self._encoded.clear()
            self._versions.clear()


def drop_namespace(name: str) -> None:
    """Free a namespace's memory entirely (other stores open on it see an empty store)."""
    with _LOCK:
        data = _NAMESPACES.pop(name.removeprefix("memory://").strip("/"), None)
        if data is not None:
            data.clear()
        encoded = _ENCODED.pop(name.removeprefix("memory://").strip("/"), None)
        if encoded is not None:
            encoded.clear()
        versions = _VERSIONS.pop(name.removeprefix("memory://").strip("/"), None)
        if versions is not None:
            versions.clear()
