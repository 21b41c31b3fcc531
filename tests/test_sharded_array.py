"""Sharded scales through BigArray: reads, writes of whole and partial shards, the fill value,
the minishard-index cache, the number of store requests, conditional writes and their absence,
concurrent writers in several processes, and conversion between the two layouts."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import (
    ChunkNotFoundError,
    DatasetExistsError,
    InvalidInfoError,
    ReadOnlyError,
    UnsupportedError,
)
from bigarrays.formats.precomputed import open_layout
from bigarrays.formats.precomputed.info import Info
from bigarrays.formats.precomputed.sharded_layout import ShardedLayout
from bigarrays.formats.precomputed.sharding import decode_shard
from bigarrays.resharding import convert_dataset
from bigarrays.stores import open_store
from bigarrays.stores.base import Buffer
from bigarrays.stores.memory import drop_namespace
from bigarrays.testing.counting import CountingStore

SHAPE = (70, 50, 33)
OFFSET = (-20, 5, -7)
CHUNKS = (8, 8, 8)  # grid 9 x 7 x 5, Morton bits (4, 3, 3)

#: Specs with boxes for shards (identity), scattered shards (murmurhash) and wrapped shard ids.
SPECS: dict[str, dict[str, Any]] = {
    "box": {"preshift_bits": 3, "minishard_bits": 0, "shard_bits": 7, "hash": "identity"},
    "minishards": {"preshift_bits": 1, "minishard_bits": 2, "shard_bits": 7, "hash": "identity",
                   "minishard_index_encoding": "gzip", "data_encoding": "gzip"},
    "murmur": {"preshift_bits": 1, "minishard_bits": 2, "shard_bits": 3,
               "hash": "murmurhash3_x86_128", "minishard_index_encoding": "gzip"},
    "wrapped": {"preshift_bits": 2, "minishard_bits": 1, "shard_bits": 2, "hash": "identity"},
}  # fmt: skip


@pytest.fixture(params=["file", "memory"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "file":
        yield str(tmp_path / "vol")
    else:
        name = f"sharded-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        drop_namespace(name)


def make(url: str | CountingStore, spec: dict[str, Any] | bool = True, **kw: Any) -> ba.BigArray:
    options: dict[str, Any] = {"shape": SHAPE, "chunks": CHUNKS, "voxel_offset": OFFSET}
    if spec is True:
        options["shard_size_bytes"] = 8 * 8**3  # 8 uint8 chunks: shards of 2 x 2 x 2 chunks
    return ba.create(url, sharding=spec, **(options | kw))


def absolute(box: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in zip(*box, strict=True))


def model_index(box: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[slice, ...]:
    return tuple(slice(a - o, b - o) for a, b, o in zip(*box, OFFSET, strict=True))


WRITES = [
    ((-20, 5, -7), (-13, 40, 0)),
    ((3, 20, 10), (47, 24, 26)),
    ((-15, 30, -2), (10, 33, 12)),
    ((44, 50, 20), (50, 55, 26)),
    ((-4, 21, 9), (12, 37, 25)),  # exactly the chunks of one 2 x 2 x 2 shard box
]


@pytest.mark.parametrize("spec_name", [*SPECS, "auto"])
def test_unaligned_writes_and_reads_match_a_model(url: str, spec_name: str) -> None:
    vol = make(url, SPECS.get(spec_name, True), dtype="uint16", num_channels=2)
    model = np.zeros((*SHAPE, 2), np.uint16)
    rng = np.random.default_rng(0)
    for box in WRITES:
        shape = [b - a for a, b in zip(*box, strict=True)]
        block = rng.integers(1, 60000, (*shape, 2), dtype=np.uint16)
        vol[absolute(box)] = block
        model[model_index(box)] = block
    back = ba.open(url)
    np.testing.assert_array_equal(back[...], model)
    for box in WRITES:
        np.testing.assert_array_equal(back[absolute(box)], model[model_index(box)])
    # A box crossing every edge reads zeros outside.
    cut = back[-25:55, 0:60, -10:30, :]
    np.testing.assert_array_equal(cut[5:75, 5:55, 3:36], model)
    assert not cut[:5].any()
    # Overwrite everything; then zeros everywhere leaves no shard at all.
    vol[...] = model[..., ::-1]
    np.testing.assert_array_equal(ba.open(url)[...], model[..., ::-1])
    vol[...] = 0
    assert list(vol.store.list(vol.scale.key + "/")) == []


def test_whole_shards_are_put_once_without_reads(url: str) -> None:
    store = CountingStore(open_store(url))
    vol = make(store)
    layout = vol.level.source
    assert isinstance(layout, ShardedLayout)
    assert layout.geometry.shard_chunks == (2, 2, 2)
    box = ((-20, 5, -7), (12, 37, 25))  # 4 x 4 x 4 chunks = 8 whole shards
    store.reset()
    vol[absolute(box)] = 7
    assert store.counts["put"] == 8
    assert store.reads == 0
    assert sorted(store.counts) == ["put"]


def test_partial_shards_are_read_merged_and_rewritten(url: str) -> None:
    store = CountingStore(open_store(url))
    vol = make(store)
    vol[-20:-4, 5:21, -7:9] = 3  # one whole shard
    store.reset()
    vol[-19:-18, 6:7, -6:-5] = 9  # one voxel of it
    assert store.counts["get_with_version"] == 1
    assert store.counts["put_if_version"] == 1
    expected = np.full((16, 16, 16), 3, np.uint8)
    expected[1, 1, 1] = 9
    np.testing.assert_array_equal(ba.open(url)[-20:-4, 5:21, -7:9], expected)


def test_chunks_of_fill_value_are_left_out_and_empty_shards_deleted(tmp_path: Path) -> None:
    vol = make(str(tmp_path / "vol"), dtype="float32", shard_size_bytes=8 * 4 * 8**3)
    layout = vol.level.source
    assert isinstance(layout, ShardedLayout)
    assert layout.geometry.shard_chunks == (2, 2, 2)
    block = np.ones((16, 16, 16), np.float32)
    block[:8, :8, :8] = 0  # one chunk of zeros
    block[8:, :8, :8] = np.float32(-0.0)  # -0.0 is not the fill value: its bits are not 0
    vol[-20:-4, 5:21, -7:9] = block
    key = layout.shard_key(layout.shard_map.locate(layout.chunk_id((0, 0, 0, 0)))[0])
    stored = decode_shard(vol.store.get(key) or b"", layout.spec)
    assert len(stored) == 7
    assert layout.chunk_id((0, 0, 0, 0)) not in stored
    back = ba.open(tmp_path / "vol")[-20:-4, 5:21, -7:9]
    assert np.array_equal(back.view(np.uint32), block.view(np.uint32))
    strict = ba.open(tmp_path / "vol", fill_missing=False)
    with pytest.raises(ChunkNotFoundError, match=r"\.shard#0"):
        strict[-20:-12, 5:13, -7:1]
    vol[-20:-4, 5:21, -7:9] = 0
    assert not vol.store.exists(key)
    # A partial write of zeros over the last chunk of a shard deletes it too.
    vol[-20:-12, 5:13, -7:1] = 1
    assert vol.store.exists(key)
    vol[-20:-12, 5:13, -7:1] = 0
    assert not vol.store.exists(key)


def test_reads_fetch_byte_ranges_and_cache_minishard_indexes(url: str) -> None:
    store = CountingStore(open_store(url))
    make(store)[...] = np.arange(np.prod(SHAPE), dtype=np.uint32).reshape(SHAPE).astype(np.uint8)
    vol = ba.open(store)
    store.reset()
    vol[0:1, 20:21, 0:1]  # one chunk: shard-index entry, minishard index, chunk
    assert store.counts == {"get_range": 3}
    store.reset()
    vol[2:3, 14:15, -5:-4]  # the same chunk: its minishard index is cached
    assert store.counts == {"get_range": 1}
    store.reset()
    vol[-4:12, 21:37, 9:25]  # the 8 chunks of one shard box: adjacent ranges merge into one
    assert store.counts["get_range"] == 3
    store.reset()
    vol[...]  # every chunk: 2 reads per uncached minishard, one per merged range
    layout = vol.level.source
    assert isinstance(layout, ShardedLayout)
    n_shards = layout.geometry.num_shards()[0]
    assert store.counts["get_range"] <= 3 * n_shards
    assert store.requests == store.counts["get_range"]


def test_minishard_cache_is_bounded_and_invalidated_by_writes(tmp_path: Path) -> None:
    vol = make(str(tmp_path / "vol"))
    vol[...] = 5
    info = Info.from_json(vol.info)
    layout = ShardedLayout(vol.store, info, 0, cache_bytes=1000)
    one = layout.minishard_index(0, 0).nbytes
    assert one < 1000
    for shard in range(40):
        layout.minishard_index(shard, 0)
    assert layout.cache.nbytes <= 1000
    assert 0 < len(layout.cache) < 40
    assert layout.cache.get((39, 0)) is not None  # the latest stay, the oldest went
    assert layout.cache.get((0, 0)) is None
    # Invalidation: a write by this process drops the indexes of the shards it rewrites.
    rw = ba.open(tmp_path / "vol", mode="r+")
    rw[-20:-4, 5:21, -7:9]  # caches shard 0's index
    lay = rw.level.source
    assert isinstance(lay, ShardedLayout)
    assert lay.cache.get((0, 0)) is not None
    rw[-20:-19, 5:6, -7:-6] = 0  # rewrites shard 0 (and changes its chunk offsets)
    assert lay.cache.get((0, 0)) is None
    expected = np.full((16, 16, 16), 5, np.uint8)
    expected[0, 0, 0] = 0
    np.testing.assert_array_equal(rw[-20:-4, 5:21, -7:9], expected)


class NoConditionalStore(CountingStore):
    """A store that lacks conditional writes (as some backends do)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.conditional_writes = False


