"""In-memory store, shared within the process by name (``memory://name``).

Useful for tests, for scratch volumes, and as the reference backend of the conformance suite.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from bigarrays.stores import content_encoding
from bigarrays.stores.base import Buffer, Store

# name -> {key: bytes}; one lock guards every namespace (operations are dictionary-sized).
_NAMESPACES: dict[str, dict[str, bytes]] = {}
_LOCK = threading.Lock()


class MemoryStore(Store):
    schemes = ("memory",)

    def __init__(self, name: str = "", *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.name = name.removeprefix("memory://").strip("/")
        with _LOCK:
            self._data = _NAMESPACES.setdefault(self.name, {})

    @property
    def url(self) -> str:
        return f"memory://{self.name}"

    @property
    def default_concurrency(self) -> int:
        return 4

    def __getstate__(self) -> dict[str, object]:
        # A pickled memory store names its namespace; unpickled in the same process it shares it.
        return {"name": self.name, "read_only": self.read_only}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(str(state["name"]), read_only=bool(state["read_only"]))  # type: ignore[misc]

    def _get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def _put(self, key: str, value: Buffer, encoding: str | None) -> None:
        content_encoding.check(encoding)
        # Keep the decoded bytes: memory has no headers, and reads must return plain bytes.
        data = content_encoding.decode(bytes(value), encoding, key) if encoding else bytes(value)
        with _LOCK:
            self._data[key] = data

    def _delete(self, key: str) -> None:
        with _LOCK:
            self._data.pop(key, None)

    def _exists(self, key: str) -> bool:
        return key in self._data

    def _list(self, prefix: str) -> Iterator[str]:
        with _LOCK:
            keys = sorted(k for k in self._data if k.startswith(prefix))
        yield from keys

    def clear(self) -> None:
        """Forget every key of this namespace."""
        with _LOCK:
            self._data.clear()


def drop_namespace(name: str) -> None:
    """Free a namespace's memory entirely (other stores open on it see an empty store)."""
    with _LOCK:
        data = _NAMESPACES.pop(name.removeprefix("memory://").strip("/"), None)
        if data is not None:
            data.clear()
