"""Cutout and save through BigArray on any backend, in every format: the tests every store must
pass end to end.

Subclass :class:`ArrayConformance` and provide a fixture ``dataset_url`` returning a fresh URL where
no dataset exists yet; override ``store_options`` when the backend needs options to open (an
endpoint, credentials)::

    class TestS3Arrays(ArrayConformance):
        @pytest.fixture
        def dataset_url(self, s3_bucket):
            return f"s3://{s3_bucket}/vol-{uuid.uuid4().hex}"

Each test runs for every format (``fmt``: precomputed, Zarr v3, Zarr v2) and compares BigArray
against a NumPy model of the same volume. The tests speak in precomputed's terms (``(x, y, z)``
shapes, a voxel offset, channels); for Zarr the same volume is an array that starts at 0 with the
channels as a last axis, so every index below is taken relative to ``vol.bounds.start``.
"""

from __future__ import annotations

import itertools
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.errors import (
    ChunkNotFoundError,
    OutOfBoundsError,
    ReadOnlyError,
    UnsupportedError,
)

__all__ = ["FORMATS", "ArrayConformance"]

#: The formats every store is tested with.
FORMATS = ("precomputed", "zarr", "zarr2")


def _box(origin: tuple[int, ...], *ranges: tuple[int, int]) -> tuple[slice, ...]:
    """Slices of the ranges, each taken relative to ``origin`` on its axis."""
    return tuple(slice(o + a, o + b) for o, (a, b) in zip(origin, ranges, strict=False))