def test_stores_without_conditional_writes_refuse_partial_shards(tmp_path: Path) -> None:
    store = NoConditionalStore(open_store(str(tmp_path / "vol")))
    vol = make(store)
    store.reset()
    vol[-20:-4, 5:21, -7:9] = 4  # a whole shard: allowed
    assert store.counts == {"put": 1}
    with pytest.raises(UnsupportedError, match="align writes to shards") as err:
        vol[-20:-4, 5:21, -7:10] = 6  # reaches one voxel into the next shard
    assert "16 x 16 x 16 voxels" in str(err.value)
    np.testing.assert_array_equal(ba.open(tmp_path / "vol")[-20:-4, 5:21, -7:9], 4)
    assert not ba.open(tmp_path / "vol")[-20:-4, 5:21, 9:10].any()  # nothing written


class InterferingStore(CountingStore):
    """Before our first conditional put of a shard, another writer changes that shard."""

    def __init__(self, inner: Any, meddle: Any) -> None:
        super().__init__(inner)
        self.meddle = meddle

    def _put_if_version(
        self, key: str, value: Buffer, version: str | None, content_encoding: str | None
    ) -> str:
        if self.meddle is not None:
            meddle, self.meddle = self.meddle, None
            meddle()
        return super()._put_if_version(key, value, version, content_encoding)


