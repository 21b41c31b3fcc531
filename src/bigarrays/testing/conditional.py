"""The conditional-write contract (``get_with_version``, ``put`` in its ``create`` and
``if_version`` modes, ``delete_if_version``, and the versioned ranged reads
``get_range_with_version`` / ``get_range_if_version`` / ``get_ranges_if_version``), as tests a
backend with ``conditional_writes = True`` must pass.

Subclass :class:`ConditionalWriteConformance` and provide a ``store`` fixture (a fresh, empty,
writable store), as for :class:`~bigarrays.testing.StoreConformance`.
"""

from __future__ import annotations

import threading

import pytest

from bigarrays.errors import ReadOnlyError, StaleReadError, VersionConflictError
from bigarrays.stores.base import Store
from bigarrays.stores.versions import ANY_VERSION

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
        created = store.put("a/k", b"one", mode="create")
        value, version = store.get_with_version("a/k")
        assert value == b"one"
        assert version is not None
        assert created == version
        with pytest.raises(VersionConflictError):
            store.put("a/k", b"two", mode="create")
        assert store.get("a/k") == b"one"
        store.delete("a/k")
        assert store.put("a/k", b"three", mode="create") == store.get_with_version("a/k")[1]

    def test_create_of_an_encoded_value(self, store: Store) -> None:
        import gzip

        store.put("g", gzip.compress(b"x" * 100), mode="create", content_encoding="gzip")
        assert store.get("g") == b"x" * 100
        with pytest.raises(VersionConflictError):
            store.put("g", b"plain", mode="create")
        assert store.get("g") == b"x" * 100

    def test_every_put_returns_the_version_it_wrote(self, store: Store) -> None:
        v1 = store.put("k", b"one")
        assert v1 is not None
        assert v1 == store.get_with_version("k")[1]
        assert v1 == store.get_range_with_version("k", 0, 1)[1]
        v2 = store.put("k", b"two", mode="if_version", version=v1)
        assert v2 not in (None, v1)
        assert v2 == store.get_with_version("k")[1]
        v3 = store.put("k", b"three", mode="if_version", version=v2)
        assert v3 == store.get_with_version("k")[1]
        assert len({v1, v2, v3}) == 3

    def test_replace_only_at_the_version_read(self, store: Store) -> None:
        store.put("k", b"one")
        _, v1 = store.get_with_version("k")
        store.put("k", b"two", mode="if_version", version=v1)
        value, v2 = store.get_with_version("k")
        assert value == b"two"
        assert v2 != v1
        with pytest.raises(VersionConflictError):
            store.put("k", b"three", mode="if_version", version=v1)
        assert store.get("k") == b"two"
        store.put("k", b"four")  # a plain put changes the version too
        with pytest.raises(VersionConflictError):
            store.put("k", b"five", mode="if_version", version=v2)
        assert store.get("k") == b"four"
        store.delete("k")
        with pytest.raises(VersionConflictError):  # at a version, and there is no value
            store.put("k", b"six", mode="if_version", version=v2)
        assert store.get("k") is None

    def test_mode_and_version_must_agree(self, store: Store) -> None:
        with pytest.raises(ValueError, match="mode='create'"):
            store.put("k", b"x", mode="if_version")
        with pytest.raises(ValueError, match="if_version"):
            store.put("k", b"x", mode="create", version="1")
        with pytest.raises(ValueError, match="if_version"):
            store.put("k", b"x", version="1")
        with pytest.raises(ValueError, match="overwrite"):
            store.put("k", b"x", mode="append")  # type: ignore[arg-type]
        assert store.get("k") is None

    def test_any_version(self, store: Store) -> None:
        store.put("k", b"one", mode="if_version", version=ANY_VERSION)
        store.put("k", b"two", mode="if_version", version=ANY_VERSION)
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

    def test_ranges_if_version(self, store: Store) -> None:
        value = bytes(range(256)) * 64
        version = store.put("s/0.shard", value)
        ranges = [(0, 16), (100, 10), (10_000, 40)]
        got = store.get_ranges_if_version("s/0.shard", ranges, version)
        assert got is not None
        assert [bytes(g) for g in got] == [value[s : s + n] for s, n in ranges]
        store.put("s/0.shard", value[::-1])
        with pytest.raises(StaleReadError):
            store.get_ranges_if_version("s/0.shard", ranges, version)

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
            ro.put("k", b"two", mode="if_version", version=ANY_VERSION)
        with pytest.raises(ReadOnlyError):
            ro.put("new", b"two", mode="create")
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
                        store.put("counter", str(int(value) + 1).encode(), mode="if_version",
                                  version=version)  # fmt: skip
                        break
                    except VersionConflictError:
                        continue

        workers = [threading.Thread(target=bump) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert store.get("counter") == str(self.threads * self.increments).encode()
