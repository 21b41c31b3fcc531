"""Fixtures shared by the test modules: the network servers of ``network_servers.py``.

The servers are session-scoped (one of each per xdist worker) and bind 127.0.0.1 on free ports.
Tests that use AWS or Google clients get fake credentials from the environment and never read a
real credentials file, nor ask an instance-metadata service.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from network_servers import FakeGCSServer, MotoServer

pytest_plugins = ["conftest_browser", "ci_skips"]


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A client of a two-process ``dask.distributed`` cluster on 127.0.0.1, one per test module
    (a module may kill its workers)."""
    import contextlib
    import warnings

    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        with warnings.catch_warnings():
            # Another cluster on this machine may hold the default port of the HTTP endpoints.
            warnings.filterwarnings("ignore", "Port .* is already in use", UserWarning)
            cluster = stack.enter_context(
                LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                             dashboard_address=None, host="127.0.0.1", silence_logs=50)
            )  # fmt: skip
        yield stack.enter_context(Client(cluster, set_as_default=False))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with MotoServer() as server:
        yield server.endpoint


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    with FakeGCSServer() as server:
        yield server.endpoint


_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake AWS credentials; no real config files, profiles, endpoints, proxies or metadata
    service."""
    for name in list(os.environ):
        # Proxies too: the clients would send loopback requests through them.
        if name.startswith("AWS_") or name.lower() in _PROXY_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def gcp_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real Google credentials, and no probe of the GCE metadata server."""
    for name in list(os.environ):
        if name.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_")) or name == "STORAGE_EMULATOR_HOST":
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud-config"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-adc.json"))


@functools.cache
def _admin_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def make_s3_bucket(endpoint: str) -> str:
    name = f"test-{uuid.uuid4().hex[:20]}"
    _admin_client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_bucket(moto_endpoint: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket on moto; ``AWS_ENDPOINT_URL`` points at moto, as a user would set it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return make_s3_bucket(moto_endpoint)


def make_gcs_bucket(endpoint: str) -> str:
    import json
    import urllib.request

    name = f"test-{uuid.uuid4().hex[:20]}"
    req = urllib.request.Request(
        f"{endpoint}/storage/v1/b?project=test", data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    return name


@pytest.fixture
def gcs_bucket(gcs_endpoint: str, gcp_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket on the emulator; ``STORAGE_EMULATOR_HOST`` points at it."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    return make_gcs_bucket(gcs_endpoint)
