"""Write and read the same volume with bigarrays, TensorStore, CloudVolume and zarr-python.

Run by hand, never by the test suite::

    python bench/compare.py            # 512³ uint8, 64³ chunks, 3 repetitions
    python bench/compare.py --size 256 --repeat 5 --only bigarrays,tensorstore

For every tool and every case (raw, gzip) it times a full write of the volume, a full read and
an unaligned cutout (half the size of the volume on each axis, at an odd offset), checks every
read against the source array, and prints one table: MiB/s of uncompressed voxels (median of
--repeat runs), bytes on disk, compression ratio and bigarrays / peer speed ratios.
See bench/README.md for what exactly is measured.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MiB = 2**20
TOOLS = ("bigarrays", "tensorstore", "cloudvolume", "zarr")
CASES = ("raw", "gzip")
OPS = ("write", "read", "cutout")
CUTOUT_OFFSET = (37, 53, 101)
SECTIONS = ("random", "memory", "limits", "scaling", "s3")

Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


# -- the data ------------------------------------------------------------------------------------


def em_like(n: int, seed: int = 0, cell: float = 8.0, noise: float = 4.0) -> np.ndarray:
    """An ``n³`` uint8 volume that looks roughly like EM: smooth blobs, dark edges, grain.

    A coarse Gaussian random field (one sample per ``cell`` voxels) is blurred up to full size
    by a separable Gaussian interpolation, mapped through a grey-level curve that darkens its
    zero crossings (membranes), and given Gaussian noise of ``noise`` grey levels. Returned in
    Fortran order, shape (x, y, z), like a bigarrays or CloudVolume cutout.
    """
    rng = np.random.default_rng(seed)
    m = int(np.ceil(n / cell)) + 4
    coarse = rng.standard_normal((m, m, m), dtype=np.float32)
    pos = np.arange(n, dtype=np.float32) / np.float32(cell) + 2
    w = np.exp(-0.5 * ((pos[:, None] - np.arange(m, dtype=np.float32)[None, :]) / 0.8) ** 2)
    w = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)  # (n, m) interpolation matrix
    # Built as (z, y, x) in C order, which is (x, y, z) in Fortran order.
    zyx = np.einsum("ia,abc->ibc", w, coarse)
    zyx = np.einsum("jb,ibc->ijc", w, zyx)
    out = np.empty((n, n, n), dtype=np.uint8)
    step = 32
    for z0 in range(0, n, step):
        f = zyx[z0 : z0 + step] @ w.T
        grey = 150 + 50 * np.tanh(3 * f) - 90 * np.exp(-np.square(6 * f))
        grey += np.float32(noise) * rng.standard_normal(grey.shape, dtype=np.float32)
        np.clip(grey, 0, 255, out=grey)
        out[z0 : z0 + step] = grey
    return out.T


# -- the tools -----------------------------------------------------------------------------------


class Tool:
    """One library: how it creates, writes, opens and reads a volume in a folder."""

    name = ""
    dist = ""  # the distribution whose version is printed

    def __init__(self, threads: int | None, gzip_level: int) -> None:
        self.threads = threads
        self.gzip_level = gzip_level

    def supports(self, case: str) -> str | None:
        """None if ``case`` can be run, else why not (printed under the table)."""
        return None

    def settings(self) -> str:
        raise NotImplementedError

    def create(self, path: str, shape: tuple[int, int, int], chunks: int, case: str) -> Any:
        raise NotImplementedError

    def write(self, handle: Any, data: np.ndarray) -> None:
        raise NotImplementedError

    def open(self, path: str) -> Any:
        raise NotImplementedError

    def read(self, handle: Any, box: Box) -> np.ndarray:
        """The voxels of ``box``; may be (x, y, z) or (z, y, x): see ``as_xyz``."""
        raise NotImplementedError

    def as_xyz(self, result: np.ndarray) -> np.ndarray:
        return result

    def close(self, handle: Any) -> None:
        pass


class BigArraysTool(Tool):
    name = "bigarrays"
    dist = "bigarrays"

    def __init__(self, threads: int | None, gzip_level: int) -> None:
        super().__init__(threads, gzip_level)
        import bigarrays

        self.ba = bigarrays
        self.default_threads: int | None = None

    def settings(self) -> str:
        threads = self.threads or self.default_threads
        how = "--threads" if self.threads else "default"
        return (
            f"threads={threads} ({how}), gzip level {self.gzip_level}, "
            "chunk files KEY.gz for gzip (CloudVolume's convention)"
        )

    def create(self, path: str, shape: tuple[int, int, int], chunks: int, case: str) -> Any:
        vol = self.ba.create(
            path,
            shape=shape,
            dtype="uint8",
            chunks=(chunks,) * 3,
            compression="gzip" if case == "gzip" else None,
            compression_level=self.gzip_level if case == "gzip" else None,
            overwrite=True,
            threads=self.threads,
            progress=False,
        )
        self.default_threads = vol.threads
        return vol

    def write(self, handle: Any, data: np.ndarray) -> None:
        handle[...] = data

    def open(self, path: str) -> Any:
        return self.ba.open(path, threads=self.threads, progress=False)

    def read(self, handle: Any, box: Box) -> np.ndarray:
        (x0, x1), (y0, y1), (z0, z1) = box
        return handle[x0:x1, y0:y1, z0:z1]

    def close(self, handle: Any) -> None:
        handle.close()


class TensorStoreTool(Tool):
    name = "tensorstore"
    dist = "tensorstore"

    def __init__(self, threads: int | None, gzip_level: int) -> None:
        super().__init__(threads, gzip_level)
        import tensorstore

        self.ts = tensorstore

    def supports(self, case: str) -> str | None:
        if case == "gzip":
            return (
                "tensorstore/gzip: n/a — unsharded precomputed chunks get gzip only as HTTP "
                "Content-Encoding; the file kvstore has no gzip (KEY.gz) support"
            )
        return None

    def _context(self) -> Any:
        # The cache pool is off (its documented default, spelled out): every read goes to disk.
        spec: dict[str, Any] = {"cache_pool": {"total_bytes_limit": 0}}
        if self.threads:
            spec["file_io_concurrency"] = {"limit": self.threads}
            spec["data_copy_concurrency"] = {"limit": self.threads}
        return self.ts.Context(spec)

    def settings(self) -> str:
        if self.threads:
            conc = f"file_io_concurrency={self.threads}, data_copy_concurrency={self.threads}"
        else:
            conc = "file_io_concurrency and data_copy_concurrency at their defaults"
        return f"file kvstore, cache_pool total_bytes_limit=0, {conc}, read(order='F')"

    def create(self, path: str, shape: tuple[int, int, int], chunks: int, case: str) -> Any:
        spec = {
            "driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "file", "path": path + "/"},
            "multiscale_metadata": {"type": "image", "data_type": "uint8", "num_channels": 1},
            "scale_metadata": {
                "size": list(shape),
                "chunk_size": [chunks] * 3,
                "encoding": "raw",
                "resolution": [1, 1, 1],
                "voxel_offset": [0, 0, 0],
            },
        }
        return self.ts.open(
            spec, create=True, delete_existing=True, context=self._context()
        ).result()

    def write(self, handle: Any, data: np.ndarray) -> None:
        # .result() of a write waits for the commit: the chunks are in their files.
        handle[:, :, :, 0].write(data).result()

    def open(self, path: str) -> Any:
        spec = {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": path}}
        return self.ts.open(spec, open=True, read=True, context=self._context()).result()

    def read(self, handle: Any, box: Box) -> np.ndarray:
        (x0, x1), (y0, y1), (z0, z1) = box
        return handle[x0:x1, y0:y1, z0:z1, 0].read(order="F").result()


class CloudVolumeTool(Tool):
    name = "cloudvolume"
    dist = "cloud-volume"

    def __init__(self, threads: int | None, gzip_level: int, parallel: int) -> None:
        super().__init__(threads, gzip_level)
        from cloudvolume import CloudVolume

        self.cv = CloudVolume
        # On file:// CloudVolume schedules no threads at all (its upload and download force
        # concurrency 0 for the file protocol), so --threads has nothing to set; its only
        # concurrency is parallel=N worker processes.
        self.parallel = parallel

    def settings(self) -> str:
        return (
            f"file://, parallel={self.parallel} (--cv-parallel; processes, as file:// gets no "
            "I/O threads and green_threads change nothing), progress=False, cache off, "
            "lru_bytes=0, gzip = libdeflate level 9 (its image upload ignores compress_level)"
        )

    def create(self, path: str, shape: tuple[int, int, int], chunks: int, case: str) -> Any:
        info = self.cv.create_new_info(
            num_channels=1,
            layer_type="image",
            data_type="uint8",
            encoding="raw",
            resolution=[1, 1, 1],
            voxel_offset=[0, 0, 0],
            chunk_size=[chunks] * 3,
            volume_size=list(shape),
        )
        vol = self.cv(
            "file://" + path,
            info=info,
            compress="gzip" if case == "gzip" else False,
            compress_level=self.gzip_level if case == "gzip" else None,
            progress=False,
            parallel=self.parallel,
        )
        vol.commit_info()
        return vol

    def write(self, handle: Any, data: np.ndarray) -> None:
        x, y, z = data.shape
        handle[0:x, 0:y, 0:z] = data

    def open(self, path: str) -> Any:
        return self.cv("file://" + path, progress=False, parallel=self.parallel, fill_missing=False)

    def read(self, handle: Any, box: Box) -> np.ndarray:
        (x0, x1), (y0, y1), (z0, z1) = box
        return np.asarray(handle[x0:x1, y0:y1, z0:z1])[..., 0]


class ZarrTool(Tool):
    """A zarr v3 array of shape (z, y, x), C order: the same bytes per chunk as precomputed."""

    name = "zarr"
    dist = "zarr"

    def __init__(self, threads: int | None, gzip_level: int) -> None:
        super().__init__(threads, gzip_level)
        import zarr

        self.zarr = zarr
        if threads:
            zarr.config.set({"async.concurrency": threads, "threading.max_workers": threads})

    def settings(self) -> str:
        cfg = self.zarr.config
        return (
            f"zarr v3, LocalStore, no sharding, array (z, y, x) C order written from data.T, "
            f"async.concurrency={cfg.get('async.concurrency')}, "
            f"threading.max_workers={cfg.get('threading.max_workers')} (None: Python's default), "
            f"write_empty_chunks={cfg.get('array.write_empty_chunks')}, "
            f"gzip = GzipCodec(level={self.gzip_level})"
        )

    def create(self, path: str, shape: tuple[int, int, int], chunks: int, case: str) -> Any:
        from zarr.codecs import GzipCodec

        return self.zarr.create_array(
            store=path,
            shape=shape[::-1],
            chunks=(chunks,) * 3,
            dtype="uint8",
            fill_value=0,
            compressors=GzipCodec(level=self.gzip_level) if case == "gzip" else None,
            zarr_format=3,
            overwrite=True,
        )

    def write(self, handle: Any, data: np.ndarray) -> None:
        handle[...] = data.T  # a C-ordered (z, y, x) view: no copy

    def open(self, path: str) -> Any:
        return self.zarr.open_array(path, mode="r")

    def read(self, handle: Any, box: Box) -> np.ndarray:
        (x0, x1), (y0, y1), (z0, z1) = box
        return handle[z0:z1, y0:y1, x0:x1]

    def as_xyz(self, result: np.ndarray) -> np.ndarray:
        return result.T


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Result:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    disk_bytes: int | None = None
    skipped: str | None = None
    failed: str | None = None

    def mib_s(self, op: str, nbytes: int) -> float | None:
        times = self.seconds.get(op)
        if not times:
            return None
        return nbytes / MiB / statistics.median(times)


def disk_usage(path: str) -> int:
    """Bytes of all files under ``path`` (their sizes, metadata files included)."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def settle() -> None:
    """Flush dirty pages and garbage before a timed call, so no earlier work bleeds into it."""
    gc.collect()
    os.sync()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    settle()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_one(
    tool: Tool, case: str, data: np.ndarray, chunks: int, cutout: Box, repeat: int, root: str
) -> Result:
    res = Result()
    why = tool.supports(case)
    if why:
        res.skipped = why
        return res
    shape = data.shape
    full: Box = ((0, shape[0]), (0, shape[1]), (0, shape[2]))
    path = ""
    for i in range(repeat):
        if path:
            shutil.rmtree(path)
        path = os.path.join(root, f"{tool.name}-{case}-{i}")
        handle = tool.create(path, shape, chunks, case)  # outside the timer
        seconds, _ = timed(lambda h=handle: tool.write(h, data))
        tool.close(handle)
        res.seconds.setdefault("write", []).append(seconds)
    res.disk_bytes = disk_usage(path)
    for op, box in (("read", full), ("cutout", cutout)):
        want = data[tuple(slice(a, b) for a, b in box)]
        for _ in range(repeat):
            handle = tool.open(path)  # outside the timer: a fresh handle, no warm caches
            seconds, got = timed(lambda h=handle, b=box: tool.read(h, b))
            tool.close(handle)
            got = tool.as_xyz(got)
            if got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want):
                res.failed = (
                    f"{tool.name}/{case} {op} returned wrong voxels "
                    f"(shape {got.shape} {got.dtype}, want {want.shape} {want.dtype})"
                )
                log("  FAILED: " + res.failed)
                shutil.rmtree(path)
                return res
            res.seconds.setdefault(op, []).append(seconds)
            del got
    shutil.rmtree(path)
    return res


