"""BigArray through the public API, on the memory and the file store."""

from __future__ import annotations

import gzip
import json
import pickle
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bigarrays as ba
from bigarrays import stores
from bigarrays.box import Box
from bigarrays.errors import (
    ArrayClosedError,
    ChunkNotFoundError,
    DtypeMismatchError,
    InvalidIndexError,
    OutOfBoundsError,
    ScaleNotFoundError,
    ShapeMismatchError,
    UnsupportedError,
    ViewerCompatibilityWarning,
)
from bigarrays.progress import MIN_CHUNKS_FOR_BAR, progress_bar, wants_bar
from bigarrays.stores import open_store
from bigarrays.stores.file import FileStore
from bigarrays.stores.memory import drop_namespace
from bigarrays.testing.strategies import EXTENSION_DTYPES, FORMAT_DTYPES, random_array


@pytest.fixture(params=["memory", "file"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL where no dataset exists yet."""
    if request.param == "memory":
        name = f"array-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        drop_namespace(name)
    else:
        yield str(tmp_path / "vol")


@pytest.fixture
def file_url(tmp_path: Path) -> str:
    return (tmp_path / "vol").as_uri()


def stored_keys(vol: ba.BigArray) -> set[str]:
    """The chunk keys of a volume's store (the info file left out)."""
    return {k for k in vol.store.list() if k != "info"}


def snapshot(vol: ba.BigArray) -> dict[str, bytes | None]:
    """Every key of the store and its bytes."""
    return {k: vol.store.get(k) for k in vol.store.list()}


def make(url: str, **kwargs: Any) -> ba.BigArray:
    kwargs.setdefault("shape", (50, 40, 30))
    kwargs.setdefault("chunks", (16, 16, 8))
    kwargs.setdefault("voxel_offset", (-7, 3, -20))
    kwargs.setdefault("dtype", "uint16")
    return ba.create(url, **kwargs)


# -- create, open, properties ----------------------------------------------------------------------


def test_create_then_open(url: str) -> None:
    data = random_array((50, 40, 30), "uint16", seed=0)
    with make(url, resolution=(8, 8, 40)) as vol:
        assert vol.mode == "r+"
        vol[-7:43, 3:43, -20:10] = data
    with ba.open(url) as again:
        assert again.mode == "r"
        np.testing.assert_array_equal(again[-7:43, 3:43, -20:10], data)
        np.testing.assert_array_equal(again[...], data)
        assert again.info == vol.info


def test_properties(url: str) -> None:
    with ba.create(
        url,
        shape=(50, 40, 30),
        dtype="int16",
        chunks=(16, 8, 4),
        voxel_offset=(-7, 3, -20),
        resolution=(4, 4.5, 40),
    ) as vol:
        assert vol.shape == (50, 40, 30)
        assert vol.ndim == 3
        assert vol.size == 50 * 40 * 30
        assert vol.nbytes == 2 * vol.size
        assert vol.dtype == np.dtype("int16")
        assert vol.chunks == (16, 8, 4)
        assert vol.voxel_offset == (-7, 3, -20)
        assert vol.resolution == (4.0, 4.5, 40.0)
        assert vol.bounds == ba.Box((-7, 3, -20), (43, 43, 10))
        assert vol.mips == 1
        assert vol.mip == 0
        assert vol.num_channels == 1
        assert vol.layer_type == "image"
        assert vol.encoding == "raw"
        assert vol.compression is None
        assert vol.grid_shape == (4, 5, 8)
        assert vol.num_chunks == 160
        assert vol.info["scales"][0]["key"] == "4_4.5_40"
        assert vol.info["data_type"] == "int16"
        assert "mip=0" in repr(vol)
        assert "shape=(50, 40, 30)" in repr(vol)
        assert "bounds=[-7:43, 3:43, -20:10]" in repr(vol)
        assert vol.url.startswith(("memory://", "file://"))


def test_info_is_a_copy(url: str) -> None:
    with make(url) as vol:
        info = vol.info
        info["scales"][0]["size"] = [1, 1, 1]
        info["data_type"] = "uint8"
        assert vol.info["scales"][0]["size"] == [50, 40, 30]
        assert vol.info["data_type"] == "uint16"
        assert vol.shape == (50, 40, 30)
    with ba.open(url) as again:
        assert again.info["scales"][0]["size"] == [50, 40, 30]


def test_multichannel_properties(url: str) -> None:
    with make(url, num_channels=3) as vol:
        assert vol.shape == (50, 40, 30, 3)
        assert vol.ndim == 4
        assert vol.num_channels == 3
        assert vol.bounds == ba.Box((-7, 3, -20), (43, 43, 10))  # 3-D, channels not included
        assert vol[...].shape == (50, 40, 30, 3)


def test_segmentation_layer(url: str) -> None:
    with make(url, dtype="uint64", layer_type="segmentation") as vol:
        assert vol.layer_type == "segmentation"
        vol[0, 3, 0] = 2**64 - 1
        assert vol[0, 3, 0] == 2**64 - 1
    with pytest.raises(ValueError, match="one channel"):
        make(url, layer_type="segmentation", num_channels=2, overwrite=True)


def test_open_with_store_object(url: str) -> None:
    with make(url) as vol:
        vol[0, 3, -20] = 7
    store = open_store(url, read_only=True)
    with ba.open(store) as again:
        assert again.store is store
        assert again[0, 3, -20] == 7


def test_open_bad_mode(url: str) -> None:
    make(url).close()
    with pytest.raises(ValueError, match="mode must be"):
        ba.open(url, mode="w")


# -- create: existing datasets, bad arguments ------------------------------------------------------


def test_create_refuses_existing_dataset(url: str) -> None:
    with make(url) as vol:
        vol[0:5, 3:8, -20:-15] = 9
        before = snapshot(vol)
    with pytest.raises(ba.DatasetExistsError, match="overwrite=True") as caught:
        make(url, dtype="uint8")
    assert isinstance(caught.value, FileExistsError)
    with ba.open(url) as again:
        assert snapshot(again) == before
        assert again.dtype == np.dtype("uint16")
        assert again[0, 3, -20] == 9


def test_overwrite_replaces_dataset(url: str) -> None:
    with make(url) as vol:
        vol[...] = 5
        assert len(stored_keys(vol)) == vol.num_chunks
    with make(
        url,
        dtype="uint8",
        shape=(10, 10, 10),
        chunks=(5, 5, 5),
        voxel_offset=(0, 0, 0),
        resolution=(2, 2, 2),
        overwrite=True,
    ) as new:
        assert new.dtype == np.dtype("uint8")
        assert new.shape == (10, 10, 10)
        assert stored_keys(new) == set()  # old chunks are gone, the old scale folder too
        np.testing.assert_array_equal(new[...], 0)
    with ba.open(url) as again:
        assert again.info["scales"][0]["key"] == "2_2_2"


def test_overwrite_same_scale_key_reads_zeros(url: str) -> None:
    with make(url) as vol:
        vol[...] = 5
    with make(url, overwrite=True) as new:
        assert stored_keys(new) == set()
        assert new[...].max() == 0


def test_overwrite_of_unreadable_info(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    (root / "info").write_text("{broken")
    with ba.create(str(root), shape=(4, 4, 4), overwrite=True) as vol:
        assert vol.shape == (4, 4, 4)
    assert json.loads((root / "info").read_text())["data_type"] == "uint8"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shape": (10, -1, 10)}, ValueError, "shape must not be negative"),
        ({"shape": (10, 10)}, ValueError, "shape must be three numbers"),
        ({"chunks": (0, 8, 8)}, ValueError, "chunks must be positive"),
        ({"resolution": (1, 0, 1)}, ValueError, "resolution must be positive"),
        ({"dtype": "complex64"}, ba.InvalidInfoError, "data_type"),
        ({"dtype": "float16"}, ba.InvalidInfoError, "choose one of"),
        ({"num_channels": 0}, ValueError, "num_channels"),
        ({"layer_type": "mesh"}, ValueError, "layer_type"),
        ({"encoding": "compresso"}, UnsupportedError, "not supported"),
        ({"encoding": "webp"}, UnsupportedError, "unknown encoding"),
        ({"compression": "rot13"}, UnsupportedError, "content encoding"),
    ],
)
def test_create_bad_arguments_leave_nothing(
    url: str, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make(url, **kwargs)
    # Nothing was written: there is no dataset to open.
    with pytest.raises(ba.DatasetNotFoundError):
        ba.open(url)


def test_misspelt_keyword_is_named_with_a_suggestion(url: str) -> None:
    # Unknown keywords travel on as store options: the error must still name the caller's.
    with pytest.raises(TypeError, match=r"create\(\) .* chunk_size=.*did you mean chunks=\?"):
        ba.create(url, shape=(8, 8, 8), chunk_size=(4, 4, 4))
    with pytest.raises(ba.DatasetNotFoundError):
        ba.open(url)
    make(url)
    with pytest.raises(TypeError, match=r"open\(\) .* thread=.*did you mean threads=\?"):
        ba.open(url, thread=2)
    with pytest.raises(TypeError, match=r"zzz=") as caught:
        ba.open(url, zzz=1)
    assert "did you mean" not in str(caught.value)
    # A Store object takes no options: a misspelt keyword is not silently dropped either.
    with pytest.raises(TypeError, match=r"did you mean threads=\?"):
        ba.open(open_store(url), thread=2)
    with pytest.raises(TypeError, match=r"concurrency=; store options apply only when open\(\)"):
        ba.open(open_store(url), concurrency=4)
    # **store_options itself is no keyword to suggest.
    with pytest.raises(TypeError, match=r"store_option=") as caught:
        ba.open(url, store_option=1)
    assert "did you mean" not in str(caught.value)


def test_a_store_bug_is_not_blamed_on_the_caller(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A TypeError from inside a store's constructor reaches the caller as it is."""

    def connect(url: str) -> None:
        pass

    class BuggyStore(FileStore):
        def __init__(self, url: str, *, read_only: bool = False, timeout: float = 1) -> None:
            connect(url, timeout=timeout)  # type: ignore[call-arg]  # the bug under test

    monkeypatch.setitem(stores._TABLE, "buggy", BuggyStore)
    with pytest.raises(TypeError, match=r"\.connect\(\) got an unexpected keyword argument"):
        ba.open(f"buggy://{tmp_path}", timeout=2)


@pytest.mark.parametrize("dtype", EXTENSION_DTYPES)
def test_extension_dtypes_warn(url: str, dtype: str) -> None:
    with pytest.warns(ViewerCompatibilityWarning, match="Neuroglancer") as record:
        vol = make(url, dtype=dtype)
    assert record[0].filename == __file__  # the warning points at the caller
    with vol:
        value = True if dtype == "bool" else 3
        vol[0, 3, -20] = value
        assert vol[0, 3, -20] == value
        assert vol.dtype == np.dtype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # opening does not warn again
        with ba.open(url) as again:
            assert again[0, 3, -20] == value


@pytest.mark.parametrize("dtype", FORMAT_DTYPES)
def test_format_dtypes_do_not_warn(url: str, dtype: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with make(url, dtype=dtype) as vol:
            assert vol.info["data_type"] == dtype


# -- reading and writing ---------------------------------------------------------------------------


def test_unaligned_writes_and_reads_match_a_model(url: str) -> None:
    model = np.zeros((50, 40, 30), dtype=np.uint16)
    origin = (-7, 3, -20)

    def box_slices(x0: int, x1: int, y0: int, y1: int, z0: int, z1: int) -> tuple[slice, ...]:
        return Box((x0, y0, z0), (x1, y1, z1)).slices(origin)

    with make(url) as vol:
        boxes = [
            (-5, 20, 4, 30, -19, -3),
            (10, 43, 3, 43, -8, 10),
            (-7, -6, 10, 11, 0, 1),
            (0, 33, 17, 18, -20, 10),
            (-7, 43, 3, 43, 5, 6),
        ]
        for i, b in enumerate(boxes):
            s = box_slices(*b)
            data = random_array(model[s].shape, "uint16", seed=i)
            vol[b[0] : b[1], b[2] : b[3], b[4] : b[5]] = data
            model[s] = data
            np.testing.assert_array_equal(vol[-7:43, 3:43, -20:10], model)
        for b in [(-6, 1, 5, 9, -20, -17), (20, 43, 30, 43, 0, 10), (0, 1, 3, 43, -20, 10)]:
            np.testing.assert_array_equal(
                vol[b[0] : b[1], b[2] : b[3], b[4] : b[5]], model[box_slices(*b)]
            )


def test_negative_indices_are_absolute_coordinates(url: str) -> None:
    with make(url, shape=(20, 20, 20), chunks=(8, 8, 8), voxel_offset=(-10, -10, -10)) as vol:
        vol[-10, -10, -10] = 1
        vol[-1, -1, -1] = 2
        vol[9, 9, 9] = 3
        cut = vol[-10:10, -10:10, -10:10]
        assert cut[0, 0, 0] == 1
        assert cut[9, 9, 9] == 2  # x = -1 is index 9 of the box, not "one from the end"
        assert cut[19, 19, 19] == 3
        assert cut.sum() == 6
        assert vol[-50:-1, -1, -1][-1] == 0  # [-50, -1) stops before the voxel at -1
        assert vol[-50:0, -1, -1][-1] == 2


def test_edge_chunks_store_the_clipped_shape(url: str) -> None:
    # 50 = 3*16 + 2 along x, 40 = 2*16 + 8 along y, 30 = 3*8 + 6 along z.
    with make(url) as vol:
        vol[...] = 1
        assert len(stored_keys(vol)) == 4 * 3 * 4
        last = vol.chunk_key((3, 2, 3))
        assert last.endswith("/41-43_35-43_4-10")
        assert vol.store.get(last) == b"\x01\x00" * (2 * 8 * 6)
        first = vol.chunk_key((0, 0, 0))
        assert first.endswith("/-7-9_3-19_-20--12")
        stored = vol.store.get(first)
        assert stored is not None
        assert len(stored) == 2 * 16 * 16 * 8


def test_reads_outside_the_bounds_are_zeros(url: str) -> None:
    with make(url) as vol:
        vol[...] = 7
        cut = vol[-20:0, 0:10, -25:-15]  # crosses the lower faces of x, y and z
        assert cut.shape == (20, 10, 10)
        expected = np.zeros((20, 10, 10), dtype=np.uint16)
        expected[13:, 3:, 5:] = 7
        np.testing.assert_array_equal(cut, expected)
        np.testing.assert_array_equal(vol[100:110, -100:-90, 50:51], 0)  # wholly outside
        np.testing.assert_array_equal(vol[42:44, 42:44, 9:11][:1, :1, :1], 7)
        assert vol[42:44, 42:44, 9:11].sum() == 7
        assert vol[1000, 1000, 1000] == 0


def test_missing_chunks_read_as_zeros(url: str) -> None:
    with make(url) as vol:
        vol[-7:9, 3:19, -20:-12] = 4  # exactly chunk (0, 0, 0)
        assert len(stored_keys(vol)) == 1
        cut = vol[...]
        assert cut[:16, :16, :8].min() == 4
        assert cut.sum() == 4 * 16 * 16 * 8


def test_fill_missing_false_raises_for_missing_chunk(url: str) -> None:
    with make(url) as vol:
        vol[-7:9, 3:19, -20:-12] = 4
    for threads in (1, 8):
        with ba.open(url, fill_missing=False, threads=threads) as strict:
            assert strict[-7:9, 3:19, -20:-12].min() == 4  # the written chunk reads
            assert strict[-100:-7, 3:19, -20:-12].sum() == 0  # outside the bounds: no chunk
            with pytest.raises(ba.ChunkNotFoundError) as caught:
                strict[-7:10, 3:19, -20:-12]
            assert isinstance(caught.value, FileNotFoundError)
            assert caught.value.key == strict.chunk_key((1, 0, 0))
            assert "fill_missing" in str(caught.value)


@pytest.mark.parametrize(
    "index",
    [
        (slice(-8, 0), slice(3, 10), slice(-20, -10)),  # crosses the lower x face
        (slice(40, 44), slice(3, 10), slice(-20, -10)),  # crosses the upper x face
        (slice(0, 10), slice(0, 50), slice(-20, -10)),  # crosses both y faces
        (slice(100, 110), slice(100, 110), slice(100, 110)),  # wholly outside
        (43, 3, -20),  # one voxel just past the upper x face
        (0, 3, -21),  # one voxel just before the lower z face
    ],
)
def test_writes_outside_the_bounds_raise_and_write_nothing(url: str, index: Any) -> None:
    with make(url) as vol:
        vol[0:10, 3:10, -20:-10] = 3
        before = snapshot(vol)
        shape = vol[index].shape
        with pytest.raises(ba.OutOfBoundsError, match=r"bounds Box\(-7:43, 3:43, -20:10\)") as c:
            vol[index] = np.ones(shape, dtype=np.uint16)
        assert isinstance(c.value, IndexError)
        assert "nothing was written" in str(c.value)
        with pytest.raises(ba.OutOfBoundsError):
            vol[index] = 1
        assert snapshot(vol) == before


def test_read_only_refuses_writes(url: str) -> None:
    with make(url) as vol:
        vol[0, 3, -20] = 1
        before = snapshot(vol)
    with ba.open(url) as ro:
        with pytest.raises(ba.ReadOnlyError, match="mode='r\\+'") as caught:
            ro[0, 3, -20] = 2
        assert isinstance(caught.value, PermissionError)
        with pytest.raises(ba.ReadOnlyError):
            ro.write(ro.bounds, 0)
        with pytest.raises(ba.ReadOnlyError):
            ro[1000, 1000, 1000] = 0  # read-only is checked before the bounds
        assert ro[0, 3, -20] == 1
        assert snapshot(ro) == before
    with ba.open(url, mode="r+") as rw:
        rw[0, 3, -20] = 2
        assert rw[0, 3, -20] == 2


def test_multichannel_reads_and_writes(url: str) -> None:
    data = random_array((10, 12, 6, 3), "uint16", seed=3)
    with make(url, num_channels=3) as vol:
        vol[0:10, 5:17, -20:-14] = data
        np.testing.assert_array_equal(vol[0:10, 5:17, -20:-14], data)
        np.testing.assert_array_equal(vol[0:10, 5:17, -20:-14, 1], data[..., 1])
        np.testing.assert_array_equal(vol[0:10, 5:17, -20:-14, -1], data[..., 2])
        np.testing.assert_array_equal(vol[0:10, 5:17, -20:-14, 1:3], data[..., 1:3])
        np.testing.assert_array_equal(vol[0:10, 5:17, -20:-14, :-1], data[..., :2])
        np.testing.assert_array_equal(vol[..., 2][7:17, 2:14, 0:6], data[..., 2])
        assert vol[0:10, 5:17, -20:-14, 1:1].shape == (10, 12, 6, 0)
        assert vol[0:10, 5:17, -20:-14, 5:9].shape == (10, 12, 6, 0)
        assert vol[3, 7, -18].tolist() == data[3, 2, 2].tolist()
        assert vol[3, 7, -18, 0] == data[3, 2, 2, 0]
        with pytest.raises(IndexError, match="channel 3 is out of range"):
            vol[0, 3, 0, 3]
        with pytest.raises(IndexError, match="channel -4 is out of range"):
            vol[0, 3, 0, -4]


def test_write_a_channel_subset_preserves_the_others(url: str) -> None:
    data = random_array((50, 40, 30, 3), "uint16", seed=4)
    with make(url, num_channels=3) as vol:
        vol[...] = data
        vol[0:10, 5:17, -20:-14, 1] = 0
        vol[-7:43, 3:43, -20:10, 2:3] = np.full((50, 40, 30, 1), 9, dtype=np.uint16)
        expected = data.copy()
        expected[7:17, 2:14, 0:6, 1] = 0
        expected[..., 2] = 9
        np.testing.assert_array_equal(vol[...], expected)
    with ba.open(url) as again:
        np.testing.assert_array_equal(again[...], expected)


def test_integer_indices_drop_axes(url: str) -> None:
    data = random_array((50, 40, 30), "uint16", seed=5)
    with make(url) as vol:
        vol[...] = data
        assert vol[0].shape == (40, 30)
        np.testing.assert_array_equal(vol[0], data[7])
        np.testing.assert_array_equal(vol[:, 3], data[:, 0])
        np.testing.assert_array_equal(vol[:, :, -20], data[:, :, 0])
        np.testing.assert_array_equal(vol[0, 3:13, -20], data[7, 0:10, 0])
        np.testing.assert_array_equal(vol[np.int64(0), np.int32(3)], data[7, 0])
        value = vol[0, 3, -20]
        assert value.shape == ()
        assert value == data[7, 0, 0]
        vol[0, 3:13, -20] = np.arange(10, dtype=np.uint16)  # a 1-D array into a 1-D selection
        np.testing.assert_array_equal(vol[0, 3:13, -20], np.arange(10))


def test_ellipsis_and_colon(url: str) -> None:
    data = random_array((50, 40, 30), "uint16", seed=6)
    with make(url) as vol:
        vol[:] = data
        whole = vol[-7:43, 3:43, -20:10]
        for index in [
            Ellipsis,
            slice(None),
            (slice(None), slice(None), slice(None)),
            (Ellipsis, slice(None)),
            (slice(None), Ellipsis, slice(None)),
            (),
        ]:
            np.testing.assert_array_equal(vol[index], whole)
        np.testing.assert_array_equal(vol[..., -10:-5], data[:, :, 10:15])
        np.testing.assert_array_equal(vol[0:5, ...], data[7:12])
        np.testing.assert_array_equal(vol[:, 10:], data[:, 7:])
        np.testing.assert_array_equal(vol[:-5], data[:2])  # -5 is absolute: x in [-7, -5)
        with pytest.raises(IndexError, match="single ellipsis"):
            vol[..., ...]


def test_box_as_index(url: str) -> None:
    data = random_array((5, 6, 7), "uint16", seed=7)
    with make(url) as vol:
        box = ba.Box((-7, 3, -20), (-2, 9, -13))
        vol[box] = data
        np.testing.assert_array_equal(vol[box], data)
        np.testing.assert_array_equal(vol.read(box), data)
        vol.write(box.shift((10, 10, 10)), data)
        np.testing.assert_array_equal(vol[3:8, 13:19, -10:-3], data)
        # A 4-D box on a one-channel volume drops the channel axis.
        assert vol[ba.Box((*box.start, 0), (*box.stop, 1))].shape == (5, 6, 7)
        with pytest.raises(ValueError, match="3 or 4 axes"):
            vol[ba.Box((0, 0), (1, 1))]


def test_box_as_index_multichannel(url: str) -> None:
    with make(url, num_channels=3) as vol:
        vol[ba.Box((0, 3, 0, 1), (2, 5, 2, 2))] = np.full((2, 2, 2, 1), 8, dtype=np.uint16)
        assert vol[ba.Box((0, 3, 0), (2, 5, 2))].shape == (2, 2, 2, 3)
        assert vol[0:2, 3:5, 0:2, 1].min() == 8
        assert vol[0:2, 3:5, 0:2, 0].max() == 0


def test_steps_are_refused(url: str) -> None:
    with make(url, num_channels=2) as vol:
        for index in [
            slice(0, 10, 2),
            (slice(None), slice(None, None, -1)),
            (0, 3, 0, slice(0, 2, 2)),
        ]:
            with pytest.raises(UnsupportedError, match="step") as caught:
                vol[index]
            assert isinstance(caught.value, ValueError)
            with pytest.raises(UnsupportedError):
                vol[index] = 0
        assert vol[0:10:1, 3:5, 0:1, ::1].shape == (10, 2, 1, 2)


def test_too_many_and_bad_indices(url: str) -> None:
    with make(url) as vol:
        with pytest.raises(IndexError, match="too many indices"):
            vol[0, 3, 0, 0]
        with pytest.raises(IndexError, match="too many indices"):
            vol[0, 3, 0, 0] = 1
        with pytest.raises(TypeError, match="axis x must be an integer or a slice"):
            vol[1.5]
        with pytest.raises(TypeError, match="axis y"):
            vol[0, "a"]
        with pytest.raises(TypeError, match="axis z"):
            vol[0, 3, 0.0:4]
        with pytest.raises(InvalidIndexError, match="list or array index on axis x") as caught:
            vol[np.array([1, 2])]
        assert isinstance(caught.value, IndexError)
        with pytest.raises(UnsupportedError, match="newaxis"):
            vol[None]


def test_safe_dtype_casts_are_accepted(url: str) -> None:
    with make(url) as vol:  # uint16
        vol[0:2, 3:5, 0:2] = np.full((2, 2, 2), 200, dtype=np.uint8)
        vol[2:4, 3:5, 0:2] = np.full((2, 2, 2), True)
        assert vol[0:2, 3:5, 0:2].dtype == np.uint16
        assert vol[0:2, 3:5, 0:2].min() == 200
        assert vol[2:4, 3:5, 0:2].min() == 1
        vol[4:6, 3:5, 0:2] = np.full((2, 2, 2), 7, dtype=">u2")  # big-endian is the same type
        assert vol[4:6, 3:5, 0:2].min() == 7


@pytest.mark.parametrize(
    ("vol_dtype", "arr_dtype"),
    [
        ("uint8", "int64"),
        ("uint16", "int8"),
        ("int64", "float32"),
        ("float32", "complex64"),
        ("uint64", "int64"),
        ("bool", "uint8"),
    ],
)
def test_unsafe_dtype_casts_are_refused(url: str, vol_dtype: str, arr_dtype: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ViewerCompatibilityWarning)
        vol = make(url, dtype=vol_dtype)
    with vol:
        before = snapshot(vol)
        with pytest.raises(DtypeMismatchError, match=f"cannot write {arr_dtype}") as caught:
            vol[0:2, 3:5, 0:2] = np.zeros((2, 2, 2), dtype=arr_dtype)
        assert isinstance(caught.value, TypeError)
        assert snapshot(vol) == before


def test_scalars(url: str) -> None:
    with make(url, dtype="uint8") as vol:
        vol[0:2, 3:5, 0:2] = 0
        vol[0:2, 3:5, 2:4] = 255
        vol[0:2, 3:5, 4:6] = np.uint8(9)
        vol[0:2, 3:5, 6:8] = 2.0  # a float that is exactly an integer
        assert vol[0, 3, 2] == 255
        assert vol[0, 3, 4] == 9
        assert vol[0, 3, 6] == 2
        before = snapshot(vol)
        for bad in (300, -1, 1.5, float("nan"), "a", 2**70):
            with pytest.raises(DtypeMismatchError):
                vol[0:2, 3:5, 0:2] = bad
        assert snapshot(vol) == before
    with make(url, dtype="int32", overwrite=True) as vol:
        with pytest.raises(DtypeMismatchError, match=r"1\.5 cannot be stored exactly as int32"):
            vol[0, 3, 0] = 1.5
        vol[0, 3, 0] = -(2**31)
        assert vol[0, 3, 0] == -(2**31)
    with make(url, dtype="float32", overwrite=True) as vol:
        vol[0:2, 3:5, 0:2] = 0.1
        np.testing.assert_array_equal(vol[0:2, 3:5, 0:2], np.float32(0.1))
        vol[0, 3, 0] = 1e300  # floats round (to inf here), as NumPy does
        assert np.isinf(vol[0, 3, 0])


def test_scalar_fills_the_whole_volume(url: str) -> None:
    with make(url, num_channels=2) as vol:
        vol[...] = 11
        assert len(stored_keys(vol)) == vol.num_chunks
        cut = vol[...]
        assert cut.min() == cut.max() == 11


def test_wrong_shape_is_refused(url: str) -> None:
    with make(url, num_channels=2) as vol:
        before = snapshot(vol)
        for index, shape in [
            ((slice(0, 4), slice(3, 8), slice(0, 2)), (4, 5, 2)),  # channel axis missing
            ((slice(0, 4), slice(3, 8), slice(0, 2)), (2, 5, 4, 2)),  # transposed
            ((slice(0, 4), slice(3, 8), slice(0, 2), 0), (4, 5, 2, 1)),  # dropped axis kept
            ((0, slice(3, 8), slice(0, 2)), (2, 5, 2, 2)),
            ((slice(0, 4), slice(3, 8), slice(0, 2)), (4, 5, 2, 2, 1)),
        ]:
            with pytest.raises(ShapeMismatchError, match="does not match") as caught:
                vol[index] = np.zeros(shape, dtype=np.uint16)
            assert isinstance(caught.value, ValueError)
        assert snapshot(vol) == before


def test_empty_boxes(url: str) -> None:
    with make(url, num_channels=2) as vol:
        assert vol[5:5, :, :].shape == (0, 40, 30, 2)
        assert vol[5:2, 3:4, 0:1].shape == (0, 1, 1, 2)  # stop before start: empty, not an error
        assert vol[0:1, 3:4, 0:0, 0].shape == (1, 1, 0)
        vol[5:5, :, :] = np.zeros((0, 40, 30, 2), dtype=np.uint16)
        vol[5:5, :, :] = 3
        assert stored_keys(vol) == set()
        assert vol[ba.Box((1, 1, 1), (1, 1, 1))].size == 0


def test_threads_give_the_same_results(url: str, tmp_path: Path) -> None:
    data = random_array((50, 40, 30), "uint16", seed=8)
    results = []
    for threads in (1, 8):
        vol_url = url if threads == 1 else str(tmp_path / f"other-{threads}")
        with make(vol_url, threads=threads) as vol:
            assert vol.threads == threads
            vol[-6:40, 4:41, -19:9] = data[1:47, 1:38, 1:29]
            vol[0:1, 3:43, -20:10] = data[7:8]
            results.append((vol[...], {k: vol.store.get(k) for k in stored_keys(vol)}))
        for read_threads in (1, 8):
            with ba.open(vol_url, threads=read_threads) as again:
                np.testing.assert_array_equal(
                    again[-10:50, 0:50, -25:15][3:53, 3:43, 5:35], results[-1][0]
                )
    (a, a_chunks), (b, b_chunks) = results
    np.testing.assert_array_equal(a, b)
    assert {k.split("/")[-1]: v for k, v in a_chunks.items()} == {
        k.split("/")[-1]: v for k, v in b_chunks.items()
    }


def test_result_is_fortran_ordered(url: str) -> None:
    with make(url) as vol:
        cut = vol[0:10, 3:13, 0:5]
        assert cut.flags.f_contiguous
        assert cut.T.flags.c_contiguous
        assert cut.T.shape == (5, 10, 10)


# -- mip levels ------------------------------------------------------------------------------------


TWO_SCALES = {
    "@type": "neuroglancer_multiscale_volume",
    "type": "image",
    "data_type": "uint16",
    "num_channels": 1,
    "scales": [
        {
            "key": "4_4_40",
            "size": [64, 48, 20],
            "resolution": [4, 4, 40],
            "voxel_offset": [-10, 0, 5],
            "chunk_sizes": [[16, 16, 8]],
            "encoding": "raw",
        },
        {
            "key": "8_8_40",
            "size": [32, 24, 20],
            "resolution": [8, 8, 40],
            "voxel_offset": [-5, 0, 5],
            "chunk_sizes": [[8, 8, 8]],
            "encoding": "raw",
        },
    ],
}


def test_mips(url: str) -> None:
    open_store(url).put("info", json.dumps(TWO_SCALES).encode())
    with ba.open(url, mode="r+", mip=1) as m1:
        assert m1.mip == 1
        assert m1.mips == 2
        assert m1.shape == (32, 24, 20)
        assert m1.resolution == (8.0, 8.0, 40.0)
        assert m1.bounds == ba.Box((-5, 0, 5), (27, 24, 25))
        m1[...] = 2
        assert len(stored_keys(m1)) == m1.num_chunks == 4 * 3 * 3
        assert all(k.startswith("8_8_40/") for k in stored_keys(m1))
        with pytest.raises(ba.OutOfBoundsError):
            m1[-10:-5, 0:1, 5:6] = 1  # inside mip 0, outside mip 1
    with ba.open(url, mode="r+") as m0:
        assert m0.mip == 0
        assert m0.shape == (64, 48, 20)
        assert m0[...].max() == 0  # mip 1 wrote nothing into mip 0
        m0[-10:54, 0:48, 5:25] = 1
        same = m0.at_mip(1)
        assert same.mode == "r+"
        assert same.mip == 1
        assert same.chunks == (8, 8, 8)
        np.testing.assert_array_equal(same[...], 2)
        same.close()
        assert m0.at_mip(0)[...].min() == 1
    with ba.open(url) as again:
        assert again.at_mip(1).mode == "r"
        assert {k.split("/")[0] for k in stored_keys(again)} == {"4_4_40", "8_8_40"}


@pytest.mark.parametrize("mip", [2, 5, -1])
def test_mip_out_of_range(url: str, mip: int) -> None:
    open_store(url).put("info", json.dumps(TWO_SCALES).encode())
    with pytest.raises(ScaleNotFoundError, match="has 2 scale") as caught:
        ba.open(url, mip=mip)
    assert isinstance(caught.value, IndexError)
    with ba.open(url) as vol, pytest.raises(ScaleNotFoundError):
        vol.at_mip(mip)


# -- compression and damaged chunks ----------------------------------------------------------------


def test_gzip_round_trip_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    data = random_array((50, 40, 30), "uint16", seed=9) % 16  # compressible
    with make(str(root), compression="gzip") as vol:
        assert vol.compression == "gzip"
        assert vol.info["scales"][0]["bigarrays"]["compression"] == "gzip"
        vol[...] = data
    files = [p for p in (root / vol.scale.key).iterdir()]
    assert len(files) == vol.num_chunks
    assert all(p.name.endswith(".gz") for p in files)
    one = files[0].read_bytes()
    assert one[:2] == b"\x1f\x8b"
    assert len(gzip.decompress(one)) > len(one)
    with ba.open(str(root)) as again:
        assert again.compression == "gzip"
        np.testing.assert_array_equal(again[...], data)
        assert "raw+gzip" in repr(again)


def test_gzip_round_trip_in_memory() -> None:
    name = f"array-{uuid.uuid4().hex}"
    try:
        with make(f"memory://{name}", compression="gzip", compression_level=1) as vol:
            vol[0:10, 3:13, 0:5] = 6
            assert vol.scale.compression_level == 1
        with ba.open(f"memory://{name}") as again:
            assert again[0:10, 3:13, 0:5].min() == 6
            assert again[...].sum() == 6 * 500
    finally:
        drop_namespace(name)


def test_gzip_chunk_without_suffix_is_read(url: str) -> None:
    with make(url, chunks=(50, 40, 30)) as vol:  # one chunk
        data = random_array((50, 40, 30), "uint16", seed=10)
        raw = data.astype("<u2").tobytes(order="F")
        # Bytes copied off a bucket without their Content-Encoding: gzip, no .gz suffix.
        vol.store.put(vol.chunk_key((0, 0, 0)), gzip.compress(raw))
        stored = vol.store.get(vol.chunk_key((0, 0, 0)))
        assert stored is not None
        assert stored[:2] == b"\x1f\x8b"
        np.testing.assert_array_equal(vol[...], data)
        # A partial write reads the gzip chunk, merges and writes it back plainly.
        vol[0, 3, -20] = 1
        data[7, 0, 0] = 1
        np.testing.assert_array_equal(vol[...], data)


def test_gzip_file_without_suffix_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    with ba.create(str(root), shape=(4, 4, 2), chunks=(4, 4, 2), dtype="uint8") as vol:
        key = vol.chunk_key((0, 0, 0))
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(bytes(range(32))))
    with ba.open(str(root)) as again:
        np.testing.assert_array_equal(
            again[...], np.arange(32, dtype=np.uint8).reshape((4, 4, 2), order="F")
        )


@pytest.mark.parametrize(
    "payload",
    [b"\x00" * 10, b"", b"\x1f\x8b" + b"\x00" * 20, gzip.compress(b"\x00" * 10)],
    ids=["short", "empty", "bad-gzip", "gzip-of-wrong-length"],
)
def test_corrupt_chunk_names_the_key(url: str, payload: bytes) -> None:
    with make(url) as vol:
        vol[...] = 1
        key = vol.chunk_key((1, 1, 1))
        vol.store.put(key, payload)
        with pytest.raises(ba.CorruptChunkError) as caught:
            vol[9:10, 19:20, -12:-11]
        assert caught.value.key == key
        assert key in str(caught.value)
        assert isinstance(caught.value, ValueError)
        # A write that covers part of the chunk must read it, and fails the same way.
        with pytest.raises(ba.CorruptChunkError):
            vol[9:10, 19:20, -12:-11] = 0
        # A write that covers the whole chunk replaces it without reading it.
        vol[9:25, 19:35, -12:-4] = 2
        assert vol[9:10, 19:20, -12:-11] == 2


# -- pickling and the thread pool ------------------------------------------------------------------


def test_pickle_gives_a_working_copy(file_url: str) -> None:
    with make(file_url) as vol:
        vol[0:10, 3:13, 0:5] = 3
        copy = pickle.loads(pickle.dumps(vol))
        try:
            assert copy is not vol
            assert copy.url == vol.url
            assert copy.mode == "r+"
            assert copy.info == vol.info
            assert copy.threads == vol.threads
            np.testing.assert_array_equal(copy[0:10, 3:13, 0:5], 3)
            copy[10:12, 3:5, 0:1] = 4  # the copy writes to the same dataset
            assert vol[10, 3, 0] == 4
        finally:
            copy.close()
    with ba.open(file_url, fill_missing=False, threads=3) as ro:
        copy = pickle.loads(pickle.dumps(ro))
        assert copy.mode == "r"
        assert copy.fill_missing is False
        assert copy.threads == 3
        with pytest.raises(ba.ReadOnlyError):
            copy[0, 3, 0] = 1
        with pytest.raises(ba.ChunkNotFoundError):
            copy[...]
        copy.close()


def test_worker_exception_propagates_and_pool_is_reusable(url: str) -> None:
    data = random_array((50, 40, 30), "uint16", seed=11)
    with make(url, threads=8) as vol:
        vol[...] = data
        bad = vol.chunk_key((2, 1, 2))
        good_bytes = vol.store.get(bad)
        assert good_bytes is not None
        vol.store.put(bad, b"garbage")
        for _ in range(3):  # the pool survives repeated failures
            with pytest.raises(ba.CorruptChunkError) as caught:
                vol[...]
            assert caught.value.key == bad
        # The pool works afterwards: reads and writes that avoid the bad chunk succeed.
        np.testing.assert_array_equal(vol[-7:9, 3:43, -20:10], data[:16])
        vol[-7:9, 3:43, -20:10] = 1
        assert vol[-7:9, 3:43, -20:10].min() == 1
        vol.store.put(bad, good_bytes)
        expected = data.copy()
        expected[:16] = 1
        np.testing.assert_array_equal(vol[...], expected)


def test_closed_array_refuses_reads_and_writes(url: str) -> None:
    vol = make(url, threads=4)
    vol[...] = 1
    vol.close()
    vol.close()  # closing twice is harmless
    with pytest.raises(ArrayClosedError, match="is closed") as info:
        vol[0:4, 0:4, 0:4] = 2
    assert isinstance(info.value, ValueError)
    with pytest.raises(ArrayClosedError):
        vol[...]
    with pytest.raises(ArrayClosedError):
        vol.write(vol.bounds, 2)
    with pytest.raises(ArrayClosedError):
        vol.at_mip(0)
    assert vol.shape == vol.bounds.shape  # the description stays readable
    again = ba.open(url)
    assert again[...].min() == 1
    assert again[...].max() == 1
    again.close()


def test_overwrite_removes_gzip_chunks_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    with make(str(root), compression="gzip") as vol:
        vol[...] = 1
        scale_dir = root / vol.scale.key
    assert len(list(scale_dir.iterdir())) == vol.num_chunks
    with make(str(root), overwrite=True) as new:
        assert stored_keys(new) == set()
        assert new.compression is None
        assert new[...].max() == 0
    assert not scale_dir.exists() or list(scale_dir.iterdir()) == []


# -- progress bars ---------------------------------------------------------------------------------


def test_wants_bar() -> None:
    assert wants_bar(True, 0)
    assert not wants_bar(False, 10**6)
    assert not wants_bar(None, MIN_CHUNKS_FOR_BAR - 1)


def test_progress_bar_does_not_change_results(url: str) -> None:
    data = random_array((50, 40, 30), "uint16", seed=12)
    with make(url, progress=True) as vol:
        vol[...] = data
        np.testing.assert_array_equal(vol[...], data)
    with progress_bar(3, "counting", True) as advance:
        assert advance is not None
        for _ in range(3):
            advance()
    with progress_bar(3, "silent", False) as advance:
        assert advance is None


def test_python_lists_are_judged_by_their_values() -> None:
    vol = ba.create(f"memory://lists-{uuid.uuid4().hex}", shape=(4, 4, 4))
    vol[0, 0, 0:3] = [1, 2, 255]
    np.testing.assert_array_equal(vol[0, 0, :], [1, 2, 255, 0])
    with pytest.raises(DtypeMismatchError, match="300"):
        vol[0, 0, 0:3] = [1, 2, 300]
    with pytest.raises(DtypeMismatchError, match=r"1\.5"):
        vol[0, 0, 0:2] = [1.5, 2]
    np.testing.assert_array_equal(vol[0, 0, :], [1, 2, 255, 0])


def test_threads_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="threads"):
        ba.create(f"memory://threads-{uuid.uuid4().hex}", shape=(4, 4, 4), threads=0)


def test_missing_chunk_error_names_the_dataset(tmp_path: Path) -> None:
    ba.create(tmp_path / "v", shape=(8, 8, 8), chunks=(4, 4, 4))
    with pytest.raises(ChunkNotFoundError, match=r"file://.*/v"):
        ba.open(tmp_path / "v", fill_missing=False)[0:1, 0:1, 0:1]


def test_channel_range_outside_bounds_is_named(tmp_path: Path) -> None:
    vol = ba.create(tmp_path / "c", shape=(4, 4, 4), num_channels=2)
    with pytest.raises(OutOfBoundsError, match="channels 1:3 of 2"):
        vol[ba.Box((0, 0, 0, 1), (1, 1, 1, 3))] = 0
