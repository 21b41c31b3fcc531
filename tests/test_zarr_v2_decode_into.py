"""The Zarr v2 chain's decode into a caller's buffer (gzip / zlib with at most a shuffle, what
HDF5's deflate chunks are): the same values as numcodecs' decode, in the buffer, and every
stream this path declines goes through the general decode, which names what is wrong."""

from __future__ import annotations

import gzip as stdlib_gzip
import threading
import zlib
from typing import Any

import h5py
import numcodecs
import numpy as np
import pytest
import zarr

from bigarrays.codecs import gzip
from bigarrays.codecs.zarr_v2 import V2Chain, unshuffle
from bigarrays.errors import CorruptChunkError

SHAPE = (6, 5, 4)


def chain(dtype: str, compressor: str, shuffle: int | None, order: str = "C") -> V2Chain:
    filters = None if shuffle is None else [{"id": "shuffle", "elementsize": shuffle}]
    return V2Chain.from_zarray({"id": compressor, "level": 4}, filters, dtype, SHAPE, order)


def values(dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 120, SHAPE).astype(dtype)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("compressor", ["zlib", "gzip"])
@pytest.mark.parametrize(
    ("dtype", "shuffle"),
    [("uint8", None), ("uint16", None), ("uint16", 2), ("int32", 4), ("float64", 8),
     ("uint16", 4), ("uint8", 1), ("complex64", 8)],
)  # fmt: skip
def test_decode_into_fills_the_buffer_with_numcodecs_values(
    dtype: str, shuffle: int | None, compressor: str, order: str
) -> None:
    c = chain(dtype, compressor, shuffle, order)
    chunk = values(dtype)
    stored = c.encode(chunk)
    out = bytearray(c.nbytes + 1)
    got = c.decode_into(stored, "k", out)
    assert np.array_equal(got, chunk)
    assert got.shape == SHAPE
    assert got.flags.f_contiguous == (order == "F")
    assert np.shares_memory(got, np.frombuffer(out, np.uint8))
    # The stored bytes are numcodecs' own: its decode agrees.
    assert np.array_equal(c.decode(stored, "k"), chunk)


def test_a_reused_buffer_holds_the_last_chunk() -> None:
    c = chain("uint16", "zlib", 2)
    out = bytearray(c.nbytes)
    for seed in range(3):
        chunk = values("uint16", seed)
        assert np.array_equal(c.decode_into(c.encode(chunk), "k", out), chunk)


@pytest.mark.parametrize("dtype", [">u2", ">f8"])
def test_big_endian_goes_through_decode(dtype: str) -> None:
    c = chain(dtype, "zlib", np.dtype(dtype).itemsize)
    chunk = values(dtype)
    got = c.decode_into(c.encode(chunk), "k", bytearray(c.nbytes))
    assert np.array_equal(got, chunk)
    assert got.dtype.isnative


def test_other_filters_go_through_decode() -> None:
    c = V2Chain.from_zarray({"id": "zlib", "level": 1}, [{"id": "delta", "dtype": "<i4"}],
                            "<i4", SHAPE)  # fmt: skip
    chunk = values("int32")
    out = bytearray(c.nbytes)
    got = c.decode_into(c.encode(chunk), "k", out)
    assert np.array_equal(got, chunk)
    assert not np.shares_memory(got, np.frombuffer(out, np.uint8))


def test_a_small_buffer_goes_through_decode() -> None:
    c = chain("uint16", "zlib", 2)
    chunk = values("uint16")
    assert np.array_equal(c.decode_into(c.encode(chunk), "k", bytearray(8)), chunk)


