"""Interop on S3: TensorStore's ``s3`` kvstore, pointed at the same moto endpoint, reads what
bigarrays writes (gzip included: the objects carry ``Content-Encoding``, the spec's way), and
bigarrays reads what TensorStore writes, byte for byte.

CloudVolume's own path parser refuses an ``s3://http://host:port/bucket`` URL (its storage layer,
CloudFiles, would take it), so on S3 the CloudVolume direction is covered by
``test_store_s3.test_volume_written_by_cloudvolume_style_upload``, which uploads objects the way
CloudVolume writes them; CloudVolume's local output is read over HTTP in ``test_store_http``.
"""

from __future__ import annotations

from typing import Any

import boto3
import numpy as np
import pytest
import tensorstore as ts

import bigarrays as ba
from interop_helpers import (
    CHUNKS,
    OFFSET,
    PARTIAL_BOXES,
    READ_BOXES,
    RESOLUTION,
    SCALE_KEY,
    SHAPE,
    absolute,
    as4d,
    assert_identical,
    chunk_boxes,
    index,
    partial_model,
    random_volume,
    raw_chunks,
    user_view,
)

pytestmark = pytest.mark.interop


def kvstore(bucket: str, endpoint: str, path: str) -> dict[str, Any]:
    return {"driver": "s3", "bucket": bucket, "path": path.rstrip("/") + "/",
            "endpoint": endpoint, "aws_region": "us-east-1",
            "aws_credentials": {"type": "environment"}}  # fmt: skip


def ts_open(bucket: str, endpoint: str, path: str, **spec: Any) -> ts.TensorStore:
    return ts.open(
        {"driver": "neuroglancer_precomputed", "kvstore": kvstore(bucket, endpoint, path)} | spec
    ).result()


def stored(bucket: str, endpoint: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Every object under ``prefix``: name -> {"body", "encoding"} as S3 holds them."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    out = {}
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        got = client.get_object(Bucket=bucket, Key=obj["Key"])
        out[obj["Key"][len(prefix) :]] = {"body": got["Body"].read(),
                                          "encoding": got.get("ContentEncoding")}  # fmt: skip
    return out


@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize(("dtype", "channels"), [("uint16", 1), ("float32", 3), ("uint64", 1)])
def test_tensorstore_reads_what_bigarrays_writes(
    s3_bucket: str, moto_endpoint: str, dtype: str, channels: int, compression: str | None
) -> None:
    url = f"s3://{s3_bucket}/ba"
    vol = ba.create(url, shape=SHAPE, dtype=dtype, chunks=CHUNKS, voxel_offset=OFFSET,
                    resolution=RESOLUTION, num_channels=channels,
                    compression=compression)  # fmt: skip
    writes, model = partial_model(dtype, channels)
    for box, block in writes:
        vol[absolute(box)] = user_view(block, channels)
    t = ts_open(s3_bucket, moto_endpoint, "ba")
    assert [int(v) for v in t.domain.inclusive_min[:3]] == list(OFFSET)
    for box in READ_BOXES:
        assert_identical(t[absolute(box)].read().result(), model[index(box)])
    # The objects are raw chunks, with gzip as the object's Content-Encoding (never KEY.gz).
    objects = stored(s3_bucket, moto_endpoint, f"ba/{SCALE_KEY}/")
    assert set(objects) <= set(chunk_boxes())
    expected = raw_chunks(model, set(objects))
    for name, obj in objects.items():
        assert obj["encoding"] == compression
        body = obj["body"]
        if compression == "gzip":
            import gzip

            body = gzip.decompress(body)
        assert body == expected[name], name


@pytest.mark.parametrize(("dtype", "channels"), [("uint8", 1), ("int16", 2), ("float32", 1)])
def test_bigarrays_reads_what_tensorstore_writes(
    s3_bucket: str, moto_endpoint: str, dtype: str, channels: int
) -> None:
    t = ts_open(
        s3_bucket, moto_endpoint, "ts", create=True,
        multiscale_metadata={"data_type": dtype, "num_channels": channels, "type": "image"},
        scale_metadata={"size": list(SHAPE), "voxel_offset": list(OFFSET),
                        "chunk_size": list(CHUNKS), "resolution": list(RESOLUTION),
                        "encoding": "raw"},
    )  # fmt: skip
    model = random_volume(SHAPE, dtype, channels, seed=7)
    t.write(model).result()
    vol = ba.open(f"s3://{s3_bucket}/ts")
    assert vol.voxel_offset == OFFSET
    assert vol.num_channels == channels
    for box in READ_BOXES:
        assert_identical(as4d(vol[absolute(box)]), model[index(box)])
    # And the other way again: bigarrays overwrites a box, TensorStore sees the change.
    box = PARTIAL_BOXES[1]
    block = random_volume([b - a for a, b in zip(*box, strict=True)], dtype, channels, seed=8)
    ba.open(f"s3://{s3_bucket}/ts", mode="r+")[absolute(box)] = user_view(block, channels)
    model[index(box)] = block
    fresh = ts_open(s3_bucket, moto_endpoint, "ts")
    assert_identical(fresh.read().result(), model)
    np.testing.assert_array_equal(as4d(vol[...]), model)
