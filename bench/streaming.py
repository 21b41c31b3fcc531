"""Does the streaming writer keep up with a camera? bigarrays beside acquire-zarr and os.write.

    python bench/streaming.py                      # 256 frames per run
    python bench/streaming.py --frames 512 --dir /data/scratch
    python bench/streaming.py --settings zstd "raw, sharded" --tools bigarrays
    python bench/streaming.py --format precomputed    # bigarrays and os.write only

2048x2048 uint16 frames from memory (a few camera-like images, noisy and smooth, cycled) are
appended along t to a Zarr v3 array on local disk with 256x256 chunks in y/x, 64 frames deep:
raw, blosc-lz4 (level 1, byte shuffle) and zstd (level 1), unsharded and sharded (8x8 chunks per
shard). With ``--format precomputed`` bigarrays writes an unsharded precomputed volume instead
(256x256x64 chunks along x, y, z; raw and gzip), which acquire-zarr does not write: its columns
stay empty. Each run is its own process, so its peak memory (ru_maxrss) is its own; a run ends when
the writer is closed (the data on disk, the metadata written). The baseline writes the same
bytes with plain ``os.write`` calls of one frame each to one file. Printed: frames per second,
MiB/s of frame data, peak RSS, CPU seconds (user + system, comparable when the machine is
shared) and the ratios to acquire-zarr and to os.write.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MiB = 2**20
SIDE, DEPTH, CHUNK, SHARD = 2048, 64, 256, 8
CODECS = ("raw", "blosc-lz4", "zstd")


def camera_frames(n: int = 4) -> list[np.ndarray]:
    """``n`` distinct frames like a fluorescence camera's: smooth structure plus shot noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    out = []
    for i in range(n):
        signal = 400 + 300 * np.sin(12 * x + i) * np.cos(9 * y - i) ** 2
        out.append(rng.poisson(signal).astype(np.uint16))
    return out


def run_bigarrays(
    path: Path, frames: int, codec: str, sharded: bool, images: list[np.ndarray],
    fmt: str = "zarr",
) -> None:  # fmt: skip
    import bigarrays as ba

    if fmt == "precomputed":
        with ba.stream(str(path), axis="z", shape=(SIDE, SIDE), dtype="uint16",
                       chunks=(CHUNK, CHUNK, DEPTH), compression=None if codec == "raw" else codec,
                       queue_bytes=2 * DEPTH * SIDE * SIDE * 2) as s:  # fmt: skip
            for i in range(frames):
                s.append(images[i % len(images)])
        return
    options: dict[str, Any] = {"format": "zarr", "dims": ("t", "y", "x")}
    if codec == "blosc-lz4":
        options.update(compression="blosc", blosc_cname="lz4", compression_level=1,
                       blosc_shuffle="byte")  # fmt: skip
    elif codec == "zstd":
        options.update(compression="zstd", compression_level=1)
    if sharded:
        options.update(chunks=(DEPTH, CHUNK * SHARD, CHUNK * SHARD),
                       sharding={"chunk_shape": [DEPTH, CHUNK, CHUNK]})  # fmt: skip
    else:
        options.update(chunks=(DEPTH, CHUNK, CHUNK))
    with ba.stream(str(path), axis="t", shape=(SIDE, SIDE), dtype="uint16",
                   queue_bytes=2 * DEPTH * SIDE * SIDE * 2, **options) as s:  # fmt: skip
        for i in range(frames):
            s.append(images[i % len(images)])


