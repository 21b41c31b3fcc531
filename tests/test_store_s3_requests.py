"""The S3 store's own object requests (:mod:`bigarrays.stores.s3_objects`).

Signatures are checked by a moto server that verifies them as S3 does (its IAM mode), with a
key of a user it knows; URLs are compared with boto3's own; the hand-over to boto3 is driven by
a proxy that answers with a redirect.
"""

from __future__ import annotations

import functools
import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigarrays.errors import CredentialsError, StoreError, VersionConflictError
from bigarrays.stores.s3 import S3Store
from bigarrays.stores.s3_objects import ObjectRequests
from network_servers import FaultProxy, MotoServer, TLSServer

#: Requests that the signature-checking server serves before it checks: the IAM set-up below.
SETUP_REQUESTS = 6

#: Keys whose quoting goes wrong in the usual ways: spaces, '+', '=', '~', '%', unicode, ':'.
AWKWARD_KEYS = [
    "info",
    "8_8_8/0-64_0-64_0-64",
    "a b/c+d=e~f",
    "per%cent/é/ü/日本",
    "colon:semi;comma,amp&q?hash#",
    "(paren)[bracket]{brace}!*'@$",
]


@pytest.fixture(scope="module")
def signing_moto() -> Iterator[dict[str, str]]:
    """A moto that checks signatures, and the keys of a user allowed everything on S3."""
    with MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)}) as server:
        boot = {"endpoint_url": server.endpoint, "region_name": "us-east-1",
                "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}  # fmt: skip
        iam = boto3.client("iam", **boot)
        iam.create_user(UserName="writer")
        allow_s3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [allow_s3]}
        iam.put_user_policy(UserName="writer", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="writer")["AccessKey"]
        anyone = {"AWS": "arn:aws:iam::123456789012:root"}  # moto's account
        assume = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": anyone}
        trust = {"Version": "2012-10-17", "Statement": [assume]}
        role = iam.create_role(RoleName="worker", AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName="worker", PolicyName="s3", PolicyDocument=json.dumps(policy))
        temporary = boto3.client("sts", **boot).assume_role(
            RoleArn=role["Role"]["Arn"], RoleSessionName="worker-1"
        )["Credentials"]
        keys = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
        bucket = f"signed-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", **{**boot, "aws_access_key_id": keys["access_key_id"],
                              "aws_secret_access_key": keys["secret_access_key"]}).create_bucket(
            Bucket=bucket
        )  # fmt: skip
        yield {"endpoint": server.endpoint, "bucket": bucket, **keys,
               "temporary_key_id": temporary["AccessKeyId"],
               "temporary_secret": temporary["SecretAccessKey"],
               "session_token": temporary["SessionToken"]}  # fmt: skip


def signed_store(moto: dict[str, str], **options: Any) -> S3Store:
    keys = {"access_key_id": moto["access_key_id"], "secret_access_key": moto["secret_access_key"]}
    keys.update(options)
    return S3Store(f"s3://{moto['bucket']}/v-{uuid.uuid4().hex[:8]}", endpoint=moto["endpoint"],
                   region="us-east-1", **keys)  # fmt: skip


def short_path(store: S3Store) -> ObjectRequests:
    client = store.client().s3
    assert isinstance(client, ObjectRequests)
    return client


@pytest.mark.usefixtures("aws_env")
def test_every_object_request_carries_a_signature_s3_accepts(signing_moto: dict[str, str]) -> None:
    store = signed_store(signing_moto)
    for i, key in enumerate(AWKWARD_KEYS):
        store.put(key, f"value {i}".encode())
    assert short_path(store).route(store.bucket) is not None  # not handed to boto3
    for i, key in enumerate(AWKWARD_KEYS):
        assert store.get(key) == f"value {i}".encode()
        assert store.get_range(key, 2, 3) == f"value {i}".encode()[2:5]
        assert store.exists(key)
        assert store.size(key) == len(f"value {i}")
    assert sorted(store.list("")) == sorted(AWKWARD_KEYS)
    assert store.get("never written") is None
    assert not store.exists("never written")

    # Conditional writes and deletes send If-Match / If-None-Match, which are signed too.
    data, version = store.get_with_version("info")
    assert data == b"value 0"
    assert version is not None
    store.put("info", b"new", mode="if_version", version=version)
    with pytest.raises(VersionConflictError):
        store.put("info", b"newer", mode="if_version", version=version)
    with pytest.raises(VersionConflictError):
        store.put("a b/c+d=e~f", b"x", mode="create")
    squeezed = gzip.compress(b"squeezed " * 50)
    store.put("gz", squeezed, content_encoding="gzip")
    assert store.get("gz") == b"squeezed " * 50
    assert store.get_encoded("gz") == (squeezed, "gzip")
    for key in AWKWARD_KEYS:
        store.delete(key)
    assert not any(store.exists(k) for k in AWKWARD_KEYS)
    assert short_path(store).route(store.bucket) is not None


