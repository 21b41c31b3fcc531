"""Fuzzed shard files: hypothesis builds valid shards and damages them (random index entries,
huge lengths, reversed ranges, duplicate ids, cut-short files, gzip bombs, flipped bytes). Each
batch is read in a subprocess whose address space is capped at 1 GiB; the only outcomes allowed
are the right data (for an undamaged shard), some data of the right shape (for a damaged one
that still decodes), or a typed BigArraysError. A MemoryError, an OverflowError, any other
exception or a crash fails the test."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import bigarrays as ba
from shard_crafting import build, chunk_bytes, model, spec

U64 = 2**64 - 1
#: Values that break arithmetic or allocation when an index entry holds them.
NASTY = [0, 1, 23, 24, 512, 4096, 2**31, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, U64 - 1, U64]
SMALL_BOMB = gzip.compress(bytes(64 << 20), 9)  # 64 MiB of zeros in ~64 KB

CHILD = textwrap.dedent(
    """
    import json, pickle, resource, sys, tempfile
    from pathlib import Path
    import numpy as np
    import bigarrays as ba
    from bigarrays.errors import BigArraysError

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    sys.path.insert(0, sys.argv[2])
    from shard_crafting import write_dataset

    cases = pickle.loads(Path(sys.argv[1]).read_bytes())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (sharding, shard, expected) in enumerate(cases):
            root = write_dataset(Path(tmp) / f"v{i}", sharding, shard)
            outcome = {}
            try:
                got = ba.open(root)[...]
                outcome["read"] = "ok" if expected is None else (
                    "right" if np.array_equal(got, np.frombuffer(expected, np.uint8).reshape(
                        got.shape, order="F")) else "WRONG")
                outcome["shape"] = list(got.shape)
            except BigArraysError as exc:
                outcome["read"] = "typed:" + type(exc).__name__
            except BaseException as exc:
                outcome["read"] = "UNTYPED:" + repr(exc)[:300]
            try:
                vol = ba.open(root, mode="r+")
                vol[3:5, 3:5, 3:5] = 9  # a partial write: read, merge, rewrite
                back = ba.open(root)[3:5, 3:5, 3:5]
                outcome["write"] = "ok" if (back == 9).all() else "LOST"
            except BigArraysError as exc:
                outcome["write"] = "typed:" + type(exc).__name__
            except BaseException as exc:
                outcome["write"] = "UNTYPED:" + repr(exc)[:300]
            results.append(outcome)
    print(json.dumps(results))
    """
)


def _valid_case(draw: Any) -> tuple[dict[str, Any], bytes, dict[int, bytes], np.ndarray]:
    minishard_bits = draw(st.integers(0, 2))
    index_encoding = draw(st.sampled_from(["raw", "gzip"]))
    data_encoding = draw(st.sampled_from(["raw", "gzip"]))
    present = draw(st.sets(st.integers(0, 7), min_size=1, max_size=8))
    vol = model()
    expected = np.zeros_like(vol)
    chunks = {}
    for cid in sorted(present):
        raw = chunk_bytes(vol, cid)
        chunks[cid] = gzip.compress(raw) if data_encoding == "gzip" else raw
        x, y, z = cid & 1, (cid >> 1) & 1, (cid >> 2) & 1
        box = (slice(x * 8, x * 8 + 8), slice(y * 8, y * 8 + 8), slice(z * 8, z * 8 + 8))
        expected[box] = vol[box]
    sharding = spec(minishard_bits, index_encoding, data_encoding)
    return sharding, build(chunks, minishard_bits, index_encoding), chunks, expected


@st.composite
def cases(draw: Any) -> tuple[dict[str, Any], bytes, bytes | None]:
    """``(sharding, shard bytes, expected voxels or None when damaged)``."""
    sharding, shard, _, expected = _valid_case(draw)
    data = bytearray(shard)
    head = 16 << sharding["minishard_bits"]
    n_damage = draw(st.integers(0, 3))
    for _ in range(n_damage):
        kind = draw(st.sampled_from(["word", "index word", "truncate", "flip", "bomb", "append"]))
        if kind in ("word", "index word"):
            # A uint64 of the shard index, or one anywhere (minishard indexes sit at the end).
            limit = head if kind == "index word" else len(data)
            pos = draw(st.integers(0, max(0, limit // 8 - 1))) * 8
            value = draw(st.one_of(st.sampled_from(NASTY), st.integers(0, U64)))
            data[pos : pos + 8] = struct.pack("<Q", value)[: len(data) - pos]
        elif kind == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif kind == "flip" and data:
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "bomb":
            # A gzip bomb where the first minishard index is, and the entry pointing at it.
            start = max(0, len(data) - head)
            data += SMALL_BOMB
            data[0:16] = struct.pack("<QQ", start, start + len(SMALL_BOMB))
        else:
            data += draw(st.binary(min_size=1, max_size=64))
    damaged = bytes(data) != shard
    return sharding, bytes(data), None if damaged else expected.tobytes(order="F")


def _run_batch(tmp_path: Path, batch: list[tuple[dict[str, Any], bytes, bytes | None]]) -> None:
    cases_file = tmp_path / "cases.pickle"
    cases_file.write_bytes(pickle.dumps(batch))
    tests_dir = str(Path(__file__).parent)
    src = str(Path(ba.__file__).parent.parent)
    # One malloc arena per thread would reserve 64 MiB of address space each: under the 1 GiB
    # cap, the reader's threads would then fail to start for want of address space, not memory.
    env = {**os.environ, "PYTHONPATH": src, "OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(cases_file), tests_dir],
                         capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)
    assert len(results) == len(batch)
    for (sharding, shard, expected), result in zip(batch, results, strict=True):
        what = f"{result} for {sharding} and a shard of {len(shard)} bytes: {shard[:64].hex()}"
        read, write = result["read"], result["write"]
        assert read in ("ok", "right") or read.startswith("typed:"), what
        if expected is not None:
            assert read == "right", what
        if read in ("ok", "right"):
            assert result["shape"] == [16, 16, 16], what
        assert write == "ok" or write.startswith("typed:"), what
        if expected is not None:
            assert write == "ok", what


# Shrinking a batch would rerun its subprocess hundreds of times: a failure reports the batch.
@settings(max_examples=4, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large, HealthCheck.too_slow])  # fmt: skip
@given(batch=st.lists(cases(), min_size=40, max_size=40))
def test_fuzzed_shards_read_right_or_fail_typed(tmp_path: Path, batch: list[Any]) -> None:
    _run_batch(tmp_path, batch)


def test_every_kind_of_damage_at_least_once(tmp_path: Path) -> None:
    """Fixed cases, so that each kind of damage is read whatever hypothesis draws."""
    vol = model()
    chunks = {cid: chunk_bytes(vol, cid) for cid in range(8)}
    good = build(chunks)
    bad: list[bytes] = [
        struct.pack("<QQ", 10, 5) + good[16:],  # start > end
        struct.pack("<QQ", 0, 2**40) + good[16:],  # a 2**40-byte index
        struct.pack("<QQ", U64 - 8, U64) + good[16:],  # an index at the end of uint64
        good[:-30],  # cut short in the minishard index
        good[:20],  # cut short in the data
        good[:8],  # cut short in the shard index
        # The minishard index is 3 rows of 8 uint64 (64 bytes each): ids, offsets, sizes.
        good[:-64] + struct.pack("<Q", 2**40) + good[-56:],  # a chunk of 2**40 bytes
        good[:-128] + struct.pack("<Q", 2**40) + good[-120:],  # a chunk past the end
        good[:-192] + struct.pack("<Q", 0) * 8 + good[-128:],  # every id the same
        good[:-192] + struct.pack("<Q", U64) * 8 + good[-128:],  # ids that wrap around
        good[:-8] + struct.pack("<Q", U64),  # the last size 2**64 - 1
    ]
    batch: list[tuple[dict[str, Any], bytes, bytes | None]] = [
        (spec(), shard, None) for shard in bad
    ]
    batch.append((spec(), good, vol.tobytes(order="F")))
    start = len(good) - 16
    bomb = struct.pack("<QQ", start, start + len(SMALL_BOMB)) + good[16:] + SMALL_BOMB
    batch.append((spec(index_encoding="gzip"), bomb, None))
    gz = {cid: gzip.compress(data) for cid, data in chunks.items()}
    gz[5] = gzip.compress(bytes(60 << 10) * 64)  # 3.75 MiB of zeros for a 512-byte chunk
    batch.append((spec(data_encoding="gzip"), build(gz), None))
    _run_batch(tmp_path, batch)
