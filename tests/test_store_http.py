"""The read-only HTTP store against a static file server on 127.0.0.1.

The server serves a folder the way a CloudVolume-aware server does: ``KEY.gz`` is sent as ``KEY``
with ``Content-Encoding: gzip`` (and ``.br``, ``.zstd`` likewise), byte ranges are honoured, and
several ranges come back as ``multipart/byteranges``. HTTP has no writes and no listing, so the
conformance suites run on a store that writes into the served folder (a FileStore, which writes
``KEY.gz`` for gzip values) and reads everything else over HTTP.
"""

from __future__ import annotations

import gzip
import pickle
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import brotli
import numpy as np
import pytest
import zstandard

import bigarrays as ba
from bigarrays.errors import (
    AccessDeniedError,
    CredentialsError,
    ReadOnlyError,
    StoreError,
    StoreUnavailableError,
    UnsupportedError,
)
from bigarrays.stores import FileStore, Store, open_store
from bigarrays.stores.base import Buffer
from bigarrays.stores.http import HTTPStore, parse_byteranges
from bigarrays.stores.retry import RetryPolicy
from bigarrays.testing import ArrayConformance, StoreConformance
from network_servers import FaultProxy, StaticServer, TLSServer, served_folder

FAST_RETRY = RetryPolicy(attempts=40, base_delay=0.001, max_delay=0.01, deadline=30)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Path, StaticServer]]:
    with served_folder() as (root, server):
        yield root, server


@pytest.fixture
def site(served: tuple[Path, StaticServer]) -> Iterator[tuple[Path, StaticServer, str]]:
    """A fresh folder inside the served root, and its URL."""
    root, server = served
    name = f"site-{uuid.uuid4().hex[:10]}"
    (root / name).mkdir()
    server.faults.reset()
    yield root / name, server, f"{server.url}/{name}"
    server.faults.clear()


