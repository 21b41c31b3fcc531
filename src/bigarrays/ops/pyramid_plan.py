"""Planning a pyramid: the factors of its levels, their bounds, and the blocks work goes in.

Everything here is arithmetic on boxes, per grid axis of level 0 (channel and time axes included,
with factor 1); nothing reads or writes.

Blocks. All levels come from one read of each level-0 block, so a block must never cut a pooling
cell of any level: its edges lie on multiples of the coarsest factor (cells are anchored at 0).
Where it can, a block's edges also lie on the write units (chunks, or shards) of the levels, so
that every level is written in whole units and no two blocks write the same one. The units of
levels whose voxel offsets are not multiples of their factor cannot always be aligned with the
cells; such levels, and those whose alignment would make a block bigger than memory allows, are
written in parts of units at block edges: conditional merges, safe against the other blocks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bigarrays.box import Box
from bigarrays.errors import InvalidInfoError

#: Levels a plan makes at most when nothing else stops it (2**32 voxels per axis pooled away).
MAX_LEVELS = 32


def auto_steps(
    shape: Sequence[int],
    chunk: Sequence[int],
    resolution: Sequence[float],
    pooled: Sequence[bool],
    num_mips: int | None,
) -> list[tuple[int, ...]]:
    """The per-level factors of a near-isotropic pyramid (each relative to the level before).

    Each step halves the pooled axes whose voxels are finest: all of them once every pooled axis
    is within a factor 2 of the coarsest, else those at most half the coarsest (8x8x40 nm gives
    2x2x1 twice, then 2x2x2). Axes already one voxel wide stay. It stops after ``num_mips``
    levels, or (``num_mips`` None) at the first level that fits in one chunk.
    """
    size = list(shape)
    res = [float(r) for r in resolution]
    steps: list[tuple[int, ...]] = []
    limit = MAX_LEVELS if num_mips is None else num_mips
    while len(steps) < limit:
        if num_mips is None and _fits(size, chunk, pooled):
            break
        live = [i for i, p in enumerate(pooled) if p and size[i] > 1]
        if not live:
            break
        coarsest = max(res[i] for i in live)
        isotropic = all(coarsest < 2 * res[i] for i in live)
        step = tuple(
            2 if i in live and (isotropic or 2 * res[i] <= coarsest) else 1
            for i in range(len(size))
        )
        steps.append(step)
        size = [-(-n // f) for n, f in zip(size, step, strict=True)]
        res = [r * f for r, f in zip(res, step, strict=True)]
    return steps


def fixed_steps(
    step: Sequence[int], shape: Sequence[int], chunk: Sequence[int], pooled: Sequence[bool],
    num_mips: int | None,
) -> list[tuple[int, ...]]:  # fmt: skip
    """``step`` repeated ``num_mips`` times, or (None) until a level fits in one chunk."""
    step = tuple(step)
    if all(f == 1 for f in step):
        raise InvalidInfoError(f"factor {step} pools nothing: give at least one factor above 1")
    if num_mips is not None:
        return [step] * num_mips
    steps: list[tuple[int, ...]] = []
    size = list(shape)
    while not _fits(size, chunk, pooled) and len(steps) < MAX_LEVELS:
        if all(n == 1 or f == 1 for n, f in zip(size, step, strict=True)):
            break
        steps.append(step)
        size = [-(-n // f) for n, f in zip(size, step, strict=True)]
    return steps


def _fits(size: Sequence[int], chunk: Sequence[int], pooled: Sequence[bool]) -> bool:
    return all(n <= c for n, c, p in zip(size, chunk, pooled, strict=True) if p)


def cumulative(steps: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Level k's factor relative to level 0, for k = 1, 2, ..."""
    out: list[tuple[int, ...]] = []
    for step in steps:
        prev = out[-1] if out else (1,) * len(step)
        out.append(tuple(a * b for a, b in zip(prev, step, strict=True)))
    return out


@dataclass(frozen=True)
class LevelGrid:
    """What planning needs of one level: its factor from level 0, bounds and write unit."""

    factor: tuple[int, ...]
    bounds: Box
    unit: tuple[int, ...]
    #: Where the units' grid starts (the chunk grid's origin): the bounds' start unless the
    #: grid was fixed larger than the bounds (``create(max_shape=...)``).
    origin: tuple[int, ...] | None = None

    @property
    def grid_origin(self) -> tuple[int, ...]:
        return self.bounds.start if self.origin is None else self.origin

    def affected(self, pooled: Box) -> Box:
        """The voxels of this level within whole write units around ``pooled`` (a level-0 box
        pooled by this level's factor): what an update of that box rewrites."""
        origin = self.grid_origin
        start = [o + (a - o) // u * u for a, o, u in zip(pooled.start, origin, self.unit,
                                                         strict=True)]  # fmt: skip
        stop = [o + -(-(b - o) // u) * u for b, o, u in zip(pooled.stop, origin, self.unit,
                                                            strict=True)]  # fmt: skip
        return Box(start, stop).intersect(self.bounds)

    def footprint(self, box: Box) -> Box:
        """The level-0 voxels whose cells make up this level's ``box`` (unclipped)."""
        return Box(
            tuple(a * f for a, f in zip(box.start, self.factor, strict=True)),
            tuple(b * f for b, f in zip(box.stop, self.factor, strict=True)),
        )


