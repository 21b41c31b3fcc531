"""Sharded Zarr v3 arrays (``sharding_indexed``), read and written, against zarr-python and
TensorStore's zarr3 driver; concurrent partial-shard writers; stale and corrupt indexes."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bigarrays as ba
from bigarrays.errors import CorruptChunkError, UnsupportedError
from bigarrays.formats.zarr.sharded_chunks import ShardedZarrChunks
from bigarrays.formats.zarr.sharding import ShardingConfig, plan_sharding
from bigarrays.stores import open_store
from bigarrays.testing.counting import CountingStore

zarr = pytest.importorskip("zarr")
codecs = pytest.importorskip("zarr.codecs")

INNER = {
    "raw": [],
    "gzip": [{"name": "gzip", "configuration": {"level": 5}}],
    "zstd": [{"name": "zstd", "configuration": {"level": 3, "checksum": False}}],
    "crc32c": [{"name": "crc32c"}],
}
_ZARR_INNER = {
    "raw": [],
    "gzip": [codecs.GzipCodec(level=5)],
    "zstd": [codecs.ZstdCodec(level=3)],
    "crc32c": [codecs.Crc32cCodec()],
}


def _zarr_sharded(path: Path, shape: tuple[int, ...], shard: tuple[int, ...],
                  inner: tuple[int, ...], dtype: str, *, location: str = "end",
                  compression: str = "raw", fill: Any = 0) -> Any:  # fmt: skip
    sharding = codecs.ShardingCodec(
        chunk_shape=inner, codecs=[codecs.BytesCodec(), *_ZARR_INNER[compression]],
        index_location=location,
    )  # fmt: skip
    return zarr.create_array(
        str(path), shape=shape, chunks=shard, dtype=dtype, fill_value=fill,
        serializer=sharding, compressors=None, zarr_format=3,
    )  # fmt: skip


def _data(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 200, shape).astype(dtype)


# -- zarr-python writes, we read ---------------------------------------------------------------


@pytest.mark.parametrize("location", ["start", "end"])
@pytest.mark.parametrize("compression", list(INNER))
def test_we_read_what_zarr_python_writes(tmp_path: Path, location: str, compression: str) -> None:
    shape, shard, inner = (23, 17, 11), (8, 8, 6), (4, 2, 3)  # edge shards on every axis
    z = _zarr_sharded(tmp_path / "a.zarr", shape, shard, inner, "uint16", location=location,
                      compression=compression, fill=7)  # fmt: skip
    expected = np.full(shape, 7, np.uint16)
    expected[2:21, 3:15, 1:10] = _data((19, 12, 9), "uint16")
    expected[8:16, 8:16, 6:11] = 7  # a whole shard of fill: zarr-python stores none
    expected[9:12, 9:11, 0:3] = 7  # inner chunks of fill: absent from their shard
    z[:] = expected
    z[5:9, 4:6, 2:7] = 99  # a partial-shard write by zarr-python
    expected[5:9, 4:6, 2:7] = 99
    assert not (tmp_path / "a.zarr" / "c" / "1" / "1" / "1").exists()
    vol = ba.open(tmp_path / "a.zarr")
    assert vol.chunks == inner
    assert vol.level.encoding == "sharding_indexed"
    np.testing.assert_array_equal(vol[:, :, :], expected)
    np.testing.assert_array_equal(vol[3:19, -2:5, 4:11], np.pad(expected, ((0, 0), (2, 0),
                                  (0, 0)), constant_values=7)[3:19, 0:7, 4:11])  # fmt: skip


def test_absent_shards_and_inner_chunks_read_as_fill(tmp_path: Path) -> None:
    z = _zarr_sharded(tmp_path / "a.zarr", (16, 16), (8, 8), (4, 4), "float32", fill=-1.5)
    z[0:4, 0:4] = 2.0  # one inner chunk of one shard; three shards never written
    vol = ba.open(tmp_path / "a.zarr")
    expected = np.full((16, 16), -1.5, np.float32)
    expected[0:4, 0:4] = 2.0
    np.testing.assert_array_equal(vol[:, :], expected)
    assert len(list((tmp_path / "a.zarr" / "c").rglob("*"))) == 2  # c/0 and c/0/0


# -- we write, zarr-python and TensorStore read ------------------------------------------------


@pytest.mark.parametrize("location", ["start", "end"])
def test_shards_are_byte_identical_to_zarr_pythons(tmp_path: Path, location: str) -> None:
    shape, shard, inner = (20, 13, 9), (8, 8, 4), (4, 2, 2)
    ours = tmp_path / "ours.zarr"
    vol = ba.create(ours, shape=shape, dtype="uint16", chunks=shard,
                    sharding={"chunk_shape": inner, "index_location": location})  # fmt: skip
    data = _data(shape, "uint16")
    data[0:4, 0:2, 0:2] = 0  # an inner chunk of fill: both leave it out
    data[8:16, 8:13, 4:8] = 0  # a shard of fill: neither stores it
    vol[:, :, :] = data
    theirs = tmp_path / "theirs.zarr"
    theirs.mkdir()
    (theirs / "zarr.json").write_bytes((ours / "zarr.json").read_bytes())
    z = zarr.open_array(str(theirs), mode="r+")
    z[:] = data
    np.testing.assert_array_equal(zarr.open_array(str(ours))[:], data)
    mine = {p.relative_to(ours): p.read_bytes() for p in (ours / "c").rglob("*") if p.is_file()}
    them = {p.relative_to(theirs): p.read_bytes() for p in (theirs / "c").rglob("*")
            if p.is_file()}  # fmt: skip
    assert sorted(mine) == sorted(them)
    assert Path("1/1/1") not in mine
    for key in mine:
        assert mine[key] == them[key], key


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_zarr_python_reads_our_partial_writes(tmp_path: Path, compression: str | None) -> None:
    vol = ba.create(tmp_path / "a.zarr", shape=(30, 20, 10), dtype="int32", chunks=(16, 8, 10),
                    sharding={"chunk_shape": [4, 4, 5]}, compression=compression,
                    fill_value=-3)  # fmt: skip
    expected = np.full((30, 20, 10), -3, np.int32)
    for i, (a, b) in enumerate([(0, 30), (3, 7), (13, 19), (29, 30)]):
        vol[a:b, 1 + i : 17, 2:9] = i * 11 + 1
        expected[a:b, 1 + i : 17, 2:9] = i * 11 + 1
    vol[16:30, :, :] = -3  # back to fill: inner chunks and then shards are dropped
    expected[16:30] = -3
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"))[:], expected)
    np.testing.assert_array_equal(vol[:, :, :], expected)
    assert not [p for p in (tmp_path / "a.zarr" / "c" / "1").rglob("*") if p.is_file()]


@pytest.mark.interop
def test_tensorstore_reads_ours_and_we_read_theirs(tmp_path: Path) -> None:
    ts = pytest.importorskip("tensorstore")
    data = _data((24, 18, 7), "uint8")
    vol = ba.create(tmp_path / "ours.zarr", shape=data.shape, dtype="uint8", chunks=(8, 9, 7),
                    sharding={"chunk_shape": [4, 3, 7]}, compression="zstd")  # fmt: skip
    vol[:, :, :] = data
    theirs = ts.open({"driver": "zarr3", "kvstore": {"driver": "file",
                      "path": str(tmp_path / "ours.zarr")}}).result()  # fmt: skip
    np.testing.assert_array_equal(theirs.read().result(), data)

    spec = {
        "driver": "zarr3", "kvstore": {"driver": "file", "path": str(tmp_path / "ts.zarr")},
        "metadata": {"shape": [24, 18, 7], "data_type": "uint8", "chunk_grid": {
            "name": "regular", "configuration": {"chunk_shape": [8, 9, 7]}},
            "codecs": [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": [4, 3, 7], "index_location": "start",
                "codecs": [{"name": "bytes"}, {"name": "gzip", "configuration": {"level": 1}}],
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                 {"name": "crc32c"}]}}]},
    }  # fmt: skip
    written = ts.open(spec, create=True).result()
    written[2:20, 5:18, :].write(data[2:20, 5:18, :]).result()
    expected = np.zeros_like(data)
    expected[2:20, 5:18, :] = data[2:20, 5:18, :]
    np.testing.assert_array_equal(ba.open(tmp_path / "ts.zarr")[:, :, :], expected)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_geometries_agree_with_numpy_and_zarr_python(data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _random_geometry(Path(tmp), data)


def _stored(path: Path) -> dict[Path, bytes]:
    return {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _random_geometry(tmp: Path, data: Any) -> None:
    """The same writes through bigarrays and zarr-python: each reads what the other wrote, both
    agree with NumPy, and (raw inner chunks) every stored object is the same bytes."""
    ndim = data.draw(st.integers(1, 3))
    inner = tuple(data.draw(st.integers(1, 4)) for _ in range(ndim))
    per = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    shard = tuple(i * p for i, p in zip(inner, per, strict=True))
    shape = tuple(data.draw(st.integers(1, 2 * s + 1)) for s in shard)
    location = data.draw(st.sampled_from(["start", "end"]))
    ours, theirs = tmp / "ours.zarr", tmp / "theirs.zarr"
    vol = ba.create(ours, shape=shape, dtype="uint8", chunks=shard, fill_value=5,
                    sharding={"chunk_shape": list(inner), "index_location": location})  # fmt: skip
    theirs.mkdir()
    (theirs / "zarr.json").write_bytes((ours / "zarr.json").read_bytes())
    z = zarr.open_array(str(theirs), mode="r+")
    model = np.full(shape, 5, np.uint8)
    for step in range(3):
        start = [data.draw(st.integers(0, n - 1)) for n in shape]
        stop = [data.draw(st.integers(a + 1, n)) for a, n in zip(start, shape, strict=True)]
        box = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
        value = data.draw(st.sampled_from([5, 5 + step + 1]))
        vol[box] = value
        z[box] = value
        model[box] = value
    everything = tuple(slice(None) for _ in shape)
    np.testing.assert_array_equal(vol[everything], model)
    np.testing.assert_array_equal(zarr.open_array(str(ours))[...], model)
    np.testing.assert_array_equal(ba.open(theirs)[everything], model)
    assert _stored(ours) == _stored(theirs)


# -- concurrent writers, stale indexes ---------------------------------------------------------

SHAPE = (64, 8, 8)


def _slabs(seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    edges = [0]
    while edges[-1] < SHAPE[0]:
        edges.append(min(SHAPE[0], edges[-1] + int(rng.integers(1, 5))))
    return list(itertools.pairwise(edges))


def _make(path: Path, threads: int = 8) -> ba.BigArray:
    return ba.create(path, shape=SHAPE, dtype="uint8", chunks=(32, 8, 8), threads=threads,
                     sharding={"chunk_shape": [4, 4, 8]}, progress=False)  # fmt: skip


def _expected(slabs: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros(SHAPE, np.uint8)
    for a, b in slabs:
        out[a:b] = a + 1
    return out


def test_threads_on_one_handle_lose_nothing(tmp_path: Path) -> None:
    slabs = _slabs(1)
    with _make(tmp_path / "a.zarr") as vol:

        def write(slab: tuple[int, int]) -> None:
            vol[slab[0] : slab[1], 1:7, :] = slab[0] + 1

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, slabs))
        expected = np.zeros(SHAPE, np.uint8)
        expected[:, 1:7] = _expected(slabs)[:, 1:7]
        assert int((vol[:, :, :] != expected).sum()) == 0


def _write_slabs(path: str, slabs: list[tuple[int, int]]) -> None:
    with ba.open(path, mode="r+", progress=False) as vol:
        for round_ in range(2):
            for a, b in slabs:
                vol[a:b, :, 0:5] = a + 1 if round_ == 1 else 200


def test_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _make(path).close()
    slabs = _slabs(2)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_slabs, args=(str(path), slabs[i::2])) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    expected = np.zeros(SHAPE, np.uint8)
    expected[:, :, 0:5] = _expected(slabs)[:, :, 0:5]
    assert int((ba.open(path)[:, :, :] != expected).sum()) == 0


def test_a_stale_index_is_never_trusted(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    with _make(path) as b:
        b[0:32, :, :] = _data((32, 8, 8), "uint8")
    a = ba.open(path)
    source = a.level.source
    assert isinstance(source, ShardedZarrChunks)
    a[0:4, 0:4, :]  # caches shard 0's index
    assert source.cache.get((0, 0)) is not None
    with ba.open(path, mode="r+") as b:
        # Other sizes of inner chunks move every offset of the rewritten shard.
        b[0:32, :, :] = 0
        b[4:8, 4:8, :] = 9
        b[0:4, 0:4, 0:4] = 3
    expected = np.zeros((8, 8, 8), np.uint8)
    expected[4:8, 4:8, :] = 9
    expected[0:4, 0:4, 0:4] = 3
    np.testing.assert_array_equal(a[0:8, 0:8, :], expected)
    np.testing.assert_array_equal(a[0:4, 0:4, :], expected[0:4, 0:4])


def test_an_absent_chunk_in_a_cached_index_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    with _make(path) as b:
        b[0:4, 0:4, :] = 1
    a = ba.open(path)
    assert not a[4:8, 0:4, :].any()  # absent, in the index it caches
    with ba.open(path, mode="r+") as b:
        b[4:8, 0:4, :] = 2
    np.testing.assert_array_equal(a[4:8, 0:4, :], 2)


def test_reads_take_one_index_read_per_shard_then_ranges(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    with _make(path) as vol:
        vol[:, :, :] = _data(SHAPE, "uint8")
    store = CountingStore(open_store(str(path)))
    vol = ba.open(store)
    store.reset()
    vol[0:4, 0:4, :]
    assert store.counts == {"get_range": 2}  # the index, then the inner chunk
    store.reset()
    vol[0:8, 0:8, :]  # the index is cached; four adjacent inner chunks are one range
    assert store.counts == {"get_range": 1}


def test_stores_without_conditional_writes_refuse_partial_shards(tmp_path: Path) -> None:
    _make(tmp_path / "a.zarr").close()
    store = CountingStore(open_store(str(tmp_path / "a.zarr")))
    store.conditional_writes = False
    vol = ba.open(store, mode="r+")
    vol[0:32, :, :] = 4  # a whole shard: allowed
    with pytest.raises(UnsupportedError, match=r"align writes to shards of \(32, 8, 8\)") as err:
        vol[0:33, :, :] = 6
    assert "Box(32:64, 0:8, 0:8)" in str(err.value)  # the shard it reaches into
    assert not ba.open(tmp_path / "a.zarr")[32:64, :, :].any()  # nothing written
    np.testing.assert_array_equal(ba.open(tmp_path / "a.zarr")[0:32, :, :], 4)


# -- corrupt indexes ---------------------------------------------------------------------------


def _raw_index_array(path: Path, crc: bool) -> ba.BigArray:
    """One shard of 2 x 2 inner chunks of 2 x 2 uint8; an index without a checksum unless
    ``crc``, so that tests can write any entries."""
    index_codecs: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if crc:
        index_codecs.append({"name": "crc32c"})
    meta = {
        "zarr_format": 3, "node_type": "array", "shape": [4, 4], "data_type": "uint8",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 4]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0, "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": [2, 2], "codecs": [{"name": "bytes"}], "index_codecs": index_codecs,
            "index_location": "end"}}],
    }  # fmt: skip
    path.mkdir()
    (path / "zarr.json").write_text(json.dumps(meta))
    vol = ba.open(path, mode="r+")
    vol[:, :] = np.arange(1, 17, dtype=np.uint8).reshape(4, 4)
    return vol


def _set_entry(path: Path, pos: int, offset: int, nbytes: int) -> None:
    shard = path / "c" / "0" / "0"
    data = bytearray(shard.read_bytes())
    table = np.frombuffer(bytes(data[-64:]), "<u8").copy().reshape(4, 2)
    table[pos] = (offset, nbytes)
    data[-64:] = table.tobytes()
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("offset", "nbytes", "match"),
    [
        (1000, 4, "past the end"),  # starts past the end of the shard
        (0, 5, "stored in at most 4"),  # longer than an inner chunk can be
        (2**64 - 3, 4, "past 2\\*\\*63"),  # overflows with its length
        (2**63 - 1, 4, "past the end of the shard"),
        (2**64 - 1, 4, "absent in its offset or size only"),
    ],
)
def test_corrupt_index_entries_are_typed_errors(
    tmp_path: Path, offset: int, nbytes: int, match: str
) -> None:
    path = tmp_path / "a.zarr"
    _raw_index_array(path, crc=False)
    _set_entry(path, 3, offset, nbytes)
    fresh = ba.open(path)
    with pytest.raises(CorruptChunkError, match=match):
        fresh[2:4, 2:4]
    with pytest.raises(CorruptChunkError, match=match):  # and a partial write refuses the shard
        ba.open(path, mode="r+")[0, 0] = 1


_ENTRY = st.one_of(
    st.integers(0, 100),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)


@settings(max_examples=60, deadline=None)
@given(entries=st.lists(st.tuples(_ENTRY, _ENTRY), min_size=4, max_size=4))
def test_any_index_gives_data_or_a_typed_error(entries: list[tuple[int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        _raw_index_array(path, crc=False)
        for pos, (offset, nbytes) in enumerate(entries):
            _set_entry(path, pos, offset, nbytes)
        try:
            out = ba.open(path)[:, :]
        except CorruptChunkError:
            return
        assert out.shape == (4, 4)


def test_a_crc32c_mismatch_of_the_index_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _raw_index_array(path, crc=True)
    shard = path / "c" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0x40
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptChunkError, match="crc32c"):
        ba.open(path)[0:2, 0:2]


def test_a_shard_shorter_than_its_index_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _raw_index_array(path, crc=True)
    (path / "c" / "0" / "0").write_bytes(b"\x00" * 10)
    with pytest.raises(CorruptChunkError, match="cannot hold its index"):
        ba.open(path)[0:2, 0:2]


# -- configuration -----------------------------------------------------------------------------


def test_sharding_true_picks_documented_shapes() -> None:
    assert plan_sharding((5, 1000, 1000, 1000), None, True) == (
        (1, 512, 512, 512), (1, 64, 64, 64), "end")  # fmt: skip
    assert plan_sharding((100, 30), None, True) == ((128, 30), (64, 30), "end")
    assert plan_sharding((100, 100, 100), (64, 100, 7), True) == (
        (64, 100, 7), (8, 10, 7), "end")  # fmt: skip
    assert plan_sharding((9,), (6,), {"chunk_shape": [3], "index_location": "start"}) == (
        (6,), (3,), "start")  # fmt: skip


def test_bad_sharding_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must divide"):
        ba.create(tmp_path / "a.zarr", shape=(10,), chunks=(6,), sharding={"chunk_shape": [4]})
    with pytest.raises(ValueError, match="not \\['shard_shape'\\]"):
        ba.create(tmp_path / "b.zarr", shape=(10,), sharding={"shard_shape": [4]})
    with pytest.raises(ValueError, match="Zarr v2 has no sharding"):
        ba.create(tmp_path / "c", shape=(10,), format="zarr2", sharding=True)
    assert not any(tmp_path.iterdir())


def test_index_codecs_of_variable_size_are_unsupported() -> None:
    config = {"chunk_shape": [2], "codecs": [{"name": "bytes"}],
              "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                               {"name": "gzip", "configuration": {"level": 1}}]}  # fmt: skip
    with pytest.raises(UnsupportedError, match="fixed size"):
        ShardingConfig.from_json(config, "uint8", (4,))


# -- object stores -----------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["start", "end"])
def test_sharded_arrays_on_s3(s3_bucket: str, location: str) -> None:
    url = f"s3://{s3_bucket}/sharded-{location}.zarr"
    vol = ba.create(url, shape=(20, 12, 6), dtype="uint16", chunks=(8, 8, 6), compression="gzip",
                    sharding={"chunk_shape": [4, 4, 3], "index_location": location})  # fmt: skip
    data = _data((20, 12, 6), "uint16")
    vol[:, :, :] = data
    vol[3:9, 2:3, 1:5] = 0  # partial shards: conditional writes on S3
    data[3:9, 2:3, 1:5] = 0
    reader = ba.open(url)
    np.testing.assert_array_equal(reader[:, :, :], data)  # indexes now cached, with versions
    vol[0:8, 0:8, :] = 5  # rewrites shard 0 behind the reader's back
    data[0:8, 0:8, :] = 5
    np.testing.assert_array_equal(reader[:, :, :], data)