class ArrayConformance:
    #: Extra keyword arguments for ``ba.create`` / ``ba.open`` (passed to the store).
    store_options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(params=FORMATS)
    def fmt(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    def create(
        self,
        url: str,
        fmt: str = "precomputed",
        *,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        voxel_offset: tuple[int, ...] = (0, 0, 0),
        num_channels: int = 1,
        **kwargs: Any,
    ) -> ba.BigArray:
        """A new volume in ``fmt``; for Zarr, ``voxel_offset`` is dropped (arrays start at 0)
        and channels become a last axis."""
        if fmt == "precomputed":
            return ba.create(url, shape=shape, chunks=chunks, voxel_offset=voxel_offset,
                             num_channels=num_channels, **kwargs, **self.store_options)  # fmt: skip
        if num_channels > 1:
            shape, chunks = (*shape, num_channels), (*chunks, num_channels)
        return ba.create(url, shape=shape, chunks=chunks, format=fmt, **kwargs,
                         **self.store_options)  # fmt: skip

    def reopen(self, url: str, **kwargs: Any) -> ba.BigArray:
        return ba.open(url, **kwargs, **self.store_options)

    @pytest.mark.parametrize("compression", [None, "gzip"])
    def test_unaligned_write_and_read_with_negative_offset(
        self, dataset_url: str, fmt: str, compression: str | None
    ) -> None:
        vol = self.create(dataset_url, fmt, shape=(50, 40, 30), dtype="uint16",
                          chunks=(16, 16, 8), voxel_offset=(-20, 3, -7),
                          compression=compression)  # fmt: skip
        o = vol.bounds.start
        model = np.zeros((50, 40, 30), np.uint16)
        rng = np.random.default_rng(1)
        patch = rng.integers(0, 60000, (23, 17, 11), dtype=np.uint16)
        if vol.store.conditional_writes:
            vol[_box(o, (7, 30), (6, 23), (5, 16))] = patch
            model[7:30, 6:23, 5:16] = patch
        else:
            # No conditional writes: a write of part of a chunk could race, so it is refused,
            # naming the chunk-aligned box that would do; a write of that box works.
            aligned = ba.Box(o, (o[0] + 32, o[1] + 32, o[2] + 16))
            with pytest.raises(UnsupportedError, match=rf"such as the box {re_box(aligned)}"):
                vol[_box(o, (7, 30), (6, 23), (5, 16))] = patch
            assert not self.reopen(dataset_url)[:, :, :].any(), "a refused write wrote nothing"
            patch = rng.integers(0, 60000, (32, 32, 16), dtype=np.uint16)
            vol[_box(o, (0, 32), (0, 32), (0, 16))] = patch
            model[0:32, 0:32, 0:16] = patch
        np.testing.assert_array_equal(self.reopen(dataset_url)[:, :, :], model)
        # A box crossing every edge: the voxels outside read as 0.
        cut = self.reopen(dataset_url)[_box(o, (-5, 55), (-3, 47), (-3, 37))]
        expected = np.zeros((60, 50, 40), np.uint16)
        expected[5:55, 3:43, 3:33] = model
        np.testing.assert_array_equal(cut, expected)

    def test_threads_writing_parts_of_shared_chunks_lose_nothing(
        self, dataset_url: str, fmt: str
    ) -> None:
        vol = self.create(dataset_url, fmt, shape=(64, 8, 8), dtype="uint8", chunks=(16, 8, 8),
                          threads=8)  # fmt: skip
        if not vol.store.conditional_writes:
            with pytest.raises(UnsupportedError, match="no conditional writes"):
                vol[0:1] = 1
            return
        # Slabs 1-3 voxels thick: every chunk is shared by several writers, and each writes
        # only part of it, so each is a read-merge-write racing with the others.
        edges = [0, 1, 3, 6, 7, 9, 12, 15, 16, 17, 20, 23, 25, 28, 31, 33, 36, 38, 41, 44, 46,
                 49, 51, 54, 56, 59, 61, 64]  # fmt: skip
        slabs = list(itertools.pairwise(edges))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda ab: vol.__setitem__(np.s_[ab[0] : ab[1]], ab[0] + 1), slabs))
        back = self.reopen(dataset_url)[:, 0, 0]
        expected = np.concatenate([np.full(b - a, a + 1, np.uint8) for a, b in slabs])
        lost = int((back != expected).sum())
        assert lost == 0, f"{lost} voxels of 64 lost to concurrent writers"

    def test_whole_volume_round_trip_multichannel(self, dataset_url: str, fmt: str) -> None:
        vol = self.create(dataset_url, fmt, shape=(33, 20, 17), dtype="float32",
                          chunks=(16, 8, 8), num_channels=3)  # fmt: skip
        data = np.random.default_rng(2).random((33, 20, 17, 3), dtype=np.float32)
        vol[...] = data
        back = self.reopen(dataset_url)
        np.testing.assert_array_equal(back[...], data)
        np.testing.assert_array_equal(back[5:30, 2, 3:9, 1], data[5:30, 2, 3:9, 1])

    def test_missing_chunks_and_fill_missing(self, dataset_url: str, fmt: str) -> None:
        vol = self.create(dataset_url, fmt, shape=(32, 32, 32), chunks=(16, 16, 16))
        vol[0:16, 0:16, 0:16] = 9
        assert int(self.reopen(dataset_url)[:, :, :].sum()) == 9 * 16**3
        strict = self.reopen(dataset_url, fill_missing=False)
        assert int(strict[0:16, 0:16, 0:16].sum()) == 9 * 16**3
        with pytest.raises(ChunkNotFoundError):
            strict[0:17, 0:16, 0:16]

    def test_write_outside_bounds_writes_nothing(self, dataset_url: str, fmt: str) -> None:
        vol = self.create(dataset_url, fmt, shape=(20, 20, 20), chunks=(8, 8, 8))
        with pytest.raises(OutOfBoundsError):
            vol[15:25, 0:5, 0:5] = 1
        assert not self.reopen(dataset_url)[:, :, :].any()

    def test_read_only_open_refuses_writes(self, dataset_url: str, fmt: str) -> None:
        self.create(dataset_url, fmt, shape=(8, 8, 8), chunks=(8, 8, 8))
        with pytest.raises(ReadOnlyError):
            self.reopen(dataset_url)[0:1, 0:1, 0:1] = 1


def re_box(box: ba.Box) -> str:
    """A regular expression matching ``repr(box)`` exactly."""
    return re.escape(repr(box))
