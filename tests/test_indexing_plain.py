"""The common key (one slice of integers per axis) takes a short path through indexing; it must
give what the general path gives, and leave every other key to it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bigarrays import indexing
from bigarrays.box import Box
from bigarrays.errors import InvalidIndexError, UnsupportedError
from bigarrays.formats.base import Axis
from bigarrays.indexing import parse_key, plain_selection

ZARR = (Axis("z"), Axis("y"), Axis("x"))
ONE_CHANNEL = (Axis("x"), Axis("y"), Axis("z"), Axis("c", positional=True, hidden=True))
CHANNELS = (Axis("x"), Axis("y"), Axis("z"), Axis("c", positional=True))
BOUNDS3 = Box((-5, 0, 10), (20, 30, 40))
BOUNDS4 = Box((-5, 0, 10, 0), (20, 30, 40, 1))

bound = st.one_of(st.none(), st.integers(-50, 60))


@given(starts=st.tuples(bound, bound, bound), stops=st.tuples(bound, bound, bound))
def test_plain_keys_give_what_the_general_path_gives(starts: Any, stops: Any) -> None:
    key = tuple(slice(a, b) for a, b in zip(starts, stops, strict=True))
    for axes, bounds in [(ZARR, BOUNDS3), (ONE_CHANNEL, BOUNDS4)]:
        plain = plain_selection(key, axes, bounds)
        assert plain is not None
        assert plain == indexing._parse_key(key, axes, bounds)
        assert parse_key(key, axes, bounds) == plain


@pytest.mark.parametrize(
    "key",
    [
        (slice(0, 4), slice(0, 4)),
        (slice(0, 4),) * 4,
        (slice(0, 4), slice(0, 4), 3),
        (slice(0, 4), slice(0, 4), slice(0, 8, 1)),
        (slice(0, 4), slice(0, 4), slice(np.int64(0), 8)),
        (slice(0, 4), Ellipsis),
        slice(0, 4),
        Box((0, 0, 10), (4, 4, 12)),
    ],
)
def test_other_keys_go_the_general_way(key: Any) -> None:
    assert plain_selection(key, ZARR, BOUNDS3) is None
    try:
        want = indexing._parse_key(key, ZARR, BOUNDS3)
    except InvalidIndexError:
        with pytest.raises(InvalidIndexError):
            parse_key(key, ZARR, BOUNDS3)
        return
    assert parse_key(key, ZARR, BOUNDS3) == want


def test_positional_axes_and_refusals_go_the_general_way() -> None:
    key = (slice(0, 4), slice(0, 4), slice(10, 12), slice(0, 1))
    assert plain_selection(key, CHANNELS, Box((0, 0, 10, 0), (4, 4, 12, 3))) is None
    with pytest.raises(InvalidIndexError):
        parse_key((slice(0, 4), slice(0, 4), slice(True, 12)), ZARR, BOUNDS3)
    with pytest.raises(UnsupportedError):
        parse_key((slice(0, 4), slice(0, 4), slice(10, 20, 2)), ZARR, BOUNDS3)