def test_a_concurrent_change_is_merged_not_lost(url: str) -> None:
    make(url)
    other = ba.open(url, mode="r+")

    def meddle() -> None:
        other[-12:-4, 5:13, -7:1] = 2  # another chunk of the same shard

    store = InterferingStore(open_store(url), meddle)
    vol = ba.open(store, mode="r+")
    vol[-20:-12, 5:13, -7:1] = 1  # a partial write of shard 0
    assert store.counts["get_with_version"] == 2  # the first put lost the race: read again
    back = ba.open(url)
    assert (back[-20:-12, 5:13, -7:1] == 1).all()
    assert (back[-12:-4, 5:13, -7:1] == 2).all()


def test_read_only_volumes_refuse_writes(url: str) -> None:
    make(url)
    with pytest.raises(ReadOnlyError):
        ba.open(url)[0:1, 5:6, 0:1] = 1


def test_chunk_key_names_the_shard_and_the_chunk(url: str) -> None:
    vol = make(url, SPECS["minishards"])
    assert vol.chunk_key((0, 0, 0)) == "1_1_1/00.shard#0"
    layout = vol.level.source
    assert isinstance(layout, ShardedLayout)
    # Morton bits (4, 3, 3): (1, 2, 4) -> 273; shard = 273 >> (1 + 2) = 0x22 (7 bits: 2 hex digits)
    assert layout.key((1, 2, 4, 0)) == "1_1_1/22.shard#273"


