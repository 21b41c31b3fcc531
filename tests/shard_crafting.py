"""Hand-made shard files for tests: a one-shard volume whose shard the test writes byte by byte.

The volume is 16 x 16 x 16 uint8 voxels in chunks of 8: a grid of 2 x 2 x 2 chunks with ids 0-7
(Morton order) that all live in ``0.shard``, in one or two minishards.
"""

from __future__ import annotations

import gzip
import itertools
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SHAPE = (16, 16, 16)
CHUNK = 8
CHUNK_BYTES = CHUNK**3
SCALE_KEY = "s0"


def spec(minishard_bits: int = 0, index_encoding: str = "raw", data_encoding: str = "raw"
         ) -> dict[str, Any]:  # fmt: skip
    return {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 3 - minishard_bits,
            "minishard_bits": minishard_bits, "shard_bits": 0, "hash": "identity",
            "minishard_index_encoding": index_encoding, "data_encoding": data_encoding}  # fmt: skip


def info(sharding: dict[str, Any]) -> dict[str, Any]:
    return {
        "@type": "neuroglancer_multiscale_volume", "type": "image", "data_type": "uint8",
        "num_channels": 1,
        "scales": [{"key": SCALE_KEY, "size": list(SHAPE), "voxel_offset": [0, 0, 0],
                    "resolution": [1, 1, 1], "chunk_sizes": [[CHUNK] * 3], "encoding": "raw",
                    "sharding": sharding}],
    }  # fmt: skip


def write_dataset(root: Path, sharding: dict[str, Any], shard: bytes) -> Path:
    (root / SCALE_KEY).mkdir(parents=True, exist_ok=True)
    (root / "info").write_text(json.dumps(info(sharding)))
    (root / SCALE_KEY / "0.shard").write_bytes(shard)
    return root


def model() -> np.ndarray:
    """Voxels whose chunks all differ (chunk id + 1, then noise)."""
    rng = np.random.default_rng(5)
    out = rng.integers(1, 255, SHAPE, dtype=np.uint8)
    return np.asfortranarray(out)


def chunk_bytes(vol: np.ndarray, cid: int) -> bytes:
    x, y, z = cid & 1, (cid >> 1) & 1, (cid >> 2) & 1
    block = vol[x * 8 : x * 8 + 8, y * 8 : y * 8 + 8, z * 8 : z * 8 + 8]
    return np.asfortranarray(block).tobytes(order="F")


def minishard_table(ids: Sequence[int], offsets: Sequence[int], sizes: Sequence[int]) -> bytes:
    """A raw minishard index from already delta-encoded columns (any uint64 values)."""
    return b"".join(struct.pack(f"<{len(col)}Q", *[v & (2**64 - 1) for v in col])
                    for col in (ids, offsets, sizes))  # fmt: skip


def build(
    chunks: dict[int, bytes],
    minishard_bits: int = 0,
    index_encoding: str = "raw",
) -> bytes:
    """A valid shard of ``chunks`` (id -> stored bytes): per minishard its chunks, then its
    index; the shard index first."""
    n_mini = 1 << minishard_bits
    data = b""
    entries = []
    for mini in range(n_mini):
        ids = sorted(c for c in chunks if (c >> (3 - minishard_bits)) % n_mini == mini
                     ) if minishard_bits else sorted(chunks)  # fmt: skip
        starts, sizes = [], []
        for cid in ids:
            starts.append(len(data))
            sizes.append(len(chunks[cid]))
            data += chunks[cid]
        if not ids:
            entries.append((len(data), len(data)))
            continue
        id_deltas = [ids[0]] + [b - a for a, b in itertools.pairwise(ids)]
        off_deltas = [starts[0]] + [
            s - (p + n) for s, p, n in zip(starts[1:], starts, sizes, strict=False)
        ]
        index = minishard_table(id_deltas, off_deltas, sizes)
        if index_encoding == "gzip":
            index = gzip.compress(index)
        entries.append((len(data), len(data) + len(index)))
        data += index
    head = b"".join(struct.pack("<QQ", a, b) for a, b in entries)
    return head + data
