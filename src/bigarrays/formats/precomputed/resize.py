"""Growing and shrinking a precomputed volume.

Precomputed names a chunk by its box clipped to the scale's bounds (``0-64_0-64_0-30``) and a
sharded chunk by the Morton code of its place in a grid whose size the bounds give, so the bounds
are part of every chunk's name. Two ways to change them follow from that:

- **A fixed grid.** ``create(..., max_shape=...)`` writes the info of the largest volume (its
  ``size`` and ``voxel_offset`` fix chunk names and shard ids for good) and keeps the bounds that
  bigarrays shows under the scale's ``bigarrays.bounds`` member. Any resize inside that grid
  changes this member alone; other readers (Neuroglancer, TensorStore) see the whole grid, whose
  voxels outside the bounds read as the fill value. Sharded scales always keep their grid: growing
  one past it would rewrite every shard, and is refused.
- **A grid that follows the bounds** (an unsharded volume made without ``max_shape``). The info's
  ``size`` and ``voxel_offset`` change, so the chunks at the edges that move are rewritten under
  their new names: written first (no reader of the old info looks there), then the info is put
  if it is still the version read, then the old names are deleted. ``voxel_offset`` moves by
  whole chunks only, so that every other chunk keeps its name.

  A resize that moves chunks first marks the info (``bigarrays.resizing`` in the first scale,
  which viewers ignore), then copies, then stores the new info and deletes the old names. A
  writer notes the info's version before it writes and looks again after
  (``PrecomputedDataset.renamed``): a write made before the mark was copied; a writer that
  finds the version changed waits for the mark to go and writes again under the new names,
  then deletes what it left under the old ones (``drop_old_names``).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from bigarrays.box import Box, ChunkGrid
from bigarrays.errors import InvalidInfoError, ResizeRefusedError, VersionConflictError
from bigarrays.fill import filled, is_fill
from bigarrays.formats.bounded_json import MAX_JSON_BYTES
from bigarrays.formats.documents import update_document
from bigarrays.formats.merge import MAX_CONFLICT_RETRIES
from bigarrays.formats.precomputed.chunks import ChunkLayout
from bigarrays.formats.precomputed.format import INFO_KEY
from bigarrays.formats.precomputed.info import EXTENSION_KEY, Info, Scale, check_extent
from bigarrays.stores import Store

#: The member of a scale's ``bigarrays`` object that holds the bounds of a fixed grid.
BOUNDS_MEMBER = "bounds"
#: The member of the first scale's ``bigarrays`` object that marks a resize under way.
RESIZING_MEMBER = "resizing"
#: How long a writer waits for a resize under way to finish before it gives up, in seconds.
RESIZE_WAIT_SECONDS = 60.0


def stored_extent(scale: Scale) -> Box | None:
    """The bounds a fixed-grid scale shows (x, y, z), or None where they are the grid's."""
    ext = scale.extra.get(EXTENSION_KEY)
    entry = ext.get(BOUNDS_MEMBER) if isinstance(ext, dict) else None
    if entry is None:
        return None
    name = f"scale {scale.key!r} {EXTENSION_KEY}.{BOUNDS_MEMBER}"
    try:
        start = tuple(int(v) for v in entry["voxel_offset"] if isinstance(v, int))
        size = tuple(int(v) for v in entry["size"] if isinstance(v, int))
    except (TypeError, KeyError):
        start = size = ()
    if len(start) != 3 or len(size) != 3 or min(size) < 0:
        raise InvalidInfoError(
            f"{name} must be {{'voxel_offset': [x, y, z], 'size': [x, y, z]}} of integers, "
            f"sizes >= 0; got {entry!r}"
        )
    box = Box.from_shape(size, start)
    grid = Box.from_shape(scale.size, scale.voxel_offset)
    if not grid.contains(box):
        raise InvalidInfoError(f"{name} {box} must lie inside the scale's grid {grid}")
    return box


