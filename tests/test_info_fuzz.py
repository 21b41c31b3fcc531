"""Fuzzing the info reader: whatever info file a store holds, opening the volume and reading a
small box either works or raises a BigArraysError; never a MemoryError, RecursionError,
OverflowError or any other untyped exception.

The cases run in a subprocess limited to 3 GiB of address space (``info_fuzz_worker.py``), many per
subprocess: a document that makes bigarrays allocate terabytes fails there, as a MemoryError that
the worker reports, instead of swapping the machine. The documents are real ones edited by
hypothesis (huge and fractional numbers, NaN, wrong types, control characters in keys, sharding
specs with impossible bits) and serialised ones edited as text (5,000-digit numbers, nesting
100,000 deep, truncation).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bigarrays.formats.precomputed.info import MAX_CHUNK_BYTES

WORKER = Path(__file__).with_name("info_fuzz_worker.py")
SRC = Path(__file__).parents[1] / "src"
#: A valid info may still ask a read for one chunk-sized buffer (the reader's scratch buffer, on
#: one thread here): the largest chunk the bounds allow, plus 1 GiB for the interpreter.
MEMORY_LIMIT = MAX_CHUNK_BYTES + (1 << 30)
SHARDING = {
    "@type": "neuroglancer_uint64_sharded_v1",
    "preshift_bits": 1,
    "hash": "identity",
    "minishard_bits": 2,
    "shard_bits": 3,
    "minishard_index_encoding": "gzip",
    "data_encoding": "raw",
}


def _scale(key: str, size: list[int], chunk: list[int], **more: Any) -> dict[str, Any]:
    return {"key": key, "size": size, "resolution": [4, 4, 40], "voxel_offset": [-3, 2, 0],
            "chunk_sizes": [chunk], "encoding": "raw", **more}  # fmt: skip


BASES: list[dict[str, Any]] = [
    {
        "@type": "neuroglancer_multiscale_volume", "type": "image", "data_type": "uint8",
        "num_channels": 1,
        "scales": [_scale("4_4_40", [10, 12, 5], [4, 4, 4]),
                   _scale("8_8_40", [5, 6, 5], [4, 4, 4])],
    },
    {
        "type": "segmentation", "data_type": "uint64", "num_channels": 1,
        "scales": [_scale("s0", [20, 9, 7], [4, 4, 2], encoding="compressed_segmentation",
                          compressed_segmentation_block_size=[2, 2, 2], sharding=SHARDING)],
    },
    {
        "type": "image", "data_type": "uint8", "num_channels": 3, "mesh": "mesh",
        "scales": [_scale("jpeg", [9, 9, 9], [8, 8, 8], encoding="jpeg", jpeg_quality=80)],
    },
    {
        "type": "image", "data_type": "float64", "num_channels": 2,
        "scales": [_scale("blosc", [6, 6, 6], [3, 3, 3],
                          bigarrays={"compression": "blosc", "compression_level": 5,
                                     "blosc_cname": "lz4", "blosc_shuffle": "byte"})],
    },
]  # fmt: skip

# -- hostile values --------------------------------------------------------------------------------

EDGE_NUMBERS = [
    0, 1, -1, 3, 8, 27, 28, 32, 33, 60, 63, 64, 65, 2**20, 2**30, 2**31, 2**32, 4096, 10**18,
    2**62 - 2, 2**62, 2**63 - 1, 2**63, 2**64, 2**70, -(2**62), -(2**63), 1.5, 0.5, -0.0,
    1e-320, 1e308, float("nan"), float("inf"), float("-inf"), True, False,
]  # fmt: skip
EDGE_STRINGS = [
    "", ".", "..", "/", "../..", "a\x00b", "a\\b", "a\nb", "\ud800", "\u2028", "a" * 300,
    "raw", "gzip", "blosc", "zstd", "br", "identity", "murmurhash3_x86_128", "jpeg", "png",
    "compressed_segmentation", "compresso", "uint64", "bool", "image", "segmentation",
    "neuroglancer_uint64_sharded_v1", "lz4", "bit", "nonsense",
]  # fmt: skip
MEMBERS = [
    "key", "size", "resolution", "voxel_offset", "chunk_sizes", "encoding", "sharding",
    "compressed_segmentation_block_size", "jpeg_quality", "png_level", "bigarrays",
    "compression", "compression_level", "blosc_cname", "blosc_shuffle", "preshift_bits",
    "minishard_bits", "shard_bits", "hash", "data_encoding", "minishard_index_encoding",
    "type", "data_type", "num_channels", "scales", "@type",
]  # fmt: skip

numbers = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
)
strings = st.one_of(st.sampled_from(EDGE_STRINGS), st.text(max_size=12))
vectors = st.lists(numbers, min_size=0, max_size=4)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


sharding_specs = st.fixed_dictionaries(
    {
        "@type": st.just("neuroglancer_uint64_sharded_v1"),
        "preshift_bits": numbers,
        "minishard_bits": numbers,
        "shard_bits": numbers,
        "hash": st.sampled_from(["identity", "murmurhash3_x86_128"]),
    }
)
values = st.one_of(
    numbers,
    strings,
    vectors,
    st.lists(vectors, max_size=3),
    st.none(),
    sharding_specs,
    st.dictionaries(st.sampled_from(MEMBERS), st.one_of(numbers, strings), max_size=3),
    st.sampled_from([5, 40, 300]).map(_nested),
)


def _places(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``doc`` (the paths of its values), containers included."""
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _places(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _places(v, (*path, i))
    return out


def _resolve(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def edited_documents(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        places = [p for p in _places(doc) if p]
        path = draw(st.sampled_from(places))
        parent = _resolve(doc, path[:-1])
        action = draw(st.sampled_from(["set", "set", "add", "delete"]))
        if action == "set":
            parent[path[-1]] = draw(values)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(MEMBERS))] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
    return json.dumps(doc).encode()


@st.composite
def edited_texts(draw: st.DrawFn) -> bytes:
    text = json.dumps(copy.deepcopy(draw(st.sampled_from(BASES))))
    edit = draw(st.sampled_from(["digits", "wrap", "deep member", "truncate", "bytes"]))
    if edit == "digits":
        numbers_at = [m.span() for m in re.finditer(r"-?\d+", text)]
        a, b = draw(st.sampled_from(numbers_at))
        text = text[:a] + "7" * draw(st.sampled_from([30, 101, 4301, 5000, 100_000])) + text[b:]
    elif edit == "wrap":
        n = draw(st.sampled_from([1, 40, 1000, 100_000]))
        text = "[" * n + text + "]" * n
    elif edit == "deep member":
        n = draw(st.sampled_from([33, 500, 990, 100_000]))
        text = '{"deep": ' + "[" * n + "]" * n + ", " + text[1:]
    elif edit == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    else:
        data = text.encode()
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(max_size=4)) + data[at:]
    return text.encode()