def damaged(c: V2Chain, chunk: np.ndarray) -> dict[str, bytes]:
    stored = c.encode(chunk)
    flipped = bytearray(stored)
    flipped[-2] ^= 0xFF  # the Adler-32 or the gzip trailer's CRC
    raw = numcodecs.Shuffle(2).encode(chunk).tobytes()
    return {
        "checksum": bytes(flipped),
        "truncated": stored[: len(stored) // 2],
        "too long": zlib.compress(raw + b"\0\0", 4),
        "too short": zlib.compress(raw[:-2], 4),
        "not deflate": b"\x00" * 40,
        "gzip too long": stdlib_gzip.compress(raw + b"\0\0", mtime=0),
        "trailing bytes": stored + b"\0" * 8,
    }


@pytest.mark.parametrize(
    "case",
    ["checksum", "truncated", "too long", "too short", "not deflate", "gzip too long",
     "trailing bytes"],
)  # fmt: skip
def test_damage_is_corrupt_and_names_the_key(case: str) -> None:
    c = chain("uint16", "zlib", 2)
    stored = damaged(c, values("uint16"))[case]
    with pytest.raises(CorruptChunkError, match=r"data/0\.0\.0"):
        c.decode_into(stored, "data/0.0.0", bytearray(c.nbytes))


@pytest.mark.parametrize(
    ("stored", "size"),
    [(zlib.compress(b"x" * 100), 100), (stdlib_gzip.compress(b"x" * 100, mtime=0), 100)],
    ids=["zlib", "gzip"],
)
def test_inflate_into_reads_zlib_and_gzip(stored: bytes, size: int) -> None:
    out = bytearray(size)
    assert gzip.inflate_into(stored, memoryview(out)) == size
    assert out == b"x" * size


@pytest.mark.parametrize(
    ("stored", "size", "why"),
    [
        (zlib.compress(b"x" * 100), 99, "more bytes than the buffer"),
        (zlib.compress(b"x" * 100), 101, "fewer bytes than the buffer"),
        (zlib.compressobj(6, zlib.DEFLATED, 15, 8, 0, zdict=b"xx").compress(b"x") + b"\0" * 8,
         1, "a preset dictionary"),
        (b"\x78", 1, "too short for a zlib stream"),
        (zlib.compress(b"x" * 100)[:-1] + b"\0", 100, "a wrong Adler-32"),
        (zlib.compress(b"x" * 100) + b"\0", 100, "bytes after the stream"),
    ],
    ids=["long", "short", "dictionary", "truncated", "adler32", "trailing"],
)  # fmt: skip
def test_inflate_into_declines(stored: bytes, size: int, why: str) -> None:
    assert gzip.inflate_into(stored, memoryview(bytearray(size))) is None, why


def test_hdf5_chunks_are_decoded_into_the_engine_buffer(tmp_path: Any, monkeypatch: Any) -> None:
    import bigarrays as ba
    from bigarrays.refs import index_hdf5, write_references

    data = np.arange(40 * 30 * 20, dtype="<u2").reshape(40, 30, 20) % 1000
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("d", data=data, chunks=(16, 16, 8), compression="gzip", shuffle=True)
    write_references(index_hdf5(str(tmp_path / "d.h5")), str(tmp_path / "refs.json"))
    calls = {"into": 0, "decode": 0}
    into, decode = V2Chain.decode_into, V2Chain.decode

    def count_into(self: V2Chain, *args: Any) -> np.ndarray:
        calls["into"] += 1
        return into(self, *args)

    def count_decode(self: V2Chain, *args: Any) -> np.ndarray:
        calls["decode"] += 1
        return decode(self, *args)

    monkeypatch.setattr(V2Chain, "decode_into", count_into)
    monkeypatch.setattr(V2Chain, "decode", count_decode)
    vol = ba.open(f"reference://{tmp_path / 'refs.json'}#d")
    assert np.array_equal(vol[:, :, :], data)
    assert np.array_equal(vol[3:37, 5:29, 1:19], data[3:37, 5:29, 1:19])
    assert calls["into"] == 2 * 3 * 2 * 3
    assert calls["decode"] == 0


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8, 16])
def test_unshuffle_matches_numcodecs(k: int) -> None:
    shuffled = np.random.default_rng(k).integers(0, 256, k * 1000, dtype=np.uint8)
    out = bytearray(k * 1000)
    unshuffle(shuffled.reshape(k, 1000), out)
    assert bytes(out) == numcodecs.Shuffle(k).decode(shuffled).tobytes()


def test_cached_chunks_are_not_the_engine_buffer(tmp_path: Any) -> None:
    import bigarrays as ba

    data = np.random.default_rng(3).integers(0, 5000, (20, 30), dtype="<u2")
    z = zarr.create_array(str(tmp_path / "z"), shape=data.shape, chunks=(8, 8), dtype="<u2",
                          zarr_format=2, compressors=numcodecs.Zlib(1),
                          filters=[numcodecs.Shuffle(2)])  # fmt: skip
    z[...] = data
    vol = ba.open(str(tmp_path / "z"), cache_bytes=1 << 20, threads=2)
    for _ in range(3):
        assert np.array_equal(vol[:, :], data)
        assert np.array_equal(vol[3:17, 5:29], data[3:17, 5:29])


def test_a_chain_pickles_and_decodes_into_after() -> None:
    import pickle

    c = chain("uint16", "zlib", 2)
    chunk = values("uint16")
    again = pickle.loads(pickle.dumps(c))
    assert np.array_equal(again.decode_into(c.encode(chunk), "k", bytearray(c.nbytes)), chunk)


def test_chains_of_different_chunk_sizes_share_a_thread() -> None:
    small, large = (
        chain("uint16", "zlib", 2),
        V2Chain.from_zarray(
            {"id": "zlib", "level": 1}, [{"id": "shuffle", "elementsize": 4}], "<f4", (9, 7, 5)
        ),
    )
    a = values("uint16")
    b = np.random.default_rng(5).normal(size=(9, 7, 5)).astype("<f4")
    for _ in range(2):
        assert np.array_equal(large.decode_into(large.encode(b), "b", bytearray(large.nbytes)), b)
        assert np.array_equal(small.decode_into(small.encode(a), "a", bytearray(small.nbytes)), a)


def test_a_thread_keeps_no_buffer_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from bigarrays.codecs import zarr_v2

    c = chain("uint16", "zlib", 2)
    chunk = values("uint16")
    monkeypatch.setattr(zarr_v2, "KEEP_BYTES", c.nbytes - 1)
    monkeypatch.setattr(zarr_v2, "_THREAD", threading.local())
    assert np.array_equal(c.decode_into(c.encode(chunk), "k", bytearray(c.nbytes)), chunk)
    assert getattr(zarr_v2._THREAD, "inflated", None) is None
    monkeypatch.setattr(zarr_v2, "KEEP_BYTES", c.nbytes)
    assert np.array_equal(c.decode_into(c.encode(chunk), "k", bytearray(c.nbytes)), chunk)
    assert len(zarr_v2._THREAD.inflated) == c.nbytes