def test_single_chunk_save_load_delete(url: str) -> None:
    vol = make(url)
    layout = open_layout(vol.store, Info.from_json(vol.info), 0)
    chunk = np.full((8, 8, 8, 1), 3, np.uint8)
    layout.save((1, 1, 1, 0), chunk)
    loaded = layout.load((1, 1, 1, 0))
    assert loaded is not None
    np.testing.assert_array_equal(loaded, chunk)
    assert layout.load((0, 1, 1, 0)) is None
    layout.delete((1, 1, 1, 0))
    assert layout.load((1, 1, 1, 0)) is None
    assert list(vol.store.list("1_1_1/")) == []


# -- create --------------------------------------------------------------------------------------


def test_create_records_the_spec(tmp_path: Path) -> None:
    vol = make(str(tmp_path / "a"), SPECS["murmur"], compression="gzip")
    sharding = json.loads((tmp_path / "a" / "info").read_text())["scales"][0]["sharding"]
    assert sharding == {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 1,
                        "hash": "murmurhash3_x86_128", "minishard_bits": 2, "shard_bits": 3,
                        "minishard_index_encoding": "gzip", "data_encoding": "gzip"}  # fmt: skip
    assert vol.compression is None  # the chunks' compression is the spec's data_encoding
    auto = ba.create(tmp_path / "b", shape=(512, 512, 512), chunks=(64, 64, 64), sharding=True)
    assert auto.scale.sharding is not None
    assert auto.scale.sharding.preshift_bits == 9


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sharding": {"preshift_bits": 40, "minishard_bits": 20, "shard_bits": 10,
                       "hash": "identity"}}, InvalidInfoError, "> 64"),
        ({"sharding": {"preshift_bits": 1, "minishard_bits": 1, "shard_bits": 1,
                       "hash": "sha1"}}, InvalidInfoError, "hash"),
        ({"sharding": True, "compression": "zstd"}, UnsupportedError, "raw or gzip"),
        ({"sharding": True, "compression": "gzip", "compression_level": 3}, ValueError,
         "compression_level"),
        ({"shard_size_bytes": 1000}, ValueError, "sharding=True"),
        ({"sharding": "yes"}, TypeError, "sharding must be"),
    ],
)  # fmt: skip
def test_create_refuses_bad_sharding(tmp_path: Path, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ba.create(tmp_path / "v", shape=SHAPE, chunks=CHUNKS, **kwargs)
    assert not (tmp_path / "v").exists()


# -- several processes ---------------------------------------------------------------------------


def _write_boxes(path: str, boxes: list[tuple[tuple[int, ...], tuple[int, ...]]], value: int,
                 repeat: int) -> None:  # fmt: skip
    vol = ba.open(path, mode="r+", threads=2)
    for _ in range(repeat):
        for box in boxes:
            vol[absolute(box)] = value


def _run_processes(jobs: list[tuple[Any, ...]]) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_boxes, args=job) for job in jobs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0


