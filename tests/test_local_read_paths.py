"""Reads of a local folder against a NumPy model, over every fast path a folder has and the
in-memory stores lack: raw chunks read by rows into the engine's buffer, inner chunks of a shard
read as ranges, compressed chunks decoded into a thread's buffer, the chunk cache in front of
each, serial and pooled. Random boxes are read twice and overlap, so that a path which kept a
part of a chunk, or a buffer that a later chunk reused, shows as wrong voxels."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigarrays as ba

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Raw chunks twice: most of a folder's fast paths are theirs.
COMPRESSIONS = {
    "zarr": [None, None, "zstd", "gzip", "blosc"],
    "zarr2": [None, None, "zstd", "gzip", "blosc"],
    "precomputed": [None, None, "gzip", "zstd"],
}


def _values(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype.startswith("float"):
        return rng.random(shape).astype(dtype)
    return rng.integers(1, 250, shape).astype(dtype)


@st.composite
def _boxes(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[slice, ...]:
    out = []
    for n in shape:
        a = draw(st.integers(0, n - 1))
        out.append(slice(a, draw(st.integers(a + 1, n))))
    return tuple(out)


@st.composite
def _layouts(draw: st.DrawFn) -> dict[str, Any]:
    fmt = draw(st.sampled_from(sorted(COMPRESSIONS)))
    ndim = 3 if fmt == "precomputed" else draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 30)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, 12)) for _ in range(ndim))
    options: dict[str, Any] = {"shape": shape, "chunks": chunks, "format": fmt}
    sharded = fmt != "zarr2" and draw(st.booleans())
    if sharded and fmt == "zarr":
        # Shards of 1-3 inner chunks along each axis.
        per = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
        options["chunks"] = tuple(c * p for c, p in zip(chunks, per, strict=True))
        options["sharding"] = {"chunk_shape": list(chunks)}
    elif sharded:
        options["sharding"] = True
    # A sharded precomputed scale's chunks are raw or gzip'd (its data_encoding).
    codecs = [None, None, "gzip"] if sharded and fmt == "precomputed" else COMPRESSIONS[fmt]
    options["compression"] = draw(st.sampled_from(codecs))
    options["dtype"] = draw(st.sampled_from(["uint8", "uint16", "float32"]))
    return options


@SETTINGS
@given(
    layout=_layouts(),
    cache=st.sampled_from([0, 1 << 20]),
    threads=st.sampled_from([1, 3]),
    data=st.data(),
)
def test_reads_of_a_local_folder_match_a_numpy_model(
    tmp_path_factory: pytest.TempPathFactory,
    layout: dict[str, Any],
    cache: int,
    threads: int,
    data: st.DataObject,
) -> None:
    path = str(tmp_path_factory.mktemp("local") / "a")
    shape, dtype = layout["shape"], layout["dtype"]
    model = np.zeros(shape, dtype)
    with warnings.catch_warnings():  # viewers' compatibility of zstd on precomputed: not tested
        warnings.simplefilter("ignore")
        vol = ba.create(path, progress=False, **layout)
    with vol:
        for seed in range(2):  # unaligned writes over one another; chunks never written stay
            box = data.draw(_boxes(shape))
            block = _values(model[box].shape, dtype, seed)
            vol[box] = block
            model[box] = block
    with ba.open(path, progress=False, cache_bytes=cache, threads=threads) as reader:
        boxes = [data.draw(_boxes(shape)) for _ in range(4)]
        for box in [*boxes, *reversed(boxes)]:
            np.testing.assert_array_equal(reader[box], model[box])
        np.testing.assert_array_equal(reader[...], model)