def with_extent(scale: Scale, extent: Box | None) -> Scale:
    """``scale`` showing ``extent`` (x, y, z) of its grid; None: the whole grid, not fixed."""
    extra = dict(scale.extra)
    ext = dict(extra.get(EXTENSION_KEY) or {})
    ext.pop(BOUNDS_MEMBER, None)
    if extent is not None:
        ext[BOUNDS_MEMBER] = {"voxel_offset": list(extent.start), "size": list(extent.shape)}
    if ext:
        extra[EXTENSION_KEY] = ext
    else:
        extra.pop(EXTENSION_KEY, None)
    return replace(scale, extra=extra)


def level_extent(info: Info, mip: int) -> Box | None:
    """The bounds of scale ``mip`` over its grid's four axes, where a fixed grid is larger."""
    extent = stored_extent(info.scales[mip])
    if extent is None:
        return None
    return Box((*extent.start, 0), (*extent.stop, info.num_channels))


@dataclass(frozen=True)
class Plan:
    """A resize of the first scale: the bounds (x, y, z, channel) before and after, the info
    now stored and the one to store, and whether chunks move to new names."""

    before: Box
    after: Box
    old: Info
    new: Info

    @property
    def moves(self) -> bool:
        a, b = self.old.scales[0], self.new.scales[0]
        return (a.size, a.voxel_offset) != (b.size, b.voxel_offset)


#: Level k's bounds (x, y, z, channel) for level 0's (see ``Dataset.resized``).
LevelBounds = Callable[[int, Box], Box]


def plan(
    info: Info, change: Callable[[Box], Box], url: str, levels: LevelBounds | None = None
) -> Plan:
    """What ``change`` of the first scale's bounds stores, or a typed refusal; with ``levels``,
    every other scale's bounds follow, inside its fixed grid."""
    if len(info.scales) > 1 and levels is None:
        raise ResizeRefusedError(
            f"{url} has {len(info.scales)} scales; a resize would leave scales 1.. no longer "
            "scale 0 pooled. Resize a volume of one scale, then build its pyramid again "
            "(vol.downsample(overwrite=True))"
        )
    first = _plan_first(info.with_scales(info.scales[:1]), change, url)
    if len(info.scales) == 1:
        return first
    if first.moves:
        raise ResizeRefusedError(
            f"cannot resize {url} to {first.after}: its first scale's grid follows its bounds, "
            "and the chunks of every scale would be renamed. Create the volume with max_shape= "
            "(or max_bounds=) covering the growth"
        )
    scales = [first.new.scales[0]]
    for k, scale in enumerate(info.scales[1:], start=1):
        box = levels(k, first.after) if levels is not None else first.after
        box = Box(box.start[:3], box.stop[:3])
        grid = Box.from_shape(scale.size, scale.voxel_offset)
        if not grid.contains(box):
            raise ResizeRefusedError(
                f"cannot resize {url} to {first.after}: scale {k} ({scale.key!r}) would need "
                f"{box}, outside its grid {grid}. Create the volume with max_shape= (or "
                "max_bounds=) covering the growth before its levels are added"
            )
        scales.append(with_extent(_unmarked(scale), box))
    return Plan(first.before, first.after, info, info.with_scales(scales))


