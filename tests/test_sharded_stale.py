"""A reader whose cached minishard indexes went stale (the shard was rewritten by another handle
or another process) never returns another chunk's voxels: every chunk it reads matches a NumPy
model of the volume, on every store with versions (file, memory, zip, LMDB, S3, GCS)."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import StaleReadError
from bigarrays.stores import open_store
from bigarrays.stores.memory import drop_namespace
from bigarrays.testing.counting import CountingStore

SHAPE = (32, 16, 16)  # a grid of 4 x 2 x 2 chunks: two shards of 2 x 2 x 2 chunks
CHUNKS = (8, 8, 8)
#: Chunk A opens shard 0 (it has the lowest id); B, its neighbour along x, follows it.
A = (slice(0, 8), slice(0, 8), slice(0, 8))
B = (slice(8, 16), slice(0, 8), slice(0, 8))


def dataset_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if kind == "file":
        yield str(tmp_path / "vol")
    elif kind == "memory":
        name = f"stale-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        drop_namespace(name)
    elif kind == "zip":
        yield f"zip://{tmp_path}/vol.zip"
    elif kind == "lmdb":
        yield f"lmdb://{tmp_path}/vol.lmdb"
    elif kind == "s3":
        yield f"s3://{request.getfixturevalue('s3_bucket')}/vol"
    else:
        yield f"gs://{request.getfixturevalue('gcs_bucket')}/vol"


@pytest.fixture(params=["file", "memory", "zip", "lmdb", "s3", "gcs"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from dataset_url(request.param, request, tmp_path)


@pytest.fixture(params=["file", "zip", "lmdb", "s3", "gcs"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A dataset that several processes can open (a memory store lives in one)."""
    yield from dataset_url(request.param, request, tmp_path)


def model_volume() -> np.ndarray:
    """Every chunk compresses differently, so that rewriting one moves the others."""
    rng = np.random.default_rng(1)
    model = np.zeros(SHAPE, np.uint8)
    for i, x in enumerate(range(0, SHAPE[0], 8)):
        for j, y in enumerate(range(0, SHAPE[1], 8)):
            for k, z in enumerate(range(0, SHAPE[2], 8)):
                levels = 255 - 25 * (i + 2 * j + 4 * k)  # A is the least compressible
                model[x : x + 8, y : y + 8, z : z + 8] = rng.integers(1, levels, (8, 8, 8))
    return model


def create(url: str, encoding: str) -> np.ndarray:
    model = model_volume()
    compression = "gzip" if encoding == "gzip" else None
    vol = ba.create(url, shape=SHAPE, chunks=CHUNKS, sharding=True,
                    shard_size_bytes=8 * 8**3, compression=compression)  # fmt: skip
    vol[...] = model
    vol.close()
    return model


def rewrite(url: str, encoding: str) -> None:
    """Change chunk A so that the chunks after it in shard 0 move: a gzip chunk that shrinks,
    a raw chunk of zeros that leaves the shard."""
    with ba.open(url, mode="r+") as vol:
        vol[A] = 7 if encoding == "gzip" else 0


def rewritten(model: np.ndarray, encoding: str) -> np.ndarray:
    new = model.copy()
    new[A] = 7 if encoding == "gzip" else 0
    return new


ENCODINGS = ["gzip", "raw"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_two_handles_in_one_process(url: str, encoding: str) -> None:
    model = create(url, encoding)
    reader = ba.open(url)
    np.testing.assert_array_equal(reader[...], model)  # caches every minishard index
    rewrite(url, encoding)
    new = rewritten(model, encoding)
    np.testing.assert_array_equal(reader[B], new[B])  # read through the stale index first
    np.testing.assert_array_equal(reader[A], new[A])
    np.testing.assert_array_equal(reader[...], new)
    reader.close()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_another_process_rewrites(shared_url: str, encoding: str) -> None:
    url = shared_url
    model = create(url, encoding)
    reader = ba.open(url)
    np.testing.assert_array_equal(reader[...], model)
    child = multiprocessing.get_context("spawn").Process(target=rewrite, args=(url, encoding))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    new = rewritten(model, encoding)
    np.testing.assert_array_equal(reader[B], new[B])  # B never changed: never A's voxels
    got_a = reader[A]
    if url.startswith("zip://"):
        # A zip reader sees the archive as of its first read (the writer appended after it):
        # the old chunk, whole and consistent, until it refreshes.
        assert np.array_equal(got_a, model[A]) or np.array_equal(got_a, new[A])
    else:
        np.testing.assert_array_equal(got_a, new[A])
        np.testing.assert_array_equal(reader[...], new)
    reader.close()
    np.testing.assert_array_equal(ba.open(url)[...], new)


def test_a_chunk_written_after_its_index_was_cached_is_seen(url: str) -> None:
    model = create(url, "raw")
    with ba.open(url, mode="r+") as vol:
        vol[A] = 0  # chunk A leaves shard 0
    model[A] = 0
    reader = ba.open(url)
    np.testing.assert_array_equal(reader[...], model)  # caches an index without A
    with ba.open(url, mode="r+") as vol:
        vol[A] = 9
    model[A] = 9
    np.testing.assert_array_equal(reader[A], model[A])
    np.testing.assert_array_equal(reader[...], model)


def test_what_a_stale_index_costs(tmp_path: Path) -> None:
    url = str(tmp_path / "vol")
    model = create(url, "gzip")
    store = CountingStore(open_store(url))
    reader = ba.open(store)
    np.testing.assert_array_equal(reader[...], model)
    store.reset()
    np.testing.assert_array_equal(reader[B], model[B])
    assert store.counts == {"get_range": 1}  # a warm index: one ranged read, held to a version
    store.reset()
    np.testing.assert_array_equal(reader[16:24, 8:16, 8:16], model[16:24, 8:16, 8:16])
    assert store.counts == {"get_range": 1}
    rewrite(url, "gzip")
    store.reset()
    np.testing.assert_array_equal(reader[B], rewritten(model, "gzip")[B])
    # The refused read, the shard-index entry and the minishard index again, the chunk.
    assert store.counts == {"get_range": 4}
    store.reset()
    np.testing.assert_array_equal(reader[B], rewritten(model, "gzip")[B])
    assert store.counts == {"get_range": 1}


def test_a_shard_that_keeps_changing_gives_up_with_a_typed_error(tmp_path: Path) -> None:
    url = str(tmp_path / "vol")
    create(url, "gzip")
    store = AlwaysStale(open_store(url))
    reader = ba.open(store)
    with pytest.raises(StaleReadError, match="kept changing"):
        reader[B]


class AlwaysStale(CountingStore):
    """Every conditional read finds the shard rewritten, as under a writer that never stops."""

    def _get_range_if_version(
        self, key: str, start: int, length: int | None, version: str | None
    ) -> bytes | None:
        raise StaleReadError(key, self.url)