def run_acquire(
    path: Path, frames: int, codec: str, sharded: bool, images: list[np.ndarray],
    fmt: str = "zarr",
) -> None:  # fmt: skip
    import acquire_zarr as az

    per_shard = SHARD if sharded else 1
    dims = [
        az.Dimension(name="t", kind=az.DimensionType.TIME, array_size_px=0,
                     chunk_size_px=DEPTH, shard_size_chunks=1),
        az.Dimension(name="y", kind=az.DimensionType.SPACE, array_size_px=SIDE,
                     chunk_size_px=CHUNK, shard_size_chunks=per_shard),
        az.Dimension(name="x", kind=az.DimensionType.SPACE, array_size_px=SIDE,
                     chunk_size_px=CHUNK, shard_size_chunks=per_shard),
    ]  # fmt: skip
    settings: dict[str, Any] = {"dimensions": dims, "data_type": az.DataType.UINT16}
    if codec != "raw":
        lz4 = codec == "blosc-lz4"
        settings["compression"] = az.CompressionSettings(
            compressor=az.Compressor.BLOSC1 if lz4 else az.Compressor.ZSTD,
            codec=az.CompressionCodec.BLOSC_LZ4 if lz4 else az.CompressionCodec.ZSTD,
            level=1, shuffle=1 if lz4 else 0,
        )  # fmt: skip
    stream = az.ZarrStream(az.StreamSettings(store_path=str(path), version=az.ZarrVersion.V3,
                                             arrays=[az.ArraySettings(**settings)]))  # fmt: skip
    for i in range(frames):
        stream.append(images[i % len(images)])
    stream.close()


def run_plain(
    path: Path, frames: int, codec: str, sharded: bool, images: list[np.ndarray],
    fmt: str = "zarr",
) -> None:  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for i in range(frames):
            os.write(fd, images[i % len(images)].data)
    finally:
        os.close(fd)


RUNNERS = {"bigarrays": run_bigarrays, "acquire-zarr": run_acquire, "os.write": run_plain}


def child(tool: str, path: str, frames: int, codec: str, sharded: bool, fmt: str) -> None:
    images = camera_frames()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    RUNNERS[tool](Path(path), frames, codec, sharded, images, fmt)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds of the run alone (not of making the frames), split in user and system time:
    # the system time (page faults, the page cache) is what moves most from run to run here.
    user, system = usage.ru_utime - before.ru_utime, usage.ru_stime - before.ru_stime
    print(json.dumps({"seconds": seconds, "peak": usage.ru_maxrss * 1024, "user": user,
                      "system": system}))  # fmt: skip


