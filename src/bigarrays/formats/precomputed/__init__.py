"""The Neuroglancer precomputed format: info model, chunk keys and layouts."""

from bigarrays.formats.precomputed.chunks import (
    ChunkLayout,
    chunk_name,
    open_layout,
    parse_chunk_name,
    scale_grid,
)
from bigarrays.formats.precomputed.info import Info, Scale, ShardingSpec

__all__ = [
    "ChunkLayout",
    "Info",
    "Scale",
    "ShardingSpec",
    "chunk_name",
    "open_layout",
    "parse_chunk_name",
    "scale_grid",
]
