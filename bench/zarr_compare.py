"""Write and read the same Zarr v3 array with bigarrays, zarr-python 3 and TensorStore (zarr3).

Run by hand, never by the test suite::

    python bench/zarr_compare.py                  # 512³, uint8 and uint16, every layout and codec
    python bench/zarr_compare.py --quick          # 128³, 100 random cutouts: a smoke run
    python bench/zarr_compare.py --dtypes uint16 --layouts sharded --codecs zstd --repeat 5

Every row is one (dtype, layout, codec, operation): a full write, a full read, an unaligned
(size/2)³ cutout and --random-count random 32³ cutouts (seeded, the same boxes for every tool).
It prints MiB/s of uncompressed voxels for each tool (median of --repeat, a fresh handle per
run, every read checked against the source array), bigarrays ÷ the fastest peer, the plain-I/O
limit of the same stored bytes and whether the row meets the target: >= 2x the fastest peer, or
>= 90% of the plain-I/O limit where that is lower. See bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare as cmp  # a sibling script, found through the path set above
import extra
import zarr_limits
from zarr_tools import CHUNK, PER_SHARD, ZSTD_LEVEL, Case, ZTool, make_tool, shard_edge

MiB = 2**20
TOOLS = ("bigarrays", "zarr", "tensorstore")
PEERS = ("zarr", "tensorstore")
DTYPES = ("uint8", "uint16")
LAYOUTS = ("unsharded", "sharded")
CODECS = ("raw", "zstd")
OPS = ("write", "read", "cutout", "random")

Box = tuple[tuple[int, int], ...]


# -- the data ------------------------------------------------------------------------------------


def volumes(n: int, dtypes: list[str]) -> dict[str, np.ndarray]:
    """C-ordered (z, y, x) arrays: compare.py's EM-like uint8 and, from it, a 12-bit uint16.

    The uint16 volume is the uint8 one shifted up 4 bits with 4 bits of uniform noise below,
    like a 12-bit detector: smooth, but with low bits no lossless codec removes.
    """
    u8 = np.ascontiguousarray(cmp.em_like(n).T)
    out: dict[str, np.ndarray] = {}
    if "uint8" in dtypes:
        out["uint8"] = u8
    if "uint16" in dtypes:
        noise = np.random.default_rng(2).integers(0, 16, size=u8.shape, dtype=np.uint16)
        u16 = u8.astype(np.uint16)
        u16 <<= 4
        u16 |= noise
        out["uint16"] = u16
    return out


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Result:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    disk_bytes: int | None = None
    skipped: str | None = None
    failed: str | None = None
    #: Every repetition's dataset, the last one read back; removed when the row is done.
    paths: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.paths[-1] if self.paths else ""

    def mib_s(self, op: str, nbytes: int) -> float | None:
        times = self.seconds.get(op)
        return nbytes / MiB / statistics.median(times) if times else None


def region(data: np.ndarray, box: Box) -> np.ndarray:
    return data[tuple(slice(a, b) for a, b in box)]


def check(got: np.ndarray, want: np.ndarray) -> bool:
    return got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want)


def read_all(tool: ZTool, handle: Any, boxes: list[Box]) -> list[np.ndarray]:
    return [tool.read(handle, box) for box in boxes]


def run_case(
    tool: ZTool, case: Case, data: np.ndarray, boxes: dict[str, list[Box]], repeat: int, root: str
) -> Result:
    """Time ``tool`` on ``case``; the datasets written are left in ``Result.paths``.

    No repetition's folder is removed before the next write: writing just after freeing as
    many page-cache pages is several times faster than any real write (see extra.py's limits).
    """
    res = Result(skipped=tool.supports(case))
    if res.skipped:
        return res
    for i in range(repeat):
        res.paths.append(os.path.join(root, f"{tool.name}-{case.label().replace('/', '-')}-{i}"))
        handle = tool.create(res.path, data.shape, case)  # outside the timer
        seconds, _ = cmp.timed(functools.partial(tool.write, handle, data))
        tool.close(handle)
        res.seconds.setdefault("write", []).append(seconds)
    res.disk_bytes = cmp.disk_usage(res.path)
    for op in OPS[1:]:
        for _ in range(repeat):
            handle = tool.open(res.path)  # outside the timer: a fresh handle, no warm caches
            seconds, got = cmp.timed(functools.partial(read_all, tool, handle, boxes[op]))
            tool.close(handle)
            for box, g in zip(boxes[op], got, strict=True):
                if not check(g, region(data, box)):
                    res.failed = (
                        f"{tool.name} {case.label()} {op} {box} returned wrong voxels "
                        f"(shape {g.shape} {g.dtype}, want {region(data, box).shape} {data.dtype})"
                    )
                    cmp.log("  FAILED: " + res.failed)
                    return res
            res.seconds.setdefault(op, []).append(seconds)
            del got
    return res


def op_bytes(boxes: dict[str, list[Box]], itemsize: int) -> dict[str, int]:
    """Uncompressed bytes each operation moves (the write moves the whole volume)."""
    sizes = {
        op: sum(int(np.prod([b - a for a, b in box])) for box in bs) for op, bs in boxes.items()
    }
    return {"write": sizes["read"] * itemsize, **{op: s * itemsize for op, s in sizes.items()}}


# -- reporting -----------------------------------------------------------------------------------


def verdict(ours: float | None, peers: list[float], limit: float | None) -> tuple[str, str]:
    """The target of one row (2x the fastest peer, or 90% of plain I/O if lower) and if met."""
    if ours is None or not peers:
        return "—", "—"
    target, why = 2 * max(peers), "2x peer"
    if limit is not None and 0.9 * limit < target:
        target, why = 0.9 * limit, "90% I/O"
    return f"{target:,.0f} ({why})", "met" if ours >= target else "MISSED"


def table_rows(
    case: Case, results: dict[str, Result], limits: dict[str, float], nbytes: dict[str, int]
) -> list[list[str]]:
    rows = []
    for op in OPS:
        rates: dict[str, float | None] = {}
        cells = []
        for name in TOOLS:
            res = results.get(name)
            if res is None:
                cells.append("—")
            elif res.skipped:
                cells.append("n/a (not yet)" if name == "bigarrays" else "n/a")
            elif res.failed:
                cells.append("FAIL")
            else:
                rates[name] = res.mib_s(op, nbytes[op])
                cells.append(cmp.fmt_rate(rates[name]))
        peers = [r for n, r in rates.items() if n in PEERS and r]
        ours = rates.get("bigarrays")
        best = max(peers) if peers else None
        ratio = cmp.fmt_ratio(ours, best) if best else "—"
        target, met = verdict(ours, peers, limits.get(op))
        limit = limits.get(op)
        codec_limit = limits.get(f"zstd {op}")
        rows.append([case.dtype, case.layout, case.codec, op, *cells, ratio,
                     cmp.fmt_rate(limit), cmp.fmt_rate(codec_limit) if codec_limit else "—",
                     target, met])  # fmt: skip
    return rows


HEADER = ["dtype", "layout", "codec", "op", *TOOLS, "ba/best peer", "plain I/O", "I/O + zstd",
          "target", "met"]  # fmt: skip


def limits_of(
    path: str, boxes: dict[str, list[Box]], nbytes: dict[str, int], repeat: int,
    case: Case, data: np.ndarray,
) -> dict[str, float]:  # fmt: skip
    """Plain-I/O limits of the stored bytes of the array at ``path``, per operation; for a zstd
    row also "zstd OP": the same I/O with every chunk encoded or decoded on every core."""
    from bigarrays.stores.base import local_disk_concurrency

    threads = local_disk_concurrency()  # as many as bigarrays' default
    out = {
        "write": zarr_limits.write_mib_s(path, nbytes["write"], repeat, threads),
        "read": zarr_limits.read_all_mib_s(path, nbytes["read"], repeat),
        "cutout": zarr_limits.read_mib_s(path, boxes["cutout"], nbytes["cutout"], repeat),
        "random": zarr_limits.read_mib_s(path, boxes["random"], nbytes["random"], repeat),
    }
    if case.codec == "zstd":
        cores = os.cpu_count() or 1
        out["zstd write"] = zarr_limits.zstd_write_mib_s(
            path, data, CHUNK, ZSTD_LEVEL, nbytes["write"], repeat, cores
        )
        everything = [tuple((0, n) for n in data.shape)]
        for op, op_boxes in (("read", everything), ("cutout", boxes["cutout"]),
                             ("random", boxes["random"])):  # fmt: skip
            out[f"zstd {op}"] = zarr_limits.zstd_read_mib_s(path, op_boxes, nbytes[op], repeat,
                                                            cores)  # fmt: skip
    return out


# -- main ----------------------------------------------------------------------------------------


def _choices(
    p: argparse.ArgumentParser, value: str, allowed: tuple[str, ...], what: str
) -> list[str]:
    picked = [x.strip() for x in value.split(",") if x.strip()]
    for x in picked:
        if x not in allowed:
            p.error(f"unknown {what} {x!r}; choose from {', '.join(allowed)}")
    return picked


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Zarr v3 arrays: bigarrays beside zarr-python 3 and TensorStore's zarr3."
    )
    p.add_argument("--size", type=int, default=512, help="edge of the cubic volume (512)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions; the median is shown (3)")
    p.add_argument("--random-count", type=int, default=1000, help="random 32³ cutouts (1000)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every tool (default: each library's own)")  # fmt: skip
    p.add_argument("--only", default=",".join(TOOLS), help=f"tools ({','.join(TOOLS)})")
    p.add_argument("--dtypes", default=",".join(DTYPES), help=f"({','.join(DTYPES)})")
    p.add_argument("--layouts", default=",".join(LAYOUTS), help=f"({','.join(LAYOUTS)})")
    p.add_argument("--codecs", default=",".join(CODECS), help=f"({','.join(CODECS)})")
    p.add_argument("--dir", default=None, help="where to write (default: a new temp dir)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 128³, 100 random cutouts")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.random_count = 128, 100
    if args.size < 2 * extra.SMALL or args.repeat < 1 or args.random_count < 1:
        p.error(f"--size must be >= {2 * extra.SMALL}, --repeat and --random-count >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    args.only = _choices(p, args.only, TOOLS, "tool")
    args.dtypes = _choices(p, args.dtypes, DTYPES, "dtype")
    args.layouts = _choices(p, args.layouts, LAYOUTS, "layout")
    args.codecs = _choices(p, args.codecs, CODECS, "codec")
    return args


def make_boxes(n: int, count: int) -> dict[str, list[Box]]:
    """The boxes of each read, in the arrays' (z, y, x) order."""
    half = n // 2
    start = [min(o, n - half) for o in cmp.CUTOUT_OFFSET]
    return {
        "read": [((0, n),) * 3],
        "cutout": [tuple((s, s + half) for s in start)],
        "random": list(extra.random_boxes(n, count)),
    }


def print_header(args: argparse.Namespace, tools: list[ZTool], root: str, load0: float) -> None:
    n = args.size
    cut = make_boxes(n, 1)["cutout"][0]
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    header = [
        ("arrays", f"Zarr v3, {n}³ (z, y, x) C order, {CHUNK}³ chunks; sharded = {PER_SHARD}³ "
         f"chunks per shard ({shard_edge()}³, index at the end); raw = bytes codec only, zstd = "
         f"bytes + zstd level {ZSTD_LEVEL}; uint8 = compare.py's EM-like volume, uint16 = it "
         "shifted up 4 bits with 4 bits of noise below (12-bit)"),
        ("ops", f"write = the full array from RAM; read = the full array; cutout = "
         f"[{', '.join(f'{a}:{b}' for a, b in cut)}] (z, y, x; unaligned); random = "
         f"{args.random_count} random 32³ cutouts (seeded, the same boxes for every tool), one "
         "timed loop"),
        ("figures", f"MiB/s of uncompressed voxels, median of {args.repeat}; the timer covers the "
         "write/read calls only (a fresh handle per run, opened outside it); every read is "
         "checked against the source array"),
        ("plain I/O", "the same stored bytes with bare os calls (of the first tool that wrote "
         "the row, bigarrays if it could, right after its run): write = os.write of copies of "
         "every file, temp file + rename, bigarrays' default thread count; read = os.readv of "
         "every file whole; cutout/random = os.preadv of exactly the chunk (or inner-chunk) "
         "byte ranges each box touches, one open per file per box; all into one reused buffer, "
         f"median of max(3, {args.repeat})"),
        ("target", ">= 2x the fastest peer, or >= 90% of the plain-I/O limit where that is lower"),
        ("disk", f"{root} on {cmp.filesystem_of(os.path.dirname(root)) or '?'}; page cache warm; "
         "os.sync() before each timed call"),
        ("machine", f"{cmp.cpu_model()}, {os.cpu_count()} cpus ({affinity} usable), "
         f"{platform.system()} {platform.release()}"),
        ("load", cmp.load_note(load0)),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("versions", cmp.versions()),
        ("source", "bigarrays from " + cmp.bigarrays_source()),
        *((tool.name, tool.settings()) for tool in tools),
    ]  # fmt: skip
    print("bigarrays vs zarr-python 3 and TensorStore: Zarr v3 arrays on local disk")
    width = max(len(label) for label, _ in header)
    for label, text in header:
        lead = f"{label:<{width}} : "
        print(
            textwrap.fill(
                text,
                100,
                initial_indent=lead,
                subsequent_indent=" " * len(lead),
                break_on_hyphens=False,
            )
        )
    print()


def run_row(
    case: Case,
    tools: list[ZTool],
    data: np.ndarray,
    boxes: dict[str, list[Box]],
    args: argparse.Namespace,
    root: str,
) -> tuple[list[list[str]], list[str], bool]:
    """Every tool on ``case`` and the plain-I/O limits: table rows, notes, whether any failed.

    The limits are measured on the files of the first tool that wrote the row (bigarrays if it
    could), right after its run: on a shared machine the state of the page cache and the load
    drift, and the limit is meant to be compared with that tool's figures above all.
    """
    nbytes = op_bytes(boxes, data.itemsize)
    results: dict[str, Result] = {}
    notes: list[str] = []
    limits: dict[str, float] = {}
    source = ""
    try:
        for tool in tools:
            cmp.log(f"{tool.name} / {case.label()} ...")
            t0 = time.perf_counter()
            res = results[tool.name] = run_case(tool, case, data, boxes, args.repeat, root)
            for op, times in res.seconds.items():
                cmp.log(f"  {op:6s} " + " ".join(f"{s:.3f}s" for s in times))
            cmp.log(f"  ({time.perf_counter() - t0:.1f} s)")
            if res.skipped or res.failed:
                notes.append(res.skipped or f"FAILED: {res.failed}")
            elif not source:
                cmp.log(f"plain I/O / {case.label()} on the files {tool.name} wrote ...")
                limits = limits_of(res.path, boxes, nbytes, args.repeat, case, data)
                source = tool.name
        stored = [f"{n} {r.disk_bytes / MiB:,.1f} MiB ({nbytes['write'] / r.disk_bytes:.2f}x)"
                  for n, r in results.items() if r.disk_bytes]  # fmt: skip
        where = f"the files {source} wrote" if source else "nothing (no tool wrote this row)"
        notes.append(f"{case.label()}: stored {', '.join(stored) or '—'}; plain I/O on {where}")
    finally:
        for res in results.values():
            for path in res.paths:
                shutil.rmtree(path, ignore_errors=True)
    failed = any(r.failed for r in results.values())
    return table_rows(case, results, limits, nbytes), notes, failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall0, load0 = time.perf_counter(), os.getloadavg()[0]
    n = args.size
    cmp.log(f"generating {n}³ EM-like {', '.join(args.dtypes)} volumes ...")
    data = volumes(n, args.dtypes)
    boxes = make_boxes(n, args.random_count)
    boxes["random"] = [tuple(b) for b in boxes["random"]]
    tools = [make_tool(name, args.threads) for name in args.only]
    root = tempfile.mkdtemp(prefix="bigarrays-zarr-bench-", dir=args.dir)
    rows: list[list[str]] = []
    notes: list[str] = []
    failed = False
    try:
        for dtype in args.dtypes:
            for layout in args.layouts:
                for codec in args.codecs:
                    case = Case(dtype, layout, codec)
                    r, nt, f = run_row(case, tools, data[dtype], boxes, args, root)
                    rows += r
                    notes += nt
                    failed |= f
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_header(args, tools, root, load0)
    print(cmp.render_table(rows, HEADER, right=set(range(4, len(HEADER) - 1))))
    print()
    print("I/O + zstd = the plain I/O of a zstd row with every chunk zstd-encoded (write) or "
          "-decoded (reads) on every core: what that row costs the machine before any library "
          "(not part of the target)")  # fmt: skip
    print()
    print("zarr = zarr-python 3; ba/best peer = bigarrays MiB/s ÷ the faster of zarr-python and "
          "TensorStore (>1: bigarrays faster)")  # fmt: skip
    for note in dict.fromkeys(notes):
        print(textwrap.fill(note, width=100, initial_indent="note: ", subsequent_indent="      "))
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"wall time: {time.perf_counter() - wall0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
