"""Chunk codecs and compressions: encode and decode speed and ratio, beside CloudVolume's.

    python bench/codecs.py                  # full run (~2 min on 2 cores)
    python bench/codecs.py --quick          # smaller volumes, one repeat: a smoke test
    python bench/codecs.py --markdown       # also print the table of docs/encodings.md

Two volumes, cut into 64³ chunks: an EM-like uint8 volume (``bigarrays.synthetic``) and a
uint64 label volume (wavy cells with hashed 64-bit ids, a few dozen per chunk). For each codec
and level, every chunk is encoded, then decoded, on one thread (the pipeline runs one chunk per
thread, so this is the per-core rate); the best of ``--repeat`` runs is kept. MiB/s counts the
uncompressed voxels; ratio = uncompressed bytes / compressed bytes. Every decode is compared with
the input (jpeg: PSNR printed instead), outside the timer.

CloudVolume's column runs the same chunks through ``cloudvolume.chunks`` and
``cloudfiles.compression`` (what ``CloudVolume.__setitem__``/``__getitem__`` call per chunk).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import bigarrays as ba
from bigarrays.box import Box
from bigarrays.errors import ViewerCompatibilityWarning
from bigarrays.stores import content_encoding
from bigarrays.synthetic import synthetic_em

CHUNK = 64
MiB = 2**20


def em_volume(size: tuple[int, int, int]) -> np.ndarray:
    return np.asfortranarray(synthetic_em(Box((0, 0, 0), size)))


def label_volume(size: tuple[int, int, int]) -> np.ndarray:
    """Cells of 20-40 voxels with wavy borders, each a hashed 64-bit id."""
    x, y, z = (np.arange(s, dtype=np.float32) for s in size)
    gx = (x[:, None, None] + 9 * np.sin(0.07 * y[None, :, None]) + 5 * np.sin(0.05 * z)) // 37
    wy = 9 * np.sin(0.06 * z[None, None, :]) + 5 * np.sin(0.04 * x[:, None, None])
    gy = (y[None, :, None] + wy) // 29
    gz = (z[None, None, :] + 4 * np.sin(0.05 * x[:, None, None])) // 11
    cell = gx.astype(np.int64) * 1_000_003 + gy.astype(np.int64) * 7919 + gz.astype(np.int64)
    with np.errstate(over="ignore"):
        ids = cell.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) >> np.uint64(8)
    return np.asfortranarray(ids)


def chunks_of(volume: np.ndarray) -> list[np.ndarray]:
    sx, sy, sz = volume.shape
    return [
        np.asfortranarray(volume[x : x + CHUNK, y : y + CHUNK, z : z + CHUNK, None])
        for z in range(0, sz, CHUNK) for y in range(0, sy, CHUNK) for x in range(0, sx, CHUNK)
    ]  # fmt: skip


@dataclass(frozen=True)
class Codec:
    label: str  # e.g. "gzip", "png"
    level: str  # e.g. "6", "q85", "lz4/5"
    encoding: str
    compression: str | None
    options: dict[str, Any]
    viewer: bool
    volumes: tuple[str, ...]  # "em", "labels"
    #: (encoding, compress method, level) for CloudVolume, or None when it has no such codec.
    cloudvolume: tuple[str, str | None, int | None] | None


def codec_table() -> list[Codec]:
    both = ("em", "labels")
    rows = [Codec("raw", "-", "raw", None, {}, True, both, ("raw", None, None))]
    for level in (1, 3, 6, 9):
        rows.append(Codec("gzip", str(level), "raw", "gzip", {"compression_level": level}, True,
                          both, ("raw", "gzip", level)))  # fmt: skip
    for level in (1, 3, 9, 19):
        rows.append(Codec("zstd", str(level), "raw", "zstd", {"compression_level": level}, True,
                          both, ("raw", "zstd", level)))  # fmt: skip
    for level in (1, 5, 9):
        rows.append(Codec("br", str(level), "raw", "br", {"compression_level": level}, True,
                          both, ("raw", "br", level)))  # fmt: skip
    for cname, level in (("lz4", 5), ("blosclz", 5), ("zstd", 5), ("lz4", 9)):
        rows.append(Codec("blosc", f"{cname}/{level}", "raw", "blosc",
                          {"compression_level": level, "blosc_cname": cname}, False, both,
                          None))  # fmt: skip
    for quality in (85, 95):
        rows.append(Codec("jpeg", f"q{quality}", "jpeg", None, {"jpeg_quality": quality}, True,
                          ("em",), ("jpeg", None, quality)))  # fmt: skip
    for level in (1, 6, 9):
        rows.append(Codec("png", str(level), "png", None, {"png_level": level}, True, ("em",),
                          ("png", None, level)))  # fmt: skip
    labels = ("labels",)
    rows.append(Codec("cseg", "8³", "compressed_segmentation", None, {}, True, labels,
                      ("compressed_segmentation", None, None)))  # fmt: skip
    for comp, level in (("gzip", 6), ("zstd", 3), ("br", 5)):
        rows.append(Codec(f"cseg+{comp}", str(level), "compressed_segmentation", comp,
                          {"compression_level": level}, True, labels,
                          ("compressed_segmentation", comp, level)))  # fmt: skip
    blosc = {"compression_level": 5, "blosc_cname": "lz4"}
    rows.append(Codec("cseg+blosc", "lz4/5", "compressed_segmentation", "blosc", blosc, False,
                      labels, None))  # fmt: skip
    return rows


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@dataclass
class Result:
    encode: float  # MiB/s
    decode: float
    ratio: float
    note: str = ""


def check(decoded: list[np.ndarray], chunks: list[np.ndarray], lossy: bool) -> str:
    if lossy:
        worst = min(psnr(d.reshape(c.shape), c) for d, c in zip(decoded, chunks, strict=True))
        return f"PSNR {worst:.1f} dB"
    for d, c in zip(decoded, chunks, strict=True):
        if not np.array_equal(np.asarray(d).reshape(c.shape), c):
            raise SystemExit("a decoded chunk differs from the input")
    return ""


def run_bigarrays(codec: Codec, chunks: list[np.ndarray], repeat: int) -> Result:
    dtype = chunks[0].dtype
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ViewerCompatibilityWarning)
        vol = ba.create(f"memory://bench-{codec.label}-{codec.level}-{dtype}", shape=(64, 64, 64),
                        dtype=dtype, encoding=codec.encoding, compression=codec.compression,
                        layer_type="segmentation" if dtype == np.uint64 else "image",
                        overwrite=True, **codec.options)  # fmt: skip
    layout = vol.level.source
    transfer, level = layout.transfer_encoding, vol.scale.compression_level

    def encode() -> list[bytes]:
        return [bytes(content_encoding.encode(layout.encode(c), transfer, level)) for c in chunks]

    def decode(blobs: list[bytes]) -> list[np.ndarray]:
        return [
            layout.decode(content_encoding.decode(b, transfer, "k"), c.shape, "k")
            for b, c in zip(blobs, chunks, strict=True)
        ]

    t_enc, blobs = best_time(encode, repeat)
    t_dec, decoded = best_time(lambda: decode(blobs), repeat)
    total = sum(c.nbytes for c in chunks)
    note = check(decoded, chunks, codec.encoding == "jpeg")
    return Result(total / MiB / t_enc, total / MiB / t_dec, total / sum(map(len, blobs)), note)


def run_cloudvolume(codec: Codec, chunks: list[np.ndarray], repeat: int) -> Result | None:
    if codec.cloudvolume is None:
        return None
    from cloudfiles import compression as cfc
    from cloudvolume import chunks as cvc

    encoding, method, level = codec.cloudvolume
    block = (8, 8, 8) if encoding == "compressed_segmentation" else None
    params = {"level": level} if encoding in ("jpeg", "png") else {}

    def encode() -> list[bytes]:
        out = []
        for c in chunks:
            data = cvc.encode(c, encoding, block_size=block, compression_params=params)
            out.append(cfc.compress(data, method, level) if method else data)
        return out

    def decode(blobs: list[bytes]) -> list[np.ndarray]:
        out = []
        for b, c in zip(blobs, chunks, strict=True):
            data = cfc.decompress(b, method) if method else b
            out.append(cvc.decode(data, encoding, shape=c.shape, dtype=c.dtype, block_size=block))
        return out

    t_enc, blobs = best_time(encode, repeat)
    t_dec, decoded = best_time(lambda: decode(blobs), repeat)
    total = sum(c.nbytes for c in chunks)
    note = check(decoded, chunks, encoding == "jpeg")
    return Result(total / MiB / t_enc, total / MiB / t_dec, total / sum(map(len, blobs)), note)


def fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small volumes, one repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--markdown", action="store_true", help="also print the table of docs/encodings.md"
    )
    parser.add_argument("--only", default="", help="comma-separated codec labels to run")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    em_size = (128, 128, 64) if args.quick else (256, 256, 128)
    lab_size = (128, 128, 64) if args.quick else (256, 256, 64)
    volumes = {"em": chunks_of(em_volume(em_size)), "labels": chunks_of(label_volume(lab_size))}

    import cloudvolume

    print(f"# bigarrays {ba.__version__} codecs vs CloudVolume {cloudvolume.__version__}")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, load {load}; "
          f"Python {platform.python_version()}, one thread, {CHUNK}³ chunks, "
          f"best of {repeat}")  # fmt: skip
    ids = len(np.unique(np.concatenate([np.unique(c) for c in volumes["labels"]])))
    print(f"# EM uint8 {em_size} ({sum(c.nbytes for c in volumes['em']) / MiB:.0f} MiB); "
          f"labels uint64 {lab_size} ({sum(c.nbytes for c in volumes['labels']) / MiB:.0f} MiB, "
          f"{ids} ids)")  # fmt: skip
    head = (f"{'volume':7} {'codec':11} {'level':8} {'viewer':6} | {'enc MiB/s':>9} "
            f"{'dec MiB/s':>9} {'ratio':>7} | {'CV enc':>7} {'CV dec':>7} {'CV ratio':>8} "
            "| note")  # fmt: skip
    print(head)
    print("-" * len(head))
    only = set(filter(None, args.only.split(",")))
    results: dict[tuple[str, str], dict[str, tuple[Result, Result | None]]] = {}
    for codec in codec_table():
        if only and codec.label not in only:
            continue
        for name in codec.volumes:
            ours = run_bigarrays(codec, volumes[name], repeat)
            theirs = run_cloudvolume(codec, volumes[name], repeat)
            results.setdefault((codec.label, codec.level), {})[name] = (ours, theirs)
            cv = (f"{fmt(theirs.encode):>7} {fmt(theirs.decode):>7} {theirs.ratio:>8.2f}"
                  if theirs else f"{'-':>7} {'-':>7} {'-':>8}")  # fmt: skip
            print(f"{name:7} {codec.label:11} {codec.level:8} {'yes' if codec.viewer else 'no':6} "
                  f"| {fmt(ours.encode):>9} {fmt(ours.decode):>9} {ours.ratio:>7.2f} | {cv} | "
                  f"{ours.note}", flush=True)  # fmt: skip
    if args.markdown:
        print_markdown(results)
    return 0


def print_markdown(results: dict[tuple[str, str], dict[str, tuple[Result, Result | None]]]) -> None:
    viewer = {(c.label, c.level): c.viewer for c in codec_table()}
    print()
    print("| codec | level | viewer reads | EM enc | EM dec | EM ratio | labels enc | labels dec "
          "| labels ratio | CloudVolume enc / dec (EM; labels) |")  # fmt: skip
    print("|---|---|---|--:|--:|--:|--:|--:|--:|---|")
    for (label, level), per in results.items():
        cells = []
        cv = []
        for name in ("em", "labels"):
            if name in per:
                ours, theirs = per[name]
                cells += [fmt(ours.encode), fmt(ours.decode), f"{ours.ratio:.2f}"]
                if theirs:
                    cv.append(f"{fmt(theirs.encode)} / {fmt(theirs.decode)}")
            else:
                cells += ["", "", ""]
        print(f"| {label} | {level} | {'yes' if viewer[label, level] else '**no**'} | "
              f"{' | '.join(cells)} | {'; '.join(cv) or '-'} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
