"""The GCS store against fake-gcs-server on 127.0.0.1, directly and through a faulty proxy."""

from __future__ import annotations

import gzip
import json
import pickle
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CredentialsError,
    StoreError,
    StoreUnavailableError,
)
from bigarrays.stores import open_store
from bigarrays.stores.gcs import GCSStore
from bigarrays.stores.retry import RetryPolicy
from bigarrays.testing import ArrayConformance, StoreConformance
from bigarrays.testing.conditional import ConditionalWriteConformance
from network_servers import LOCALHOST, FaultProxy


class TestGCSStore(StoreConformance):
    keys_per_thread = 40

    @pytest.fixture
    def store(self, gcs_bucket: str) -> Iterator[GCSStore]:
        with GCSStore(f"gs://{gcs_bucket}/root-{uuid.uuid4().hex[:8]}") as store:
            yield store


class TestGCSConditionalWrites(ConditionalWriteConformance):
    """Generations with ifGenerationMatch, which the sharded writer needs to merge shards."""

    @pytest.fixture
    def store(self, gcs_bucket: str) -> GCSStore:
        return GCSStore(f"gs://{gcs_bucket}/cas")


class TestGCSArrays(ArrayConformance):
    @pytest.fixture
    def dataset_url(self, gcs_bucket: str) -> str:
        return f"gs://{gcs_bucket}/vol"


def object_meta(endpoint: str, bucket: str, name: str) -> dict[str, Any]:
    url = f"{endpoint}/storage/v1/b/{bucket}/o/{urllib.request.quote(name, safe='')}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        meta: dict[str, Any] = json.loads(resp.read())
        return meta


def upload(endpoint: str, bucket: str, name: str, data: bytes, encoding: str | None) -> None:
    """Upload as another tool would: JSON API multipart, metadata included."""
    meta = json.dumps({"name": name, **({"contentEncoding": encoding} if encoding else {})})
    body = b"".join([
        b"--b\r\nContent-Type: application/json\r\n\r\n", meta.encode(),
        b"\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n", data, b"\r\n--b--\r\n",
    ])  # fmt: skip
    req = urllib.request.Request(
        f"{endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=multipart", data=body,
        headers={"Content-Type": "multipart/related; boundary=b"}, method="POST")  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


# -- configuration -------------------------------------------------------------------------------


def test_url_endpoint_and_anonymous_defaults(gcs_bucket: str, gcs_endpoint: str) -> None:
    store = open_store(f"gs://{gcs_bucket}/a//b/")
    assert isinstance(store, GCSStore)
    assert store.url == f"gs://{gcs_bucket}/a/b"
    assert store.endpoint == gcs_endpoint  # from STORAGE_EMULATOR_HOST
    assert store.anonymous  # an emulator takes no credentials
    assert open_store(store.url, **store.options) == store
    assert pickle.loads(pickle.dumps(store)) == store
    with pytest.raises(StoreError, match="bucket"):
        open_store("gs://")


def test_emulator_host_without_scheme(
    gcs_bucket: str, gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint.removeprefix("http://"))
    store = GCSStore(f"gs://{gcs_bucket}/v")
    store.put("k", b"v")
    assert store.get("k") == b"v"


# -- content encoding ----------------------------------------------------------------------------


def test_gzip_is_stored_as_content_encoding(gcs_bucket: str, gcs_endpoint: str) -> None:
    vol = ba.create(f"gs://{gcs_bucket}/vol", shape=(32, 32, 8), chunks=(16, 16, 8),
                    compression="gzip")  # fmt: skip
    vol[...] = 5
    meta = object_meta(gcs_endpoint, gcs_bucket, f"vol/{vol.chunk_key((1, 1, 0))}")
    assert meta["contentEncoding"] == "gzip"
    assert int(meta["size"]) < 16 * 16 * 8
    np.testing.assert_array_equal(ba.open(f"gs://{gcs_bucket}/vol")[...], 5)


def test_reads_objects_written_with_content_encoding_by_others(
    gcs_bucket: str, gcs_endpoint: str
) -> None:
    upload(gcs_endpoint, gcs_bucket, "d/k", gzip.compress(b"q" * 5000), "gzip")
    upload(gcs_endpoint, gcs_bucket, "d/plain", b"0123456789", None)
    store = GCSStore(f"gs://{gcs_bucket}/d")
    assert store.get("k") == b"q" * 5000
    assert store.get_range("k", 100, 3) == b"qqq"
    assert store.get_range("k", -2) == b"qq"
    assert store.get_ranges("plain", [(1, 2), (7, 10)]) == [b"12", b"789"]
    assert store.size("k") == len(gzip.compress(b"q" * 5000))
    assert store.get_encoded("k") == (gzip.compress(b"q" * 5000), "gzip")
    assert store.get_encoded("plain") == (b"0123456789", None)


# -- credentials ---------------------------------------------------------------------------------


class TokenServer:
    """An OAuth2 token endpoint on 127.0.0.1 that hands out numbered access tokens."""

    def __init__(self) -> None:
        self.issued = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.issued += 1
                token = {"access_token": f"token-{server.issued}", "expires_in": 3600,
                         "token_type": "Bearer"}  # fmt: skip
                body = json.dumps(token).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.url = f"http://{LOCALHOST}:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def service_account_info(token_uri: str) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    return {"type": "service_account", "project_id": "test", "private_key_id": "k1",
            "private_key": pem, "client_email": "tester@test.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": token_uri}  # fmt: skip


