"""What a format gives the core: a :class:`Dataset` of :class:`Level` s.

A format module (precomputed; Zarr next) reads a dataset's metadata from a store and builds, for
each resolution, a :class:`Level`: the chunk source the engine reads and writes through, the axes
and bounds that indexing needs, and the few descriptive facts (resolution, encoding) that a
``BigArray`` reports. ``BigArray`` knows nothing else of the format, so every feature built on it
(pyramids, streams, the viewer, Dask) works for every format that builds levels.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.box import Box
from bigarrays.chunk_source import ChunkSource
from bigarrays.errors import UnsupportedError
from bigarrays.stores import Store


@dataclass(frozen=True)
class Axis:
    """One axis of a level's chunk grid, as callers index it.

    Axes take absolute coordinates (``-50`` is the voxel at -50) unless ``positional``: then they
    take Python sequence indices (``-1`` is the last), as precomputed's channel axis does. A
    ``hidden`` axis has extent 1 and is never named by callers (a volume's single channel).
    """

    name: str
    positional: bool = False
    hidden: bool = False
    #: What the axis measures: "space", "time", "channel" or "other" (OME-NGFF's axis types);
    #: pyramids pool space axes only.
    kind: str = "space"


@dataclass(frozen=True)
class Level:
    """One resolution of a dataset: its chunks and what indexing them needs."""

    #: The chunk source the engine reads and writes; its grid has one axis per entry of ``axes``.
    source: ChunkSource
    axes: tuple[Axis, ...]
    #: Physical size of a voxel along each non-positional, visible axis (nm for precomputed).
    resolution: tuple[float, ...]
    #: The codec that turns a chunk into bytes ("raw", "jpeg", ..., or the Zarr chain's name).
    encoding: str
    #: The compression of the chunks' bytes (None for none).
    compression: str | None
    #: Whether chunks can be deleted one by one (for ``skip_empty``; shards hold several).
    deletes_chunks: bool
    #: The format's own description of the level (a precomputed ``Scale``), for format-aware
    #: callers such as ``bigarrays info``; the core never looks inside it.
    native: Any = None
    #: Voxels per axis of the unit a writer should fill whole: the chunk, or a box-shaped shard
    #: (None: the chunk shape). Units tile the grid from its origin, as chunks do.
    write_unit: tuple[int, ...] | None = None
    #: The voxels callers see, where they are fewer than the chunk grid's (a growable array
    #: whose grid was fixed up front for a larger size); None: the grid's bounds.
    extent: Box | None = None

    @property
    def unit(self) -> tuple[int, ...]:
        """:attr:`write_unit`, or the chunk shape where the level has none of its own."""
        return self.write_unit if self.write_unit is not None else self.source.grid.chunk

    @property
    def bounds(self) -> Box:
        """The level's voxels over every grid axis, hidden and positional ones included."""
        return self.extent if self.extent is not None else self.source.grid.bounds

    @property
    def spatial(self) -> tuple[int, ...]:
        """Positions of the axes that take absolute coordinates (the ``bounds`` of callers)."""
        return tuple(i for i, a in enumerate(self.axes) if not a.positional and not a.hidden)

    @property
    def visible(self) -> tuple[int, ...]:
        """Positions of the axes callers index (every axis but the hidden ones)."""
        return tuple(i for i, a in enumerate(self.axes) if not a.hidden)


@dataclass(frozen=True)
class LevelSpec:
    """A level to add to a dataset: pooled from level 0 by ``factor``, stored as described.

    Every tuple has one entry per grid axis of level 0 (channels and time included, with factor
    1). ``None`` members mean "as level 0 has it".
    """

    #: Voxels of level 0 per voxel of this level along each axis (cumulative, not per step).
    factor: tuple[int, ...]
    #: The level's voxels, in its own coordinates (``floor(lo / f)`` to ``ceil(hi / f)``).
    bounds: Box
    chunks: tuple[int, ...] | None = None
    encoding: str | None = None
    compression: str | None = None
    #: True, False, a format-specific description, or None for "sharded if level 0 is".
    sharding: Any = None
    #: Uncompressed bytes a shard of this level should hold at most, where the format chooses
    #: the shards (so that a writer can hold a shard's worth of level 0); None: its default.
    shard_bytes: int | None = None


@dataclass(frozen=True)
class Resized:
    """What :meth:`Dataset.resized` did: the dataset after, and level 0's bounds before and
    after (over every grid axis)."""

    dataset: Dataset
    before: Box
    after: Box
    #: A chunk source whose grid covers ``before``: the caller writes the fill value through it
    #: over the part of ``before`` outside ``after``, so that cropped voxels never come back.
    clear: ChunkSource
    #: Where the format clips edge chunks to the bounds when it writes them (Zarr), a source
    #: whose grid reaches whole chunks past ``after``: written through it, voxels past the old
    #: end merge into an edge chunk instead of replacing it, and so keep what another process,
    #: which saw a larger size, wrote there. None: the level's own source.
    grow: ChunkSource | None = None


class Dataset(abc.ABC):
    """A dataset on a store: its levels (finest first) and its metadata document.

    It pickles as its store's settings and its metadata, so a BigArray sent to another process
    (Dask, multiprocessing) reopens the same dataset there without reading the metadata again.
    """

    #: The format's name, as ``ba.open(..., format=...)`` takes it.
    format_name: str = ""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    @abc.abstractmethod
    def num_levels(self) -> int:
        """How many resolutions the dataset has (precomputed scales)."""

    @abc.abstractmethod
    def level(self, mip: int) -> Level:
        """Level ``mip`` (0 is the finest); ``ScaleNotFoundError`` for one that does not exist."""

    @property
    @abc.abstractmethod
    def dtype(self) -> np.dtype: ...

    @property
    @abc.abstractmethod
    def num_channels(self) -> int: ...

    @property
    @abc.abstractmethod
    def layer_type(self) -> str:
        """``"image"`` or ``"segmentation"``: how viewers show it and how pyramids pool it."""

    @abc.abstractmethod
    def document(self) -> dict[str, Any]:
        """The dataset's metadata document as JSON (a fresh copy: changing it changes nothing)."""

    @property
    def pooling_method(self) -> str | None:
        """How the levels after the first were pooled, where the format records it."""
        return None

    def with_levels(
        self, specs: Sequence[LevelSpec], *, method: str, replace_levels: bool
    ) -> Dataset:
        """Store metadata that adds ``specs`` after level 0 and return the dataset it describes.

        Levels other than level 0 that exist already are an error (``LevelExistsError``) unless
        ``replace_levels``: then they leave the metadata and their chunks are deleted first, so
        that nothing of them reappears. ``method`` is how the levels are pooled, for formats
        that record it. The new levels hold no chunks yet.
        """
        raise UnsupportedError(f"{self.format_name} datasets cannot hold more than one level")

    def resized(
        self, change: Callable[[Box], Box], levels: Callable[[int, Box], Box] | None = None
    ) -> Resized:
        """Store metadata whose level-0 bounds are ``change(bounds stored now)``.

        The metadata is re-read and ``change`` called again when another process changed it
        meanwhile (a conditional write), so concurrent resizes and appends never lose one
        another's change; ``change`` must have no other effect and may raise to refuse.
        Datasets of more than one level are refused (their other levels would no longer be
        level 0 pooled) unless ``levels(k, level-0 bounds after)`` gives level k's new bounds:
        a writer that pools the levels itself (a stream) grows them all at once. Levels grow
        only where their chunk names stay (a fixed grid, Zarr), else the resize is refused.
        """
        raise UnsupportedError(f"{self.format_name} datasets cannot be resized")

    def renamed(self, *, pin: bool = False) -> Dataset | None:
        """The dataset as stored now, where the metadata changed since it was last looked at
        here, so that a resize may have renamed chunks that writes went to (precomputed edge
        chunks of a grid that follows the bounds); else None. A writer calls it with ``pin``
        before writing (which reads the metadata only the first time) and without after, and
        when given a dataset writes again through it."""
        return None

    def drop_renamed(self, before: Dataset, box: Box) -> None:  # noqa: B027 - optional hook
        """After a write of ``box`` through ``before`` (level 0) was written again through this
        dataset (see :meth:`renamed`), delete what the first write left under names the
        metadata no longer gives (precomputed edge chunks that a resize renamed meanwhile)."""

    def ahead(self, bounds: Box, mip: int = 0) -> ChunkSource:
        """Level ``mip``'s chunk source over a grid that covers ``bounds`` (every grid axis),
        with the stored metadata unchanged: a streaming writer fills whole chunks past the end
        through it, under the names they keep once a resize shows them."""
        raise UnsupportedError(f"{self.format_name} datasets cannot be written past their end")
