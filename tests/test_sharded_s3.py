"""Sharded volumes on S3 (moto's server on loopback): whole shards are written with one PUT each,
reads are byte ranges; a write of part of a shard needs conditional writes (If-Match), which the
S3 store may not offer: then it is refused with a message that says to align writes to shards."""

from __future__ import annotations

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import UnsupportedError
from bigarrays.stores import open_store
from bigarrays.testing.counting import CountingStore

SHAPE = (64, 48, 40)
CHUNKS = (16, 16, 8)  # grid 4 x 3 x 5; shards of 2 x 2 x 2 chunks = 32 x 32 x 16 voxels


@pytest.mark.parametrize("spec_name", ["auto-gzip", "murmur"])
def test_sharded_volume_on_s3(s3_bucket: str, spec_name: str) -> None:
    url = f"s3://{s3_bucket}/sharded-{spec_name}"
    if spec_name == "murmur":
        options = {"sharding": {"preshift_bits": 1, "minishard_bits": 1, "shard_bits": 2,
                                "hash": "murmurhash3_x86_128"}}  # fmt: skip
    else:
        options = {"sharding": True, "shard_size_bytes": 8 * 16 * 16 * 8, "compression": "gzip"}
    store = CountingStore(open_store(url))
    vol = ba.create(store, shape=SHAPE, chunks=CHUNKS, voxel_offset=(-16, 0, 4), **options)
    data = np.random.default_rng(0).integers(1, 255, SHAPE, dtype=np.uint8)
    store.reset()
    vol[...] = data  # every shard whole: one PUT each, nothing read
    assert store.reads == 0
    assert store.counts["put"] + store.counts["put_if_version"] >= 1
    back = ba.open(url)
    np.testing.assert_array_equal(back[...], data)
    np.testing.assert_array_equal(back[-3:29, 5:40, 9:30], data[13:45, 5:40, 5:26])
    if spec_name == "murmur":
        return
    # A box of one whole shard is one PUT.
    store.reset()
    vol[-16:16, 0:32, 4:20] = 9
    assert store.reads == 0
    data[0:32, 0:32, 0:16] = 9
    partial = (slice(-15, 16), slice(0, 32), slice(4, 20))
    if store.conditional_writes:
        vol[partial] = 3
        data[1:32, 0:32, 0:16] = 3
    else:
        with pytest.raises(UnsupportedError, match="align writes to shards"):
            vol[partial] = 3
    np.testing.assert_array_equal(ba.open(url)[...], data)
