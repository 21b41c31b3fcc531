"""A whole Zarr shard is put as its pieces (the chunks and the index), never joined first, and
its inner chunks are encoded without a pass over them where one voxel shows they are not fill."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks
from bigarrays.stores import MemoryStore
from bigarrays.stores.memory import drop_namespace
from bigarrays.stores.versions import PutMode

zarr = pytest.importorskip("zarr")


class PartsRecorder(MemoryStore):
    """Records how many pieces each put_parts got."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.parts: dict[str, int] = {}

    def _put_parts(
        self, key: str, parts: list[memoryview], mode: PutMode, version: str | None
    ) -> str | None:
        self.parts[key] = len(parts)
        return super()._put_parts(key, parts, mode, version)


@pytest.mark.parametrize("location", ["start", "end"])
def test_a_whole_shard_goes_to_the_store_in_pieces(location: str) -> None:
    name = f"parts-{uuid.uuid4().hex}"
    store = PartsRecorder(name)
    try:
        sharding = {"chunk_shape": (4, 4, 4), "index_location": location}
        vol = ba.create(store, shape=(8, 8, 8), dtype="uint16", chunks=(8, 8, 8), format="zarr",
                        sharding=sharding)  # fmt: skip
        data = np.arange(512, dtype="uint16").reshape(8, 8, 8) + 1
        data[4:8, 4:8, 4:8] = 0  # an inner chunk of fill: left out of the shard
        vol[:, :, :] = data
        assert store.parts == {"c/0/0/0": 8}  # seven inner chunks and the index
        np.testing.assert_array_equal(ba.open(store)[:, :, :], data)
    finally:
        drop_namespace(name)


@pytest.mark.parametrize("dtype", ["<u2", ">u2", "float32"])
def test_inner_chunks_whose_first_voxel_is_fill(tmp_path: Path, dtype: str) -> None:
    """A chunk is left out only when all of it is fill, whatever its first voxel holds; the
    shards are those zarr-python reads back."""
    path = tmp_path / "a.zarr"
    vol = ba.create(path, shape=(8, 8, 6), dtype=dtype, chunks=(8, 8, 8),
                    sharding={"chunk_shape": (4, 4, 4)})  # fmt: skip
    data = np.zeros((8, 8, 6), dtype)
    data[3, 3, 3] = 7  # inner chunk (0, 0, 0): fill at its corner, not all fill
    data[4:8, 0:4, 0:4] = 5  # inner chunk (1, 0, 0): no fill at all
    data[0:4, 4:8, 5] = 9  # inner chunk (0, 1, 1): an edge chunk, fill at its corner
    vol[:, :, :] = data
    source = ba.open(path).level.source
    assert isinstance(source, ShardedZarrChunks)
    assert source.load((0, 0, 0)) is not None
    assert source.load((1, 0, 0)) is not None
    assert source.load((0, 1, 1)) is not None
    assert source.load((1, 1, 0)) is None  # all fill: left out
    np.testing.assert_array_equal(ba.open(path)[:, :, :], data)
    np.testing.assert_array_equal(zarr.open_array(str(path))[:], data)


@pytest.mark.parametrize("dtype", ["<u2", ">u2", "float32", "bool"])
@pytest.mark.parametrize("compression", [None, "gzip", "zstd", "blosc"])
def test_inner_chunks_encode_as_their_codec_chain_does(
    tmp_path: Path, dtype: str, compression: str | None
) -> None:
    path = tmp_path / "a.zarr"
    options = {} if compression is None else {"compression": compression}
    vol = ba.create(path, shape=(8, 8, 8), dtype=dtype, chunks=(8, 8, 8),
                    sharding={"chunk_shape": (4, 4, 4)}, **options)  # fmt: skip
    source = vol.level.source
    assert isinstance(source, ShardedZarrChunks)
    block = (np.arange(8 * 8 * 8) % 7).astype(dtype).reshape(8, 8, 8)
    chunk = block[2:6, 1:5, 4:8]  # a view with strides of the block, as a slab's chunks are
    assert bytes(source.encode_chunk(chunk) or b"") == source.chain.encode(chunk.copy())