# -- reporting -----------------------------------------------------------------------------------


def versions() -> str:
    names = ["numpy", "bigarrays", "tensorstore", "cloud-volume", "cloud-files", "zarr"]
    names += ["numcodecs", "deflate", "isal", "zlib-ng"]
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def bigarrays_source() -> str:
    """Which bigarrays was measured: the git commit of an editable checkout, and if it is dirty."""
    try:
        import bigarrays

        pkg = os.path.dirname(bigarrays.__file__)

        def git(*cmd: str) -> str:
            out = subprocess.run(
                ["git", "-C", pkg, *cmd], capture_output=True, text=True, timeout=10, check=True
            )
            return out.stdout.strip()

        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=all", "--", ".")
    except (ImportError, OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"{pkg} at git {head}" + (", with uncommitted changes" if dirty else ", clean")


def load_note(load: float) -> str:
    """The header's line on the load average when the run began."""
    said = f"1-min load average {load:.2f} when the run began"
    if load < 0.5:
        return said
    return said + " (well above 0: other processes share the cpus and the figures are noisier)"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def filesystem_of(path: str) -> str:
    """The mount point and file system type that ``path`` lives on (Linux), else ''."""
    best = ("", "")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                _, mount, fstype, *_ = line.split()
                if (path + "/").startswith(mount.rstrip("/") + "/") and len(mount) > len(best[0]):
                    best = (mount, fstype)
    except OSError:
        return ""
    return f"{best[1]} (mounted at {best[0]})" if best[0] else ""


def fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def fmt_ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "—"
    return f"{ours / theirs:.2f}x"


def render_table(rows: list[list[str]], header: list[str], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def report(
    results: dict[tuple[str, str], Result],
    tools: list[str],
    cases: list[str],
    nbytes: int,
    cut_bytes: int,
) -> tuple[str, list[str]]:
    header = ["case", "tool", "write", "read", "cutout", "on disk MiB", "ratio"]
    header += ["ba/· write", "ba/· read", "ba/· cutout"]
    rows: list[list[str]] = []
    notes: list[str] = []
    for case in cases:
        ours = results.get(("bigarrays", case))
        for name in tools:
            res = results[(name, case)]
            if res.skipped:
                rows.append([case, name, *["n/a"] * 5, *["n/a"] * 3])
                notes.append(res.skipped)
                continue
            if res.failed:
                rows.append([case, name, *["FAIL"] * 5, *["—"] * 3])
                notes.append("FAILED: " + res.failed)
                continue
            sizes = {"write": nbytes, "read": nbytes, "cutout": cut_bytes}
            rates = [res.mib_s(op, sizes[op]) for op in OPS]
            disk = res.disk_bytes or 0
            row = [case, name, *(fmt_rate(r) for r in rates)]
            row += [f"{disk / MiB:,.1f}", f"{nbytes / disk:.2f}" if disk else "—"]
            if name == "bigarrays" or ours is None or ours.skipped or ours.failed:
                row += ["—"] * 3
            else:
                row += [fmt_ratio(ours.mib_s(op, sizes[op]), rates[i]) for i, op in enumerate(OPS)]
            rows.append(row)
    table = render_table(rows, header, right=set(range(2, len(header))))
    return table, notes


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Write and read the same precomputed-like volume with bigarrays and peers.",
    )
    p.add_argument("--size", type=int, default=512, help="edge of the cubic volume (512)")
    p.add_argument("--chunk", type=int, default=64, help="edge of the cubic chunks (64)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions; the median is shown (3)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for bigarrays, TensorStore and zarr (default: each library's own)",
    )
    p.add_argument(
        "--cv-parallel",
        type=int,
        default=1,
        help="CloudVolume parallel= (processes; it has no threads on file://). 1 (see "
        "bench/README.md)",
    )
    p.add_argument("--gzip-level", type=int, default=6, help="gzip level where settable (6)")
    p.add_argument("--only", default=",".join(TOOLS), help=f"tools to run ({','.join(TOOLS)})")
    p.add_argument("--cases", default=",".join(CASES), help=f"cases to run ({','.join(CASES)})")
    p.add_argument("--dir", default=None, help="where to write (default: a new temp dir)")
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"sections after the main table ({','.join(SECTIONS)}); '' for none",
    )
    p.add_argument("--random-count", type=int, default=1000, help="random 32³ cutouts (1000)")
    p.add_argument("--s3-size", type=int, default=256, help="edge of the S3 volume (256)")
    p.add_argument(
        "--max-scale-size", type=int, default=1024, help="largest volume of the size scaling"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 128³, 3 repeats, 100 random cutouts, S3 64³, scaling to 256³",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.repeat, args.random_count = 128, 3, 100
        args.s3_size, args.max_scale_size = 64, 256
    args.sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    for x in args.sections:
        if x not in SECTIONS:
            p.error(f"unknown section {x!r}; choose from {', '.join(SECTIONS)}")
    args.s3_size = min(args.s3_size, args.size)
    args.only = [t.strip() for t in args.only.split(",") if t.strip()]
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for t in args.only:
        if t not in TOOLS:
            p.error(f"unknown tool {t!r}; choose from {', '.join(TOOLS)}")
    for c in args.cases:
        if c not in CASES:
            p.error(f"unknown case {c!r}; choose from {', '.join(CASES)}")
    if args.size < 2 or args.chunk < 1 or args.repeat < 1:
        p.error("--size must be >= 2, --chunk and --repeat >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def make_tool(name: str, args: argparse.Namespace) -> Tool:
    if name == "bigarrays":
        return BigArraysTool(args.threads, args.gzip_level)
    if name == "tensorstore":
        return TensorStoreTool(args.threads, args.gzip_level)
    if name == "cloudvolume":
        return CloudVolumeTool(args.threads, args.gzip_level, args.cv_parallel)
    return ZarrTool(args.threads, args.gzip_level)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall0 = time.perf_counter()
    load0 = os.getloadavg()
    n, c = args.size, args.chunk
    half = n // 2
    start = [min(o, n - half) for o in CUTOUT_OFFSET]
    cutout: Box = (
        (start[0], start[0] + half),
        (start[1], start[1] + half),
        (start[2], start[2] + half),
    )
    nbytes = n**3

    log(f"generating {n}³ EM-like uint8 volume ...")
    t0 = time.perf_counter()
    data = em_like(n)
    log(f"  {time.perf_counter() - t0:.1f} s")

    tools = [make_tool(name, args) for name in args.only]
    root = tempfile.mkdtemp(prefix="bigarrays-bench-", dir=args.dir)
    results: dict[tuple[str, str], Result] = {}
    extra_text: list[str] = []
    extra_failed = False
    try:
        for case in args.cases:
            for tool in tools:
                log(f"{tool.name} / {case} ...")
                t0 = time.perf_counter()
                res = run_one(tool, case, data, c, cutout, args.repeat, root)
                results[(tool.name, case)] = res
                for op, times in res.seconds.items():
                    log(f"  {op:6s} " + " ".join(f"{s:.3f}s" for s in times))
                log(f"  ({time.perf_counter() - t0:.1f} s)")
        if args.sections:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import extra

            extra_text, extra_failed = extra.run_extras(args, tools, data, root, results)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    cut_desc = ", ".join(f"{a}:{b}" for a, b in cutout)
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    header = [
        ("volume", f"{n}³ uint8, EM-like (blurred random field + dark edges + noise), "
         f"{c}³ chunks, {nbytes / MiB:,.0f} MiB uncompressed"),
        ("ops", f"write = the full volume from RAM; read = the full volume; cutout = "
         f"[{cut_desc}] ({half}³, unaligned, {half**3 / MiB:,.1f} MiB)"),
        ("figures", f"MiB/s of uncompressed voxels, median of {args.repeat}; the timer covers "
         "the write/read call only (handles are created/opened outside it, a fresh one per "
         "run); every read is checked against the source array"),
        ("disk", f"{root} on {filesystem_of(os.path.dirname(root)) or '?'}; page cache warm "
         "(no drop_caches); os.sync() before each timed call; sizes = sum of file sizes"),
        ("machine", f"{cpu_model()}, {os.cpu_count()} cpus ({affinity} usable), "
         f"{platform.system()} {platform.release()}"),
        ("load", load_note(load0[0])),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("versions", versions()),
        ("source", "bigarrays from " + bigarrays_source()),
        ("gzip", f"level {args.gzip_level} where the tool lets it be set"),
        *((tool.name, tool.settings()) for tool in tools),
    ]  # fmt: skip
    print("bigarrays vs peers: write / read / cutout of one volume on local disk")
    width = max(len(label) for label, _ in header)
    for label, text in header:
        print(
            textwrap.fill(
                text,
                width=100,
                initial_indent=f"{label:<{width}} : ",
                subsequent_indent=" " * (width + 3),
                break_on_hyphens=False,
            )
        )
    print()
    table, notes = report(results, args.only, args.cases, nbytes, half**3)
    print(table)
    print()
    print("ba/· = bigarrays MiB/s divided by that tool's MiB/s (>1: bigarrays faster)")
    for note in dict.fromkeys(notes):
        print(textwrap.fill(note, width=100, initial_indent="note: ", subsequent_indent="      "))
    if extra_text:
        print()
        print("\n".join(extra_text))
    load1 = os.getloadavg()
    print(f"load average at the end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(f"wall time: {time.perf_counter() - wall0:.1f} s")
    return 1 if extra_failed or any(r.failed for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
