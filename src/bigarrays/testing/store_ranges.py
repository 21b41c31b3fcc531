"""Byte ranges of a value, as tests: the part of the store conformance suite that reads less than
a whole value (``get_range``, ``get_ranges``, ``get_range_with_version``, ``read_into``).

:class:`~bigarrays.testing.StoreConformance` takes these tests in; a backend's tests subclass it,
not :class:`RangeConformance`.
"""

from __future__ import annotations

import gzip
import random

import pytest

from bigarrays.stores.base import Store

__all__ = ["RangeConformance"]


def payload(size: int, seed: int = 0) -> bytes:
    """Reproducible incompressible bytes: a backend that mixes up two values cannot pass by luck."""
    return random.Random(seed).randbytes(size)


class RangeConformance:
    """Reads of part of a value, as tests. Needs a ``store`` fixture and :attr:`large_size`
    (both from :class:`~bigarrays.testing.StoreConformance`)."""

    #: Bytes in the "large" value (see :class:`~bigarrays.testing.StoreConformance`).
    large_size: int

    # -- get_range ---------------------------------------------------------------------------------
    def test_get_range(self, store: Store) -> None:
        value = bytes(range(256)) * 4
        store.put("k", value)
        assert store.get_range("k", 10, 20) == value[10:30]
        assert store.get_range("k", 0) == value
        assert store.get_range("k", 0, len(value)) == value
        assert store.get_range("k", 1000) == value[1000:]
        assert store.get_range("k", 5, 0) == b""
        got = store.get_range("k", 3, 1)
        assert type(got) is bytes
        assert got == value[3:4]

    def test_get_range_past_the_end_is_cut_short(self, store: Store) -> None:
        value = payload(1024, seed=4)
        store.put("k", value)
        assert store.get_range("k", 1000, 100) == value[1000:]
        # A range that starts at or past the end is empty, not an error (HTTP's 416 maps here).
        assert store.get_range("k", 1024) == b""
        assert store.get_range("k", 5000, 10) == b""

    def test_get_range_suffix(self, store: Store) -> None:
        value = payload(1024, seed=5)
        store.put("k", value)
        assert store.get_range("k", -10) == value[-10:]
        assert store.get_range("k", -1) == value[-1:]
        # A suffix longer than the value is the whole value, as with HTTP "Range: bytes=-N".
        assert store.get_range("k", -5000) == value

    def test_get_range_of_large_value(self, store: Store) -> None:
        value = payload(self.large_size, seed=6)
        store.put("k", value)
        mid = self.large_size // 2
        assert store.get_range("k", mid, 2**20) == value[mid : mid + 2**20]
        assert store.get_range("k", -7) == value[-7:]

    def test_get_range_missing_key_is_none(self, store: Store) -> None:
        assert store.get_range("missing", 0, 10) is None
        assert store.get_range("missing", 0) is None
        assert store.get_range("missing", -10) is None

    def test_get_range_of_empty_value(self, store: Store) -> None:
        store.put("empty", b"")
        assert store.get_range("empty", 0) == b""
        assert store.get_range("empty", 0, 10) == b""
        assert store.get_range("empty", -10) == b""

    @pytest.mark.parametrize("key", ["k", "missing"])
    def test_get_range_bad_arguments(self, store: Store, key: str) -> None:
        store.put("k", b"0123456789")
        with pytest.raises(ValueError, match="negative"):
            store.get_range(key, 0, -1)
        with pytest.raises(ValueError, match="suffix"):
            store.get_range(key, -5, 2)

    def test_get_ranges(self, store: Store) -> None:
        value = payload(3 << 20, seed=11)
        store.put("k", value)
        # Close, overlapping, far apart, empty and past the end, in no order.
        ranges = [(2 << 20, 100), (0, 10), (5, 10), (12, 3), (3 << 20, 0), (len(value) - 4, 50)]
        got = store.get_ranges("k", ranges)
        assert got is not None
        assert [bytes(g) for g in got] == [value[a : a + n] for a, n in ranges]
        assert store.get_ranges("k", []) == []
        assert store.get_ranges("missing", [(0, 4), (2 << 20, 4)]) is None
        assert store.get_ranges("missing", []) is None
        store.put("g", gzip.compress(value[:5000]), content_encoding="gzip")
        got = store.get_ranges("g", [(10, 5), (4000, 10)])
        assert got is not None
        assert [bytes(g) for g in got] == [value[10:15], value[4000:4010]]
        with pytest.raises(ValueError, match="start >= 0"):
            store.get_ranges("k", [(-1, 4)])

    def test_get_range_with_version(self, store: Store) -> None:
        """The same bytes as get_range; the version is the one get_with_version gives (stores
        without versions give None, and a reader then trusts nothing across reads)."""
        value = payload(4096, seed=8)
        store.put("k", value)
        for start, length in [(0, 16), (100, 1000), (4000, 500), (5000, 10), (-7, None)]:
            data, version = store.get_range_with_version("k", start, length)
            assert data == store.get_range("k", start, length)
            if version is not None and store.conditional_writes:
                assert version == store.get_with_version("k")[1]
        assert store.get_range_with_version("missing", 0, 10) == (None, None)
        with pytest.raises(ValueError, match="negative"):
            store.get_range_with_version("k", 0, -1)

    # -- reading into a buffer ---------------------------------------------------------------------
    def test_read_into(self, store: Store) -> None:
        # Optional: a backend without a buffer path returns None ("use get") for every key.
        value = payload(1000, seed=12)
        store.put("a/k", value)
        store.put("a/z", gzip.compress(value), content_encoding="gzip")
        buf = bytearray(1024)
        if not store.reads_into_buffers:
            assert store.read_into("a/k", memoryview(buf)) is None
            return
        assert store.read_into("a/k", memoryview(buf)) == 1000
        assert bytes(buf[:1000]) == value
        assert store.read_into("a/k", memoryview(buf)[:10], 990) == 10
        assert bytes(buf[:10]) == value[990:]
        assert store.read_into("a/k", memoryview(buf), size=1000) == 1000
        assert store.read_into("a/k", memoryview(buf), size=999) == -1  # not the size asked
        assert store.read_into("a/missing", memoryview(buf)) is None
        # A value stored with a transfer encoding is not plain bytes: the caller must get() it.
        assert store.read_into("a/z", memoryview(buf)) is None
