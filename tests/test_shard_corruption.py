"""Corrupt shard indexes give a typed CorruptChunkError, quickly and in bounded memory, as
TensorStore checks them; a partial write never rewrites a shard it cannot decode; gzip bombs in
indexes and chunks are refused at a bound instead of inflated."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import CorruptChunkError
from shard_crafting import build, chunk_bytes, minishard_table, model, spec, write_dataset

U64 = 2**64 - 1


def valid_chunks() -> dict[int, bytes]:
    vol = model()
    return {cid: chunk_bytes(vol, cid) for cid in range(8)}


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "vol", spec(), build(valid_chunks()))


def test_baseline_reads_the_model(good: Path) -> None:
    np.testing.assert_array_equal(ba.open(good)[...], model())


def _with_index(tmp_path: Path, table: bytes, head: bytes | None = None) -> Path:
    """The 8 valid chunks, then the minishard index ``table``; the shard index ``head`` (or
    one that points at ``table``)."""
    data = b"".join(valid_chunks()[c] for c in range(8))
    if head is None:
        head = struct.pack("<QQ", len(data), len(data) + len(table))
    return write_dataset(tmp_path / "vol", spec(), head + data + table)


def _table(ids: list[int], offsets: list[int], sizes: list[int]) -> bytes:
    return minishard_table(ids, offsets, sizes)


GOOD_IDS = [0] + [1] * 7
GOOD_OFFSETS = [0] * 8
GOOD_SIZES = [512] * 8

CORRUPT_TABLES = {
    "duplicate id": _table([0, 1, 0, 1, 1, 1, 1, 1], GOOD_OFFSETS, GOOD_SIZES),
    "ids wrap around": _table([0, 1, 1, U64, 1, 1, 1, 1], GOOD_OFFSETS, GOOD_SIZES),
    "chunk of 2**40 bytes": _table(GOOD_IDS, GOOD_OFFSETS, [512] * 7 + [2**40]),
    "chunk of 2**64-1 bytes": _table(GOOD_IDS, GOOD_OFFSETS, [U64] + [512] * 7),
    "offsets overflow": _table(GOOD_IDS, [0, 2**62, 2**62, 2**62, 0, 0, 0, 0], GOOD_SIZES),
    "offset past 2**63": _table(GOOD_IDS, [0, 0, 0, 0, 0, 0, 0, U64 - 100], GOOD_SIZES),
    "chunk past the end": _table(GOOD_IDS, [0, 0, 0, 0, 0, 0, 0, 4096], GOOD_SIZES),
    "not a multiple of 24": _table(GOOD_IDS, GOOD_OFFSETS, GOOD_SIZES)[:-3],
}


@pytest.mark.parametrize("case", list(CORRUPT_TABLES))
def test_corrupt_minishard_index_is_a_typed_error(tmp_path: Path, case: str) -> None:
    vol = ba.open(_with_index(tmp_path, CORRUPT_TABLES[case]))
    with pytest.raises(CorruptChunkError, match=r"s0/0\.shard"):
        vol[...]


@pytest.mark.parametrize(
    "head",
    [
        struct.pack("<QQ", 4096 + 100, 4096),  # start > end
        struct.pack("<QQ", 4096, 4096 + 2**40),  # an index of 2**40 bytes
        struct.pack("<QQ", 0, U64),  # an index of 2**64 - 1 bytes
        struct.pack("<QQ", U64 - 1, U64),  # an index at the end of the uint64 range
        struct.pack("<QQ", 4096, 4096 + 24 * 8 + 48),  # past the end of the file
        b"\x01" * 9,  # a shard index cut short
    ],
    ids=["start after end", "2**40 bytes", "2**64-1 bytes", "at 2**64", "past the end", "short"],
)
def test_corrupt_shard_index_is_a_typed_error(tmp_path: Path, head: bytes) -> None:
    table = _table(GOOD_IDS, GOOD_OFFSETS, GOOD_SIZES)
    vol = ba.open(_with_index(tmp_path, table, head))
    with pytest.raises(CorruptChunkError, match=r"s0/0\.shard"):
        vol[...]


@pytest.mark.parametrize("damage", ["start after end", "duplicate id"])
def test_partial_write_over_a_corrupt_shard_is_refused(tmp_path: Path, damage: str) -> None:
    table = _table(GOOD_IDS, GOOD_OFFSETS, GOOD_SIZES)
    head = struct.pack("<QQ", 4096 + 24 * 8, 4096) if damage == "start after end" else None
    if damage == "duplicate id":
        table = CORRUPT_TABLES["duplicate id"]
    root = _with_index(tmp_path, table, head)
    before = (root / "s0" / "0.shard").read_bytes()
    vol = ba.open(root, mode="r+")
    with pytest.raises(CorruptChunkError, match=r"s0/0\.shard"):
        vol[0:1, 0:1, 0:1] = 5  # a partial write: read, merge, rewrite
    assert (root / "s0" / "0.shard").read_bytes() == before  # nothing written, nothing lost


def test_partial_write_over_a_damaged_chunk_names_the_shard(tmp_path: Path) -> None:
    chunks = valid_chunks()
    chunks[0] = chunks[0][:100]  # the index is sound; chunk 0 is too short to decode
    root = write_dataset(tmp_path / "vol", spec(), build(chunks))
    before = (root / "s0" / "0.shard").read_bytes()
    with pytest.raises(CorruptChunkError, match=r"s0/0\.shard#0"):
        ba.open(root, mode="r+")[0:1, 0:1, 0:1] = 5
    assert (root / "s0" / "0.shard").read_bytes() == before


# -- gzip bombs: the peak of the memory Python allocates for the read, in a fresh process -------

BOMB_SCRIPT = textwrap.dedent(
    """
    import json, sys, tracemalloc
    import bigarrays as ba
    from bigarrays.errors import CorruptChunkError
    vol = ba.open(sys.argv[1])
    tracemalloc.start()
    try:
        vol[0:16, 0:16, 0:16]
        outcome = "read"
    except CorruptChunkError as exc:
        outcome = "CorruptChunkError: " + str(exc)
    peak = tracemalloc.get_traced_memory()[1] >> 10
    print(json.dumps({"outcome": outcome, "peak_kib": peak}))
    """
)


def _peak(root: Path) -> dict[str, object]:
    src = str(Path(ba.__file__).parent.parent)  # this tree's bigarrays, in the child too
    out = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": src},
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


BOMB = gzip.compress(bytes(256 << 20), 9)  # 256 MiB of zeros in ~260 KB
#: Small enough (~32 KB) to pass for a stored chunk: only the inflation bound can stop it.
CHUNK_BOMB = gzip.compress(bytes(32 << 20), 9)


def test_gzip_bomb_minishard_index_is_refused_at_a_bound(tmp_path: Path) -> None:
    body = b"".join(valid_chunks()[c] for c in range(8))
    head = struct.pack("<QQ", len(body), len(body) + len(BOMB))
    root = write_dataset(tmp_path / "vol", spec(index_encoding="gzip"), head + body + BOMB)
    result = _peak(root)
    assert str(result["outcome"]).startswith("CorruptChunkError"), result
    assert int(str(result["peak_kib"])) < 32 << 10, result  # far below the 256 MiB it claims


def test_gzip_bomb_chunk_is_refused_at_a_bound(tmp_path: Path) -> None:
    chunks = {cid: gzip.compress(data) for cid, data in valid_chunks().items()}
    chunks[3] = CHUNK_BOMB
    root = write_dataset(tmp_path / "vol", spec(data_encoding="gzip"), build(chunks))
    result = _peak(root)
    assert str(result["outcome"]).startswith("CorruptChunkError"), result
    assert int(str(result["peak_kib"])) < 16 << 10, result  # far below the 32 MiB it claims


def test_gzip_bomb_that_passes_for_an_index_of_a_big_shard(tmp_path: Path) -> None:
    """Shards of 32768 chunks may have minishard indexes of ~800 KB: the ~260 KB bomb is short
    enough to be one, and only the bound on what it inflates to (24 bytes a chunk) stops it."""
    sharding = spec(index_encoding="gzip") | {"preshift_bits": 9, "minishard_bits": 6}
    head = bytearray(16 << 6)
    head[0:16] = struct.pack("<QQ", 0, len(BOMB))
    root = write_dataset(tmp_path / "vol", sharding, bytes(head) + BOMB)
    doc = json.loads((root / "info").read_text())
    doc["scales"][0]["size"] = [256, 256, 256]  # a grid of 32 x 32 x 32 chunks, one shard
    (root / "info").write_text(json.dumps(doc))
    result = _peak(root)
    assert str(result["outcome"]).startswith("CorruptChunkError"), result
    assert "inflates past" in str(result["outcome"]), result
    assert int(str(result["peak_kib"])) < 32 << 10, result  # not the 256 MiB it would be