def run_worker(cases: list[bytes]) -> list[str]:
    """The outcome of each case, opened in a subprocess limited to :data:`MEMORY_LIMIT`."""
    request = {"limit": MEMORY_LIMIT, "cases": [base64.b64encode(c).decode() for c in cases]}
    done = subprocess.run(
        [sys.executable, str(WORKER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, f"the worker died ({done.returncode}): {done.stderr[-3000:]}"
    results: list[str] = json.loads(done.stdout)
    assert len(results) == len(cases)
    return results


def _untyped(cases: list[bytes], results: list[str]) -> list[tuple[bytes, str]]:
    return [(c[:300], r) for c, r in zip(cases, results, strict=True) if r not in ("ok", "typed")]


def test_the_real_documents_open_and_the_reported_ones_fail_typed() -> None:
    text = json.dumps(BASES[0])
    reported = [
        text.replace("[4, 4, 4]", "[4294967296, 1, 1]", 1),  # OverflowError at the first read
        text.replace("[4, 4, 4]", "[4096, 4096, 4096]", 1),  # MemoryError at the first read
        text.replace('"num_channels": 1', '"num_channels": 1099511627776'),
        text.replace('"4_4_40"', '"4_4\\u000040"'),  # a NUL in the key
        json.dumps(BASES[1]).replace('"minishard_bits": 2', '"minishard_bits": 48'),
        json.dumps(BASES[1]).replace("[20, 9, 7]", "[4194304, 4194304, 4194304]"),
        "[" * 100_000 + "]" * 100_000,
        text.replace('"num_channels": 1', '"num_channels": ' + "1" * 5000),
    ]
    cases = [json.dumps(doc).encode() for doc in BASES] + [t.encode() for t in reported]
    assert run_worker(cases) == ["ok"] * len(BASES) + ["typed"] * len(reported)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.one_of(edited_documents(), edited_texts()), min_size=60, max_size=60))
def test_any_info_opens_or_raises_a_typed_error(cases: list[bytes]) -> None:
    results = run_worker(cases)
    assert not _untyped(cases, results)
