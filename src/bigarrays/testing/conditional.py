"""The conditional-write contract (``get_with_version`` / ``put_if_version`` /
``delete_if_version``, and the versioned ranged reads ``get_range_with_version`` /
``get_range_if_version``), as tests a backend with ``conditional_writes = True`` must pass.

Subclass :class:`ConditionalWriteConformance` and provide a ``store`` fixture (a fresh, empty,
writable store), as for :class:`~bigarrays.testing.StoreConformance`.
"""

from __future__ import annotations

import threading

import pytest

from bigarrays.errors import ReadOnlyError, StaleReadError, VersionConflictError
from bigarrays.stores.base import ANY_VERSION, Store

__all__ = ["ConditionalWriteConformance"]


class ConditionalWriteConformance:
    """Compare-and-swap on one key. Needs a ``store`` fixture."""

    #: Threads x increments in the lost-update test.
    threads: int = 4
    increments: int = 25

    def test_declares_conditional_writes(self, store: Store) -> None:
        assert store.conditional_writes

    def test_missing_key_has_no_version(self, store: Store) -> None:
        assert store.get_with_version("a/missing") == (None, None)

    def test_create_only_if_missing(self, store: Store) -> None:
        store.put_if_version("a/k", b"one", None)
        value, version = store.get_with_version("a/k")
        assert value == b"one"
        assert version is not None
        with pytest.raises(VersionConflictError):
            store.put_if_version("a/k", b"two", None)
        assert store.get("a/k") == b"one"

    def test_replace_only_at_the_version_read(self, store: Store) -> None:
        store.put("k", b"one")
        _, v1 = store.get_with_version("k")
        store.put_if_version("k", b"two", v1)
        value, v2 = store.get_with_version("k")
        assert value == b"two"
        assert v2 != v1
        with pytest.raises(VersionConflictError):
            store.put_if_version("k", b"three", v1)
        assert store.get("k") == b"two"
        store.put("k", b"four")  # a plain put changes the version too
        with pytest.raises(VersionConflictError):
            store.put_if_version("k", b"five", v2)
        assert store.get("k") == b"four"

    def test_any_version(self, store: Store) -> None:
        store.put_if_version("k", b"one", ANY_VERSION)
        store.put_if_version("k", b"two", ANY_VERSION)
        assert store.get("k") == b"two"
        store.delete_if_version("k", ANY_VERSION)
        assert store.get("k") is None

    def test_delete_only_at_the_version_read(self, store: Store) -> None:
        store.put("k", b"one")
        _, v1 = store.get_with_version("k")
        store.put("k", b"two")
        with pytest.raises(VersionConflictError):
            store.delete_if_version("k", v1)
        assert store.get("k") == b"two"
        _, v2 = store.get_with_version("k")
        store.delete_if_version("k", v2)
        assert store.get("k") is None
        assert list(store.list("")) == []  # no lock or temp file is left listed

    def test_range_with_version_names_the_value(self, store: Store) -> None:
        value = bytes(range(256)) * 64
        store.put("s/0.shard", value)
        _, version = store.get_with_version("s/0.shard")
        assert store.get_range_with_version("s/0.shard", 100, 50) == (value[100:150], version)
        assert store.get_range_with_version("s/0.shard", -10) == (value[-10:], version)
        assert store.get_range_with_version("s/0.shard", len(value) - 5, 50) == (
            value[-5:],
            version,
        )
        assert store.get_range_with_version("s/missing", 0, 16) == (None, None)
        store.put("s/0.shard", value[::-1])
        data, v2 = store.get_range_with_version("s/0.shard", 0, 16)
        assert data == value[::-1][:16]
        assert v2 is not None
        assert v2 != version
        assert store.get_with_version("s/0.shard")[1] == v2

    def test_range_if_version(self, store: Store) -> None:
        value = bytes(range(256)) * 64
        store.put("s/0.shard", value)
        _, version = store.get_range_with_version("s/0.shard", 0, 16)
        assert store.get_range_if_version("s/0.shard", 1000, 24, version) == value[1000:1024]
        assert store.get_range_if_version("s/missing", 0, 16, None) is None
        with pytest.raises(StaleReadError):
            store.get_range_if_version("s/0.shard", 0, 16, None)  # "only if there is none"
        store.put("s/0.shard", value[::-1])  # same size, other bytes
        with pytest.raises(VersionConflictError):  # a StaleReadError is a VersionConflictError
            store.get_range_if_version("s/0.shard", 1000, 24, version)
        _, v2 = store.get_with_version("s/0.shard")
        assert store.get_range_if_version("s/0.shard", 0, 4, v2) == value[::-1][:4]
        store.delete("s/0.shard")
        with pytest.raises(StaleReadError):
            store.get_range_if_version("s/0.shard", 0, 4, v2)

    def test_range_versions_of_an_encoded_value(self, store: Store) -> None:
        import gzip

        value = b"0123456789" * 100
        store.put("g", gzip.compress(value), content_encoding="gzip")
        data, version = store.get_range_with_version("g", 10, 5)
        assert (data, version) == (value[10:15], store.get_with_version("g")[1])
        assert store.get_range_if_version("g", 990, 100, version) == value[990:]

    def test_read_only_refuses(self, store: Store) -> None:
        store.put("k", b"one")
        ro = type(store).__new__(type(store))
        ro.__dict__.update(store.__dict__)
        ro.read_only = True
        with pytest.raises(ReadOnlyError):
            ro.put_if_version("k", b"two", ANY_VERSION)
        with pytest.raises(ReadOnlyError):
            ro.delete_if_version("k", ANY_VERSION)

    def test_no_lost_updates_between_threads(self, store: Store) -> None:
        """Read-increment-write loops on one counter: every increment survives."""
        store.put("counter", b"0")

        def bump() -> None:
            for _ in range(self.increments):
                while True:
                    value, version = store.get_with_version("counter")
                    assert value is not None
                    try:
                        store.put_if_version("counter", str(int(value) + 1).encode(), version)
                        break
                    except VersionConflictError:
                        continue

        workers = [threading.Thread(target=bump) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert store.get("counter") == str(self.threads * self.increments).encode()
