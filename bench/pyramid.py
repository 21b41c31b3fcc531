"""Build a 3-level pyramid of the same precomputed volume with bigarrays, igneous and TensorStore.

Run by hand, never by the test suite::

    python bench/pyramid.py                      # 1024x1024x512 uint8 (mean) and uint64 (mode)
    python bench/pyramid.py --shape 512,512,256  # a quick look

Every tool starts from its own copy of the same level 0 (raw chunks of 64³ on local disk) and
adds 3 levels of 2x2x2 (auto factors of an isotropic volume): bigarrays with
``vol.downsample(num_mips=3)``; igneous with ``create_downsampling_tasks`` on a
``LocalTaskQueue`` (tinybrain inside); TensorStore by writing ``ts.downsample(level0, f, m)``
into new scales it creates itself. Each runs in a child process, whose peak resident memory
(with its children's) is sampled every 10 ms. The levels of every tool are checked
against TensorStore's (igneous rounds its means differently and its modes may break ties
otherwise: the table says how many voxels differ). The limit row is the disk's: reading level 0
and writing the levels' bytes with plain ``os`` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

MiB = 2**20
MIPS = 3
CHUNK = 64


def em_like(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Smooth blobs with dark borders and grain, like EM (Fortran order, (x, y, z))."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal(tuple(s // 8 + 2 for s in shape)).astype(np.float32)
    up = coarse.repeat(8, 0).repeat(8, 1).repeat(8, 2)[: shape[0], : shape[1], : shape[2]]
    img = 128 + 60 * np.tanh(up) - 70 * np.exp(-8 * up**2)
    img += rng.normal(0, 6, shape).astype(np.float32)
    return np.asfortranarray(np.clip(img, 0, 255).astype(np.uint8))


def labels_like(shape: tuple[int, int, int], seed: int = 1) -> np.ndarray:
    """Segments with smooth borders, like a segmentation of EM: the level sets of a smooth random
    field (trilinear over 32-voxel cells) cut by 128-voxel blocks, each piece a 64-bit id."""
    from scipy.ndimage import zoom

    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal(tuple(s // 32 + 2 for s in shape)).astype(np.float32)
    field = zoom(coarse, 32, order=1, output=np.float32)[: shape[0], : shape[1], : shape[2]]
    level = np.floor(field * 1.5).astype(np.int64) + 16
    block = np.ix_(*(np.arange(s, dtype=np.int64) // 128 for s in shape))
    piece = ((block[0] * 4099 + block[1]) * 4099 + block[2]) * 64 + level
    return np.asfortranarray((piece * 2654435761 % (1 << 48) + 1).astype(np.uint64))


def write_base(path: str, data: np.ndarray, layer_type: str) -> None:
    import bigarrays as ba

    vol = ba.create(path, shape=data.shape, dtype=data.dtype, chunks=(CHUNK,) * 3,
                    layer_type=layer_type, progress=False)  # fmt: skip
    vol[...] = data
    vol.close()


# -- the tools, each run in a child process --------------------------------------------------------


def run_bigarrays(path: str, method: str, memory: int) -> None:
    import bigarrays as ba

    vol = ba.open(path, mode="r+", progress=False)
    vol.downsample(num_mips=MIPS, method=method, memory_target=memory)


def run_igneous(path: str, method: str, memory: int) -> None:
    import igneous.task_creation as tc
    from taskqueue import LocalTaskQueue

    del method  # igneous pools images by mean and segmentation by mode, as the info says
    # igneous fits fewer levels than asked into a task of memory_target (2 of 3 for uint64
    # labels at 1 GiB): give it 4x, and let its peak memory show what that costs.
    tasks = tc.create_downsampling_tasks(f"file://{path}", mip=0, num_mips=MIPS, factor=(2, 2, 2),
                                         memory_target=4 * memory, fill_missing=True)  # fmt: skip
    queue = LocalTaskQueue(parallel=os.cpu_count() or 1, progress=False)
    queue.insert(tasks)
    queue.execute(progress=False)


def run_tensorstore(path: str, method: str, memory: int) -> None:
    import tensorstore as ts

    del memory
    context = ts.Context({"cache_pool": {"total_bytes_limit": 0}})
    spec = {"driver": "neuroglancer_precomputed", "kvstore": f"file://{path}"}
    base = ts.open({**spec, "scale_index": 0}, context=context).result()
    with open(os.path.join(path, "info")) as fh:
        info = json.load(fh)
    scale0 = info["scales"][0]
    for k in range(1, MIPS + 1):
        f = 2**k
        size = [-(-s // f) for s in scale0["size"]]
        dst = ts.open({**spec, "scale_metadata": {
            "size": size, "voxel_offset": [0, 0, 0], "chunk_size": [CHUNK] * 3,
            "resolution": [r * f for r in scale0["resolution"]], "encoding": "raw",
        }}, create=True, context=context).result()  # fmt: skip
        dst.write(ts.downsample(base, [f, f, f, 1], method)).result()


TOOLS = {"bigarrays": run_bigarrays, "igneous": run_igneous, "tensorstore": run_tensorstore}


def child(tool: str, path: str, method: str, memory: int) -> None:
    import importlib

    for module in {
        "bigarrays": ["bigarrays"],
        "igneous": ["igneous.task_creation", "taskqueue"],
        "tensorstore": ["tensorstore"],
    }[tool]:  # imports are not part of the time
        importlib.import_module(module)
    started = time.perf_counter()
    TOOLS[tool](path, method, memory)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds}))


def run_child(command: list[str]) -> tuple[int, str, str, int]:
    """Run ``command``; its exit status, output, errors and peak resident bytes, the process and
    its children summed (sampled every 10 ms: ``ru_maxrss`` would count the parent's pages,
    which a child keeps across fork and exec)."""
    import psutil

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        watched = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                tree = [watched, *watched.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), peak


# -- checks and limits -----------------------------------------------------------------------------


def differing_voxels(path: str, reference: str) -> int | str:
    """Voxels of levels 1..MIPS that differ from the reference's (TensorStore's) levels."""
    import bigarrays as ba

    ours, ref = ba.open(path), ba.open(reference)
    if ours.mips != MIPS + 1:
        return f"{ours.mips - 1} levels"
    diff = 0
    for k in range(1, MIPS + 1):
        a, b = ours.at_mip(k)[...], ref.at_mip(k)[...]
        diff += int(np.count_nonzero(a != b)) if a.shape == b.shape else a.size
    return diff


def disk_limit_seconds(path: str, data_bytes: int) -> float:
    """Read every chunk of level 0 and write the levels' bytes, with plain os calls."""
    names = [os.path.join(dp, f) for dp, _, fs in os.walk(path) for f in fs if f != "info"]
    out = os.path.join(tempfile.mkdtemp(dir=os.path.dirname(path)), "levels")
    started = time.perf_counter()
    for name in names:
        with open(name, "rb") as fh:
            fh.read()
    level_bytes = sum(data_bytes // 8**k for k in range(1, MIPS + 1))
    with open(out, "wb") as fh:
        block = bytes(8 * MiB)
        for _ in range(-(-level_bytes // len(block))):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    seconds = time.perf_counter() - started
    shutil.rmtree(os.path.dirname(out))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="1024,1024,512")
    parser.add_argument("--memory", type=int, default=1 << 30, help="memory_target, bytes")
    parser.add_argument("--only", default=",".join(TOOLS))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, path, method, memory = args.child
        child(tool, path, method, int(memory))
        return
    shape = tuple(int(s) for s in args.shape.split(","))
    tools = args.only.split(",")
    root = tempfile.mkdtemp(prefix="bigarrays-pyramid-", dir=os.environ.get("BENCH_DIR"))
    print(f"pyramid of {'x'.join(map(str, shape))}, {MIPS} levels of 2x2x2, {CHUNK}³ raw chunks, "
          f"memory_target {args.memory / MiB:.0f} MiB, {os.cpu_count()} cores")  # fmt: skip
    rows: list[dict[str, Any]] = []
    try:
        for name, make, layer, method in (("uint8 image", em_like, "image", "mean"),
                                          ("uint64 labels", labels_like, "segmentation",
                                           "mode")):  # fmt: skip
            data = make(shape)
            base = os.path.join(root, f"base-{layer}")
            write_base(base, data, layer)
            limit = disk_limit_seconds(base, data.nbytes)
            results: dict[str, dict[str, Any]] = {}
            for tool in sorted(tools, key=lambda t: t != "tensorstore"):
                path = os.path.join(root, f"{tool}-{layer}")
                shutil.copytree(base, path)
                command = [sys.executable, __file__, "--child", tool, path, method,
                           str(args.memory)]  # fmt: skip
                status, output, errors, peak = run_child(command)
                if status != 0:
                    results[tool] = {"error": errors.strip().splitlines()[-1:]}
                    continue
                results[tool] = {**json.loads(output.strip().splitlines()[-1]), "peak": peak}
                if tool != "tensorstore" and "tensorstore" in results:
                    results[tool]["diff"] = differing_voxels(path, os.path.join(
                        root, f"tensorstore-{layer}"))  # fmt: skip
            rows.append({"case": f"{name} ({method})", "bytes": data.nbytes, "limit": limit,
                         "results": results})  # fmt: skip
            del data
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(rows, tools)


def report(rows: list[dict[str, Any]], tools: list[str]) -> None:
    print(f"\n{'case':24} {'tool':12} {'seconds':>8} {'MiB/s':>8} {'peak MiB':>9} "
          f"{'voxels != TS':>13} {'ours/this':>9}")  # fmt: skip
    for row in rows:
        ours = row["results"].get("bigarrays", {}).get("seconds")
        for tool in tools:
            r = row["results"].get(tool, {})
            if "error" in r:
                print(f"{row['case']:24} {tool:12} failed: {r['error']}")
                continue
            s = r["seconds"]
            ratio = f"{s / ours:.2f}x" if ours and tool != "bigarrays" else ""
            print(f"{row['case']:24} {tool:12} {s:8.2f} {row['bytes'] / MiB / s:8.0f} "
                  f"{r['peak'] / MiB:9.0f} {r.get('diff', '')!s:>13} {ratio:>9}")  # fmt: skip
        limit = row["limit"]
        print(f"{row['case']:24} {'disk limit':12} {limit:8.2f} {row['bytes'] / MiB / limit:8.0f}")


if __name__ == "__main__":
    main()