@pytest.mark.usefixtures("aws_env")
def test_temporary_credentials_send_their_session_token(signing_moto: dict[str, str]) -> None:
    store = signed_store(signing_moto, access_key_id=signing_moto["temporary_key_id"],
                         secret_access_key=signing_moto["temporary_secret"],
                         session_token=signing_moto["session_token"])  # fmt: skip
    store.put("k", b"temporary")
    assert store.get("k") == b"temporary"
    assert short_path(store).route(store.bucket) is not None


@pytest.mark.usefixtures("aws_env")
def test_a_wrong_secret_is_a_credentials_error(signing_moto: dict[str, str]) -> None:
    store = signed_store(signing_moto, secret_access_key="not the secret")
    with pytest.raises(CredentialsError, match="SignatureDoesNotMatch"):
        store.put("k", b"x")
    with pytest.raises(CredentialsError, match="SignatureDoesNotMatch"):
        store.get("k")


@functools.cache
def offline_client(endpoint: str | None, region: str) -> tuple[Any, ObjectRequests]:
    """A boto3 client and its short path; the probes are stopped before they are sent."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                          aws_access_key_id="k", aws_secret_access_key="s")  # fmt: skip
    requests = ObjectRequests(client, lambda: None, anonymous=False, ca_bundle=None,
                              pool_size=1, connect_timeout=1, read_timeout=1)  # fmt: skip
    return client, requests


class _Stop(Exception):
    pass


def boto3_request(client: Any, bucket: str, key: str) -> Any:
    """The GET that boto3 would send for ``key``, built and signed, stopped before it leaves."""

    def stop(request: Any, **_: Any) -> None:
        raise _Stop(request)

    client.meta.events.register_first("before-send.s3.GetObject", stop, unique_id="test-stop")
    try:
        client.get_object(Bucket=bucket, Key=key)
    except _Stop as stopped:
        return stopped.args[0]
    finally:
        client.meta.events.unregister("before-send.s3.GetObject", unique_id="test-stop")
    raise AssertionError("the request was not stopped")


@pytest.mark.parametrize(
    ("endpoint", "region", "bucket"),
    [
        ("http://127.0.0.1:9", "eu-west-1", "bucket"),
        (None, "eu-west-1", "bucket"),
        (None, "us-west-2", "dotted.bucket.name"),
        (None, "us-east-1", "bucket"),
        (None, "aws-global", "bucket"),
    ],
)
@settings(max_examples=60, deadline=None)
@given(key=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40))
def test_object_urls_and_regions_are_boto3s(
    endpoint: str | None, region: str, bucket: str, key: str
) -> None:
    client, requests = offline_client(endpoint, region)
    route = requests.route(bucket)
    assert route is not None
    theirs = boto3_request(client, bucket, key)
    assert route.object_url(key) == theirs.url
    assert f"/{route.region}/s3/aws4_request" in theirs.headers["Authorization"].decode()


def test_buckets_it_cannot_route_stay_with_boto3() -> None:
    _, requests = offline_client(None, "us-west-2")
    assert requests.route("data--usw2-az1--x-s3") is None  # S3 Express: its own session auth
    assert requests.route("ap--usw2-az1--xa-s3") is None


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("bypassed", [False, True])
def test_a_proxy_leaves_requests_to_boto3(monkeypatch: pytest.MonkeyPatch, bypassed: bool) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1" if bypassed else "")
    store = S3Store("s3://bucket/v", endpoint="http://127.0.0.1:10",
                    access_key_id=uuid.uuid4().hex, secret_access_key="s")  # fmt: skip
    assert (short_path(store).route("bucket") is not None) == bypassed


@pytest.mark.parametrize("redirect", ["301:PermanentRedirect@us-east-1", "307:TemporaryRedirect"])
@pytest.mark.parametrize("operation", ["get", "put", "exists", "delete"])
def test_a_redirect_hands_the_bucket_to_boto3(
    s3_bucket: str, moto_endpoint: str, operation: str, redirect: str
) -> None:
    with FaultProxy(moto_endpoint) as proxy:
        store = S3Store(f"s3://{s3_bucket}/v", endpoint=proxy.endpoint)
        store.put("k", b"before")
        assert short_path(store).route(s3_bucket) is not None
        proxy.faults.add(redirect)
        result = {
            "get": lambda: store.get("k"),
            "put": lambda: store.put("k", b"after"),
            "exists": lambda: store.exists("k"),
            "delete": lambda: store.delete("k"),
        }[operation]()
        assert proxy.faults.injected == 1
        assert short_path(store).route(s3_bucket) is None
        if operation == "put":  # the new object's ETag
            assert result == store.get_with_version("k")[1]
        else:
            assert result == {"get": b"before", "exists": True, "delete": None}[operation]
        assert store.get("k") == {"put": b"after", "delete": None}.get(operation, b"before")


@pytest.mark.parametrize("answer", ["400:AuthorizationHeaderMalformed", "400:Other@eu-west-1"])
def test_a_request_signed_for_the_wrong_region_hands_the_bucket_to_boto3(
    s3_bucket: str, moto_endpoint: str, answer: str
) -> None:
    with FaultProxy(moto_endpoint) as proxy:
        store = S3Store(f"s3://{s3_bucket}/v", endpoint=proxy.endpoint)
        store.put("k", b"value")
        proxy.faults.add(answer)
        assert store.get("k") == b"value"
        assert proxy.faults.injected == 1
        assert short_path(store).route(s3_bucket) is None


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize(
    ("configured", "requests_bundle", "expected"),
    [("/etc/aws.pem", "/etc/requests.pem", "/etc/aws.pem"),
     (None, "/etc/requests.pem", "/etc/requests.pem"),
     (None, None, "certifi")],
)  # fmt: skip
def test_tls_is_verified_with_the_bundle_boto3_would_use(
    monkeypatch: pytest.MonkeyPatch,
    configured: str | None,
    requests_bundle: str | None,
    expected: str,
) -> None:
    """AWS_CA_BUNDLE (or the config's ca_bundle), else REQUESTS_CA_BUNDLE, else certifi's."""
    from botocore.httpsession import get_cert_path

    if requests_bundle is not None:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", requests_bundle)
    else:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    client, _ = offline_client(None, "us-west-2")
    requests = ObjectRequests(client, lambda: None, anonymous=False, ca_bundle=configured,
                              pool_size=1, connect_timeout=1, read_timeout=1)  # fmt: skip
    assert requests._pool is not None
    used = requests._pool.manager.connection_pool_kw["ca_certs"]
    assert used == (get_cert_path(True) if expected == "certifi" else expected)


@pytest.mark.usefixtures("aws_env")
def test_chunk_requests_trust_requests_ca_bundle_as_boto3_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with TLSServer(tmp_path, body=b"over tls") as server:
        store = S3Store("s3://bucket/v", endpoint=server.endpoint, access_key_id=uuid.uuid4().hex,
                        secret_access_key="s")  # fmt: skip
        with pytest.raises(StoreError, match="does not verify"):
            store.get("k")  # certifi's bundle does not hold this certificate
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
        trusting = S3Store("s3://bucket/v", endpoint=server.endpoint,
                           access_key_id=uuid.uuid4().hex, secret_access_key="s")  # fmt: skip
        assert trusting.get("k") == b"over tls"
        assert short_path(trusting).route("bucket") is not None