def _merge_congruence(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int] | None:
    """x = r1 (mod m1) and x = r2 (mod m2) as one congruence, or None when none solves both."""
    (r1, m1), (r2, m2) = a, b
    g = math.gcd(m1, m2)
    if (r2 - r1) % g:
        return None
    lcm = m1 // g * m2
    # r1 + m1 * t = r2 (mod m2)  =>  t = (r2 - r1) / g * inv(m1 / g) (mod m2 / g)
    t = (r2 - r1) // g * pow(m1 // g, -1, m2 // g) % (m2 // g) if m2 // g > 1 else 0
    return ((r1 + m1 * t) % lcm, lcm)


@dataclass(frozen=True)
class BlockPlan:
    """Block edges per axis: ``phase + n * period``, within a region of level 0."""

    phase: tuple[int, ...]
    period: tuple[int, ...]
    #: The levels (1-based, as in ``levels[k - 1]``) whose units the edges align to.
    aligned: tuple[int, ...]

    def blocks(self, region: Box) -> Iterator[Box]:
        """The blocks that tile ``region``, in C order of their grid positions."""
        edges = []
        for lo, hi, p, n in zip(region.start, region.stop, self.phase, self.period, strict=True):
            first = lo - (lo - p) % n
            cuts = [lo, *range(first + n, hi, n), hi] if hi > lo else []
            edges.append([(a, b) for a, b in itertools.pairwise(cuts) if b > a])
        for parts in _product(edges):
            yield Box(tuple(a for a, _ in parts), tuple(b for _, b in parts))


def _product(edges: list[list[tuple[int, int]]]) -> Iterator[tuple[tuple[int, int], ...]]:
    if not edges:
        yield ()
        return
    for head in edges[0]:
        for rest in _product(edges[1:]):
            yield (head, *rest)


def plan_blocks(
    levels: Sequence[LevelGrid],
    base_unit: Sequence[int],
    base_origin: Sequence[int],
    voxel_bytes: int,
    budget: int,
    region: Box,
) -> BlockPlan:
    """Block edges for pooling ``levels`` from level 0 within ``budget`` bytes per block.

    Edges always lie on the coarsest factor's multiples; then on level 0's units and on each
    level's units, finest first, as long as that is possible and a block still fits.
    """
    ndim = len(base_unit)
    coarsest = levels[-1].factor if levels else (1,) * ndim
    congruences = [(0, f) for f in coarsest]
    base = [
        _merge_congruence(c, (o % u, u))
        for c, o, u in zip(congruences, base_origin, base_unit, strict=True)
    ]
    aligned_base = [b for b in base if b is not None]
    if len(aligned_base) == ndim and _fits_budget(aligned_base, voxel_bytes, budget):
        congruences = aligned_base
    aligned: list[int] = []
    for k, level in enumerate(levels, start=1):
        merged = [
            _merge_congruence(c, (o * f % (u * f), u * f))
            for c, f, o, u in zip(congruences, level.factor, level.grid_origin, level.unit,
                                  strict=True)
        ]  # fmt: skip
        found = [m for m in merged if m is not None]
        if len(found) < ndim:
            continue  # this level's units cannot meet the cells: it is merged at block edges
        if not _fits_budget(found, voxel_bytes, budget):
            break
        congruences = found
        aligned.append(k)
    period = _grow([m for _, m in congruences], region.shape, voxel_bytes, budget)
    return BlockPlan(tuple(r for r, _ in congruences), period, tuple(aligned))


def _fits_budget(congruences: Sequence[tuple[int, int]], voxel_bytes: int, budget: int) -> bool:
    return math.prod(m for _, m in congruences) * voxel_bytes <= budget


def _grow(
    period: Sequence[int], extent: Sequence[int], voxel_bytes: int, budget: int
) -> tuple[int, ...]:
    """``period`` doubled along one axis at a time, the shortest first, while a block stays
    within ``budget`` and shorter than the region along that axis: big, near-cubic blocks read
    each chunk once and pay the per-block costs seldom."""
    out = list(period)
    while math.prod(out) * 2 * voxel_bytes <= budget:
        short = [i for i, (p, n) in enumerate(zip(out, extent, strict=True)) if p < n]
        if not short:
            break
        out[min(short, key=lambda i: out[i])] *= 2
    return tuple(out)
