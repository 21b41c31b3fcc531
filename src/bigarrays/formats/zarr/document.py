"""Reading one Zarr metadata document: bounded parsing, typed errors and the checks every member
of ``zarr.json`` and ``.zarray`` shares (shapes, chunk shapes, their byte bounds).

Errors are :class:`~bigarrays.errors.InvalidMetadataError` naming the member (``shape[2]``) and,
once the document is known, where it came from; valid metadata that bigarrays does not handle
(another chunk grid, a storage transformer) is :class:`~bigarrays.errors.UnsupportedError`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from bigarrays.errors import InvalidInfoError, InvalidMetadataError, UnsupportedError
from bigarrays.formats import limits
from bigarrays.formats.bounded_json import parse_json


def fail(field: str, message: str) -> InvalidMetadataError:
    return InvalidMetadataError(message, field=field)


@contextmanager
def reading(where: str) -> Iterator[None]:
    """Errors raised inside say which document (``where``: its URL or its name) they are about."""
    try:
        yield
    except InvalidInfoError as exc:  # the bounded parser's, and ours
        raise InvalidMetadataError(exc.detail, field=exc.field, url=where) from None
    except UnsupportedError as exc:
        raise UnsupportedError(f"{where}: {exc}") from None


def load(data: bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object of a document given as bytes (parsed with bounds) or as a dict."""
    obj = parse_json(bytes(data)) if isinstance(data, bytes | bytearray | memoryview) else data
    if not isinstance(obj, Mapping):
        raise InvalidMetadataError(f"expected a JSON object, got {type(obj).__name__}")
    return dict(obj)


def dumps(doc: Mapping[str, Any]) -> bytes:
    """A document as zarr-python writes it: 2-space indents, a final newline."""
    return json.dumps(doc, indent=2).encode() + b"\n"


def require(obj: Mapping[str, Any], member: str) -> Any:
    if member not in obj:
        raise fail(member, "missing")
    return obj[member]


def check_format(obj: Mapping[str, Any], version: int) -> None:
    found = require(obj, "zarr_format")
    if isinstance(found, bool) or found != version:
        raise fail("zarr_format", f"expected {version}, got {found!r}")


def mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise fail(field, f"expected a JSON object, got {value!r}")
    return dict(value)


def integers(value: Any, field: str, *, minimum: int) -> tuple[int, ...]:
    """A list of at most :data:`~bigarrays.formats.limits.MAX_RANK` integers in the index range."""
    if not isinstance(value, list | tuple):
        raise fail(field, f"expected a list of integers, got {value!r}")
    if len(value) > limits.MAX_RANK:
        raise fail(field, f"{len(value)} dimensions; at most {limits.MAX_RANK}")
    out = tuple(
        limits.integer(v, f"{field}[{i}]", fail, minimum=minimum) for i, v in enumerate(value)
    )
    for i, v in enumerate(out):
        if v > limits.MAX_INDEX:
            raise fail(f"{field}[{i}]", f"{v} passes 2**62 - 2, the largest extent TensorStore "
                       "and bigarrays address")  # fmt: skip
    return out


def shape_and_chunks(
    shape_json: Any, chunks_json: Any, names: tuple[str, str]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """An array's shape (extents >= 0) and its chunk shape (>= 1), of the same rank."""
    shape = integers(shape_json, names[0], minimum=0)
    chunks = integers(chunks_json, names[1], minimum=1)
    if len(chunks) != len(shape):
        raise fail(names[1], f"{len(chunks)} dimensions for an array of {len(shape)}: {shape}")
    return shape, chunks


def check_bytes(
    shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int, names: tuple[str, str]
) -> None:
    """Refuse a chunk that decodes to more than 2 GiB, or an array whose nbytes passes int64."""
    limits.check_chunk_bytes(chunks, itemsize, names[1], fail)
    limits.check_volume_bytes(shape, itemsize, names[0], fail)


def grid_shape(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks along each dimension of a regular grid (edge chunks count whole)."""
    return tuple(-(-s // c) for s, c in zip(shape, chunks, strict=True))


def json_list(items: tuple[Mapping[str, Any], ...]) -> list[dict[str, Any]]:
    return [dict(item) for item in items]


def same_fields(a: Any, b: object, dtype: np.dtype) -> bool:
    """Dataclass equality with the fill values compared bit for bit: a NaN equals its own bits,
    and -0.0 differs from 0.0."""
    if type(a) is not type(b) or not dataclasses.is_dataclass(a):
        return False
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name != "fill_value":
            if x != y:
                return False
        elif (x is None) != (y is None) or (
            x is not None and np.array(x, dtype).tobytes() != np.array(y, dtype).tobytes()
        ):
            return False
    return True