def _plan_first(info: Info, change: Callable[[Box], Box], url: str) -> Plan:
    scale, nc = _unmarked(info.scales[0]), info.num_channels
    grid = Box.from_shape(scale.size, scale.voxel_offset)
    extent = stored_extent(scale)
    shown = extent or grid
    before = Box((*shown.start, 0), (*shown.stop, nc))
    after = change(before)
    if (after.start[3], after.stop[3]) != (0, nc):
        raise ResizeRefusedError(
            f"a precomputed volume keeps its {nc} channel(s); resize x, y and z only"
        )
    box = Box(after.start[:3], after.stop[:3])
    check_extent(box.shape, box.start, ("size", "voxel_offset"))
    fixed = scale.sharding is not None or extent is not None
    if fixed and grid.contains(box):
        return Plan(before, after, info, info.with_scales([with_extent(scale, box)]))
    if scale.sharding is not None:
        raise ResizeRefusedError(
            f"cannot resize {url} to {box}: it reaches outside the grid {grid} of its sharded "
            "scale, whose shard ids follow the grid's size, so every shard would be rewritten. "
            "Create the volume with max_shape= (or max_bounds=) covering the growth: resizes "
            "inside that grid change the info alone"
        )
    new_grid = _hull(grid, box) if fixed else box
    chunk = scale.chunk_size
    for d in range(3):
        moved = new_grid.start[d] - grid.start[d]
        if moved % chunk[d]:
            raise ResizeRefusedError(
                f"cannot resize {url} to {box}: its chunks are anchored at voxel_offset "
                f"{grid.start}, and moving it by {moved} voxels along {'xyz'[d]} (not a "
                f"multiple of the chunk's {chunk[d]}) would rename every chunk. Grow or shrink "
                "the low end by whole chunks, or create the volume with max_bounds= covering "
                "the growth"
            )
    new_scale = replace(scale, size=new_grid.shape, voxel_offset=new_grid.start)  # type: ignore[arg-type]
    new_scale = with_extent(new_scale, box if fixed else None)
    return Plan(before, after, info, info.with_scales([new_scale]))


def _hull(a: Box, b: Box) -> Box:
    return Box(
        tuple(min(x, y) for x, y in zip(a.start, b.start, strict=True)),
        tuple(max(x, y) for x, y in zip(a.stop, b.stop, strict=True)),
    )


def resize(
    store: Store,
    change: Callable[[Box], Box],
    session: Callable[[Info], Info],
    levels: LevelBounds | None = None,
) -> tuple[Plan, Info]:
    """Apply ``change`` to the stored info (see the module notes); the plan carried out and the
    info stored. ``session(info)`` adds what this session writes with (its compression);
    ``levels`` gives the other scales' bounds (see ``Dataset.resized``)."""
    done: list[Plan] = []

    def edit(current: bytes | None) -> bytes:
        step = plan(_parse(current, store.url), change, store.url, levels)
        if step.moves:
            raise _Moves
        done[:] = [step]
        return step.new.to_bytes()

    try:
        stored = update_document(store, INFO_KEY, edit)
        return done[0], Info.from_bytes(stored)
    except _Moves:
        return _resize_moving(store, change, session)


class _Moves(Exception):
    """The resize renames chunks, which must be written before the info is."""


def _parse(current: bytes | None, url: str) -> Info:
    if current is None:
        raise InvalidInfoError(f"the info of {url} was deleted while it was resized")
    return Info.from_bytes(current, url=f"{url.rstrip('/')}/{INFO_KEY}")


def _resize_moving(
    store: Store, change: Callable[[Box], Box], session: Callable[[Info], Info]
) -> tuple[Plan, Info]:
    for _ in range(MAX_CONFLICT_RETRIES):
        current, version = _read_info(store)
        step = plan(_parse(current, store.url), change, store.url)
        try:
            version = _put_info(store, _marked(step.old), version)
            old = ChunkLayout(store, session(step.old), 0)
            new = ChunkLayout(store, session(step.new), 0)
            written, stale = _move_edges(old, new, step.after)
            try:
                _put_info(store, step.new, version)
            except VersionConflictError:
                _drop_unnamed(store, written)
                raise
        except VersionConflictError:
            continue
        for key in stale:
            store.delete(key)
        return step, step.new
    raise VersionConflictError(INFO_KEY, store.url)


def _read_info(store: Store) -> tuple[bytes | None, str | None]:
    if store.conditional_writes:
        return store.get_with_version(INFO_KEY, max_size=MAX_JSON_BYTES)
    return store.get(INFO_KEY, max_size=MAX_JSON_BYTES), None


def _put_info(store: Store, info: Info, version: str | None) -> str | None:
    """Store ``info`` if the stored one is still at ``version`` (stores without versions:
    unconditionally); the new version."""
    if version is None:
        return store.put(INFO_KEY, info.to_bytes())
    return store.put(INFO_KEY, info.to_bytes(), mode="if_version", version=version)