class ServedStore(Store):
    """Writes go to the served folder; reads (and exists, size) go over HTTP."""

    def __init__(self, folder: Path, url: str, *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.files = FileStore(folder, read_only=read_only)
        self.http = HTTPStore(url)

    @property
    def url(self) -> str:
        return self.http.url

    def _config(self) -> tuple[Any, ...]:
        return (type(self), self.files._config(), self.http._config(), self.read_only)

    def _get(self, key: str) -> bytes | None:
        return self.http.get(key)

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        return self.http.get_range(key, start, length)

    def _exists(self, key: str) -> bool:
        return self.http.exists(key)

    def _size(self, key: str) -> int | None:
        return self.http.size(key)

    def _put(self, key: str, value: Buffer, encoding: str | None) -> None:
        self.files.put(key, value, content_encoding=encoding)

    def _delete(self, key: str) -> None:
        self.files.delete(key)

    def _list(self, prefix: str) -> Iterator[str]:
        return self.files.list(prefix)


class TestHTTPStore(StoreConformance):
    keys_per_thread = 40

    @pytest.fixture
    def store(self, site: tuple[Path, StaticServer, str]) -> ServedStore:
        folder, _, url = site
        return ServedStore(folder, url)

    def reopen(self, store: Store, *, read_only: bool = False) -> Store:
        assert isinstance(store, ServedStore)
        return ServedStore(store.files.root, store.url, read_only=read_only)


class TestHTTPArrays(ArrayConformance):
    """Volumes written to the served folder (gzip as KEY.gz), read back over HTTP."""

    @pytest.fixture(autouse=True)
    def _served(self, served: tuple[Path, StaticServer]) -> None:
        self.root, self.server = served

    @pytest.fixture
    def dataset_url(self, served: tuple[Path, StaticServer]) -> str:
        return (served[0] / f"vol-{uuid.uuid4().hex[:10]}").as_uri()

    def reopen(self, url: str, **kwargs: Any) -> ba.BigArray:
        name = Path(url.removeprefix("file://")).relative_to(self.root)
        vol = ba.open(f"{self.server.url}/{name}", **kwargs)
        assert isinstance(vol.store, HTTPStore)
        return vol


# -- the store itself ----------------------------------------------------------------------------


def test_read_only_whatever_was_asked(site: tuple[Path, StaticServer, str]) -> None:
    folder, _, url = site
    (folder / "k").write_bytes(b"v")
    store = open_store(url, read_only=False)
    assert isinstance(store, HTTPStore)
    assert store.read_only
    assert store == open_store(url + "/", read_only=True)
    for write in (lambda: store.put("k", b"x"), lambda: store.delete("k")):
        with pytest.raises(ReadOnlyError, match="read-only") as info:
            write()
        assert isinstance(info.value, PermissionError)
    with pytest.raises(UnsupportedError, match="listing"):
        store.list()
    with pytest.raises(ReadOnlyError):
        ba.create(url + "/new", shape=(4, 4, 4))
    assert (folder / "k").read_bytes() == b"v"
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store
    assert copy.get("k") == b"v"
    with pytest.raises(StoreError, match="http"):
        HTTPStore("http:///nohost")


def test_content_encodings_from_suffixed_files(site: tuple[Path, StaticServer, str]) -> None:
    folder, _, url = site
    value = b"a value that compresses " * 100
    (folder / "g.gz").write_bytes(gzip.compress(value))
    (folder / "b.br").write_bytes(brotli.compress(value))
    (folder / "z.zstd").write_bytes(zstandard.ZstdCompressor().compress(value))
    store = HTTPStore(url)
    for key in ("g", "b", "z"):
        assert store.get(key) == value, key
        assert store.get_range(key, 24, 7) == b"a value", key
        assert store.get_range(key, -6) == value[-6:], key
        assert store.get_ranges(key, [(0, 1), (len(value) - 1, 5)]) == [b"a", b" "], key
        assert store.exists(key)
    assert store.size("g") == (folder / "g.gz").stat().st_size


@pytest.mark.parametrize(("ranges", "multirange"), [(True, True), (True, False), (False, False)])
def test_ranges_whatever_the_server_supports(ranges: bool, multirange: bool) -> None:
    with served_folder(ranges=ranges, multirange=multirange) as (root, server):
        value = np.random.default_rng(4).bytes(300_000)
        (root / "k").write_bytes(value)
        store = HTTPStore(server.url)
        assert store.get_range("k", 1000, 10) == value[1000:1010]
        assert store.get_range("k", -10) == value[-10:]
        assert store.get_range("k", 299_990) == value[299_990:]
        assert store.get_range("k", 400_000, 5) == b""
        wanted = [(0, 10), (200_000, 50), (100_000, 7), (299_995, 100), (10, 0)]
        before = server.faults.requests
        assert store.get_ranges("k", wanted) == [value[s : s + n] for s, n in wanted]
        assert server.faults.requests - before == 1  # three spans, one request
        assert store.get_ranges("missing", wanted) is None
        assert store.get_range("missing", 0, 5) is None


def test_parse_byteranges_keeps_boundary_like_bytes() -> None:
    body = (b"--B\r\nContent-Range: bytes 0-5/10\r\n\r\n--B\r\n\r\n"
            b"--B\r\nContent-Range: bytes 8-9/10\r\n\r\nxy\r\n--B--\r\n")  # fmt: skip
    assert parse_byteranges(body, "multipart/byteranges; boundary=B") == [(0, b"--B\r\n\r"),
                                                                          (8, b"xy")]  # fmt: skip


def test_escaped_paths(site: tuple[Path, StaticServer, str]) -> None:
    folder, _, url = site
    (folder / "a dir").mkdir()
    (folder / "a dir" / "k #1").write_bytes(b"v")
    assert HTTPStore(f"{url}/a%20dir").get("k #1") == b"v"
    assert HTTPStore(url).get("a dir/k #1") == b"v"


def test_headers_option_is_sent(site: tuple[Path, StaticServer, str]) -> None:
    folder, server, url = site
    (folder / "k").write_bytes(b"v")
    with FaultProxy(server.url) as proxy:
        path = url.removeprefix(server.url)
        store = HTTPStore(proxy.endpoint + path, headers={"Authorization": "Bearer abc"})
        assert store.get("k") == b"v"
        assert proxy.log[-1][2]["authorization"] == "Bearer abc"
        assert open_store(store.url, **store.options) == store


def test_volume_written_by_cloudvolume_reads_over_http(
    site: tuple[Path, StaticServer, str],
) -> None:
    from cloudvolume import CloudVolume

    folder, _, url = site
    data = np.random.default_rng(5).integers(0, 255, (40, 30, 20), dtype=np.uint8)
    info = CloudVolume.create_new_info(
        num_channels=1, layer_type="image", data_type="uint8", encoding="raw",
        resolution=[4, 4, 40], voxel_offset=[-8, 0, 3], chunk_size=[16, 16, 8],
        volume_size=[40, 30, 20])  # fmt: skip
    cv = CloudVolume(f"file://{folder}/cv", info=info, compress="gzip", progress=False)
    cv.commit_info()
    cv[-8:32, 0:30, 3:23] = data
    assert any(p.suffix == ".gz" for p in (folder / "cv").rglob("*"))
    vol = ba.open(f"{url}/cv")
    np.testing.assert_array_equal(vol[...], data)


# -- errors and faults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error"),
    [("403", AccessDeniedError), ("401", CredentialsError), ("400", StoreError)],
)
def test_permanent_errors_are_typed_and_not_retried(
    site: tuple[Path, StaticServer, str], answer: str, error: type[Exception]
) -> None:
    folder, server, url = site
    (folder / "k").write_bytes(b"v")
    server.faults.always = answer
    store = HTTPStore(url)
    before = server.faults.requests
    t0 = time.monotonic()
    with pytest.raises(error, match=answer):
        store.get("k")
    assert time.monotonic() - t0 < 2
    assert server.faults.requests - before == 1


