"""A whole raw Zarr chunk already laid out as stored goes to the store from its own memory; any
other piece still goes through the engine's scratch buffer, and the files are the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

import bigarrays as ba


def test_a_c_ordered_whole_chunk_is_written_as_it_lies(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "v.zarr", shape=(32, 16, 16), dtype="uint16", chunks=(16, 16, 16),
                    format="zarr", progress=False)  # fmt: skip
    source = vol.level.source
    assert source.fast_raw
    part = np.random.default_rng(5).integers(0, 60000, size=(16, 16, 16), dtype=np.uint16)
    untouched = bytearray(b"\xab" * (part.nbytes + 1))
    scratch = bytearray(untouched)
    index = (1, 0, 0)
    box = source.grid.chunk_box(index)
    source.save_view(index, box, part, scratch)
    assert scratch == untouched
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "v.zarr"))[16:32], part)
    assert (tmp_path / "v.zarr" / "c" / "1" / "0" / "0").read_bytes() == part.tobytes()
    # An F-ordered piece, or one of another dtype, is laid out through the buffer.
    f_part = np.asfortranarray(part[::-1])
    source.save_view(index, box, f_part, scratch)
    assert scratch != untouched
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "v.zarr"))[16:32], f_part)
    scratch[:] = untouched
    wide = part.astype(np.uint32)
    source.save_view(index, box, wide, scratch)
    assert scratch != untouched
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "v.zarr"))[16:32], part)


def test_a_strided_whole_chunk_goes_through_the_buffer(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "v.zarr", shape=(8, 8), dtype="uint8", chunks=(8, 8),
                    format="zarr", progress=False)  # fmt: skip
    source = vol.level.source
    big = np.arange(256, dtype=np.uint8).reshape(16, 16)
    part = big[::2, ::2]  # whole chunk's shape, not contiguous
    scratch = bytearray(b"\xab" * 65)
    source.save_view((0, 0), source.grid.chunk_box((0, 0)), part, scratch)
    assert scratch[:64] == part.tobytes()
    np.testing.assert_array_equal(ba.open(tmp_path / "v.zarr")[...], part)