def _marked(info: Info) -> Info:
    """``info`` with its first scale marked as being resized (see the module notes)."""
    scale = info.scales[0]
    ext = dict(scale.extra.get(EXTENSION_KEY) or {})
    ext[RESIZING_MEMBER] = True
    marked = replace(scale, extra={**scale.extra, EXTENSION_KEY: ext})
    return info.with_scales([marked, *info.scales[1:]])


def resizing(info: Info) -> bool:
    """True while a resize that moves chunks of ``info``'s first scale is under way."""
    ext = info.scales[0].extra.get(EXTENSION_KEY)
    return isinstance(ext, dict) and bool(ext.get(RESIZING_MEMBER))


def _unmarked(scale: Scale) -> Scale:
    ext = scale.extra.get(EXTENSION_KEY)
    if not isinstance(ext, dict) or RESIZING_MEMBER not in ext:
        return scale
    rest = {k: v for k, v in ext.items() if k != RESIZING_MEMBER}
    extra = {k: v for k, v in scale.extra.items() if k != EXTENSION_KEY}
    return replace(scale, extra={**extra, EXTENSION_KEY: rest} if rest else extra)


def _affected(old: ChunkGrid, new: ChunkGrid) -> Iterator[tuple[int, ...]]:
    """Grid indices (in ``old``) of the chunks whose clipped box changes or leaves ``new``."""
    per_axis: list[set[int]] = []
    for d in range(3):
        c, o1, stop0, stop1 = old.chunk[d], new.origin[d], old.bounds.stop[d], new.bounds.stop[d]
        hit = set()
        for i in range(old.grid_shape[d]):
            a = old.origin[d] + i * c
            if not o1 <= a < stop1 or min(a + c, stop0) != min(a + c, stop1):
                hit.add(i)
        per_axis.append(hit)
    seen: set[tuple[int, ...]] = set()
    for d, hit in enumerate(per_axis):
        ranges: list[Any] = [range(n) for n in old.grid_shape[:3]]
        ranges[d] = sorted(hit)
        for index in itertools.product(*ranges):
            if index not in seen:
                seen.add(index)
                yield (*index, 0)


