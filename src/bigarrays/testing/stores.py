"""The store conformance suite: one set of tests that every key -> bytes backend must pass.

Subclass :class:`StoreConformance` in a test module (the class name must start with ``Test`` for
pytest to collect it) and provide a fixture named ``store`` that returns a fresh, empty, writable
store::

    class TestFileStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            return FileStore(tmp_path / "store")

The fixture may live in the class or in a conftest; the suite deliberately defines no default
``store`` fixture, because a class-level fixture would shadow one provided by a conftest.

Backends whose URL alone does not reopen them (an S3 emulator's endpoint, credentials) override
:meth:`StoreConformance.reopen`.

The suite asserts only what the contract in :mod:`bigarrays.stores.base` promises, so that remote
backends can pass it: listing order is not assumed, and byte ranges are not required of values
written with a content encoding.
"""

from __future__ import annotations

import array
import gzip
import pickle
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bigarrays.errors import (
    InvalidKeyError,
    KeyOutsideRootError,
    ReadOnlyError,
    UnsupportedError,
    VersionConflictError,
)
from bigarrays.stores import open_store
from bigarrays.stores.base import Buffer, Store
from bigarrays.testing.store_ranges import RangeConformance, payload

__all__ = ["StoreConformance"]


# (id, value factory): each must store exactly the bytes of ``payload(1000)``.
_BUFFERS: list[tuple[str, Callable[[bytes], Buffer]]] = [
    ("bytes", lambda b: b),
    ("bytearray", bytearray),
    ("memoryview-bytes", memoryview),
    ("memoryview-bytearray", lambda b: memoryview(bytearray(b))),
    # A view into the middle of a bigger buffer must not leak the bytes around it.
    ("memoryview-slice", lambda b: memoryview(b"<<<<" + b + b">>>>")[4:-4]),
    # Items wider than a byte: the store writes the raw memory, not the item count.
    ("memoryview-uint32", lambda b: memoryview(array.array("I", b))),
]

# Keys the precomputed format makes: scale folders and chunk names with negative coordinates,
# where "-" is both a range separator and a minus sign.
_CHUNK_KEYS = [
    "8_8_40/0-64_0-64_0-64",
    "8_8_40/-64-0_0-64_0-64",
    "8_8_40/-128--64_-64-0_0-64",
    "8_8_40/64-128_0-64_-64-0",
    "16_16_40/0-64_0-64_0-64",
    "-64-0_0-64_0-64",
    "64-0_0-64_0-64",
    "info",
]


