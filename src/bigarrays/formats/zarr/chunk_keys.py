"""Chunk keys: where the chunk at a grid index lives, relative to the array's metadata.

Zarr v3's ``default`` encoding prefixes ``c`` (``c/1/2/3`` or ``c.1.2.3``), its ``v2`` encoding
and Zarr v2 itself do not (``1.2.3`` or ``1/2/3``). A 0-d array's one chunk is ``c`` or ``0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bigarrays.errors import OutOfBoundsError, UnsupportedError
from bigarrays.formats.zarr.document import fail

Separator = Literal["/", "."]
SEPARATORS: tuple[Separator, ...] = ("/", ".")
#: The separator each encoding has when its configuration names none.
DEFAULT_SEPARATORS: dict[str, Separator] = {"default": "/", "v2": "."}


def separator(value: Any, field: str) -> Separator:
    if value == "/":
        return "/"
    if value == ".":
        return "."
    raise fail(field, f"expected '/' or '.', got {value!r}")


@dataclass(frozen=True)
class ChunkKeyEncoding:
    """A v3 ``chunk_key_encoding``; Zarr v2 arrays use ``ChunkKeyEncoding("v2", separator)``."""

    name: Literal["default", "v2"] = "default"
    separator: Separator = "/"

    @classmethod
    def from_json(cls, value: Any, field: str = "chunk_key_encoding") -> ChunkKeyEncoding:
        if isinstance(value, str):  # the short-hand of an extension point without configuration
            value = {"name": value}
        if not isinstance(value, Mapping):
            raise fail(field, f"expected {{'name': 'default', ...}}, got {value!r}")
        name = value.get("name")
        if not isinstance(name, str):
            raise fail(f"{field}.name", f"expected 'default' or 'v2', got {name!r}")
        if name not in DEFAULT_SEPARATORS:
            raise UnsupportedError(f"chunk key encoding {name!r} is not supported; bigarrays "
                                   "reads 'default' and 'v2'")  # fmt: skip
        config = value.get("configuration", {})
        if not isinstance(config, Mapping):
            raise fail(f"{field}.configuration", f"expected a JSON object, got {config!r}")
        sep = config.get("separator", DEFAULT_SEPARATORS[name])
        return cls(
            "default" if name == "default" else "v2",
            separator(sep, f"{field}.configuration.separator"),
        )

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "configuration": {"separator": self.separator}}

    def key(self, index: tuple[int, ...]) -> str:
        """The key of the chunk at grid ``index`` (not checked against a grid: see the arrays)."""
        if self.name == "default":
            return self.separator.join(("c", *map(str, index)))
        return self.separator.join(map(str, index)) if index else "0"

    def index(self, key: str, ndim: int) -> tuple[int, ...] | None:
        """The grid index a key names in an array of ``ndim`` dimensions, or None for a key that
        is not a chunk's (``zarr.json``, ``c/x``)."""
        if ndim == 0:
            return () if key == self.key(()) else None
        parts = key.split(self.separator)
        if self.name == "default":
            if parts[0] != "c":
                return None
            parts = parts[1:]
        if len(parts) != ndim or not all(p.isascii() and p.isdigit() for p in parts):
            return None
        return tuple(int(p) for p in parts)


def checked_key(encoding: ChunkKeyEncoding, index: tuple[int, ...], grid: tuple[int, ...]) -> str:
    """The key of ``index``, which must lie in ``grid`` (chunks per dimension)."""
    if len(index) != len(grid) or not all(0 <= i < g for i, g in zip(index, grid, strict=True)):
        raise OutOfBoundsError(f"chunk index {tuple(index)} lies outside the grid of "
                               f"{grid} chunks")  # fmt: skip
    return encoding.key(index)
