"""What NumPy users expect of a volume: np.asarray, len, iteration, .T, broadcasting writes,
same-kind casts, typed index and argument errors, and refusals at open/create rather than at the
first write."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

import bigarrays as ba
from bigarrays.array_views import TransposedArray
from bigarrays.errors import (
    ArrayTooLargeError,
    BigArraysError,
    DtypeMismatchError,
    InvalidArgumentError,
    InvalidIndexError,
    MissingDependencyError,
    ReadOnlyError,
    ShapeMismatchError,
    UnsizedArrayError,
    UnsupportedError,
)
from bigarrays.stores.memory import drop_namespace


@pytest.fixture
def url() -> Iterator[str]:
    name = f"manners-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    drop_namespace(name)


def filled(
    url: str, num_channels: int = 1, dtype: str = "uint16"
) -> tuple[ba.BigArray, np.ndarray]:
    """A volume at a negative offset holding distinct values, and the same values in NumPy."""
    vol = ba.create(url, shape=(6, 5, 4), chunks=(4, 4, 4), voxel_offset=(-2, 3, -1),
                    dtype=dtype, num_channels=num_channels)  # fmt: skip
    truth = np.arange(6 * 5 * 4 * num_channels, dtype=dtype).reshape(vol.shape)
    vol[...] = truth
    return vol, truth


# -- np.asarray, len, iteration ------------------------------------------------------------------


def test_asarray_reads_the_whole_volume(url: str) -> None:
    vol, truth = filled(url)
    arr = np.asarray(vol)
    assert arr.shape == (6, 5, 4)
    assert arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, truth)
    assert np.asarray(vol, dtype="float64").dtype == np.float64
    assert np.array(vol).shape == (6, 5, 4)
    assert int(np.sum(vol)) == int(truth.sum())
    assert float(np.mean(vol)) == pytest.approx(truth.mean())


def test_asarray_refuses_beyond_the_limit_naming_the_size(url: str) -> None:
    vol, truth = filled(url)
    vol.array_limit = vol.nbytes - 1
    with pytest.raises(ArrayTooLargeError, match=r"0\.00 GiB.*limit.*vol\.array_limit") as caught:
        np.asarray(vol)
    assert isinstance(caught.value, MemoryError)
    vol.array_limit = None
    np.testing.assert_array_equal(np.asarray(vol), truth)
    assert ba.BigArray.array_limit == 2 << 30


def test_asarray_copy_false_is_refused(url: str) -> None:
    vol, _ = filled(url)
    with pytest.raises(UnsupportedError, match="copy=False"):
        vol.__array__(copy=False)


def test_len_and_iteration_follow_the_first_axis(url: str) -> None:
    vol, truth = filled(url)
    assert len(vol) == 6
    planes = list(vol)  # absolute coordinates: x from -2 to 3, never past the bounds
    assert len(planes) == 6
    for plane, expected in zip(planes, truth, strict=True):
        np.testing.assert_array_equal(plane, expected)


# -- .T and transpose() ----------------------------------------------------------------------------


def test_T_is_a_lazy_view_with_reversed_axes(url: str) -> None:
    vol, truth = filled(url)
    view = vol.T
    assert isinstance(view, TransposedArray)
    assert view.shape == (4, 5, 6)
    assert view.dims == ("z", "y", "x")
    assert view.T is vol
    np.testing.assert_array_equal(np.asarray(view), truth.T)
    assert np.asarray(view).flags.c_contiguous  # the C-ordered (z, y, x) array, no copy
    # Indices stay absolute coordinates, now in z, y, x order.
    np.testing.assert_array_equal(view[0, 3:5, -2:1], truth[0:3, 0:2, 1].T)
    assert view[-1, 3, -2] == truth[0, 0, 0]
    box = ba.Box((0, 3, -2), (2, 5, 1))  # along the view's axes: z, y, x
    np.testing.assert_array_equal(view[box], truth[0:3, 0:2, 1:3].T)
    with pytest.raises(InvalidArgumentError, match="3 axes"):
        view[ba.Box((0, 0), (1, 1))]


def test_transpose_writes_go_through_the_permuted_axes(url: str) -> None:
    vol, truth = filled(url)
    view = vol.transpose(2, 0, 1)  # (z, x, y)
    assert view.shape == (4, 6, 5)
    block = np.arange(2 * 3 * 5, dtype=np.uint16).reshape(2, 3, 5) + 1000
    view[0:2, -2:1, :] = block
    truth[0:3, :, 1:3] = block.transpose(1, 2, 0)
    view[-1, 2, :] = 7  # a scalar
    truth[4, :, 0] = 7
    view[1, :, 4] = np.arange(6, dtype=np.uint16)[:, None][:, 0]  # a column, x runs along it
    truth[:, 1, 2] = np.arange(6)
    np.testing.assert_array_equal(vol[...], truth)
    np.testing.assert_array_equal(view[...], truth.transpose(2, 0, 1))
    assert vol.transpose((2, 0, 1)).shape == view.shape
    assert view.transpose(1, 2, 0) is vol  # the permutations compose


def test_transpose_of_a_multichannel_volume(url: str) -> None:
    vol, truth = filled(url, num_channels=2)
    view = vol.T
    assert view.dims == ("c", "z", "y", "x")
    np.testing.assert_array_equal(view[1], truth[..., 1].T)  # the channel is positional
    view[0, 0, :, :] = np.full((5, 6), 9, np.uint16)  # written at z = 0, channel 0
    truth[:, :, 1, 0] = 9
    np.testing.assert_array_equal(vol[...], truth)


def test_transpose_refuses_a_bad_permutation(url: str) -> None:
    vol, _ = filled(url)
    with pytest.raises(InvalidArgumentError, match="not a permutation") as caught:
        vol.transpose(0, 0, 1)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        vol.transpose(0, 1, 5)


# -- indices -----------------------------------------------------------------------------------


def test_an_index_after_ellipsis_outside_a_one_channel_volume_names_the_channel(url: str) -> None:
    vol, truth = filled(url)  # z runs from -1 to 3: -1 is a plane, 3 is not
    with pytest.raises(InvalidIndexError, match=r"one channel.*vol\[:, :, 2\]") as caught:
        vol[..., 3]
    assert isinstance(caught.value, IndexError)
    with pytest.raises(InvalidIndexError, match="one channel"):
        vol[..., 3] = 1
    np.testing.assert_array_equal(vol[..., -1], truth[:, :, 0])  # inside: the plane z = -1
    assert vol[:, :, 3].max() == 0  # spelt out, a coordinate outside reads as zeros
    with pytest.raises(InvalidIndexError, match=r"has 3 axes \(x, y, z\).*one channel"):
        vol[:, :, :, 0]


def test_an_index_after_ellipsis_on_a_multichannel_volume_is_the_channel(url: str) -> None:
    vol, truth = filled(url, num_channels=2)
    np.testing.assert_array_equal(vol[..., -1], truth[..., 1])
    with pytest.raises(InvalidIndexError, match="channel 2 is out of range for 2 channels"):
        vol[..., 2]


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (([0, 1], 3, 0), "list or array index on axis x"),
        ((np.array([0, 1]), 3, 0), "list or array index on axis x"),
        ((0, np.zeros(5, bool), 0), "boolean mask index on axis y"),
        ((0, 3, True), "boolean index on axis z"),
        ((1.5,), "must be an integer or a slice"),
    ],
)
def test_list_mask_and_fancy_indices_are_typed(
    url: str, key: tuple[object, ...], match: str
) -> None:
    vol, _ = filled(url)
    with pytest.raises(InvalidIndexError, match=match) as caught:
        vol[key]
    assert isinstance(caught.value, IndexError)
    assert isinstance(caught.value, BigArraysError)
    with pytest.raises(InvalidIndexError):
        vol[key] = 0


# -- writes: broadcasting and casting -------------------------------------------------------------


def test_writes_broadcast_as_numpy_assignment_does(url: str) -> None:
    vol = ba.create(url, shape=(10, 10, 10), chunks=(4, 4, 4), dtype="float32")
    truth = np.zeros((10, 10, 10), np.float32)
    column = np.arange(100, dtype=np.float32).reshape(10, 10, 1)
    vol[0:10, 0:10, 0:10] = column
    truth[...] = column
    vol[2, :, :] = np.arange(10, dtype=np.float32)  # a row along z, repeated along y
    truth[2, :, :] = np.arange(10)
    vol[3] = np.ones((1, 10, 10), np.float32)  # leading unit axes are dropped
    truth[3] = 1
    np.testing.assert_array_equal(vol[...], truth)
    with pytest.raises(ShapeMismatchError, match=r"\(10, 10, 2\).*nor broadcasts"):
        vol[0:10, 0:10, 0:10] = np.zeros((10, 10, 2), np.float32)
    np.testing.assert_array_equal(vol[...], truth)


def test_same_kind_casts_are_accepted(url: str) -> None:
    vol = ba.create(url, shape=(4, 4, 4), chunks=(4, 4, 4), dtype="float32")
    result = np.linspace(0, 1, 64).reshape(4, 4, 4)  # float64, as NumPy arithmetic makes it
    vol[...] = result
    np.testing.assert_array_equal(vol[...], result.astype(np.float32))
    labels = ba.create(f"{url}-labels", shape=(4, 4, 4), chunks=(4, 4, 4), dtype="uint8")
    labels[...] = np.full((4, 4, 4), 200, np.uint16)  # unsigned into unsigned
    assert labels[0, 0, 0] == 200
    drop_namespace(url.removeprefix("memory://") + "-labels")


def test_unsafe_casts_are_refused_naming_the_casting_needed(url: str) -> None:
    vol = ba.create(url, shape=(4, 4, 4), chunks=(4, 4, 4), dtype="uint8")
    data = np.full((4, 4, 4), 300, np.int64)
    with pytest.raises(DtypeMismatchError, match=r"int64 to uint8 needs casting='unsafe'"):
        vol[...] = data
    assert vol[...].max() == 0
    vol.write(ba.Box((0, 0, 0), (4, 4, 4)), data, casting="unsafe")
    assert vol[0, 0, 0] == 300 % 256
    with pytest.raises(DtypeMismatchError, match="needs casting='same_kind'"):
        vol.write(..., np.zeros((4, 4, 4), np.uint16), casting="safe")
    with pytest.raises(UnsupportedError, match="casting must be one of"):
        vol.write(..., 0, casting="sometimes")  # type: ignore[arg-type]


# -- arguments and early refusals -----------------------------------------------------------------


def test_open_mode_w_is_a_typed_error(url: str) -> None:
    filled(url)
    with pytest.raises(InvalidArgumentError, match=r"got 'w'.*bigarrays\.create") as caught:
        ba.open(url, mode="w")
    assert isinstance(caught.value, ValueError)


def test_a_four_axis_shape_points_to_num_channels(url: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"shape=\(10, 10, 10\), num_channels=2"):
        ba.create(url, shape=(10, 10, 10, 2))
    with pytest.raises(InvalidArgumentError, match="format='zarr'"):
        ba.create(url, shape=(10, 10))


@pytest.mark.parametrize("suffix", ["", ".zarr"])
def test_a_missing_compression_package_is_refused_at_create(
    url: str, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"bigarrays\[zstd\]"):
        ba.create(url + suffix, shape=(4, 4, 4), chunks=(4, 4, 4), compression="zstd")
    with pytest.raises(ba.DatasetNotFoundError):
        ba.open(url + suffix)  # nothing was written


def test_a_missing_compression_package_is_refused_at_open_for_writing(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ba.create(url, shape=(4, 4, 4), chunks=(4, 4, 4), compression="zstd").close()
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(MissingDependencyError, match=r"'zstandard'.*bigarrays\[zstd\]"):
        ba.open(url, mode="r+")
    assert ba.open(url).compression == "zstd"  # reading the metadata needs no codec


def test_http_opened_for_writing_is_refused_at_open() -> None:
    # Nothing listens on the port: the refusal comes before any request.
    with pytest.raises(ReadOnlyError, match=r"read-only.*mode=.r.") as caught:
        ba.open("http://127.0.0.1:9/vol", mode="r+")
    assert isinstance(caught.value, PermissionError)
    with pytest.raises(ReadOnlyError):
        ba.create("http://127.0.0.1:9/vol", shape=(4, 4, 4))


def test_a_zero_dimensional_array_has_no_len_but_converts(url: str) -> None:
    vol = ba.create(f"{url}.zarr", shape=(), dtype="uint8")
    arr = np.asarray(vol)
    assert isinstance(arr, np.ndarray)
    assert arr.shape == ()
    with pytest.raises(UnsizedArrayError, match="len"):
        len(vol)
    with pytest.raises(TypeError, match="iteration"):
        iter(vol).__next__()
    drop_namespace(url.removeprefix("memory://") + ".zarr")
