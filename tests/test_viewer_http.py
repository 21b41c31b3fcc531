"""The viewer's HTTP server: tokens, 404s, 405, ranges, encodings, concurrency, port errors."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import ViewerPortInUseError
from bigarrays.viewer import stop_servers
from bigarrays.viewer.server import ViewerServer, get_server
from viewer_helpers import fetch


@pytest.fixture(autouse=True)
def _servers():
    yield
    stop_servers()


@pytest.fixture
def plain_volume(tmp_path):
    vol = ba.create(tmp_path / "plain", shape=(64, 64, 32), dtype="uint16",
                    chunks=(32, 32, 16))  # fmt: skip
    vol[:, :, :] = np.arange(64 * 64 * 32, dtype=np.uint16).reshape((64, 64, 32), order="F")
    yield vol
    vol.close()


@pytest.fixture
def sharded_volume(tmp_path):
    vol = ba.create(tmp_path / "sharded", shape=(64, 64, 64), dtype="uint8",
                    chunks=(16, 16, 16), sharding=True)  # fmt: skip
    vol[:, :, :] = np.random.default_rng(1).integers(0, 255, (64, 64, 64), dtype=np.uint8)
    yield vol
    vol.close()


def _shard_key(vol) -> str:
    keys = [k for k in vol.store.list() if k.endswith(".shard")]
    assert keys
    return keys[0]


def test_client_files_are_served_with_their_types(plain_volume):
    viewer = plain_volume.view()
    page = viewer.url.split("#", 1)[0]
    status, headers, body = fetch(page)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert viewer.server.token.encode() in body  # the start-up script knows the token
    wasm = next(n for n in viewer.server.client._names if n.endswith(".wasm"))
    status, headers, body = fetch(page + wasm)
    assert status == 200
    assert headers["Content-Type"] == "application/wasm"
    assert body[:4] == b"\0asm"
    js = next(n for n in viewer.server.client._names if n.startswith("main.") and n.endswith(".js"))
    status, headers, plain = fetch(page + js)
    assert headers["Content-Type"].startswith("text/javascript")
    assert "Content-Encoding" not in headers
    # Far from the server (a notebook server's proxy), the bundles travel compressed.
    status, headers, packed = fetch(page + js, {"Accept-Encoding": "gzip, deflate"})
    assert headers["Content-Encoding"] == "gzip"
    assert len(packed) < len(plain) / 2
    assert gzip.decompress(packed) == plain


def test_the_page_declares_an_icon_so_browsers_do_not_ask_for_favicon(plain_volume):
    viewer = plain_volume.view()
    status, _, body = fetch(viewer.url.split("#", 1)[0])
    assert status == 200
    head = body[: body.index(b"</head>")]
    assert b'<link rel="icon" href="data:,">' in head


def test_wrong_or_missing_token_is_404(plain_volume):
    viewer = plain_volume.view()
    data = viewer.data_url()
    right = viewer.server.token
    wrong = right[:-1] + ("A" if right[-1] != "A" else "B")
    assert fetch(data + "info")[0] == 200
    assert fetch(data.replace(right, wrong) + "info")[0] == 404
    root = f"http://127.0.0.1:{viewer.server.port}/"
    for path in ("", "info", "data/1/0/info", "v/0/", "index.html", f"{wrong}/v/0/"):
        assert fetch(root + path)[0] == 404, path


def test_only_registered_sources_and_their_keys(plain_volume, tmp_path):
    (tmp_path / "secret.txt").write_text("do not serve")
    viewer = plain_volume.view()
    data = viewer.data_url()
    base = data.rsplit("/data/", 1)[0] + "/data/"
    sid = data[len(base) :].split("/")[0]
    assert fetch(base + "999/0/info")[0] == 404  # no such source
    assert fetch(base + f"{sid}/x/info")[0] == 404  # a generation is a number
    for key in ("", "8_8_8/", "../secret.txt", "..%2Fsecret.txt", "a/../../secret.txt",
                "%2E%2E/secret.txt", "./info", "/etc/passwd", "a//b", "a%5C..%5Csecret.txt",
                "missing-key"):  # fmt: skip
        assert fetch(data + key)[0] == 404, key
    raw = socket.create_connection(("127.0.0.1", viewer.server.port))
    path = data.split(str(viewer.server.port), 1)[1]
    raw.sendall(f"GET {path}../../../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = raw.recv(4096)
    raw.close()
    assert answer.startswith(b"HTTP/1.1 404")
    assert b"do not serve" not in answer


def test_other_methods_are_405(plain_volume):
    viewer = plain_volume.view()
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = fetch(viewer.data_url() + "info", method=method)
        assert status == 405, method
        assert headers["Allow"] == "GET, HEAD"
    assert plain_volume.store.get("info") is not None


def test_head_gives_the_headers_without_a_body(plain_volume):
    viewer = plain_volume.view()
    status, headers, body = fetch(viewer.data_url() + "info", method="HEAD")
    assert status == 200
    assert body == b""
    assert int(headers["Content-Length"]) == len(plain_volume.store.get("info"))
    assert headers["Content-Type"] == "application/json"


def test_ranges_of_a_shard(sharded_volume):
    viewer = sharded_volume.view()
    key = _shard_key(sharded_volume)
    whole = sharded_volume.store.get(key)
    url = viewer.data_url() + key
    status, headers, body = fetch(url, {"Range": "bytes=10-109"})
    assert status == 206
    assert body == whole[10:110]
    assert headers["Content-Range"] == "bytes 10-109/*"  # served without the size
    status, headers, body = fetch(url, {"Range": "bytes=-64"})
    assert status == 206
    assert body == whole[-64:]
    assert headers["Content-Range"] == f"bytes {len(whole) - 64}-{len(whole) - 1}/{len(whole)}"
    status, _, body = fetch(url, {"Range": f"bytes={len(whole) - 5}-"})
    assert (status, body) == (206, whole[-5:])
    status, headers, body = fetch(url, {"Range": f"bytes=0-{len(whole) + 100}"})
    assert (status, body) == (206, whole)
    assert headers["Content-Range"] == f"bytes 0-{len(whole) - 1}/*"
    status, headers, _ = fetch(url, {"Range": f"bytes={len(whole)}-"})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(whole)}"
    assert fetch(url, {"Range": "bytes=-0"})[0] == 416
    status, _, body = fetch(url, {"Range": "bytes=0-1,5-6"})  # several ranges: all of it
    assert (status, body) == (200, whole)
    assert fetch(viewer.data_url() + "nope.shard", {"Range": "bytes=0-9"})[0] == 404


def test_gzip_chunks_keep_their_content_encoding(tmp_path):
    with pytest.warns(ba.errors.ViewerCompatibilityWarning):
        vol = ba.create(tmp_path / "gz", shape=(40, 40, 8), dtype="uint8", chunks=(20, 20, 8),
                        compression="gzip")  # fmt: skip
    data = np.random.default_rng(2).integers(0, 4, (40, 40, 8), dtype=np.uint8)
    vol[:, :, :] = data
    viewer = vol.view()
    key = vol.chunk_key((1, 0, 0))
    assert (tmp_path / "gz" / (key + ".gz")).is_file()
    status, headers, body = fetch(viewer.data_url() + key, {"Accept-Encoding": "gzip, br"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert body == (tmp_path / "gz" / (key + ".gz")).read_bytes()
    expected = np.asfortranarray(data[20:40, 0:20, :]).tobytes(order="F")
    assert gzip.decompress(body) == expected
    # A client that does not take gzip gets the plain bytes.
    for accept in ({}, {"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip;q=0"}):
        status, headers, body = fetch(viewer.data_url() + key, accept)
        assert status == 200
        assert "Content-Encoding" not in headers
        assert body == expected
    vol.close()


def test_eight_concurrent_clients_get_the_right_bytes(sharded_volume, plain_volume):
    viewer = ba.view(plain_volume, sharded_volume)
    keys = [plain_volume.chunk_key((i, j, k)) for i in range(2) for j in range(2) for k in range(2)]
    expected = {k: plain_volume.store.get(k) for k in keys}
    shard = _shard_key(sharded_volume)
    whole = sharded_volume.store.get(shard)
    errors: list[str] = []

    def client(n: int) -> None:
        for r in range(40):
            key = keys[(n + r) % len(keys)]
            status, _, body = fetch(viewer.data_url(0) + key)
            if status != 200 or body != expected[key]:
                errors.append(f"client {n}: {key} {status}")
            start = (n * 97 + r * 13) % (len(whole) - 50)
            rng = {"Range": f"bytes={start}-{start + 49}"}
            status, _, body = fetch(viewer.data_url(1) + shard, rng)
            if status != 206 or body != whole[start : start + 50]:
                errors.append(f"client {n}: range {start} {status}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))
    assert errors == []


def test_keep_alive_serves_several_requests_on_one_connection(plain_volume):
    import http.client

    viewer = plain_volume.view()
    path = viewer.data_url().split(str(viewer.server.port), 1)[1]
    conn = http.client.HTTPConnection("127.0.0.1", viewer.server.port, timeout=10)
    for _ in range(3):
        conn.request("GET", path + "info")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == plain_volume.store.get("info")
    conn.close()


def test_refresh_changes_the_data_urls_and_serves_new_values():
    a = np.zeros((32, 32, 4), dtype=np.uint8)
    viewer = ba.view(a)
    before = viewer.data_url()
    chunk = "0/0-32_0-32_0-4"
    assert fetch(before + chunk)[2] == bytes(32 * 32 * 4)
    a[:] = 9
    assert viewer.refresh() is viewer
    after = viewer.data_url()
    assert after != before
    assert after in viewer.url
    assert before not in viewer.url
    assert fetch(after + chunk)[2] == bytes([9]) * (32 * 32 * 4)


def test_close_unregisters_the_sources(plain_volume):
    with plain_volume.view() as viewer:
        url = viewer.data_url() + "info"
        assert fetch(url)[0] == 200
    assert fetch(url)[0] == 404
    assert plain_volume.store.get("info") is not None  # the caller's array stays usable


def test_a_taken_port_is_a_typed_error_naming_it():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(ViewerPortInUseError, match=str(port)) as caught:
            ba.view(np.zeros((4, 4, 4), np.uint8), port=port)
        assert isinstance(caught.value, OSError)
        assert caught.value.port == port
    finally:
        holder.close()


def test_one_server_per_process_and_port():
    first = get_server()
    assert get_server() is first
    assert get_server(first.port) is first
    other = ViewerServer()
    try:
        assert other.port != first.port
        assert other.token != first.token
    finally:
        other.shutdown()


def test_server_answers_while_a_source_fails(plain_volume):
    viewer = plain_volume.view()
    source = viewer.sources[0]
    boom = threading.Event()

    def broken(key, accept):
        boom.set()
        raise OSError("disk on fire")

    source.get = broken  # type: ignore[method-assign]
    status, _, body = fetch(viewer.data_url() + "info")
    assert boom.is_set()
    assert status == 500
    assert b"disk on fire" in body
    del source.get
    assert fetch(viewer.data_url() + "info")[0] == 200


def test_a_compression_neuroglancer_cannot_read_is_warned(tmp_path):
    import blosc  # noqa: F401

    with pytest.warns(ba.errors.ViewerCompatibilityWarning):
        vol = ba.create(tmp_path / "blosc", shape=(8, 8, 8), dtype="uint8", compression="blosc")
    with pytest.warns(ba.errors.ViewerCompatibilityWarning, match="blosc"):
        vol.view()
    vol.close()


def test_viewing_a_level_leaves_the_caller_array_open(plain_volume):
    plain_volume.downsample(num_mips=1)
    level = plain_volume.at_mip(1)
    viewer = level.view()
    assert viewer.state["dimensions"]["x"] == [1e-9, "m"]  # level 0 describes the dataset
    assert level[0:1, 0:1, 0:1].shape == (1, 1, 1)
    assert plain_volume[0, 0, 0] == 0
    level.close()


def test_assigning_new_data_to_a_layer():
    first = np.zeros((32, 32, 4), dtype=np.uint8)
    viewer = ba.view(first, np.ones((8, 8, 8), np.uint8), resolution=(4, 4, 40),
                     layers=["em", {"name": "mask", "opacity": 0.3}])  # fmt: skip
    before = viewer.data_url(0)
    viewer[0] = np.full((64, 32, 4), 5, dtype=np.uint8)
    after = viewer.data_url(0)
    assert after != before
    assert fetch(before + "info")[0] == 404  # the old array is no longer served
    info = json.loads(fetch(after + "info")[2])
    assert info["scales"][0]["size"] == [64, 32, 4]
    assert info["scales"][0]["resolution"] == [4.0, 4.0, 40.0]  # placed as the viewer's arrays
    assert fetch(after + "0/0-64_0-32_0-4")[2] == bytes([5]) * (64 * 32 * 4)
    viewer["mask"] = np.zeros((8, 8, 8), np.uint8)
    layers = viewer.state["layers"]
    assert [layer["name"] for layer in layers] == ["em", "mask"]
    assert layers[1]["opacity"] == 0.3
    with pytest.raises(KeyError, match="no layer 'nope'"):
        viewer["nope"] = first
    with pytest.raises(IndexError):
        viewer[2] = first


def test_a_range_with_a_start_is_one_read_of_the_store(sharded_volume):
    """On S3 or GCS a size lookup is a request of its own: a range that starts somewhere is
    answered from one ranged read; only a suffix range needs the size."""
    viewer = sharded_volume.view()
    key = _shard_key(sharded_volume)
    store = sharded_volume.store
    calls: list[str] = []
    for name in ("size", "get_range"):
        original = getattr(store, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        setattr(store, name, spy)
    url = viewer.data_url() + key
    assert fetch(url, {"Range": "bytes=16-31"})[0] == 206
    assert calls == ["get_range"]
    calls.clear()
    assert fetch(url, {"Range": "bytes=-16"})[0] == 206
    assert calls == ["size", "get_range"]