def test_token_and_credentials_file(gcs_bucket: str, gcs_endpoint: str, tmp_path: Path) -> None:
    tokens = TokenServer()
    try:
        with FaultProxy(gcs_endpoint) as proxy:
            GCSStore(f"gs://{gcs_bucket}/v", endpoint=proxy.endpoint, token="ya29.static").put(
                "k", b"1"
            )
            assert proxy.log[-1][2]["authorization"] == "Bearer ya29.static"
            anon = GCSStore(f"gs://{gcs_bucket}/v", endpoint=proxy.endpoint, anonymous=True)
            assert anon.get("k") == b"1"
            assert "authorization" not in proxy.log[-1][2]
            # A service-account file whose token endpoint is ours: google-auth signs a JWT and
            # trades it for an access token there (an authorized-user file would always go to
            # Google's endpoint, which tests must never contact).
            creds = tmp_path / "service-account.json"
            creds.write_text(json.dumps(service_account_info(tokens.url)))
            store = GCSStore(f"gs://{gcs_bucket}/v", endpoint=proxy.endpoint,
                             credentials_file=creds)  # fmt: skip
            assert not store.anonymous
            assert store.get("k") == b"1"
            assert proxy.log[-1][2]["authorization"] == "Bearer token-1"
            # A 401 (a revoked token) is met with one refresh, then the request again.
            proxy.faults.add("401")
            assert store.get("k") == b"1"
            assert proxy.log[-1][2]["authorization"] == "Bearer token-2"
            proxy.faults.always = "401"
            with pytest.raises(CredentialsError, match="credentials_file="):
                store.get("k")
    finally:
        tokens.close()


def test_no_credentials_is_a_typed_error(gcs_bucket: str, gcs_endpoint: str) -> None:
    # An explicit endpoint is no emulator: application-default credentials are looked for,
    # and GOOGLE_APPLICATION_CREDENTIALS names a file that does not exist.
    store = GCSStore(f"gs://{gcs_bucket}/v", endpoint=gcs_endpoint)
    assert not store.anonymous
    with pytest.raises(CredentialsError, match="anonymous=True") as info:
        store.get("k")
    assert isinstance(info.value, PermissionError)
    anon = GCSStore(f"gs://{gcs_bucket}/v", endpoint=gcs_endpoint, anonymous=True)
    assert anon.get("k") is None


def test_missing_bucket_is_a_typed_error(gcs_bucket: str) -> None:
    store = GCSStore("gs://no-such-bucket-here/vol")
    for call in (lambda: store.get("k"), lambda: store.exists("k"), lambda: store.put("k", b"x"),
                 lambda: list(store.list()), lambda: store.delete("k"),
                 lambda: store.put("k", b"x", content_encoding="gzip")):  # fmt: skip
        with pytest.raises(BucketNotFoundError, match="no-such-bucket-here") as info:
            call()
        assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    ("answer", "error", "words"),
    [
        ("403", AccessDeniedError, "access denied"),
        ("401", CredentialsError, "anonymous"),
        ("400", StoreError, "400"),
    ],
)
def test_permanent_errors_are_typed_and_not_retried(
    gcs_bucket: str, gcs_endpoint: str, answer: str, error: type[Exception], words: str
) -> None:
    with FaultProxy(gcs_endpoint) as proxy:
        store = GCSStore(f"gs://{gcs_bucket}/v", endpoint=proxy.endpoint, anonymous=True)
        proxy.faults.always = answer
        for call in (lambda: store.get("k"), lambda: store.put("k", b"x")):
            before = proxy.faults.requests
            t0 = time.monotonic()
            with pytest.raises(error, match=words):
                call()
            assert time.monotonic() - t0 < 2
            assert proxy.faults.requests - before == 1


# -- faults --------------------------------------------------------------------------------------


def test_transient_faults_are_retried_and_nothing_is_lost(
    gcs_bucket: str, gcs_endpoint: str
) -> None:
    patient = RetryPolicy(attempts=40, base_delay=0.001, max_delay=0.01, deadline=60)
    with FaultProxy(gcs_endpoint) as proxy:
        url = f"gs://{gcs_bucket}/faulty"
        opts: dict[str, Any] = {"endpoint": proxy.endpoint, "anonymous": True, "retry": patient,
                                "concurrency": 8}  # fmt: skip
        vol = ba.create(url, shape=(64, 64, 32), chunks=(16, 16, 16), dtype="uint16",
                        compression="gzip", **opts)  # fmt: skip
        data = np.random.default_rng(3).integers(0, 60000, (64, 64, 32), dtype=np.uint16)
        for action in ("503", "500", "drop", "reset", "truncate", "429", "502"):
            proxy.faults.add(action, 4)
        vol[...] = data
        np.testing.assert_array_equal(ba.open(url, **opts)[...], data)
        assert proxy.faults.pending == 0
        assert proxy.faults.injected == 28
        assert len(list(GCSStore(url).list())) == 1 + 32
        for action in ("truncate", "reset", "503"):
            proxy.faults.add(action, 3, methods=("GET",))
        np.testing.assert_array_equal(ba.open(url, **opts)[...], data)
        assert proxy.faults.pending == 0


def test_retries_are_bounded(gcs_bucket: str, gcs_endpoint: str) -> None:
    with FaultProxy(gcs_endpoint) as proxy:
        store = GCSStore(f"gs://{gcs_bucket}/v", endpoint=proxy.endpoint, anonymous=True,
                         retry=RetryPolicy(attempts=4, base_delay=0, max_delay=0))  # fmt: skip
        proxy.faults.always = "503"
        with pytest.raises(StoreUnavailableError, match="4 attempts"):
            store.put("k", b"x")
        assert proxy.faults.requests == 4