def measure(
    tool: str, root: Path, frames: int, codec: str, sharded: bool, drop: bool = False,
    fmt: str = "zarr",
) -> dict[str, float]:  # fmt: skip
    path = root / f"{tool}-{codec}-{int(sharded)}"
    if drop:
        _drop_caches()
    out = subprocess.run(
        [sys.executable, __file__, "--child", tool, str(path), str(frames), codec,
         str(int(sharded)), fmt], check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else (
        path.stat().st_size)  # fmt: skip
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    # The file system here discards freed blocks when its journal commits: without this sync,
    # that commit (and the run's own writeback) lands in the next run's time.
    os.sync()
    nbytes = frames * SIDE * SIDE * 2
    return {"fps": frames / result["seconds"], "mibs": nbytes / MiB / result["seconds"],
            "peak": result["peak"] / MiB, "stored": size / MiB, "user": result["user"],
            "system": result["system"]}  # fmt: skip


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over ``runs`` (the peak: the largest), with the slowest and
    fastest frame rates beside it."""
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out["peak"] = max(r["peak"] for r in runs)
    out["fps_min"], out["fps_max"] = min(r["fps"] for r in runs), max(r["fps"] for r in runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--dir", default=None, help="scratch folder on the disk to measure")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=None,
        metavar="SETTING",
        help="rows to run, as the table names them ('raw', 'zstd, sharded', ...)",
    )
    parser.add_argument(
        "--tools",
        nargs="+",
        default=list(RUNNERS),
        choices=list(RUNNERS),
        help="tools to measure (os.write is the baseline of the MiB/s ratio)",
    )
    parser.add_argument(
        "--drop-caches",
        action="store_true",
        help="sync and empty the page cache before each run (root only; see _drop_caches)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each tool per setting, taking turns (the table gives their median)",
    )
    parser.add_argument(
        "--format",
        choices=("zarr", "precomputed"),
        default="zarr",
        help="what bigarrays writes (precomputed: raw and gzip rows, no acquire-zarr)",
    )
    parser.add_argument("--child", nargs=6, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, path, frames, codec, sharded, fmt = args.child
        child(tool, path, int(frames), codec, sharded == "1", fmt)
        return
    root = Path(tempfile.mkdtemp(prefix="bench-stream-", dir=args.dir))
    layout = (f"Zarr chunks {DEPTH}x{CHUNK}x{CHUNK} (t, y, x)" if args.format == "zarr" else
              f"precomputed chunks {CHUNK}x{CHUNK}x{DEPTH} (x, y, z)")  # fmt: skip
    print(f"{args.frames} frames of {SIDE}x{SIDE} uint16 ({args.frames * SIDE * SIDE * 2 / MiB:.0f}"
          f" MiB), {layout}, to {root}")  # fmt: skip
    rows = [(codec, sharded) for sharded in (False, True) for codec in CODECS]
    if args.format == "precomputed":
        rows = [("raw", False), ("gzip", False)]
    names = [f"{codec}{', sharded' if sharded else ''}" for codec, sharded in rows]
    unknown = set(args.settings or ()) - set(names)
    if unknown:
        parser.error(f"unknown settings {sorted(unknown)}: choose from {names}")
    plain = {"mibs": float("nan")}
    n = args.repeat
    if "os.write" in args.tools:
        plain = median_run([measure("os.write", root, args.frames, "raw", False, args.drop_caches)
                            for _ in range(n)])  # fmt: skip
        print(f"os.write: {plain['fps']:.1f} frames/s ({plain['fps_min']:.1f}-"
              f"{plain['fps_max']:.1f} in {n} runs), {plain['mibs']:.0f} MiB/s; load average "
              f"{_load()}")  # fmt: skip
    print(
        f"| setting | bigarrays fps (median of {n}; range) | acquire-zarr fps | ratio "
        "| bigarrays MiB/s | vs os.write | bigarrays peak MiB | acquire-zarr peak MiB "
        "| stored MiB (ba / az) | CPU s, user + system (ba / az) | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    missing = dict.fromkeys(("fps", "fps_min", "fps_max", "mibs", "peak", "stored", "user",
                             "system"), float("nan"))  # fmt: skip
    try:
        for (codec, sharded), name in zip(rows, names, strict=True):
            if args.settings and name not in args.settings:
                continue
            peers = ("acquire-zarr",) if args.format == "zarr" else ()  # it writes Zarr only
            tools = [t for t in ("bigarrays", *peers) if t in args.tools]
            runs: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
            # The tools take turns, so that a slow spell of the machine (writeback, another
            # job) falls on both, and each figure is the median of its runs.
            for _ in range(n):
                for tool in tools:
                    runs[tool].append(measure(tool, root, args.frames, codec, sharded,
                                              args.drop_caches, args.format))  # fmt: skip
            ba = median_run(runs["bigarrays"]) if "bigarrays" in runs else missing
            az = median_run(runs["acquire-zarr"]) if "acquire-zarr" in runs else missing
            ratio = ba["fps"] / az["fps"]
            ratio_text = "—" if ratio != ratio else f"{ratio:.2f}x"  # NaN: no peer row
            print(f"| {name} | {_fps(ba)} | {_fps(az)} | {ratio_text} "
                  f"| {ba['mibs']:.0f} | {ba['mibs'] / plain['mibs']:.0%} | {ba['peak']:.0f} "
                  f"| {az['peak']:.0f} | {ba['stored']:.0f} / {az['stored']:.0f} "
                  f"| {_cpu(ba)} / {_cpu(az)} | {os.getloadavg()[0]:.2f} |",
                  flush=True)  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average at the end: {_load()}")


def _fps(run: dict[str, float]) -> str:
    return f"{run['fps']:.1f} ({run['fps_min']:.0f}-{run['fps_max']:.0f})"


def _cpu(run: dict[str, float]) -> str:
    return f"{run['user']:.1f} + {run['system']:.1f}"


def _drop_caches() -> None:
    """Empty the page cache (needs root): with it full of earlier runs' files, a run's large
    allocations wait for the kernel to compact memory, and its CPU time doubles."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _load() -> str:
    # The machine may be shared: figures taken under load are not comparable without it.
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