def test_processes_writing_disjoint_shard_aligned_boxes(tmp_path: Path) -> None:
    path = str(tmp_path / "vol")
    make(path)
    # Shards are 16^3 voxel boxes from OFFSET: four processes, two shard boxes each.
    jobs = []
    for p in range(4):
        boxes = []
        for q in range(2):
            x0 = -20 + 16 * (2 * p + q) % 64
            y0 = 5 + 16 * ((2 * p + q) // 4)
            boxes.append(((x0, y0, -7), (min(x0 + 16, 50), y0 + 16, 9)))
        jobs.append((path, boxes, p + 1, 3))
    _run_processes(jobs)
    vol = ba.open(path)
    for _, boxes, value, _ in jobs:
        for box in boxes:
            assert (vol[absolute(box)] == value).all()


def test_processes_writing_parts_of_the_same_shard_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "vol")
    make(path)
    # Shard 0 is the 16^3 box at OFFSET; each process owns one of its 8 chunks (in part).
    corners = [(-20, 5, -7), (-12, 5, -7), (-20, 13, -7), (-12, 13, 1)]
    jobs = [(path, [(c, (c[0] + 7, c[1] + 7, c[2] + 7))], i + 1, 25) for i, c in enumerate(corners)]
    _run_processes(jobs)
    vol = ba.open(path)
    for i, c in enumerate(corners):
        assert (vol[c[0] : c[0] + 7, c[1] : c[1] + 7, c[2] : c[2] + 7] == i + 1).all()
    assert not list(Path(path).rglob("*bigarrays-tmp*"))


# -- conversion ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_convert_dataset_both_ways(tmp_path: Path, compression: str | None) -> None:
    src = ba.create(tmp_path / "src", shape=SHAPE, chunks=CHUNKS, voxel_offset=OFFSET,
                    dtype="uint16", compression=compression)  # fmt: skip
    data = np.random.default_rng(2).integers(1, 9, SHAPE, dtype=np.uint16)
    data[:30] = 0  # chunks of zeros: not written
    src[...] = data
    info = convert_dataset(tmp_path / "src", tmp_path / "sharded", shard=True,
                           shard_size_bytes=8 * 2 * 8**3)  # fmt: skip
    spec = info.scales[0].sharding
    assert spec is not None
    assert spec.data_encoding == ("gzip" if compression else "raw")
    sharded = ba.open(tmp_path / "sharded")
    np.testing.assert_array_equal(sharded[...], data)
    assert all(k.endswith(".shard") for k in sharded.store.list("1_1_1/"))
    convert_dataset(tmp_path / "sharded", tmp_path / "back", shard=False)
    back = ba.open(tmp_path / "back")
    assert back.scale.sharding is None
    assert back.compression == compression
    np.testing.assert_array_equal(back[...], data)
    n_nonzero = sum(1 for _ in back.store.list("1_1_1/"))
    assert n_nonzero < back.num_chunks  # zero chunks were left out
    with pytest.raises(DatasetExistsError):
        convert_dataset(tmp_path / "src", tmp_path / "sharded", shard=True)
    convert_dataset(tmp_path / "back", tmp_path / "sharded", shard=True, overwrite=True)
    np.testing.assert_array_equal(ba.open(tmp_path / "sharded")[...], data)


def test_unshard_a_hashed_volume(tmp_path: Path) -> None:
    vol = make(str(tmp_path / "src"), SPECS["murmur"])
    data = np.random.default_rng(3).integers(0, 255, SHAPE, dtype=np.uint8)
    vol[...] = data
    convert_dataset(tmp_path / "src", tmp_path / "dst", shard=False, threads=3)
    np.testing.assert_array_equal(ba.open(tmp_path / "dst")[...], data)
