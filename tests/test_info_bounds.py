"""Hostile info files: every bound the reader keeps gives InvalidInfoError naming the field.

Each of these documents used to get past ``Info.from_json`` and fail later, untyped: an
OverflowError or MemoryError at the first read, a RecursionError or ValueError from the JSON
parser, a ValueError from a file name with a NUL in it.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import bigarrays as ba
from bigarrays.errors import InvalidInfoError
from bigarrays.formats.bounded_json import MAX_JSON_BYTES, MAX_JSON_DEPTH
from bigarrays.formats.precomputed import Info
from bigarrays.formats.precomputed.info import MAX_INDEX, MAX_MINISHARD_BITS
from bigarrays.stores.memory import MemoryStore, drop_namespace


def base() -> dict[str, Any]:
    return {
        "type": "image",
        "data_type": "uint8",
        "num_channels": 1,
        "scales": [
            {
                "key": "s0",
                "size": [10, 10, 10],
                "resolution": [1, 1, 1],
                "chunk_sizes": [[4, 4, 4]],
                "encoding": "raw",
            }
        ],
    }


def edited(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    doc = base()
    change(doc)
    return doc


def scale(**members: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda doc: doc["scales"][0].update(members)


def sharded(**bits: int) -> dict[str, Any]:
    spec = {"@type": "neuroglancer_uint64_sharded_v1", "hash": "identity", "preshift_bits": 0,
            "minishard_bits": 0, "shard_bits": 0, **bits}  # fmt: skip
    return spec


# (document, field the error names, a word of the bound it states)
HOSTILE: dict[str, tuple[dict[str, Any], str, str]] = {
    "chunk 2**30 x 4 voxels": (
        edited(scale(chunk_sizes=[[2**30, 4, 1]], size=[2**31, 4, 1])),
        "scales[0].chunk_sizes[0]",
        "2 GiB",
    ),
    "chunk 4096**3": (
        edited(scale(chunk_sizes=[[4096, 4096, 4096]], size=[4096, 4096, 4096])),
        "scales[0].chunk_sizes[0]",
        "2 GiB",
    ),
    "second chunk size 2**40": (
        edited(scale(chunk_sizes=[[4, 4, 4], [2**40, 1, 1]])),
        "scales[0].chunk_sizes[1]",
        "2 GiB",
    ),
    "chunk bytes with channels": (
        edited(
            lambda d: d.update(
                num_channels=64,
                data_type="uint64",
                scales=[dict(base()["scales"][0], chunk_sizes=[[256, 256, 256]])],
            )
        ),
        "scales[0].chunk_sizes[0]",
        "2 GiB",
    ),
    "num_channels 2**40": (edited(lambda d: d.update(num_channels=2**40)), "num_channels", "2**31"),
    "size 10**18 per axis": (
        edited(scale(size=[10**18, 10**18, 10**18])),
        "scales[0].size",
        "2**63 - 1",
    ),
    "size 2**70": (edited(scale(size=[2**70, 1, 1])), "scales[0].size[0]", "2**62 - 2"),
    "offset + size past 2**62": (
        edited(scale(size=[10, 10, 10], voxel_offset=[0, MAX_INDEX - 5, 0])),
        "scales[0].size[1]",
        "2**62 - 2",
    ),
    "offset -2**63": (
        edited(scale(voxel_offset=[0, 0, -(2**63)])),
        "scales[0].voxel_offset[2]",
        "2**62 - 2",
    ),
    "key with NUL": (edited(scale(key="s\x000")), "scales[0].key", "printable"),
    "key with newline": (edited(scale(key="s\n0")), "scales[0].key", "printable"),
    "key with DEL": (edited(scale(key="s\x7f")), "scales[0].key", "printable"),
    "key with backslash": (edited(scale(key="..\\..\\s0")), "scales[0].key", "backslash"),
    "key with lone surrogate": (edited(scale(key="s\ud800")), "scales[0].key", "printable"),
    "sharded grid needs 66-bit ids": (
        edited(scale(size=[2**22, 2**22, 2**22], chunk_sizes=[[1, 1, 1]], sharding=sharded())),
        "scales[0].chunk_sizes[0]",
        "64",
    ),
    "minishard bits 40": (
        edited(scale(sharding=sharded(minishard_bits=40))),
        "scales[0].sharding.minishard_bits",
        str(MAX_MINISHARD_BITS),
    ),
    "minishard bits 64": (
        edited(scale(sharding=sharded(minishard_bits=64))),
        "scales[0].sharding.minishard_bits",
        str(MAX_MINISHARD_BITS),
    ),
    "bits sum 65": (
        edited(scale(sharding=sharded(preshift_bits=1, minishard_bits=32, shard_bits=32))),
        "scales[0].sharding",
        "64",
    ),
}


@pytest.mark.parametrize(("doc", "field", "bound"), HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_document_names_the_field_and_bound(
    doc: dict[str, Any], field: str, bound: str
) -> None:
    with pytest.raises(InvalidInfoError) as caught:
        Info.from_bytes(json.dumps(doc).encode(), url="memory://x/info")
    assert caught.value.field == field
    assert bound in caught.value.detail
    assert caught.value.url == "memory://x/info"


@pytest.fixture
def url() -> Iterator[str]:
    name = f"bounds-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    drop_namespace(name)


@pytest.mark.parametrize("case", ["chunk 4096**3", "num_channels 2**40", "key with NUL",
                                  "sharded grid needs 66-bit ids"])  # fmt: skip
def test_open_refuses_before_any_read(url: str, case: str) -> None:
    MemoryStore(url).put("info", json.dumps(HOSTILE[case][0]).encode())
    with pytest.raises(InvalidInfoError, match="invalid info field"):
        ba.open(url)


def _with_number(text: str) -> bytes:
    return json.dumps(base()).replace('"num_channels": 1', f'"num_channels": {text}').encode()


@pytest.mark.parametrize("digits", [101, 4301, 5000, 200_000])
def test_long_integer_is_refused_where_it_stands(digits: int) -> None:
    with pytest.raises(InvalidInfoError, match=f"{digits} digits") as caught:
        Info.from_bytes(_with_number("9" * digits))
    assert caught.value.field == "num_channels"


def test_integers_of_up_to_100_digits_parse() -> None:
    # Only to be refused by the field's own bound.
    with pytest.raises(InvalidInfoError, match="2\\*\\*31") as caught:
        Info.from_bytes(_with_number("9" * 100))
    assert caught.value.field == "num_channels"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 500, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    data = b"[" * depth + b"]" * depth
    with pytest.raises(InvalidInfoError, match=f"nested {depth} deep; at most {MAX_JSON_DEPTH}"):
        Info.from_bytes(data)
    # Inside a member, beside strings whose brackets do not count.
    doc = base()
    doc["note"] = '[{"["\\'
    member = json.dumps(doc)[:-1] + ', "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    with pytest.raises(InvalidInfoError, match=f"nested {depth} deep") as caught:
        Info.from_bytes(member.encode(), url="memory://x/info")
    assert caught.value.url == "memory://x/info"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16", "utf-32-be"])
def test_nesting_in_other_encodings_is_refused(encoding: str) -> None:
    # Read as bytes, an escaped quote in UTF-16 would end the string early and hide the brackets
    # up to the next quote.
    text = '["a\\"b", ' + "[" * 40 + "]" * 40 + ', "c"]'
    with pytest.raises(InvalidInfoError, match=f"nested 41 deep; at most {MAX_JSON_DEPTH}"):
        Info.from_bytes(text.encode(encoding))
    assert Info.from_bytes(json.dumps(base()).encode(encoding)).scales[0].key == "s0"


def test_nesting_within_the_bound_is_kept() -> None:
    doc = base()
    doc["x"] = json.loads("[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1))
    info = Info.from_bytes(json.dumps(doc).encode())
    assert info.to_json()["x"] == doc["x"]


def test_oversized_info_file_is_refused_before_parsing() -> None:
    doc = base()
    doc["padding"] = " " * MAX_JSON_BYTES
    with pytest.raises(InvalidInfoError, match="16 MiB"):
        Info.from_bytes(json.dumps(doc).encode())


@pytest.mark.parametrize(
    "member",
    [{"size": [MAX_INDEX, 1, 1], "chunk_sizes": [[2**20, 1, 1]]},
     {"voxel_offset": [-MAX_INDEX, 0, 0]},
     {"chunk_sizes": [[2**31, 1, 1]], "size": [2**40, 1, 1]},
     {"key": "../other scale/é_8"}],
)  # fmt: skip
def test_values_at_the_bounds_are_valid(member: dict[str, Any]) -> None:
    doc = copy.deepcopy(base())
    doc["scales"][0].update(member)
    info = Info.from_bytes(json.dumps(doc).encode())
    assert Info.from_json(info.to_json()) == info


def test_sharded_grid_of_64_bits_is_valid_and_65_is_not() -> None:
    # Grid sizes of 2**k + 1 need k + 1 bits each: the fewest voxels for that many bits.
    size = [2**21 + 1, 2**20 + 1, 2**20 + 1]
    doc = edited(scale(size=size, chunk_sizes=[[1, 1, 1]], sharding=sharded()))
    assert Info.from_json(doc).scales[0].sharding is not None
    doc["scales"][0]["size"][1] = 2**21 + 1
    with pytest.raises(InvalidInfoError, match="65-bit chunk ids") as caught:
        Info.from_json(doc)
    assert caught.value.field == "scales[0].chunk_sizes[0]"
