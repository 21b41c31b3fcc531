"""The command line on network stores: --endpoint and --anon, on moto's S3 and over HTTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.cli import main
from network_servers import served_folder
from test_store_s3 import make_public


def test_create_info_cutout_with_endpoint_option(
    s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the option, not the environment, names moto
    url = f"s3://{s3_bucket}/vol"
    assert main(["create", url, "--shape", "32,32,16", "--chunks", "16,16,16",
                 "--compression", "gzip", "--endpoint", moto_endpoint]) == 0  # fmt: skip
    ba.open(url, mode="r+", endpoint=moto_endpoint)[0:16, 0:16, 0:16] = 4
    # The options go before or after the command name alike.
    assert main(["--endpoint", moto_endpoint, "info", url]) == 0
    out = capsys.readouterr().out
    assert "gzip" in out
    assert "stored       1 objects" in out
    npy = tmp_path / "cut.npy"
    assert main(["cutout", url, "0:32,0:32,0:16", "-o", str(npy), "-q",
                 "--endpoint", moto_endpoint]) == 0  # fmt: skip
    cut = np.load(npy)
    assert cut.shape == (32, 32, 16)
    assert int(cut.sum()) == 4 * 16**3
    # Without the endpoint the URL means AWS, which tests must never reach: not asked here.


def test_cp_from_a_public_bucket_anonymously(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    vol = ba.create(f"s3://{s3_bucket}/pub", shape=(20, 20, 20), chunks=(10, 10, 10))
    vol[...] = 9
    make_public(s3_bucket)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # no credentials at all: --anon must do
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert main(["info", "--anon", "--no-scan", f"s3://{s3_bucket}/pub"]) == 0
    dst = tmp_path / "copy"
    assert main(["cp", "--anon", "-q", f"s3://{s3_bucket}/pub", str(dst)]) == 0
    assert int(ba.open(dst)[...].sum()) == 9 * 20**3
    assert main(["info", "--no-scan", f"s3://{s3_bucket}/pub"]) == 1  # no credentials


def test_info_over_http_says_the_store_cannot_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with served_folder() as (root, server):
        ba.create((root / "v").as_uri(), shape=(8, 8, 8), chunks=(8, 8, 8))[...] = 1
        assert main(["info", "--anon", f"{server.url}/v"]) == 0
    out = capsys.readouterr().out
    assert "cannot list" in out