def _move_edges(
    old: ChunkLayout, new: ChunkLayout, after: Box
) -> tuple[list[tuple[str, Box]], list[str]]:
    """Write the edge chunks of ``old`` that change name under ``new``'s name (voxels outside
    ``after`` cleared); the keys written (with their boxes) and the old keys to delete once the
    info is stored."""
    written: list[tuple[str, Box]] = []
    stale: list[str] = []
    g0, g1 = old.grid, new.grid
    for index in _affected(g0, g1):
        box0 = g0.chunk_box(index)
        chunk = old.load(index)
        if chunk is not None:
            stale.append(old.key(index))
        a = box0.start
        if not all(g1.origin[d] <= a[d] < g1.bounds.stop[d] for d in range(3)):
            continue
        index1 = (*((a[d] - g1.origin[d]) // g1.chunk[d] for d in range(3)), 0)
        box1 = g1.chunk_box(index1)
        keep = box0.intersect(box1).intersect(after)
        out = filled(box1.shape, new.dtype, new.fill_value, "F")
        if chunk is not None and not keep.empty:
            out[keep.slices(box1.start)] = chunk[keep.slices(box0.start)]
        key = new.key(index1)
        if chunk is None or is_fill(out, new.fill_value):
            new.store.delete(key)  # a stale copy left by an interrupted resize
            continue
        new.save(index1, out)
        written.append((key, box1))
    return written, stale


def _drop_unnamed(store: Store, written: list[tuple[str, Box]]) -> None:
    """After a lost race, delete the chunks written under names that the info now stored does
    not give (another resize may have written the same names: those stay)."""
    data = store.get(INFO_KEY, max_size=MAX_JSON_BYTES)
    if data is None or not written:
        return
    scale = Info.from_bytes(data).scales[0]
    grid = ChunkGrid(scale.voxel_offset, scale.size, scale.chunk_size)
    for key, box in written:
        if not _named(grid, box):
            store.delete(key)


def _named(grid: ChunkGrid, box: Box) -> bool:
    """True when ``grid`` (x, y, z) names a chunk by ``box``'s x, y and z: a chunk's clipped box."""
    start, stop = box.start[:3], box.stop[:3]
    return grid.bounds.contains(Box(start, stop)) and all(
        (a - o) % c == 0 and b == min(a + c, e)
        for a, b, o, c, e in zip(start, stop, grid.origin, grid.chunk, grid.bounds.stop,
                                 strict=True)
    )  # fmt: skip


def drop_old_names(store: Store, old: Info, box: Box) -> None:
    """Delete the chunks of ``box`` (over the first scale's grid axes) that a write made with
    ``old`` left under names the stored info no longer gives.

    That is what a writer leaves that lost the race with a resize: it wrote with the old info
    after the resize had copied (and deleted) the old names, then found the info changed and
    wrote its box again under the new names (``renamed_info``). Every writer that wrote with an
    old info writes again so, which is why such a chunk holds nothing to keep. A chunk goes only
    if it is still at the version read BEFORE the info was found not to name it and no resize
    to be under way: a resize that names it again afterwards marks the info first and then
    rewrites (or deletes) the chunk, so the conditional delete fails and the chunk stays. Stores
    without versions cannot tell, and keep such chunks (a later resize that names them again
    replaces them).
    """
    scale = old.scales[0]
    if (
        not store.conditional_writes
        or scale.sharding is not None
        or stored_extent(scale) is not None
    ):
        return
    layout = ChunkLayout(store, old, 0)
    found = []
    for index in layout.grid.indices(box):
        key = layout.key(index)
        data, version = store.get_range_with_version(key, 0, 1)
        if data is not None and version is not None:
            found.append((key, layout.grid.chunk_box(index), version))
    data, _ = _read_info(store)
    if not found or data is None:
        return
    stored = _parse(data, store.url)
    if resizing(stored):
        return  # the resize under way may be naming them again: the next one replaces them
    now = stored.scales[0]
    grid = ChunkGrid(now.voxel_offset, now.size, now.chunk_size)
    for key, chunk, version in found:
        if now.key == scale.key and _named(grid, chunk):
            continue
        # A conflict: rewritten since it was read, so no longer this write's leftover.
        with contextlib.suppress(VersionConflictError):
            store.delete_if_version(key, version)


def renamed_info(
    store: Store, info: Info, seen: str | None
) -> tuple[Info | None, str | None] | None:
    """What ``PrecomputedDataset.renamed`` needs of the stored info: None where no chunk
    written with ``info`` can be renamed (a fixed grid: sharded, or ``max_shape``; or several
    scales, which resizes refuse) or the info is still at version ``seen``; else the info
    stored now (once no resize is under way) and its version, the info None where nothing needs
    writing again: ``seen`` was not known yet and the grid is still ``info``'s. Stores without
    versions compare grids."""
    scale = info.scales[0]
    if len(info.scales) > 1 or scale.sharding is not None or stored_extent(scale) is not None:
        return None
    deadline = time.monotonic() + RESIZE_WAIT_SECONDS
    pause = 0.001
    while True:
        data, version = _read_info(store)
        if data is None or (seen is not None and version == seen):
            return None  # no info stored (yet: a conversion writes it last), or unchanged
        stored = _parse(data, store.url)
        if not resizing(stored):
            break
        if time.monotonic() > deadline:
            raise ResizeRefusedError(
                f"a resize of {store.url} has been under way for {RESIZE_WAIT_SECONDS:.0f} s "
                f"(its info's first scale is marked {EXTENSION_KEY}.{RESIZING_MEMBER}); if the "
                "process resizing it died, resize it again to finish"
            )
        time.sleep(pause)
        pause = min(2 * pause, 0.1)
    now = stored.scales[0]
    same = (now.size, now.voxel_offset) == (scale.size, scale.voxel_offset)
    if same and (seen is None or version is None):
        return None if version is None else (None, version)
    return stored, version


def fixed_grid(info: Info, bounds: Box) -> Info:
    """``info`` of a new volume whose first scale's grid is fixed, showing ``bounds`` of it."""
    return info.with_scales([with_extent(info.scales[0], bounds), *info.scales[1:]])
