"""The raw chunk codec: round trips for every dtype, the spec's byte layout, damaged chunks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigarrays.codecs import RawCodec, available_encodings, codec_class, make_codec
from bigarrays.errors import CorruptChunkError, UnsupportedError
from bigarrays.testing.strategies import DTYPES, random_array

SHAPES = [(1, 1, 1, 1), (2, 3, 4, 1), (5, 1, 3, 2), (3, 4, 2, 3), (7, 5, 3, 4), (0, 4, 4, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_round_trip(dtype: str, shape: tuple[int, int, int, int]) -> None:
    codec = make_codec("raw", np.dtype(dtype), shape[3])
    chunk = random_array(shape, dtype, seed=sum(shape))
    data = codec.encode(chunk)
    assert len(data) == chunk.size * np.dtype(dtype).itemsize
    out = codec.decode(bytes(data), shape, "k")
    assert out.shape == shape
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, chunk)


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_of_c_ordered_and_strided_input(dtype: str) -> None:
    codec = make_codec("raw", np.dtype(dtype), 2)
    big = random_array((8, 6, 4, 2), dtype, seed=1)
    for chunk in (np.ascontiguousarray(big), big[::2, 1:, ::-1]):
        out = codec.decode(bytes(codec.encode(chunk)), chunk.shape, "k")
        np.testing.assert_array_equal(out, chunk)
        # The bytes do not depend on the memory layout of the input.
        assert bytes(codec.encode(chunk)) == bytes(codec.encode(np.asfortranarray(chunk)))


def test_extreme_values_survive() -> None:
    for dtype in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"):
        info = np.iinfo(dtype)
        chunk = np.array([info.min, info.max, 0, 1], dtype=dtype).reshape(2, 2, 1, 1)
        codec = RawCodec(np.dtype(dtype), 1)
        np.testing.assert_array_equal(
            codec.decode(bytes(codec.encode(chunk)), (2, 2, 1, 1), "k"), chunk
        )
    for dtype in ("float32", "float64"):
        special = [np.inf, -np.inf, -0.0, np.finfo(dtype).tiny]
        chunk = np.array(special, dtype=dtype).reshape(2, 2, 1, 1)
        codec = RawCodec(np.dtype(dtype), 1)
        out = codec.decode(bytes(codec.encode(chunk)), (2, 2, 1, 1), "k")
        assert out.tobytes() == chunk.tobytes()  # bit for bit, -0.0 included
        nan = np.full((1, 1, 1, 1), np.nan, dtype=dtype)
        assert np.isnan(codec.decode(bytes(codec.encode(nan)), (1, 1, 1, 1), "k")).all()


def test_spec_byte_example() -> None:
    # A 2x3x1 uint8 chunk with a[x][y] = [[1, 2, 3], [4, 5, 6]] is the bytes 01 04 02 05 03 06.
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8).reshape(2, 3, 1, 1)
    codec = RawCodec(np.dtype("uint8"), 1)
    assert bytes(codec.encode(a)) == bytes([1, 4, 2, 5, 3, 6])
    out = codec.decode(bytes([1, 4, 2, 5, 3, 6]), (2, 3, 1, 1), "k")
    np.testing.assert_array_equal(out[:, :, 0, 0], [[1, 2, 3], [4, 5, 6]])


def test_channel_is_the_slowest_axis() -> None:
    a = np.zeros((2, 1, 1, 2), dtype=np.uint8)
    a[:, 0, 0, 0] = [1, 2]
    a[:, 0, 0, 1] = [3, 4]
    assert bytes(RawCodec(np.dtype("uint8"), 2).encode(a)) == bytes([1, 2, 3, 4])


def test_z_is_slower_than_y() -> None:
    a = np.zeros((1, 2, 2, 1), dtype=np.uint8)
    a[0, :, 0, 0] = [1, 2]
    a[0, :, 1, 0] = [3, 4]
    assert bytes(RawCodec(np.dtype("uint8"), 1).encode(a)) == bytes([1, 2, 3, 4])


@pytest.mark.parametrize(
    ("dtype", "value", "expected"),
    [
        ("uint16", 0x0102, "0201"),
        ("int16", -2, "feff"),
        ("uint32", 0x01020304, "04030201"),
        ("int32", -2, "feffffff"),
        ("uint64", 0x0102030405060708, "0807060504030201"),
        ("int64", -2, "feffffffffffffff"),
        ("float32", 1.0, "0000803f"),
        ("float64", -2.0, "00000000000000c0"),
        ("uint8", 0xAB, "ab"),
        ("int8", -1, "ff"),
        ("bool", True, "01"),
    ],
)
def test_little_endian_bytes(dtype: str, value: object, expected: str) -> None:
    codec = make_codec("raw", np.dtype(dtype), 1)
    chunk = np.full((1, 1, 1, 1), value, dtype=dtype)
    assert bytes(codec.encode(chunk)).hex() == expected
    assert codec.decode(bytes.fromhex(expected), (1, 1, 1, 1), "k").item() == value


def test_big_endian_input_is_written_little_endian() -> None:
    chunk = np.array([0x0102], dtype=">u2").reshape(1, 1, 1, 1)
    codec = RawCodec(np.dtype("uint16"), 1)
    assert bytes(codec.encode(chunk)) == b"\x02\x01"


def test_bool_normalises_stray_bytes() -> None:
    codec = RawCodec(np.dtype("bool"), 1)
    out = codec.decode(bytes([0, 1, 2, 255]), (4, 1, 1, 1), "k")
    assert out.dtype == np.bool_
    assert out[:, 0, 0, 0].tolist() == [False, True, True, True]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("delta", [-1, 1, -8])
def test_wrong_length_is_corrupt_and_names_the_key(dtype: str, delta: int) -> None:
    shape = (4, 3, 2, 2)
    codec = make_codec("raw", np.dtype(dtype), 2)
    good = bytes(codec.encode(np.zeros(shape, dtype=dtype)))
    bad = good[:delta] if delta < 0 else good + b"\0" * delta
    key = "8_8_40/0-4_0-3_0-2"
    with pytest.raises(CorruptChunkError) as caught:
        codec.decode(bad, shape, key)
    err = caught.value
    assert isinstance(err, ValueError)
    assert err.key == key
    assert key in str(err)
    assert f"holds {len(bad)} bytes, expected {len(good)}" in str(err)


def test_empty_bytes_for_a_nonempty_chunk_is_corrupt() -> None:
    with pytest.raises(CorruptChunkError, match="holds 0 bytes, expected 8"):
        RawCodec(np.dtype("uint8"), 1).decode(b"", (2, 2, 2, 1), "k")


@pytest.mark.parametrize("encoding", ["compresso", "jxl"])
def test_format_encodings_without_codec_are_unsupported(encoding: str) -> None:
    with pytest.raises(UnsupportedError, match="not supported by this version") as caught:
        make_codec(encoding, np.dtype("uint8"), 1)
    assert isinstance(caught.value, ValueError)
    assert encoding in str(caught.value)


@pytest.mark.parametrize("encoding", ["webp", "", "RAW", "gzip"])
def test_unknown_encodings_are_unsupported(encoding: str) -> None:
    with pytest.raises(UnsupportedError, match="unknown encoding"):
        codec_class(encoding)


def test_registry() -> None:
    assert "raw" in available_encodings()
    assert codec_class("raw") is RawCodec
    codec = make_codec("raw", np.dtype("int16"), 3)
    assert isinstance(codec, RawCodec)
    assert codec.name == "raw"
    assert codec.num_channels == 3
    assert codec.options() == {}
    assert repr(codec) == "RawCodec(int16, channels=3)"


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(0, 9), st.integers(1, 4)),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_property(dtype: str, shape: tuple[int, int, int, int], seed: int) -> None:
    codec = make_codec("raw", np.dtype(dtype), shape[3])
    chunk = random_array(shape, dtype, seed)
    data = bytes(codec.encode(chunk))
    # The bytes are the Fortran-order flattening in little-endian.
    wire = "u1" if dtype == "bool" else np.dtype(dtype).newbyteorder("<")
    assert data == chunk.astype(wire).tobytes(order="F")
    np.testing.assert_array_equal(codec.decode(data, shape, "k"), chunk)
