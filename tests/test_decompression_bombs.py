"""Decompression bombs: a few hundred bytes (br), 8 KB (zstd) or 261 KB (gzip) that inflate to
256 MiB are refused as CorruptChunkError once the output passes the chunk's size, without ever
holding the inflated bytes. Each read runs in a child process whose address space is capped."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import CorruptChunkError, ViewerCompatibilityWarning
from bigarrays.stores import content_encoding, open_store
from network_servers import served_folder

BOMB = 256 << 20  # bytes a bomb inflates to
PIECE = bytes(16 << 20)


def gzip_bomb() -> bytes:
    from zlib_ng import zlib_ng

    c = zlib_ng.compressobj(9, zlib_ng.DEFLATED, 31)
    return b"".join(c.compress(PIECE) for _ in range(BOMB // len(PIECE))) + c.flush()


def zstd_bomb(content_size: bool) -> Callable[[], bytes]:
    def make() -> bytes:
        import zstandard

        cctx = zstandard.ZstdCompressor(level=19, write_content_size=content_size)
        c = cctx.compressobj(size=BOMB if content_size else -1)
        return b"".join(c.compress(PIECE) for _ in range(BOMB // len(PIECE))) + c.flush()

    return make


def br_bomb() -> bytes:
    import brotli

    c = brotli.Compressor(quality=4)
    return b"".join(c.process(PIECE) for _ in range(BOMB // len(PIECE))) + c.finish()


def blosc_bomb() -> bytes:
    import blosc

    out: bytes = blosc.compress(bytes(BOMB), typesize=1, clevel=9, cname="zstd")
    return out


# A child reads one good chunk (so that every library is loaded and its buffers exist), caps its
# address space a little above what it then uses, and reads the bomb chunk.
CHILD = r"""
import json, resource, sys
import bigarrays as ba
from bigarrays.errors import CorruptChunkError

vol = ba.open(sys.argv[1], mode="r+" if sys.argv[2] == "merge" else "r")
assert int(vol[0:64, 0:64, 0:64].sum()) == 64**3
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (192 << 20), resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
try:
    if sys.argv[2] == "merge":  # a write of part of the chunk reads it to merge
        vol[64:70, 0:64, 0:64] = 2
    else:
        vol[64:128, 0:64, 0:64]
    result = {"error": None}
except CorruptChunkError as exc:
    result = {"error": "CorruptChunkError", "message": str(exc)}
except BaseException as exc:
    result = {"error": type(exc).__name__, "message": str(exc)}
result["grew"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps(result))
"""


CASES = {
    # name: (encoding, compression, dtype, bomb maker, file suffix)
    "gzip": ("raw", "gzip", "uint8", gzip_bomb, ".gz"),
    "zstd": ("raw", "zstd", "uint8", zstd_bomb(True), ".zstd"),
    "zstd-no-size": ("raw", "zstd", "uint8", zstd_bomb(False), ".zstd"),
    "br": ("raw", "br", "uint8", br_bomb, ".br"),
    "gzip-png": ("png", "gzip", "uint8", gzip_bomb, ".gz"),
    "br-cseg": ("compressed_segmentation", "br", "uint32", br_bomb, ".br"),
    "blosc-png": ("png", "blosc", "uint8", blosc_bomb, ""),
}


@pytest.mark.parametrize("action", ["read", "merge"])
@pytest.mark.parametrize("case", list(CASES))
def test_bomb_chunk_is_refused_with_bounded_memory(tmp_path: Path, case: str, action: str) -> None:
    encoding, compression, dtype, make_bomb, suffix = CASES[case]
    layer = "segmentation" if encoding == "compressed_segmentation" else "image"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ViewerCompatibilityWarning)  # blosc
        vol = ba.create(tmp_path / "vol", shape=(128, 64, 64), chunks=(64, 64, 64), dtype=dtype,
                        encoding=encoding, compression=compression, layer_type=layer)  # fmt: skip
    vol[0:64, 0:64, 0:64] = 1
    key = vol.chunk_key((1, 0, 0))
    bomb = make_bomb()
    assert len(bomb) < 300_000
    (tmp_path / "vol" / (key + suffix)).write_bytes(bomb)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "vol"), action],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] == "CorruptChunkError", result
    assert "expected at most" in result["message"], result
    assert result["grew"] < 64 << 20, f"peak memory grew by {result['grew'] >> 20} MiB"
    assert (tmp_path / "vol" / (key + suffix)).read_bytes() == bomb, "the chunk was replaced"


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "br"])
def test_decode_stops_at_max_size_and_keeps_honest_values(encoding: str) -> None:
    value = np.random.default_rng(0).integers(0, 4, 100_000, dtype=np.uint8).tobytes()
    packed = bytes(content_encoding.encode(value, encoding))
    assert content_encoding.decode(packed, encoding, "k", max_size=len(value)) == value
    with pytest.raises(CorruptChunkError, match="expected at most"):
        content_encoding.decode(packed, encoding, "k", max_size=len(value) - 1)
    if encoding != "br":  # gzip members and zstd frames may follow one another; they count together
        assert content_encoding.decode(packed + packed, encoding, "k") == value * 2
        with pytest.raises(CorruptChunkError, match="expected at most"):
            content_encoding.decode(packed + packed, encoding, "k", max_size=len(value) + 1)
    with pytest.raises(CorruptChunkError):
        content_encoding.decode(packed[:-9], encoding, "k", max_size=len(value))


def test_store_get_takes_a_bound(tmp_path: Path) -> None:
    files = open_store(tmp_path / "s")
    files.put("k", content_encoding.encode(bytes(10_000), "gzip"), content_encoding="gzip")
    assert files.get("k", max_size=10_000) == bytes(10_000)
    with pytest.raises(CorruptChunkError, match="expected at most"):
        files.get("k", max_size=9_999)
    data, version = files.get_with_version("k", max_size=10_000)
    assert data == bytes(10_000)
    assert version
    with pytest.raises(CorruptChunkError, match="expected at most"):
        files.get_with_version("k", max_size=100)


STORES = ["file", "zip", "lmdb", "fsspec", "s3", "gcs", "http"]


@pytest.mark.parametrize("kind", STORES)
def test_every_backend_bounds_what_it_decodes(kind: str, tmp_path: Path, request: Any) -> None:
    bomb = gzip_bomb()
    if kind == "s3":
        store = open_store(f"s3://{request.getfixturevalue('s3_bucket')}/vol")
    elif kind == "gcs":
        store = open_store(f"gs://{request.getfixturevalue('gcs_bucket')}/vol")
    elif kind == "http":
        root, server = request.getfixturevalue("http_site")
        open_store(root / "vol").put("k", bomb, content_encoding="gzip")
        store = open_store(f"{server.url}/vol")
    else:
        url = {"file": tmp_path / "vol", "zip": tmp_path / "vol.zip",
               "lmdb": f"lmdb://{tmp_path / 'vol.lmdb'}",
               "fsspec": f"fsspec+file://{tmp_path / 'fs'}"}[kind]  # fmt: skip
        store = open_store(url)
    if kind != "http":
        store.put("k", bomb, content_encoding="gzip")
    with pytest.raises(CorruptChunkError, match="expected at most"):
        store.get("k", max_size=1 << 20)
    if store.conditional_writes:
        with pytest.raises(CorruptChunkError, match="expected at most"):
            store.get_with_version("k", max_size=1 << 20)
    store.close()


@pytest.fixture
def http_site() -> Iterator[tuple[Path, Any]]:
    with served_folder() as site:
        yield site
