"""Versions of HTTP objects: a strong ETag names a state of a file, ``If-Match`` on a ranged GET
reads only that state. A sharded volume served over HTTP and rewritten on the server's disk is
read right, through ETags when the server sends them and without cached indexes when not."""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import CorruptChunkError, StaleReadError
from bigarrays.formats.precomputed.sharded_layout import ShardedLayout
from bigarrays.stores.http import HTTPStore
from bigarrays.testing.counting import CountingStore
from shard_crafting import build, chunk_bytes, model, spec, write_dataset


class EtagServer:
    """Serves a folder on 127.0.0.1 with single byte ranges and, if asked, strong ETags that
    ``If-Match`` is checked against (``honour_if_match=False``: sent but ignored)."""

    def __init__(self, root: Path, *, etags: bool = True, honour_if_match: bool = True) -> None:
        self.root = root
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.answer(self)

        self.etags = etags
        self.honour_if_match = honour_if_match
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        path = self.root / h.path.lstrip("/")
        try:
            body = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        etag = f'"{hashlib.blake2b(body, digest_size=8).hexdigest()}"'
        wanted = h.headers.get("If-Match")
        if self.etags and self.honour_if_match and wanted is not None and wanted != etag:
            h.send_response(412)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        status, headers = 200, []
        spec = h.headers.get("Range")
        if spec and spec.startswith("bytes=") and "," not in spec:
            a, _, b = spec[6:].partition("-")
            start = int(a) if a else max(0, len(body) - int(b))
            end = min(int(b), len(body) - 1) if a and b else len(body) - 1
            if start >= len(body):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(body)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            headers.append(("Content-Range", f"bytes {start}-{end}/{len(body)}"))
            status, body = 206, body[start : end + 1]
        h.send_response(status)
        if self.etags:
            headers.append(("ETag", etag))
        for name, value in [*headers, ("Content-Length", str(len(body)))]:
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)

    def __enter__(self) -> EtagServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(params=["etag", "ignored-if-match", "no-etag"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, EtagServer]]:
    with EtagServer(tmp_path, etags=request.param != "no-etag",
                    honour_if_match=request.param == "etag") as server:  # fmt: skip
        yield tmp_path, server


def test_ranges_with_versions(served: tuple[Path, EtagServer]) -> None:
    root, server = served
    (root / "obj").write_bytes(bytes(range(200)))
    store = HTTPStore(server.url)
    data, version = store.get_range_with_version("obj", 10, 5)
    assert data == bytes(range(10, 15))
    assert store.get_range_with_version("missing", 0, 4) == (None, None)
    if not server.etags:
        assert version is None  # nothing names the state: the reader trusts no cached index
        return
    assert version is not None
    assert store.get_range_if_version("obj", 100, 3, version) == bytes([100, 101, 102])
    (root / "obj").write_bytes(bytes(range(200))[::-1])
    with pytest.raises(StaleReadError):  # refused by the server, or caught by the ETag
        store.get_range_if_version("obj", 100, 3, version)
    (root / "obj").unlink()
    with pytest.raises(StaleReadError):
        store.get_range_if_version("obj", 100, 3, version)


def test_sharded_volume_rewritten_under_an_http_reader(served: tuple[Path, EtagServer]) -> None:
    root, server = served
    shape = (32, 16, 16)
    rng = np.random.default_rng(3)
    model = rng.integers(1, 255, shape, dtype=np.uint8)
    vol = ba.create(root / "vol", shape=shape, chunks=(8, 8, 8), sharding=True,
                    shard_size_bytes=8 * 8**3)  # fmt: skip
    vol[...] = model
    store = CountingStore(HTTPStore(f"{server.url}/vol"))
    reader = ba.open(store)
    np.testing.assert_array_equal(reader[...], model)
    layout = reader.level.source
    assert isinstance(layout, ShardedLayout)
    if server.etags:
        assert len(layout.cache) > 0
        store.reset()
        reader[8:16, 0:8, 0:8]  # a warm index: one ranged read, held to the ETag
        assert store.counts == {"get_range": 1}
    else:
        assert len(layout.cache) == 0  # indexes of unversioned shards live for one read only
    vol[0:8, 0:8, 0:8] = 0  # the chunk leaves the shard: the others move
    model[0:8, 0:8, 0:8] = 0
    np.testing.assert_array_equal(reader[8:16, 0:8, 0:8], model[8:16, 0:8, 0:8])
    np.testing.assert_array_equal(reader[...], model)


@pytest.mark.parametrize("etags", [True, False], ids=["etag", "no-etag"])
def test_a_shard_shorter_than_its_index_is_corrupt_over_http(tmp_path: Path, etags: bool) -> None:
    vol = model()
    chunks = {cid: chunk_bytes(vol, cid) for cid in range(8)}
    shard = build(chunks)
    # The last chunk's size says it runs 1000 bytes past the end of the file.
    shard = shard[:-8] + struct.pack("<Q", 512 + 1000)
    write_dataset(tmp_path / "vol", spec(), shard)
    with EtagServer(tmp_path, etags=etags) as server:
        store = CountingStore(HTTPStore(f"{server.url}/vol"))
        with pytest.raises(CorruptChunkError, match="shorter than its index"):
            ba.open(store)[...]
        assert store.counts["get_range"] <= 6  # one more look without versions, no more
