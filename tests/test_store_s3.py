"""The S3 store against moto's S3 server on 127.0.0.1, directly and through a faulty proxy."""

from __future__ import annotations

import concurrent.futures as cf
import gzip
import json
import multiprocessing
import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    CorruptChunkError,
    CredentialsError,
    MissingDependencyError,
    StoreError,
    StoreUnavailableError,
    VersionConflictError,
)
from bigarrays.stores import open_store
from bigarrays.stores.retry import RetryPolicy
from bigarrays.stores.s3 import S3Store
from bigarrays.testing import ArrayConformance, StoreConformance
from bigarrays.testing.conditional import ConditionalWriteConformance
from conftest import make_s3_bucket
from network_servers import FaultProxy

FAST_RETRY = RetryPolicy(attempts=8, base_delay=0.01, max_delay=0.05, deadline=30)


def boto(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


class TestS3Store(StoreConformance):
    keys_per_thread = 40

    @pytest.fixture
    def store(self, s3_bucket: str) -> Iterator[S3Store]:
        with S3Store(f"s3://{s3_bucket}/root-{uuid.uuid4().hex[:8]}") as store:
            yield store


class TestS3ConditionalWrites(ConditionalWriteConformance):
    """If-Match / If-None-Match on ETags, which the sharded writer needs to merge shards."""

    @pytest.fixture
    def store(self, s3_bucket: str) -> S3Store:
        return S3Store(f"s3://{s3_bucket}/cas")


class TestS3StoreAtBucketRoot(StoreConformance):
    keys_per_thread = 10

    @pytest.fixture
    def store(self, s3_bucket: str) -> S3Store:
        return S3Store(f"s3://{s3_bucket}")


class TestS3Arrays(ArrayConformance):
    @pytest.fixture
    def dataset_url(self, s3_bucket: str) -> str:
        return f"s3://{s3_bucket}/vol"


# -- configuration, URLs, pickling ---------------------------------------------------------------


def test_url_and_options(s3_bucket: str, moto_endpoint: str) -> None:
    store = open_store(f"s3://{s3_bucket}//a/b/")
    assert isinstance(store, S3Store)
    assert store.url == f"s3://{s3_bucket}/a/b"
    assert store.bucket == s3_bucket
    assert store.prefix == "a/b"
    assert store.endpoint == moto_endpoint  # from AWS_ENDPOINT_URL
    assert store.default_concurrency == 32
    assert open_store(store.url, **store.options) == store
    assert open_store(store.url, anonymous=True) != store
    with pytest.raises(StoreError, match="bucket"):
        open_store("s3:///prefix")


def test_endpoint_option_without_environment(
    s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    store = S3Store(f"s3://{s3_bucket}/x", endpoint=moto_endpoint + "/")
    store.put("k", b"v")
    assert store.endpoint == moto_endpoint
    assert store.options["endpoint"] == moto_endpoint
    assert boto(moto_endpoint).get_object(Bucket=s3_bucket, Key="x/k")["Body"].read() == b"v"


def _read_in_worker(store: S3Store) -> bytes | None:
    return store.get("k")


def test_pickled_store_works_in_another_process(s3_bucket: str, moto_endpoint: str) -> None:
    store = S3Store(f"s3://{s3_bucket}/p", endpoint=moto_endpoint, concurrency=7,
                    retry=FAST_RETRY)  # fmt: skip
    store.put("k", b"from the parent")
    store.get("k")  # a live client must not travel with the pickle
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store
    assert copy.concurrency == 7
    assert copy.retry == FAST_RETRY
    assert "_client" not in pickle.loads(pickle.dumps(store)).__getstate__()
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(_read_in_worker, store).result(timeout=60) == b"from the parent"


def test_importing_bigarrays_does_not_import_boto3() -> None:
    code = "import sys, bigarrays, bigarrays.stores; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import bigarrays.stores.remote as remote

    real = remote.importlib.util.find_spec
    monkeypatch.setattr(remote.importlib.util, "find_spec",
                        lambda name, *a: None if name == "boto3" else real(name, *a))  # fmt: skip
    with pytest.raises(MissingDependencyError, match=r"bigarrays\[s3\]") as info:
        open_store("s3://bucket/vol")
    assert isinstance(info.value, ImportError)


# -- content encoding ----------------------------------------------------------------------------


def test_gzip_is_stored_as_content_encoding(s3_bucket: str, moto_endpoint: str) -> None:
    vol = ba.create(f"s3://{s3_bucket}/vol", shape=(32, 32, 8), chunks=(16, 16, 8),
                    compression="gzip")  # fmt: skip
    vol[...] = 7
    key = f"vol/{vol.chunk_key((0, 0, 0))}"
    obj = boto(moto_endpoint).get_object(Bucket=s3_bucket, Key=key)
    assert obj["ContentEncoding"] == "gzip"
    raw = obj["Body"].read()
    assert raw[:2] == b"\x1f\x8b"  # the stored bytes are gzip, as the spec has it
    assert gzip.decompress(raw) == bytes([7]) * 16 * 16 * 8
    # No KEY.gz objects: that is the local-disk convention, not the object-store one.
    keys = [o["Key"] for o in boto(moto_endpoint).list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert not any(k.endswith(".gz") for k in keys)


def test_reads_objects_written_with_content_encoding_by_others(
    s3_bucket: str, moto_endpoint: str
) -> None:
    client = boto(moto_endpoint)
    client.put_object(Bucket=s3_bucket, Key="d/k", Body=gzip.compress(b"x" * 1000),
                      ContentEncoding="gzip")  # fmt: skip
    store = S3Store(f"s3://{s3_bucket}/d")
    assert store.get("k") == b"x" * 1000
    assert store.get_range("k", 10, 5) == b"xxxxx"  # ranges of an encoded object are decoded
    assert store.get_range("k", -3) == b"xxx"
    assert store.get_ranges("k", [(0, 2), (998, 5)]) == [b"xx", b"xx"]
    # Several encodings in one header are undone last first; "identity" is no encoding.
    client.put_object(Bucket=s3_bucket, Key="d/k2", Body=gzip.compress(b"yz"),
                      ContentEncoding="identity, gzip")  # fmt: skip
    assert store.get("k2") == b"yz"
    client.put_object(Bucket=s3_bucket, Key="d/bad", Body=b"?", ContentEncoding="compress")
    with pytest.raises(CorruptChunkError, match="compress"):
        store.get("bad")


def test_get_encoded_gives_the_stored_bytes(s3_bucket: str) -> None:
    store = S3Store(f"s3://{s3_bucket}/e")
    packed = gzip.compress(b"z" * 999)
    store.put("k", packed, content_encoding="gzip")
    assert store.get_encoded("k") == (packed, "gzip")
    store.put("p", b"plain")
    assert store.get_encoded("p") == (b"plain", None)
    assert store.get_encoded("missing") is None


def test_conditional_write_whose_answer_was_lost_is_not_a_conflict(
    s3_bucket: str, moto_endpoint: str
) -> None:
    with FaultProxy(moto_endpoint) as proxy:
        store = S3Store(f"s3://{s3_bucket}/v", endpoint=proxy.endpoint, retry=FAST_RETRY)
        store.put("k", b"one")
        _, version = store.get_with_version("k")
        proxy.faults.add("truncate", 1, methods=("PUT",))  # the PUT lands, its answer is cut
        store.put("k", b"two", mode="if_version", version=version)
        assert store.get("k") == b"two"


def test_volume_written_by_cloudvolume_style_upload(s3_bucket: str, moto_endpoint: str) -> None:
    # Write a gzip volume to a folder, then upload it the way CloudVolume writes to S3: each
    # KEY.gz file becomes object KEY with Content-Encoding: gzip.
    vol = ba.create(f"memory://cv-{uuid.uuid4().hex}", shape=(20, 20, 20), chunks=(8, 8, 8),
                    dtype="uint16", compression="gzip")  # fmt: skip
    data = np.random.default_rng(0).integers(0, 999, (20, 20, 20), dtype=np.uint16)
    vol[...] = data
    client = boto(moto_endpoint)
    for key in vol.store.list():
        raw = vol.store.get(key)
        assert raw is not None
        if key == "info":
            client.put_object(Bucket=s3_bucket, Key=f"cv/{key}", Body=raw)
        else:
            client.put_object(Bucket=s3_bucket, Key=f"cv/{key}", Body=gzip.compress(raw),
                              ContentEncoding="gzip")  # fmt: skip
    np.testing.assert_array_equal(ba.open(f"s3://{s3_bucket}/cv")[...], data)


def test_get_ranges_and_large_multipart_upload(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(S3Store, "MULTIPART_THRESHOLD", 5 * 2**20)
    monkeypatch.setattr(S3Store, "PART_SIZE", 5 * 2**20)
    store = S3Store(f"s3://{s3_bucket}/mp")
    value = np.random.default_rng(1).bytes(11 * 2**20 + 5)  # three parts, the last short
    store.put("big", memoryview(bytearray(value)))
    assert store.size("big") == len(value)
    assert store.get("big") == value
    ranges = [(0, 10), (5 * 2**20 - 3, 7), (len(value) - 4, 100), (100, 0)]
    assert store.get_ranges("big", ranges) == [value[s : s + n] for s, n in ranges]
    assert store.get_ranges("missing", [(0, 1)]) is None


def test_parts_from_an_iterator_go_up_as_they_come(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value an iterator makes on the way: no larger than a part, one request; larger, a
    multipart upload whose first part is sent before the iterator has given the last bytes.
    An iterator that fails part way aborts the upload and keeps the old value."""
    part = 5 * 2**20
    monkeypatch.setattr(S3Store, "PART_SIZE", part)
    store = S3Store(f"s3://{s3_bucket}/turns")
    pieces = [np.random.default_rng(i).bytes(2 * 2**20 + i) for i in range(6)]  # 12 MiB
    sent: list[int] = []
    upload = S3Store._request

    def spy(self: S3Store, method: str, key: str, fn: Any) -> Any:
        sent.append(given[-1] if given else 0)
        return upload(self, method, key, fn)

    monkeypatch.setattr(S3Store, "_request", spy)
    given: list[int] = []

    def parts(fail: bool = False) -> Iterator[bytes]:
        for i, piece in enumerate(pieces):
            if fail and i == 5:
                raise RuntimeError("the encoder failed")
            given.append(i)
            yield piece

    store.put("small", b"old")
    assert store.put_parts("small", iter(pieces[:2])) == store.get_with_version("small")[1]
    assert store.get("small") == pieces[0] + pieces[1]
    store.put("big", b"old")
    given.clear()
    sent.clear()
    version = store.put_parts("big", parts())
    assert store.get("big") == b"".join(pieces)
    assert version == store.get_with_version("big")[1]
    # create, then the first part went up once pieces 0-2 (6 MiB) were given, not 0-5.
    assert sent[:2] == [2, 2]
    with pytest.raises(RuntimeError, match="encoder failed"):
        store.put_parts("big", parts(fail=True))
    assert store.get("big") == b"".join(pieces)
    client = store.client().s3
    assert not client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    with pytest.raises(VersionConflictError):
        store.put_parts("big", parts(), mode="create")
    assert store.get("big") == b"".join(pieces)


# -- credentials, anonymous access and typed errors ----------------------------------------------


def test_missing_bucket_is_a_typed_error(s3_bucket: str) -> None:
    store = S3Store("s3://no-such-bucket-here/vol")
    for call in (lambda: store.get("k"), lambda: store.exists("k"), lambda: store.size("k"),
                 lambda: store.put("k", b"x"), lambda: list(store.list()),
                 lambda: store.get_range("k", 0, 4), lambda: store.delete("k")):  # fmt: skip
        with pytest.raises(BucketNotFoundError, match="no-such-bucket-here") as info:
            call()
        assert isinstance(info.value, FileNotFoundError)
        assert "AWS_ENDPOINT_URL" in str(info.value)
    with pytest.raises(BucketNotFoundError):
        ba.open("s3://no-such-bucket-here/vol")


def test_no_credentials_is_a_typed_error_that_suggests_anonymous(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CredentialsError, match="anonymous=True") as info:
        S3Store(f"s3://{s3_bucket}/vol").get("info")
    assert isinstance(info.value, PermissionError)

    # Anonymous access reads no credentials at all: a public bucket reads, a write is denied.
    owner = S3Store(f"s3://{s3_bucket}/vol", access_key_id="testing", secret_access_key="testing")
    owner.put("k", b"public")
    make_public(s3_bucket)
    anon = S3Store(f"s3://{s3_bucket}/vol", anonymous=True)
    assert anon.get("k") == b"public"
    assert anon.get("missing") is None
    with pytest.raises(AccessDeniedError, match="anonymous"):
        anon.put("k", b"vandal")
    assert owner.get("k") == b"public"


def make_public(bucket: str) -> None:
    """Let anyone read (not write) the bucket's objects, as a public dataset does."""
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}  # fmt: skip
    boto3.client("s3", region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").put_bucket_policy(
        Bucket=bucket, Policy=json.dumps(policy))  # fmt: skip


def test_unknown_profile_is_a_credentials_error(s3_bucket: str) -> None:
    with pytest.raises(CredentialsError, match="no-such-profile"):
        S3Store(f"s3://{s3_bucket}/vol", profile="no-such-profile").get("k")


def test_explicit_keys_and_anonymous_requests_are_signed_or_not(
    s3_bucket: str, moto_endpoint: str
) -> None:
    with FaultProxy(moto_endpoint) as proxy:
        signed = S3Store(f"s3://{s3_bucket}/v", endpoint=proxy.endpoint,
                         access_key_id="AKIDEXAMPLE", secret_access_key="secret")  # fmt: skip
        signed.put("k", b"1")
        make_public(s3_bucket)
        anon = S3Store(f"s3://{s3_bucket}/v", endpoint=proxy.endpoint, anonymous=True)
        assert anon.get("k") == b"1"
        (_, _, put_headers), (_, _, get_headers) = proxy.log[-2:]
    assert "AKIDEXAMPLE" in put_headers["authorization"]
    assert "authorization" not in get_headers


def test_anonymous_403_on_a_read_says_the_object_may_be_missing(
    s3_bucket: str, moto_endpoint: str
) -> None:
    """A public bucket without ListBucket answers 403 for missing chunks: the error says so."""
    with FaultProxy(moto_endpoint) as proxy:
        anon = S3Store(f"s3://{s3_bucket}/v", endpoint=proxy.endpoint, anonymous=True)
        proxy.faults.always = "403"
        with pytest.raises(AccessDeniedError, match="403 rather than 404"):
            anon.get("1_1_1/0-64_0-64_0-64")
        with pytest.raises(AccessDeniedError) as info:
            anon.put("k", b"x")
        assert "rather than 404" not in str(info.value)  # a refused write is just that


@pytest.mark.parametrize(
    ("answer", "error", "words"),
    [
        ("403", AccessDeniedError, "anonymous=True"),
        ("403:InvalidAccessKeyId", CredentialsError, "AWS_ACCESS_KEY_ID"),
        ("403:SignatureDoesNotMatch", CredentialsError, "AWS_PROFILE"),
        ("400:InvalidArgument", StoreError, "InvalidArgument"),
    ],
)
def test_permanent_errors_are_typed_and_not_retried(
    s3_bucket: str, moto_endpoint: str, answer: str, error: type[Exception], words: str
) -> None:
    with FaultProxy(moto_endpoint) as proxy:
        store = S3Store(f"s3://{s3_bucket}/v", endpoint=proxy.endpoint)
        proxy.faults.always = answer
        for call in (lambda: store.get("k"), lambda: store.put("k", b"x")):
            before = proxy.faults.requests
            t0 = time.monotonic()
            with pytest.raises(error, match=words) as info:
                call()
            assert time.monotonic() - t0 < 2
            assert proxy.faults.requests - before == 1, "a 4xx must not be retried"
            assert not isinstance(info.value, StoreUnavailableError)


# -- faults: retries, nothing lost ---------------------------------------------------------------


def test_transient_faults_are_retried_and_nothing_is_lost(
    s3_bucket: str, moto_endpoint: str
) -> None:
    with FaultProxy(moto_endpoint) as proxy:
        url = f"s3://{s3_bucket}/faulty"
        # The faults queue up for whichever requests come next, so one request may meet many
        # in a row: allow enough attempts for the whole plan.
        patient = RetryPolicy(attempts=40, base_delay=0.001, max_delay=0.01, deadline=60)
        opts = {"endpoint": proxy.endpoint, "retry": patient, "concurrency": 8}
        vol = ba.create(url, shape=(64, 64, 32), chunks=(16, 16, 16), dtype="uint16",
                        compression="gzip", **opts)  # fmt: skip
        data = np.random.default_rng(2).integers(0, 60000, (64, 64, 32), dtype=np.uint16)
        for action in ("503", "500", "drop", "reset", "truncate", "429", "502", "504"):
            proxy.faults.add(action, 4)
        vol[...] = data  # 32 chunk writes meet the first faults
        planned = 32
        assert proxy.faults.injected > 0
        back = ba.open(url, **opts)[...]
        np.testing.assert_array_equal(back, data)
        assert proxy.faults.pending == 0
        assert proxy.faults.injected == planned
        # Every chunk object is there, whole: read them straight from moto, past the proxy.
        keys = set(S3Store(url, endpoint=moto_endpoint).list())
        assert len(keys) == 1 + 32
        # Reads that meet truncated bodies and resets are retried too.
        for action in ("truncate", "reset", "drop", "503"):
            proxy.faults.add(action, 3, methods=("GET",))
        np.testing.assert_array_equal(ba.open(url, **opts)[...], data)
        assert proxy.faults.pending == 0


def test_retries_are_bounded(s3_bucket: str, moto_endpoint: str) -> None:
    with FaultProxy(moto_endpoint) as proxy:
        policy = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)
        store = S3Store(f"s3://{s3_bucket}/v", endpoint=proxy.endpoint, retry=policy)
        proxy.faults.always = "503"
        with pytest.raises(StoreUnavailableError, match="3 attempts") as info:
            store.get("k")
        assert isinstance(info.value, ConnectionError)
        assert proxy.faults.requests == 3
        proxy.faults.clear()
        assert store.get("k") is None


def test_a_second_bucket_is_a_second_store(moto_endpoint: str, s3_bucket: str) -> None:
    other = make_s3_bucket(moto_endpoint)
    a, b = S3Store(f"s3://{s3_bucket}/v"), S3Store(f"s3://{other}/v")
    assert a != b
    a.put("k", b"a")
    assert b.get("k") is None
