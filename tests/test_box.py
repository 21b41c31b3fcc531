"""Box arithmetic, the chunk grid, and the chunk keys of the precomputed format."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigarrays.box import Box, ChunkGrid, ChunkPiece
from bigarrays.formats.precomputed import Info, Scale, chunk_name, parse_chunk_name, scale_grid
from bigarrays.formats.precomputed.chunks import ChunkLayout
from bigarrays.stores.memory import MemoryStore, drop_namespace
from bigarrays.testing.strategies import boxes, geometries

# -- Box -------------------------------------------------------------------------------------------


def test_box_shape_size_ndim() -> None:
    b = Box((1, -2, 3), (4, 5, 3))
    assert b.start == (1, -2, 3)
    assert b.stop == (4, 5, 3)
    assert b.ndim == 3
    assert b.shape == (3, 7, 0)
    assert b.size == 0
    assert b.empty


def test_box_coerces_to_int_tuples() -> None:
    b = Box([np.int64(1), 2], np.array([3, 4]))
    assert b.start == (1, 2)
    assert b.stop == (3, 4)
    assert all(type(v) is int for v in (*b.start, *b.stop))


def test_box_inverted_axis_is_empty_with_zero_shape() -> None:
    b = Box((5, 0), (2, 3))
    assert b.empty
    assert b.shape == (0, 3)
    assert b.size == 0


def test_box_non_empty() -> None:
    b = Box((0, 0, 0), (1, 1, 1))
    assert not b.empty
    assert b.size == 1


def test_box_is_frozen_and_hashable() -> None:
    b = Box((0, 0), (1, 1))
    with pytest.raises(AttributeError):
        b.start = (1, 1)  # type: ignore[misc]
    assert b == Box([0, 0], [1, 1])
    assert hash(b) == hash(Box([0, 0], [1, 1]))
    assert len({b, Box((0, 0), (1, 1)), Box((0, 0), (1, 2))}) == 2


def test_box_from_shape() -> None:
    assert Box.from_shape((3, 4, 5)) == Box((0, 0, 0), (3, 4, 5))
    assert Box.from_shape((3, 4, 5), (-10, 0, 7)) == Box((-10, 0, 7), (-7, 4, 12))
    assert Box.from_shape((), ()) == Box((), ())


def test_box_from_shape_length_mismatch() -> None:
    with pytest.raises(ValueError, match=r"zip\(\)"):
        Box.from_shape((3, 4, 5), (0, 0))


def test_box_intersect_overlapping() -> None:
    a = Box((0, 0, 0), (10, 10, 10))
    b = Box((5, -5, 2), (15, 5, 8))
    assert a.intersect(b) == Box((5, 0, 2), (10, 5, 8))
    assert b.intersect(a) == a.intersect(b)


def test_box_intersect_disjoint_is_empty() -> None:
    a = Box((0, 0, 0), (10, 10, 10))
    b = Box((20, 0, 0), (30, 10, 10))
    c = a.intersect(b)
    assert c.empty
    assert c.shape == (0, 10, 10)
    assert c.size == 0


def test_box_intersect_touching_is_empty() -> None:
    a = Box((0, 0), (4, 4))
    b = Box((4, 0), (8, 4))
    assert a.intersect(b).empty


def test_box_contains() -> None:
    outer = Box((-5, 0, 0), (5, 10, 10))
    assert outer.contains(outer)
    assert outer.contains(Box((-5, 2, 3), (0, 10, 4)))
    assert not outer.contains(Box((-6, 2, 3), (0, 10, 4)))
    assert not outer.contains(Box((0, 0, 0), (1, 11, 1)))
    assert not outer.contains(Box((100, 100, 100), (101, 101, 101)))
    # An empty box lies inside any box, even far away.
    assert outer.contains(Box((100, 100, 100), (100, 101, 101)))
    assert not Box((0, 0, 0), (1, 1, 1)).contains(outer)


def test_box_shift() -> None:
    b = Box((0, 1, 2), (3, 4, 5))
    assert b.shift((10, -10, 0)) == Box((10, -9, 2), (13, -6, 5))
    assert b.shift((10, -10, 0)).shape == b.shape
    with pytest.raises(ValueError, match=r"zip\(\)"):
        b.shift((1, 1))


def test_box_slices() -> None:
    b = Box((2, 3, 4), (5, 7, 9))
    assert b.slices() == (slice(2, 5), slice(3, 7), slice(4, 9))
    assert b.slices((2, 3, 4)) == (slice(0, 3), slice(0, 4), slice(0, 5))
    assert b.slices((-10, 0, 4)) == (slice(12, 15), slice(3, 7), slice(0, 5))
    arr = np.arange(10 * 10 * 10).reshape(10, 10, 10)
    assert arr[b.slices()].shape == b.shape


def test_box_slices_select_the_box_from_an_offset_array() -> None:
    origin = (-4, 6, 0)
    vol = np.arange(8 * 8 * 8).reshape(8, 8, 8)
    b = Box((-2, 7, 3), (1, 9, 8))
    cut = vol[b.slices(origin)]
    assert cut.shape == b.shape
    assert cut[0, 0, 0] == vol[2, 1, 3]


def test_box_repr() -> None:
    assert repr(Box((0, -64, 3), (64, 0, 5))) == "Box(0:64, -64:0, 3:5)"
    assert repr(Box((), ())) == "Box()"


def test_box_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Box((0, 0, 0), (1, 1))
    with pytest.raises(TypeError, match="start must be a sequence of integers"):
        Box(0, (1,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stop must be a sequence of integers"):
        Box((0,), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start must be a sequence of integers"):
        Box(("a",), (1,))
    # A float coordinate is a mistake to report, not a request to truncate.
    with pytest.raises(TypeError, match="start must be a sequence of integers"):
        Box((0.5, 1), (2, 3))  # type: ignore[arg-type]
    assert Box((np.int64(-3),), (np.int32(4),)) == Box((-3,), (4,))


# -- ChunkGrid -------------------------------------------------------------------------------------


SPEC_GRID = ChunkGrid(origin=(1, 2, 3), size=(10, 99, 98), chunk=(3, 2, 2))


def test_grid_shape_and_bounds() -> None:
    assert SPEC_GRID.grid_shape == (4, 50, 49)
    assert SPEC_GRID.num_chunks == 4 * 50 * 49
    assert SPEC_GRID.bounds == Box((1, 2, 3), (11, 101, 101))


def test_grid_shape_exact_multiple_and_zero() -> None:
    assert ChunkGrid((0, 0, 0), (64, 128, 1), (64, 64, 64)).grid_shape == (1, 2, 1)
    assert ChunkGrid((0, 0, 0), (65, 128, 1), (64, 64, 64)).grid_shape == (2, 2, 1)
    empty = ChunkGrid((0, 0, 0), (0, 5, 5), (2, 2, 2))
    assert empty.grid_shape == (0, 3, 3)
    assert empty.num_chunks == 0
    assert list(empty.indices()) == []


def test_grid_bad_input() -> None:
    with pytest.raises(ValueError, match="same number of axes"):
        ChunkGrid((0, 0), (1, 1, 1), (1, 1, 1))
    with pytest.raises(ValueError, match="chunk sizes must be positive"):
        ChunkGrid((0, 0, 0), (1, 1, 1), (1, 0, 1))
    with pytest.raises(ValueError, match="sizes must not be negative"):
        ChunkGrid((0, 0, 0), (1, -1, 1), (1, 1, 1))


def test_chunk_box_interior_and_clipped_edge() -> None:
    assert SPEC_GRID.chunk_box((0, 0, 0)) == Box((1, 2, 3), (4, 4, 5))
    assert SPEC_GRID.chunk_box((2, 3, 2)) == Box((7, 8, 7), (10, 10, 9))
    # The last chunk along x holds one voxel: 1 + 3*3 = 10 .. the bound 11.
    assert SPEC_GRID.chunk_box((3, 3, 2)) == Box((10, 8, 7), (11, 10, 9))
    # y: 99 voxels in chunks of 2, the last one holds one voxel; z: 98 is a multiple of 2.
    last = SPEC_GRID.chunk_box((3, 49, 48))
    assert last == Box((10, 100, 99), (11, 101, 101))
    assert last.shape == (1, 1, 2)


def test_spec_example_chunk_names() -> None:
    assert chunk_name(SPEC_GRID.chunk_box((2, 3, 2))) == "7-10_8-10_7-9"
    assert chunk_name(SPEC_GRID.chunk_box((3, 3, 2))) == "10-11_8-10_7-9"


def test_spec_example_through_scale_grid_and_layout() -> None:
    scale = Scale(
        key="8_8_40",
        size=(10, 99, 98),
        resolution=(8.0, 8.0, 40.0),
        voxel_offset=(1, 2, 3),
        chunk_sizes=((3, 2, 2),),
    )
    info = Info(data_type="uint8", num_channels=2, scales=(scale,))
    grid = scale_grid(scale, 2)
    assert grid.grid_shape == (4, 50, 49, 1)
    assert grid.chunk_box((3, 3, 2, 0)) == Box((10, 8, 7, 0), (11, 10, 9, 2))
    name = f"box-{uuid.uuid4().hex}"
    try:
        layout = ChunkLayout(MemoryStore(name), info, 0)
        assert layout.key((2, 3, 2, 0)) == "8_8_40/7-10_8-10_7-9"
        assert layout.key((3, 3, 2, 0)) == "8_8_40/10-11_8-10_7-9"
    finally:
        drop_namespace(name)


def test_parse_chunk_name_spec_examples() -> None:
    assert parse_chunk_name("7-10_8-10_7-9") == Box((7, 8, 7), (10, 10, 9))
    assert parse_chunk_name("10-11_8-10_7-9") == Box((10, 8, 7), (11, 10, 9))
    # A key with the scale folder in front parses by its last component.
    assert parse_chunk_name("8_8_40/10-11_8-10_7-9") == Box((10, 8, 7), (11, 10, 9))


def test_negative_chunk_names() -> None:
    b = Box((-64, 0, 0), (0, 64, 64))
    assert chunk_name(b) == "-64-0_0-64_0-64"
    assert parse_chunk_name("-64-0_0-64_0-64") == b
    both = Box((-128, -64, -3), (-64, -1, 0))
    assert chunk_name(both) == "-128--64_-64--1_-3-0"
    assert parse_chunk_name("-128--64_-64--1_-3-0") == both


def test_chunk_name_ignores_channel_axis() -> None:
    assert chunk_name(Box((0, 1, 2, 0), (3, 4, 5, 3))) == "0-3_1-4_2-5"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "info",
        "0-64_0-64",
        "0-64_0-64_0-64_0-1",
        "0-64_0-64_0-64.gz",
        "a-b_0-1_0-1",
        "0_1_2",
        "0-64_0-64_0--",
        "0-64__0-64_0-64",
    ],
)
def test_parse_chunk_name_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a chunk name"):
        parse_chunk_name(bad)


def test_negative_offset_grid_keys() -> None:
    grid = ChunkGrid(origin=(-64, 0, 0), size=(100, 64, 64), chunk=(64, 64, 64))
    names = [chunk_name(grid.chunk_box(i)) for i in grid.indices()]
    assert names == ["-64-0_0-64_0-64", "0-36_0-64_0-64"]
    assert [parse_chunk_name(n) for n in names] == [grid.chunk_box(i) for i in grid.indices()]


def test_index_range_indices_count() -> None:
    grid = ChunkGrid(origin=(0, 0, 0), size=(10, 10, 10), chunk=(4, 4, 4))
    box = Box((3, 4, 0), (5, 8, 1))
    assert grid.index_range(box) == (range(0, 2), range(1, 2), range(0, 1))
    assert grid.count(box) == 2
    assert list(grid.indices(box)) == [(0, 1, 0), (1, 1, 0)]
    assert grid.count(grid.bounds) == grid.num_chunks == 27


def test_indices_walk_x_fastest() -> None:
    grid = ChunkGrid(origin=(0, 0, 0), size=(4, 4, 4), chunk=(2, 2, 2))
    assert list(grid.indices()) == [
        (0, 0, 0),
        (1, 0, 0),
        (0, 1, 0),
        (1, 1, 0),
        (0, 0, 1),
        (1, 0, 1),
        (0, 1, 1),
        (1, 1, 1),
    ]


def test_index_range_clips_to_bounds() -> None:
    grid = ChunkGrid(origin=(-5, 0, 0), size=(10, 10, 10), chunk=(4, 4, 4))
    # Crossing the lower and upper faces touches only the chunks inside.
    box = Box((-100, 8, -3), (100, 100, 1))
    assert grid.index_range(box) == (range(0, 3), range(2, 3), range(0, 1))
    assert grid.count(box) == 3


def test_index_range_outside_or_empty_box_touches_nothing() -> None:
    grid = ChunkGrid(origin=(-5, 0, 0), size=(10, 10, 10), chunk=(4, 4, 4))
    for box in [
        Box((5, 0, 0), (9, 4, 4)),  # just past the upper x face (bounds are -5..5)
        Box((-9, 0, 0), (-5, 4, 4)),  # just before the lower x face
        Box((0, 0, 0), (0, 4, 4)),  # empty inside
        Box((3, 3, 3), (1, 9, 9)),  # inverted
    ]:
        assert grid.count(box) == 0, box
        assert list(grid.indices(box)) == []
        assert list(grid.pieces(box)) == []


def test_negative_origin_index_range() -> None:
    grid = ChunkGrid(origin=(-10, -10, -10), size=(20, 20, 20), chunk=(4, 4, 4))
    # -10 + 2*4 = -2: voxel -1 is in chunk 2, voxel 0 too; -3 is in chunk 1.
    assert grid.index_range(Box((-3, -1, 0), (-2, 1, 1))) == (
        range(1, 2),
        range(2, 3),
        range(2, 3),
    )


def test_pieces_slices() -> None:
    grid = ChunkGrid(origin=(1, 2, 3), size=(10, 99, 98), chunk=(3, 2, 2))
    box = Box((6, 8, 6), (12, 10, 8))  # reaches past the upper x face (11)
    pieces = list(grid.pieces(box))
    assert [p.chunk_index for p in pieces] == [
        (1, 3, 1),
        (2, 3, 1),
        (3, 3, 1),
        (1, 3, 2),
        (2, 3, 2),
        (3, 3, 2),
    ]
    first = pieces[0]
    assert isinstance(first, ChunkPiece)
    assert first.chunk_box == Box((4, 8, 5), (7, 10, 7))
    assert first.in_chunk == (slice(2, 3), slice(0, 2), slice(1, 2))
    assert first.in_box == (slice(0, 1), slice(0, 2), slice(0, 1))
    assert not first.covers_chunk
    edge = pieces[2]
    assert edge.chunk_box == Box((10, 8, 5), (11, 10, 7))
    assert edge.in_chunk == (slice(0, 1), slice(0, 2), slice(1, 2))
    assert edge.in_box == (slice(4, 5), slice(0, 2), slice(0, 1))
    whole = pieces[4]
    assert whole.chunk_box == Box((7, 8, 7), (10, 10, 9))
    assert whole.in_chunk == (slice(0, 3), slice(0, 2), slice(0, 1))
    assert not whole.covers_chunk  # z only half: 7..8 of 7..9


def test_covers_chunk_for_edge_chunk() -> None:
    grid = ChunkGrid(origin=(0, 0, 0), size=(5, 4, 4), chunk=(4, 4, 4))
    # The clipped edge chunk 4..5 is covered by any box reaching past the bound.
    (edge,) = grid.pieces(Box((4, 0, 0), (8, 4, 4)))
    assert edge.chunk_box == Box((4, 0, 0), (5, 4, 4))
    assert edge.covers_chunk
    assert edge.in_box == (slice(0, 1), slice(0, 4), slice(0, 4))


def _paste_all(grid: ChunkGrid, box: Box) -> np.ndarray:
    """How many times each voxel of ``box`` is pasted by the pieces (0 outside the bounds)."""
    hits = np.zeros(box.shape, dtype=np.int32)
    for piece in grid.pieces(box):
        chunk_shape = piece.chunk_box.shape
        probe = np.zeros(chunk_shape, dtype=np.int32)
        probe[piece.in_chunk] = 1
        # The slices into the chunk and into the box select the same number of voxels.
        assert probe[piece.in_chunk].shape == hits[piece.in_box].shape
        hits[piece.in_box] += 1
    return hits


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_pieces_tile_the_part_of_the_box_inside_the_bounds(data: st.DataObject) -> None:
    geom = data.draw(geometries(max_size=30, max_chunk=9, max_channels=1))
    grid = ChunkGrid(geom.voxel_offset, geom.size, geom.chunks)
    box = data.draw(boxes(grid.bounds, margin=6))
    hits = _paste_all(grid, box)
    inside = np.zeros(box.shape, dtype=np.int32)
    overlap = box.intersect(grid.bounds)
    if not overlap.empty:
        inside[overlap.slices(box.start)] = 1
    np.testing.assert_array_equal(hits, inside)
    assert grid.count(box) == len(list(grid.pieces(box)))
    for piece in grid.pieces(box):
        # The piece's slices name the same absolute voxels on both sides.
        chunk_abs = [
            s.start + a for s, a in zip(piece.in_chunk, piece.chunk_box.start, strict=True)
        ]
        box_abs = [s.start + a for s, a in zip(piece.in_box, box.start, strict=True)]
        assert chunk_abs == box_abs
        assert grid.bounds.contains(piece.chunk_box)
        assert all(0 < n <= c for n, c in zip(piece.chunk_box.shape, grid.chunk, strict=True))


@settings(max_examples=80, deadline=None)
@given(
    st.tuples(*[st.integers(-(10**9), 10**9)] * 3),
    st.tuples(*[st.integers(0, 10**6)] * 3),
)
def test_chunk_name_round_trip(start: tuple[int, int, int], shape: tuple[int, int, int]) -> None:
    b = Box.from_shape(shape, start)
    name = chunk_name(b)
    assert parse_chunk_name(name) == b
    assert parse_chunk_name(f"some/scale/{name}") == b


def test_a_grid_of_no_axes_is_one_chunk() -> None:
    grid = ChunkGrid((), (), ())
    assert grid.count(Box((), ())) == 1
    assert list(grid.pieces(Box((), ()))) == [ChunkPiece((), Box((), ()), (), ())]