def test_missing_key_is_none_and_missing_chunk_is_zero(
    site: tuple[Path, StaticServer, str],
) -> None:
    folder, _, url = site
    vol = ba.create(folder.as_uri(), shape=(16, 16, 16), chunks=(8, 8, 8))
    vol[0:8, 0:8, 0:8] = 3
    store = HTTPStore(url)
    assert store.get("nope") is None
    assert not store.exists("nope")
    assert store.size("nope") is None
    back = ba.open(url)
    assert int(back[...].sum()) == 3 * 8**3
    from bigarrays.errors import ChunkNotFoundError

    with pytest.raises(ChunkNotFoundError):
        ba.open(url, fill_missing=False)[8:9, 0:1, 0:1]


def test_transient_faults_are_retried(site: tuple[Path, StaticServer, str]) -> None:
    folder, server, url = site
    data = np.random.default_rng(6).integers(0, 99, (64, 48, 32), dtype=np.uint8)
    ba.create(folder.as_uri(), shape=(64, 48, 32), chunks=(16, 16, 16),
              compression="gzip")[...] = data  # fmt: skip
    for action in ("503", "500", "drop", "reset", "truncate", "429", "502", "504"):
        server.faults.add(action, 3)
    np.testing.assert_array_equal(ba.open(url, retry=FAST_RETRY, concurrency=8)[...], data)
    assert server.faults.pending == 0
    assert server.faults.injected == 24


def test_retries_are_bounded(site: tuple[Path, StaticServer, str]) -> None:
    folder, server, url = site
    (folder / "k").write_bytes(b"v")
    server.faults.always = "503"
    store = HTTPStore(url, retry=RetryPolicy(attempts=5, base_delay=0, max_delay=0))
    with pytest.raises(StoreUnavailableError, match="5 attempts"):
        store.get("k")
    assert server.faults.requests == 5
    server.faults.clear()
    assert store.get("k") == b"v"


def test_connection_refused_is_retried_then_unavailable() -> None:
    from network_servers import free_port

    store = HTTPStore(f"http://127.0.0.1:{free_port()}/x",
                      retry=RetryPolicy(attempts=3, base_delay=0, max_delay=0))  # fmt: skip
    with pytest.raises(StoreUnavailableError, match="3 attempts"):
        store.get("k")


def test_a_certificate_that_does_not_verify_is_not_retried(tmp_path: Path) -> None:
    with TLSServer(tmp_path) as server:
        store = HTTPStore(server.endpoint + "/vol", retry=RetryPolicy(attempts=4, base_delay=0))
        with pytest.raises(StoreError, match="does not verify"):
            store.get("info")
    assert server.requests == 0  # the handshake failed, once: nothing to retry
