"""JSON metadata read with bounds: a hostile document fails fast, as InvalidInfoError.

Metadata comes from anywhere (a bucket, an HTTP server). Python's json module reads a document of
any size, nesting and number length: a 5,000-digit integer raises ValueError (Python's limit on
integer strings), nesting 100,000 deep raises RecursionError, and a document of gigabytes is built
before anything looks at it. :func:`parse_json` bounds all three before the document is built.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from bigarrays.errors import InvalidInfoError

#: Metadata files are a few kilobytes; parsing more only costs memory before it is refused.
MAX_JSON_BYTES = 16 * 2**20
#: A precomputed info nests 5 levels (info, scales, scale, chunk_sizes, size); deeper documents
#: would make the recursive json encoder and copy.deepcopy overflow the stack.
MAX_JSON_DEPTH = 32
#: Digits of an integer literal: uint64 ids need 20; Python's int() raises a ValueError past 4300.
MAX_INT_DIGITS = 100


class _LongInteger:
    """An integer literal of more than :data:`MAX_INT_DIGITS` digits, refused where it stands."""

    __slots__ = ("digits",)

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))


#: A JSON string, escapes included: what the nesting scan skips.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
#: +1 for the bytes that open an array or object, -1 for those that close one.
_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


def _nesting(data: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, found without parsing it."""
    steps = _STEP[np.frombuffer(_STRING.sub(b"", data), dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def parse_json(data: bytes) -> Any:
    """The JSON document in ``data``, bounded in size, depth and digits; InvalidInfoError if not.

    The bounds hold before Python builds the document: the size first, then the nesting, by a
    scan of the bytes; over-long integers are kept as markers, and only looked for if one was
    met.
    """
    if len(data) > MAX_JSON_BYTES:
        raise InvalidInfoError(f"{len(data)} bytes; a metadata file has at most 16 MiB")
    encoding = json.detect_encoding(data)
    if encoding != "utf-8":  # JSON may be UTF-16 or UTF-32, whose bytes the scan misreads
        try:
            data = data.decode(encoding).encode()
        except UnicodeError as exc:
            raise InvalidInfoError(f"not valid JSON ({exc})") from None
    depth = _nesting(data)
    if depth > MAX_JSON_DEPTH:
        raise InvalidInfoError(f"arrays and objects nested {depth} deep; at most {MAX_JSON_DEPTH}")
    long_integers = []

    def parse_int(text: str) -> int | _LongInteger:
        if len(text) <= MAX_INT_DIGITS:
            return int(text)
        long_integers.append(text)
        return _LongInteger(text)

    try:
        obj = json.loads(data, parse_int=parse_int)
    except RecursionError:  # a caller whose stack is all but full already
        raise InvalidInfoError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidInfoError(f"not valid JSON ({exc})") from None
    if long_integers:
        _refuse_long_integer(obj)
    return obj


def _refuse_long_integer(root: Any) -> None:
    """Raise InvalidInfoError naming the place of the first over-long integer in ``root``."""
    # A place is a linked list of (parent, member) pairs, spelt out only for the error.
    stack: list[tuple[Any, tuple[Any, str | int] | None]] = [(root, None)]
    while stack:
        value, place = stack.pop()
        if isinstance(value, _LongInteger):
            message = f"an integer of {value.digits} digits; at most {MAX_INT_DIGITS}"
            raise InvalidInfoError(message, field=_spell(place))
        members = value.items() if isinstance(value, dict) else enumerate(value)
        stack.extend(
            (v, (place, k)) for k, v in members if isinstance(v, dict | list | _LongInteger)
        )


def _spell(place: tuple[Any, str | int] | None) -> str:
    """``scales[0].size[1]`` for the place of a value in a document."""
    parts: list[str | int] = []
    while place is not None:
        place, member = place
        parts.append(member)
    out = ""
    for member in reversed(parts):
        out += f"[{member}]" if isinstance(member, int) else f".{member}" if out else member
    return out or "(document)"