class StoreConformance(RangeConformance):
    """The contract of :class:`bigarrays.stores.base.Store`, as tests. Needs a ``store`` fixture."""

    #: Bytes in the "large" value: several MiB, past the sizes where backends switch to multipart
    #: uploads or split writes, and odd so that no block size divides it.
    large_size: int = 5 * 2**20 + 3
    #: Concurrency test: this many threads each put and get this many distinct keys.
    threads: int = 8
    keys_per_thread: int = 200

    def reopen(self, store: Store, *, read_only: bool = False) -> Store:
        """A second store object on the same data, with the same configuration but ``read_only``."""
        return open_store(store.url, read_only=read_only)

    # -- get / put ---------------------------------------------------------------------------------
    def test_get_missing_is_none(self, store: Store) -> None:
        assert store.get("missing") is None
        assert store.get("no/such/folder/key") is None
        assert not store.exists("missing")
        assert store.size("missing") is None

    def test_empty_value_is_not_missing(self, store: Store) -> None:
        store.put("empty", b"")
        assert store.get("empty") == b""
        assert store.get("empty") is not None
        assert store.exists("empty")
        assert store.size("empty") == 0
        assert set(store.list()) == {"empty"}

    def test_small_round_trip(self, store: Store) -> None:
        value = b"hello\x00world\xff\n"
        store.put("small", value)
        got = store.get("small")
        assert type(got) is bytes
        assert got == value

    def test_large_round_trip(self, store: Store) -> None:
        value = payload(self.large_size, seed=1)
        store.put("large", value)
        assert store.get("large") == value
        assert store.size("large") == self.large_size

    @pytest.mark.parametrize(("kind", "make"), _BUFFERS, ids=[kind for kind, _ in _BUFFERS])
    def test_buffer_types(self, store: Store, kind: str, make: Callable[[bytes], Buffer]) -> None:
        value = payload(1000, seed=2)
        store.put(kind, make(value))
        assert store.get(kind) == value, kind
        assert store.size(kind) == len(value)

    def test_value_is_copied_at_put(self, store: Store) -> None:
        # Callers reuse their buffers; a store that kept a reference would change under them.
        buf = bytearray(b"original")
        store.put("k", buf)
        buf[:] = b"mutated!"
        assert store.get("k") == b"original"

    def test_put_refuses_str(self, store: Store) -> None:
        with pytest.raises(TypeError):
            store.put("k", "text is not bytes")  # type: ignore[arg-type]
        assert not store.exists("k")
        assert set(store.list()) == set()

    def test_overwrite(self, store: Store) -> None:
        store.put("k", payload(5000, seed=3))
        # Shorter than the first value: a backend that rewrote in place without truncating fails.
        store.put("k", b"short")
        assert store.get("k") == b"short"
        assert store.size("k") == 5
        assert set(store.list()) == {"k"}

    def test_put_modes(self, store: Store) -> None:
        """One put for every store: overwrite returns the new version (None without versions);
        create-only and at-a-version writes conflict, or are refused where there are no
        conditional writes."""
        version = store.put("k", b"one")
        if not store.conditional_writes:
            assert version is None
            for mode, at in (("create", None), ("if_version", "1")):
                with pytest.raises(UnsupportedError, match="conditional writes"):
                    store.put("new", b"x", mode=mode, version=at)  # type: ignore[arg-type]
            assert store.get("new") is None
            return
        assert version == store.get_with_version("k")[1]
        with pytest.raises(VersionConflictError):
            store.put("k", b"two", mode="create")
        again = store.put("k", b"two", mode="if_version", version=version)
        with pytest.raises(VersionConflictError):
            store.put("k", b"three", mode="if_version", version=version)
        assert store.get("k") == b"two"
        assert again == store.get_with_version("k")[1]
        assert store.put("new", b"x", mode="create") == store.get_with_version("new")[1]

    def test_put_parts(self, store: Store) -> None:
        """A value put as parts reads back as their concatenation, replaces a longer value
        whole, and takes every buffer type (an empty part included)."""
        big = payload(self.large_size, seed=4)
        store.put("k", big + big)
        parts: list[Buffer] = [big, bytearray(b"mid"), b"", memoryview(b"end")]
        version = store.put_parts("k", parts)
        assert store.get("k") == big + b"midend"
        assert store.size("k") == len(big) + 6
        if store.conditional_writes:
            assert version == store.get_with_version("k")[1]
        else:
            assert version is None
        store.put_parts("none", [])
        assert store.get("none") == b""
        with pytest.raises(TypeError):
            store.put_parts("bad", [b"x", "text is not bytes"])  # type: ignore[list-item]
        assert not store.exists("bad")

    def test_put_parts_from_iterator(self, store: Store) -> None:
        """Parts an iterator makes on the way are stored as one value; an iterator that fails
        part way stores nothing and leaves the old value, its error going out as it is."""
        big = payload(self.large_size, seed=5)
        store.put("k", b"old")
        given: list[int] = []

        pieces: tuple[Buffer, ...] = (big, b"", bytearray(b"mid"), memoryview(b"end"))

        def parts(fail: bool) -> Iterator[Buffer]:
            for i, part in enumerate(pieces):
                given.append(i)
                if fail and i == 2:
                    raise RuntimeError("the encoder failed")
                yield part

        with pytest.raises(RuntimeError, match="encoder failed"):
            store.put_parts("k", parts(True))
        assert store.get("k") == b"old"
        version = store.put_parts("k", parts(False))
        assert store.get("k") == big + b"midend"
        assert given == [0, 1, 2, 0, 1, 2, 3]
        if store.conditional_writes:
            assert version == store.get_with_version("k")[1]
            with pytest.raises(VersionConflictError):
                store.put_parts("k", iter([b"x"]), mode="create")
            assert store.get("k") == big + b"midend"

    def test_put_parts_modes(self, store: Store) -> None:
        """put_parts is conditional as put is."""
        version = store.put_parts("k", [b"o", b"ne"])
        if not store.conditional_writes:
            for mode, at in (("create", None), ("if_version", "1")):
                with pytest.raises(UnsupportedError, match="conditional writes"):
                    store.put_parts("new", [b"x"], mode=mode, version=at)  # type: ignore[arg-type]
            assert store.get("new") is None
            return
        with pytest.raises(VersionConflictError):
            store.put_parts("k", [b"two"], mode="create")
        again = store.put_parts("k", [b"t", b"wo"], mode="if_version", version=version)
        with pytest.raises(VersionConflictError):
            store.put_parts("k", [b"three"], mode="if_version", version=version)
        assert store.get("k") == b"two"
        assert again == store.get_with_version("k")[1]
        assert store.put_parts("new", [b"x"], mode="create") == store.get_with_version("new")[1]
        with pytest.raises(ValueError, match="needs the version"):
            store.put_parts("k", [b"x"], mode="if_version")

    # -- delete / exists ---------------------------------------------------------------------------
    def test_delete(self, store: Store) -> None:
        store.put("a/k", b"1")
        store.put("a/other", b"2")
        store.delete("a/k")
        assert store.get("a/k") is None
        assert not store.exists("a/k")
        assert set(store.list()) == {"a/other"}
        assert store.get("a/other") == b"2"

    def test_delete_missing_is_not_an_error(self, store: Store) -> None:
        store.put("kept", b"x")
        store.delete("never-written")
        store.delete("no/such/folder")
        store.put("k", b"y")
        store.delete("k")
        store.delete("k")
        assert set(store.list()) == {"kept"}

    def test_exists(self, store: Store) -> None:
        assert not store.exists("dir/k")
        store.put("dir/k", b"x")
        assert store.exists("dir/k")
        # A "folder" of keys is no key itself, and neither is a prefix of a key's name.
        assert not store.exists("dir")
        assert not store.exists("dir/")
        assert store.get("dir") is None
        assert store.size("dir") is None
        assert not store.exists("dir/kk")

    # -- list --------------------------------------------------------------------------------------
    def test_list_empty_store(self, store: Store) -> None:
        assert set(store.list()) == set()
        assert set(store.list("any/prefix")) == set()

    def test_list_prefix_is_a_string_prefix(self, store: Store) -> None:
        keys = {"dir/x", "dir/sub/y", "dir/sub/deeper/z", "dirx", "d", "other"}
        for key in keys:
            store.put(key, key.encode())
        listed = list(store.list())
        assert len(listed) == len(set(listed)), "a key is listed twice"
        assert set(listed) == keys
        assert all(type(k) is str for k in listed)
        # "dir" is a string prefix, not a folder: it matches "dirx" too.
        assert set(store.list("dir")) == {"dir/x", "dir/sub/y", "dir/sub/deeper/z", "dirx"}
        assert set(store.list("dir/")) == {"dir/x", "dir/sub/y", "dir/sub/deeper/z"}
        assert set(store.list("./dir/")) == {"dir/x", "dir/sub/y", "dir/sub/deeper/z"}
        assert set(store.list("dir/s")) == {"dir/sub/y", "dir/sub/deeper/z"}
        assert set(store.list("dir/sub/y")) == {"dir/sub/y"}
        assert set(store.list("d")) == keys - {"other"}
        assert set(store.list("nothing")) == set()
        assert set(store.list("dir/x/")) == set()

    def test_list_shows_each_key_once_after_rewrites(self, store: Store) -> None:
        # Temporary files or old versions left by rewrites must not surface as keys.
        for i in range(5):
            store.put("k", payload(100 + i, seed=i))
            store.put("dir/k", payload(100 + i, seed=i))
        listed = list(store.list())
        assert sorted(listed) == ["dir/k", "k"]

    # -- size --------------------------------------------------------------------------------------
    def test_size(self, store: Store) -> None:
        store.put("k", payload(1234, seed=7))
        assert store.size("k") == 1234
        store.put("k", payload(17, seed=7))
        assert store.size("k") == 17
        store.delete("k")
        assert store.size("k") is None

    # -- content encoding --------------------------------------------------------------------------
    def test_gzip_round_trip(self, store: Store) -> None:
        value = b"a compressible chunk " * 1000
        store.put("k", gzip.compress(value), content_encoding="gzip")
        assert store.get("k") == value
        assert store.exists("k")
        assert set(store.list()) == {"k"}
        # The stored size may be the encoded one; it only has to be there.
        assert store.size("k") is not None

    def test_gzip_empty_value(self, store: Store) -> None:
        store.put("k", gzip.compress(b""), content_encoding="gzip")
        assert store.get("k") == b""

    def test_gzip_value_deleted(self, store: Store) -> None:
        store.put("k", gzip.compress(b"x" * 100), content_encoding="gzip")
        store.delete("k")
        assert store.get("k") is None
        assert not store.exists("k")
        assert set(store.list()) == set()

    def test_plain_rewrite_of_gzip_value(self, store: Store) -> None:
        store.put("k", gzip.compress(b"old " * 100), content_encoding="gzip")
        store.put("k", b"new")
        assert store.get("k") == b"new"
        assert store.get_range("k", 1, 1) == b"e"
        assert store.size("k") == 3
        assert set(store.list()) == {"k"}

    def test_gzip_rewrite_of_plain_value(self, store: Store) -> None:
        store.put("k", b"old plain value")
        store.put("k", gzip.compress(b"new " * 100), content_encoding="gzip")
        assert store.get("k") == b"new " * 100
        assert set(store.list()) == {"k"}

    def test_get_encoded(self, store: Store) -> None:
        # The bytes as stored and their encoding: put back as they are, they make the same object.
        store.put("plain", b"plain bytes")
        assert store.get_encoded("plain") == (b"plain bytes", None)
        packed = gzip.compress(b"a compressible chunk " * 100)
        store.put("gz", packed, content_encoding="gzip")
        found = store.get_encoded("gz")
        assert found is not None
        data, encoding = found
        assert type(data) is bytes
        if encoding is None:  # a backend that does not keep encodings hands back plain bytes
            assert data == b"a compressible chunk " * 100
        else:
            assert (data, encoding) == (packed, "gzip")
        assert store.get_encoded("missing") is None

    def test_unknown_content_encoding_is_refused(self, store: Store) -> None:
        with pytest.raises(UnsupportedError, match="gzip") as info:
            store.put("k", b"x", content_encoding="no-such-encoding")
        assert isinstance(info.value, ValueError)
        assert not store.exists("k")
        assert set(store.list()) == set()

    # -- keys --------------------------------------------------------------------------------------
    def test_key_normalisation(self, store: Store) -> None:
        spellings = ["a/b", "a//b", "a/./b", "a/b/", "./a/b", "a/c/../b"]
        store.put("a//b", b"first")
        for key in spellings:
            assert store.get(key) == b"first", key
            assert store.exists(key), key
            assert store.get_range(key, 1, 3) == b"irs", key
            assert store.size(key) == 5, key
        assert set(store.list()) == {"a/b"}
        store.put("./a/b", b"second")
        assert store.get("a/./b") == b"second"
        assert set(store.list()) == {"a/b"}
        store.delete("a/./b")
        assert store.get("a/b") is None
        assert set(store.list()) == set()

    def _key_calls(self, store: Store, key: str) -> dict[str, Callable[[], object]]:
        """Every method that takes a key, called with ``key``."""
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: store.get(key),
            "get_range": lambda: store.get_range(key, 0, 1),
            "get_encoded": lambda: store.get_encoded(key),
            "exists": lambda: store.exists(key),
            "size": lambda: store.size(key),
            "put": lambda: store.put(key, b"x"),
            "put gzip": lambda: store.put(key, gzip.compress(b"x"), content_encoding="gzip"),
            "delete": lambda: store.delete(key),
        }
        if store.conditional_writes:
            calls["get_with_version"] = lambda: store.get_with_version(key)
            calls["put create"] = lambda: store.put(key, b"x", mode="create")
            calls["put if_version"] = lambda: store.put(key, b"x", mode="if_version", version="1")
            calls["delete_if_version"] = lambda: store.delete_if_version(key, None)
        calls["get_ranges"] = lambda: store.get_ranges(key, [(0, 1)])
        if store.reads_into_buffers:
            calls["read_into"] = lambda: store.read_into(key, memoryview(bytearray(4)))
        return calls

    @staticmethod
    def _not_refused(calls: dict[str, Callable[[], object]], error: type[Exception]) -> list[str]:
        """The names of the ``calls`` that did not raise ``error`` (other errors propagate)."""
        missed = []
        for name, call in calls.items():
            try:
                call()
            except error:
                continue
            missed.append(name)
        return missed

    @pytest.mark.parametrize(
        "key", ["..", "../x", "../../home/.ssh/id_rsa", "a/../../b", "a/b/../../../c/d", "../"]
    )
    def test_keys_outside_the_root_are_refused(self, store: Store, key: str) -> None:
        # A scale key "../../home/.ssh" in a hostile info must not reach past the dataset.
        store.put("a/b", b"inside")
        assert self._not_refused(self._key_calls(store, key), KeyOutsideRootError) == []
        with pytest.raises(KeyOutsideRootError):
            list(store.list(key))
        assert not store.allow_parent_keys
        assert set(store.list()) == {"a/b"}
        assert store.get("a/b") == b"inside"

    @pytest.mark.parametrize("key", ["/a", "/", "//a/b", "a\x00b", "\x00", "", ".", "a/.."])
    def test_invalid_keys_are_refused(self, store: Store, key: str) -> None:
        store.put("a", b"inside")
        calls = self._key_calls(store, key)
        calls.pop("read_into", None)  # it takes keys its caller has checked
        assert self._not_refused(calls, InvalidKeyError) == []
        assert set(store.list()) == {"a"}
        assert store.get("a") == b"inside"

    def test_chunk_keys(self, store: Store) -> None:
        for i, key in enumerate(_CHUNK_KEYS):
            store.put(key, payload(64 + i, seed=100 + i))
        for i, key in enumerate(_CHUNK_KEYS):
            assert store.get(key) == payload(64 + i, seed=100 + i), key
        assert set(store.list()) == set(_CHUNK_KEYS)
        assert set(store.list("8_8_40/")) == {k for k in _CHUNK_KEYS if k.startswith("8_8_40/")}
        assert set(store.list("8_8_40/-")) == {
            "8_8_40/-64-0_0-64_0-64",
            "8_8_40/-128--64_-64-0_0-64",
        }
        assert set(store.list("-")) == {"-64-0_0-64_0-64"}
        assert set(store.list("64-")) == {"64-0_0-64_0-64"}

    # -- modes and identity ------------------------------------------------------------------------
    def test_read_only_refuses_writes(self, store: Store) -> None:
        store.put("k", b"value")
        ro = self.reopen(store, read_only=True)
        assert ro.read_only
        assert ro.get("k") == b"value"
        assert set(ro.list()) == {"k"}
        writes: list[Callable[[], object]] = [
            lambda: ro.put("k", b"changed"),
            lambda: ro.put("new", b"x"),
            lambda: ro.put("gz", gzip.compress(b"x"), content_encoding="gzip"),
            lambda: ro.put("new", b"x", mode="create"),
            lambda: ro.put("k", b"x", mode="if_version", version="1"),
            lambda: ro.put_parts("k", [b"x", b"y"]),
            lambda: ro.delete("k"),
            lambda: ro.delete("missing"),
        ]
        for write in writes:
            with pytest.raises(ReadOnlyError) as info:
                write()
            assert isinstance(info.value, PermissionError)
        assert store.get("k") == b"value"
        assert set(store.list()) == {"k"}
        # The read-only twin restricts only itself.
        store.put("k", b"still writable")
        assert ro.get("k") == b"still writable"

    def test_concurrent_puts_and_gets(self, store: Store) -> None:
        start = threading.Barrier(self.threads)

        def value(t: int, i: int) -> bytes:
            return f"{t}:{i};".encode() * (1 + i % 7)

        def work(t: int) -> list[str]:
            start.wait()
            wrong = []
            for i in range(self.keys_per_thread):
                key = f"t{t}/k{i}"
                store.put(key, value(t, i))
                if store.get(key) != value(t, i):
                    wrong.append(key)
            return wrong

        with ThreadPoolExecutor(self.threads) as pool:
            wrong = [k for ks in pool.map(work, range(self.threads)) for k in ks]
        assert wrong == []
        expected = {f"t{t}/k{i}" for t in range(self.threads) for i in range(self.keys_per_thread)}
        assert set(store.list()) == expected
        for t in range(self.threads):
            for i in range(self.keys_per_thread):
                assert store.get(f"t{t}/k{i}") == value(t, i)

    def test_pickle(self, store: Store) -> None:
        store.put("k", b"value")
        copy = pickle.loads(pickle.dumps(store))
        assert copy == store
        assert hash(copy) == hash(store)
        assert copy.get("k") == b"value"
        # The copy is another handle on the same data, as it is for a worker process.
        copy.put("from-copy", b"x")
        assert store.get("from-copy") == b"x"
        ro_copy = pickle.loads(pickle.dumps(self.reopen(store, read_only=True)))
        assert ro_copy.read_only
        with pytest.raises(ReadOnlyError):
            ro_copy.put("k", b"no")

    def test_equal_config_is_equal(self, store: Store) -> None:
        store.put("k", b"value")
        other = self.reopen(store)
        assert other is not store
        assert other == store
        assert hash(other) == hash(store)
        assert len({store, other}) == 1
        assert other.get("k") == b"value"
        ro = self.reopen(store, read_only=True)
        assert ro != store
        assert ro == self.reopen(store, read_only=True)
        assert store != "not a store"

    def test_closing_another_handle_leaves_store_usable(self, store: Store) -> None:
        store.put("k", b"value")
        with self.reopen(store) as other:
            assert other.get("k") == b"value"
        assert store.get("k") == b"value"
        store.put("k2", b"v2")
        assert store.get("k2") == b"v2"
