"""The rows of ``compare.py`` beyond write / read / cutout: random small cutouts, S3 on moto,
peak memory per tool, the machine's physical limits, and thread and size scaling.

Imported by ``compare.py`` (run that); every read here is checked against the source array
outside the timer, and every tool gets a fresh handle per timed repetition.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
MiB = 2**20
SMALL = 32  # edge of the random cutouts


def _median_ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs:
        return "—"
    return f"{ours / theirs:.2f}x"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    import gc

    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# -- 1,000 random 32³ cutouts ---------------------------------------------------------------------


def random_boxes(n: int, count: int, seed: int = 1) -> list[tuple[tuple[int, int], ...]]:
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - SMALL + 1, size=(count, 3))
    return [tuple((int(a), int(a) + SMALL) for a in s) for s in starts]


def random_cutouts(
    tool: Any, path: str, data: np.ndarray, count: int, repeat: int
) -> tuple[list[float], str | None]:
    """Seconds per run of ``count`` random 32³ reads (a fresh handle per run); failure text."""
    boxes = random_boxes(data.shape[0], count)
    times = []
    for _ in range(repeat):
        handle = tool.open(path)
        seconds, got = _timed(lambda h=handle: [tool.read(h, b) for b in boxes])
        tool.close(handle)
        for b, g in zip(boxes, got, strict=True):
            if not np.array_equal(tool.as_xyz(g), data[tuple(slice(*ab) for ab in b)]):
                return times, f"{tool.name} random cutout {b} returned wrong voxels"
        times.append(seconds)
    return times, None


# -- peak memory of one cutout, in a subprocess ---------------------------------------------------

_MEMORY_SCRIPT = r"""
import gc, json, resource, sys
sys.path.insert(0, {bench!r})
import compare
name, path, box = {name!r}, {path!r}, {box!r}
tool = {{"bigarrays": lambda: compare.BigArraysTool(None, 6),
        "tensorstore": lambda: compare.TensorStoreTool(None, 6),
        "cloudvolume": lambda: compare.CloudVolumeTool(None, 6, 1),
        "zarr": lambda: compare.ZarrTool(None, 6)}}[name]()
handle = tool.open(path)
tool.read(handle, ((0, 64), (0, 64), (0, 64)))  # warm the code paths: imports, pools
gc.collect()
def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
try:  # reset the high-water mark (VmHWM), so the peak is the read's own
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
before = status("VmRSS:")
out = tool.read(handle, box)
peak = status("VmHWM:") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"before": before, "peak": peak, "reset": reset,
                  "nbytes": int(out.nbytes)}}))
"""


def peak_memory(name: str, path: str, box: tuple[tuple[int, int], ...]) -> dict[str, int] | str:
    """Peak RSS growth of one cutout in a fresh process, or an error text."""
    script = _MEMORY_SCRIPT.format(bench=str(BENCH), name=name, path=path, box=box)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
    result: dict[str, int] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- physical limits ------------------------------------------------------------------------------


def memcpy_mib_s(nbytes: int, repeat: int) -> float:
    src = np.ones(nbytes, np.uint8)
    dst = np.zeros(nbytes, np.uint8)
    dst[:] = 1  # touch every page first: the copy, not the page faults
    times = []
    for _ in range(max(3, repeat)):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    return nbytes / MiB / statistics.median(times)


def readv_mib_s(folder: str, repeat: int) -> tuple[float, int]:
    """Plain ``os.readv`` of every file in ``folder`` into one preallocated buffer."""
    names = [os.path.join(folder, n) for n in sorted(os.listdir(folder))]
    size = max(os.path.getsize(n) for n in names)
    buf = memoryview(bytearray(size + 1))
    total = sum(os.path.getsize(n) for n in names)
    return total / MiB / readv_seconds(names, buf, repeat), total


def readv_seconds(names: list[str], buf: memoryview, repeat: int) -> float:
    """Median seconds of ``os.readv`` of every file of ``names`` whole into ``buf``."""
    times = []
    for _ in range(max(3, repeat)):
        t0 = time.perf_counter()
        for name in names:
            fd = os.open(name, os.O_RDONLY)
            os.readv(fd, [buf])
            os.close(fd)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def write_files_mib_s(folder: str, repeat: int, threads: int) -> float:
    """Plain ``os.write`` of copies of every file in ``folder`` to new files, ``threads`` at once.

    Each copy goes to a temp name and is renamed, as every atomic writer does; a fresh folder per
    repetition, ``os.sync()`` before each, so no run flushes an earlier one's pages. The folders
    are removed only at the end: writing just after freeing as many page-cache pages runs up to
    5x faster on this machine (measured 3,900 against 700 MiB/s), which no real write enjoys.
    """
    from concurrent.futures import ThreadPoolExecutor

    names = sorted(os.listdir(folder))
    blobs = [Path(folder, n).read_bytes() for n in names]
    total = sum(map(len, blobs))
    times = []
    outs = []
    for rep in range(max(3, repeat)):
        out = f"{folder}.plain-write-{rep}"
        os.mkdir(out)
        outs.append(out)

        def write(i: int, out: str = out) -> None:
            tmp = f"{out}/.{i}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, blobs[i])
            finally:
                os.close(fd)
            os.rename(tmp, f"{out}/{names[i]}")

        os.sync()
        with ThreadPoolExecutor(threads) as pool:
            t0 = time.perf_counter()
            list(pool.map(write, range(len(names))))
            times.append(time.perf_counter() - t0)
    for out in outs:
        shutil.rmtree(out, ignore_errors=True)
    return total / MiB / statistics.median(times)


# -- S3 on moto -----------------------------------------------------------------------------------


@contextmanager
def moto_server() -> Iterator[str]:
    sys.path.insert(0, str(BENCH.parent / "tests"))
    from network_servers import MotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_SESSION_TOKEN", "")  # cloudfiles reads it unconditionally
    with MotoServer() as server:
        yield server.endpoint


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)


def moto_ceiling(endpoint: str, bucket: str, nbytes: int, count: int) -> dict[str, float]:
    """MiB/s of ``count`` PUTs, then GETs, of ``nbytes`` objects from a bare HTTP client.

    urllib3 with a fixed, unverified SigV4 header (moto checks that one is there, not that it
    is right), no checksums and no response parsing: what moto itself can serve on this machine,
    so the most any client can reach here. Best of 1, 2 and 4 threads, 2 runs each.
    """
    from concurrent.futures import ThreadPoolExecutor

    import urllib3

    payload = os.urandom(nbytes)
    headers = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=00",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "x-amz-date": "20260101T000000Z",
    }
    pool = urllib3.PoolManager(maxsize=8)

    def put(i: int) -> None:
        r = pool.request("PUT", f"{endpoint}/{bucket}/ceiling/{i}", body=payload, headers=headers)
        if r.status != 200:
            raise RuntimeError(f"moto answered PUT with {r.status}")

    def get(i: int) -> None:
        r = pool.request("GET", f"{endpoint}/{bucket}/ceiling/{i}", headers=headers)
        if r.status != 200 or len(r.data) != nbytes:
            raise RuntimeError(f"moto answered GET with {r.status}, {len(r.data)} bytes")

    best: dict[str, float] = {}
    for op, fn in (("write", put), ("read", get)):
        seconds = float("inf")
        for threads in (1, 2, 4):
            for _ in range(2):
                with ThreadPoolExecutor(threads) as pool_threads:
                    t0 = time.perf_counter()
                    list(pool_threads.map(fn, range(count)))
                    seconds = min(seconds, time.perf_counter() - t0)
        best[op] = count * nbytes / MiB / seconds
    pool.clear()
    return best


class S3Tools:
    """Create / write / open / read one volume on the moto bucket, per tool."""

    def __init__(self, endpoint: str, bucket: str, chunk: int, gzip_level: int) -> None:
        self.endpoint, self.bucket, self.chunk, self.level = endpoint, bucket, chunk, gzip_level

    def supports(self, name: str, case: str) -> str | None:
        if name == "tensorstore" and case == "gzip":
            return (
                "tensorstore/gzip on S3: n/a — it writes no gzip chunks for unsharded "
                "precomputed (gzip is only a transfer Content-Encoding it reads)"
            )
        if name == "zarr":
            return "zarr on S3: not run (needs s3fs/obstore for its store; not installed)"
        return None

    def settings(self) -> str:
        return (
            f"moto_server on {self.endpoint} (a separate Python process on the same cpus); "
            "bigarrays s3:// with endpoint=, default threads (the store's concurrency); "
            "TensorStore s3 kvstore with endpoint, default concurrency, cache_pool 0; "
            "CloudVolume through a cloudfiles alias to s3://http://host:port/ (its "
            "custom-endpoint way), "
            "parallel=1 (green threads off: its default), progress=False"
        )

    def create(self, name: str, prefix: str, shape: tuple[int, ...], case: str) -> Any:
        gz = case == "gzip"
        if name == "bigarrays":
            import bigarrays as ba

            return ba.create(
                f"s3://{self.bucket}/{prefix}",
                shape=shape,
                chunks=(self.chunk,) * 3,
                compression="gzip" if gz else None,
                compression_level=self.level if gz else None,
                progress=False,
                endpoint=self.endpoint,
                region="us-east-1",
            )
        if name == "tensorstore":
            import tensorstore as ts

            spec = {
                "driver": "neuroglancer_precomputed",
                "kvstore": self._ts_kv(prefix),
                "multiscale_metadata": {"type": "image", "data_type": "uint8", "num_channels": 1},
                "scale_metadata": {
                    "size": list(shape),
                    "chunk_size": [self.chunk] * 3,
                    "encoding": "raw",
                    "resolution": [1, 1, 1],
                    "voxel_offset": [0, 0, 0],
                },
            }
            ctx = ts.Context({"cache_pool": {"total_bytes_limit": 0}})
            return ts.open(spec, create=True, context=ctx).result()
        from cloudvolume import CloudVolume

        info = CloudVolume.create_new_info(
            num_channels=1,
            layer_type="image",
            data_type="uint8",
            encoding="raw",
            resolution=[1, 1, 1],
            voxel_offset=[0, 0, 0],
            chunk_size=[self.chunk] * 3,
            volume_size=list(shape),
        )
        vol = CloudVolume(
            self._cv_path(prefix), info=info, compress="gzip" if gz else False, progress=False
        )
        vol.commit_info()
        return vol

    def _ts_kv(self, prefix: str) -> dict[str, Any]:
        return {
            "driver": "s3",
            "bucket": self.bucket,
            "path": prefix + "/",
            "endpoint": self.endpoint,
            "aws_region": "us-east-1",
        }

    def _cv_path(self, prefix: str) -> str:
        # CloudVolume's path parser refuses s3://http://...; a cloudfiles alias is its
        # documented way to a custom S3 endpoint.
        import cloudfiles.paths

        if "bamoto" not in cloudfiles.paths.ALIASES:
            cloudfiles.paths.add_alias("bamoto", f"s3://{self.endpoint}/")
        return f"bamoto://{self.bucket}/{prefix}"

    def write(self, name: str, handle: Any, data: np.ndarray) -> None:
        x, y, z = data.shape
        if name == "tensorstore":
            handle[:, :, :, 0].write(data).result()
        else:
            handle[0:x, 0:y, 0:z] = data

    def open(self, name: str, prefix: str) -> Any:
        if name == "bigarrays":
            import bigarrays as ba

            return ba.open(
                f"s3://{self.bucket}/{prefix}",
                progress=False,
                endpoint=self.endpoint,
                region="us-east-1",
            )
        if name == "tensorstore":
            import tensorstore as ts

            spec = {"driver": "neuroglancer_precomputed", "kvstore": self._ts_kv(prefix)}
            ctx = ts.Context({"cache_pool": {"total_bytes_limit": 0}})
            return ts.open(spec, open=True, read=True, context=ctx).result()
        from cloudvolume import CloudVolume

        return CloudVolume(self._cv_path(prefix), progress=False, fill_missing=False)

    def read(self, name: str, handle: Any, shape: tuple[int, ...]) -> np.ndarray:
        x, y, z = shape
        if name == "tensorstore":
            return np.asarray(handle[0:x, 0:y, 0:z, 0].read(order="F").result())
        if name == "cloudvolume":
            return np.asarray(handle[0:x, 0:y, 0:z])[..., 0]
        return np.asarray(handle[0:x, 0:y, 0:z])


def s3_case(
    s3: S3Tools, name: str, case: str, data: np.ndarray, repeat: int, tag: str
) -> tuple[dict[str, list[float]], str | None]:
    """Write and read seconds on S3 for one tool and case, or the reason it failed."""
    times: dict[str, list[float]] = {"write": [], "read": []}
    prefix = ""
    for i in range(repeat):
        prefix = f"{tag}/{name}-{case}-{i}"  # CloudVolume wants dataset/layer
        handle = s3.create(name, prefix, data.shape, case)
        seconds, _ = _timed(lambda h=handle: s3.write(name, h, data))
        times["write"].append(seconds)
        if name == "bigarrays":
            handle.close()
    for _ in range(repeat):
        handle = s3.open(name, prefix)
        seconds, got = _timed(lambda h=handle: s3.read(name, h, data.shape))
        if name == "bigarrays":
            handle.close()
        if not np.array_equal(got, data):
            return times, f"{name}/{case} on S3 read back wrong voxels"
        times["read"].append(seconds)
    return times, None


def rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- the sections, printed after compare.py's main table ------------------------------------------


def run_extras(
    args: Any, tools: list[Any], data: np.ndarray, root: str, results: dict[Any, Any]
) -> tuple[list[str], bool]:
    """Run the sections ``args.sections`` names; their printed text and whether any read failed."""
    import compare as cmp

    out: list[str] = []
    failed = False
    n, c = data.shape[0], args.chunk
    sections = args.sections
    nbytes = n**3
    paths: dict[str, str] = {}
    if {"random", "memory", "limits"} & set(sections):
        for tool in tools:  # one raw dataset per tool, written outside any timer
            path = os.path.join(root, f"extra-{tool.name}")
            handle = tool.create(path, data.shape, c, "raw")
            tool.write(handle, data)
            tool.close(handle)
            paths[tool.name] = path

    if "random" in sections:
        count = args.random_count
        rows, notes, rate = [], [], {}
        for tool in tools:
            _log(f"{tool.name} / {count} random {SMALL}³ cutouts ...")
            times, why = random_cutouts(tool, paths[tool.name], data, count, args.repeat)
            _log("  " + " ".join(f"{s:.3f}s" for s in times))
            if why:
                notes.append("FAILED: " + why)
                failed = True
                rows.append([tool.name, "FAIL", "FAIL", "—"])
                continue
            med = statistics.median(times)
            rate[tool.name] = count / med
            rows.append([tool.name, f"{count / med:,.0f}", f"{med / count * 1e3:.3f}", ""])
        for row in rows:
            if row[0] != "bigarrays" and row[0] in rate:
                row[3] = _median_ratio(rate.get("bigarrays"), rate[row[0]])
            elif row[0] == "bigarrays":
                row[3] = "—"
        # The cache is a separate, labelled row: it is the case of repeated small cutouts.
        if "bigarrays" in paths:
            import bigarrays as ba

            boxes = random_boxes(n, count)
            times = []
            for _ in range(args.repeat):
                vol = ba.open(paths["bigarrays"], progress=False, cache_bytes=256 * MiB)
                seconds, _ = _timed(lambda v=vol: [v[tuple(slice(*ab) for ab in b)] for b in boxes])
                vol.close()
                times.append(seconds)
            med = statistics.median(times)
            rows.append(
                [
                    "bigarrays cache_bytes=256MiB (caching case)",
                    f"{count / med:,.0f}",
                    f"{med / count * 1e3:.3f}",
                    "(not a ratio)",
                ]
            )
        out.append(
            f"{count} random {SMALL}³ cutouts of the raw volume (latency-bound; "
            f"fresh handle per run, median of {args.repeat}; no cache unless labelled)"
        )
        out.append(cmp.render_table(rows, ["tool", "cutouts/s", "ms each", "ba/·"], {1, 2, 3}))
        out += [f"note: {x}" for x in notes]
        out.append("")

    if "memory" in sections:
        half = n // 2
        start = [min(o, n - half) for o in cmp.CUTOUT_OFFSET]
        box = tuple((s, s + half) for s in start)
        want = half**3
        rows = []
        for tool in tools:
            _log(f"{tool.name} / peak memory of a {half}³ cutout ...")
            r = peak_memory(tool.name, paths[tool.name], box)
            if isinstance(r, str):
                rows.append([tool.name, "error", r[:60], "", ""])
                continue
            grow = r["peak"] - r["before"]
            extra = grow - want
            ok = "met" if grow <= want + 64 * MiB else "MISSED"
            rows.append(
                [tool.name, f"{want / MiB:.1f}", f"{grow / MiB:.1f}", f"{extra / MiB:+.1f}", ok]
            )
        out.append(
            f"peak memory of one {half}³ raw cutout (N bytes returned), in a fresh process "
            "per tool: the high-water mark VmHWM (reset through /proc/self/clear_refs "
            "before the read) minus VmRSS just before it; target <= N + 64 MiB"
        )
        out.append(
            cmp.render_table(
                rows, ["tool", "N MiB", "peak growth MiB", "over N MiB", "<= N+64MiB"], {1, 2, 3}
            )
        )
        out.append("")

    if "limits" in sections:
        mem = memcpy_mib_s(nbytes, args.repeat)
        folder = None
        if "bigarrays" in paths:
            folder = os.path.join(paths["bigarrays"], "1_1_1")
        lines = [
            f"memory copy (np.copyto of {nbytes / MiB:.0f} MiB, pages pre-touched): "
            f"{mem:,.0f} MiB/s"
        ]
        if folder and os.path.isdir(folder):
            rv, total = readv_mib_s(folder, args.repeat)
            lines.append(
                f"os.readv of the same {len(os.listdir(folder))} chunk files "
                f"({total / MiB:.0f} MiB) into one preallocated buffer: {rv:,.0f} MiB/s"
            )
            from bigarrays.stores.base import local_disk_concurrency

            writers = local_disk_concurrency()  # as many as bigarrays' default
            wf = write_files_mib_s(folder, args.repeat, writers)
            lines.append(
                f"os.write of copies of the same files (temp file + rename, {writers} threads): "
                f"{wf:,.0f} MiB/s"
            )
            ours = results.get(("bigarrays", "raw"))
            if ours is not None and not ours.failed and not ours.skipped:
                read = ours.mib_s("read", nbytes)
                write = ours.mib_s("write", nbytes)
                if read:
                    lines.append(
                        f"bigarrays full raw read {read:,.0f} MiB/s = "
                        f"{read / rv:.0%} of os.readv, {read / mem:.0%} of memcpy"
                    )
                if write:
                    lines.append(
                        f"bigarrays full raw write {write:,.0f} MiB/s = {write / wf:.0%} of plain "
                        f"os.write, {write / mem:.0%} of memcpy"
                    )
        out.append("physical limits on this machine (page cache warm)")
        out += ["  " + x for x in lines]
        out.append("")

    for path in paths.values():
        rmtree(path)

    if "scaling" in sections:
        import bigarrays as ba

        rows = []
        for threads in (1, 2, 4, 8):
            t = cmp.BigArraysTool(threads, args.gzip_level)
            res = cmp.run_one(t, "raw", data, c, ((0, 1), (0, 1), (0, 1)), args.repeat, root)
            failed |= bool(res.failed)
            rows.append(
                [
                    f"threads={threads}",
                    f"{n}³",
                    cmp.fmt_rate(res.mib_s("write", nbytes)),
                    cmp.fmt_rate(res.mib_s("read", nbytes)),
                ]
            )
        sizes = [s for s in (128, 256, 512, 1024) if s <= args.max_scale_size]
        for size in sizes:
            vol_data = data if size == n else cmp.em_like(size)
            t = cmp.BigArraysTool(None, args.gzip_level)
            res = cmp.run_one(t, "raw", vol_data, c, ((0, 1), (0, 1), (0, 1)), args.repeat, root)
            failed |= bool(res.failed)
            rows.append(
                [
                    "threads=default",
                    f"{size}³",
                    cmp.fmt_rate(res.mib_s("write", size**3)),
                    cmp.fmt_rate(res.mib_s("read", size**3)),
                ]
            )
            del vol_data
        out.append(
            f"bigarrays scaling, raw, MiB/s (median of {args.repeat}; "
            f"{os.cpu_count()} cpus: more threads than cpus only overlap I/O)"
        )
        out.append(cmp.render_table(rows, ["threads", "volume", "write", "read"], {2, 3}))
        out.append("")

    if "s3" in sections:
        s3n = args.s3_size
        s3_data = data if s3n == n else np.asfortranarray(data[:s3n, :s3n, :s3n])
        names = [t.name for t in tools]
        rows = []
        notes = []
        with moto_server() as endpoint:
            bucket = f"bench-{os.getpid()}"
            make_bucket(endpoint, bucket)
            s3 = S3Tools(endpoint, bucket, c, args.gzip_level)
            for case in args.cases:
                rates: dict[str, dict[str, float]] = {}
                for name in names:
                    why = s3.supports(name, case)
                    if why:
                        notes.append(why)
                        rows.append([case, name, "n/a", "n/a", "", ""])
                        continue
                    _log(f"{name} / {case} on S3 (moto) ...")
                    try:
                        times, err = s3_case(s3, name, case, s3_data, args.repeat, "b")
                    except Exception as exc:  # a peer that cannot talk to moto: say so
                        times, err = {}, f"{name}/{case} on S3: {type(exc).__name__}: {exc}"[:200]
                    if err:
                        notes.append(err)
                        failed |= "wrong voxels" in err
                        rows.append([case, name, "FAIL", "FAIL", "", ""])
                        continue
                    _log("  " + " ".join(f"{k} {s:.2f}s" for k, v in times.items() for s in v))
                    rates[name] = {k: s3n**3 / MiB / statistics.median(v) for k, v in times.items()}
                    rows.append(
                        [
                            case,
                            name,
                            cmp.fmt_rate(rates[name]["write"]),
                            cmp.fmt_rate(rates[name]["read"]),
                            "",
                            "",
                        ]
                    )
                ours = rates.get("bigarrays")
                for row in rows:
                    if row[0] == case and row[1] in rates and row[1] != "bigarrays" and ours:
                        row[4] = _median_ratio(ours["write"], rates[row[1]]["write"])
                        row[5] = _median_ratio(ours["read"], rates[row[1]]["read"])
            _log("moto's ceiling (bare HTTP client) ...")
            ceiling = moto_ceiling(endpoint, bucket, c**3, (s3n // c) ** 3)
        out.append(
            f"S3 on moto (loopback), full {s3n}³ volume, MiB/s of uncompressed voxels, "
            f"median of {args.repeat}; target >= 1.5x CloudVolume and TensorStore"
        )
        out.append("settings: " + s3.settings())
        out.append(
            cmp.render_table(
                rows, ["case", "tool", "write", "read", "ba/· write", "ba/· read"], {2, 3, 4, 5}
            )
        )
        out.append(
            f"moto's ceiling: {(s3n // c) ** 3} objects of {c}³ bytes from a bare HTTP client "
            f"(urllib3, no signing, no checksums, best of 1/2/4 threads): "
            f"PUT {ceiling['write']:,.0f} MiB/s, GET {ceiling['read']:,.0f} MiB/s"
        )
        for row in rows:
            if row[0] == "raw" and row[1] == "bigarrays" and row[2] not in ("n/a", "FAIL"):
                out.append(
                    f"  bigarrays raw = {float(row[2].replace(',', '')) / ceiling['write']:.0%} "
                    f"of it writing, {float(row[3].replace(',', '')) / ceiling['read']:.0%} "
                    "reading; no client can pass 1.5x a peer that reaches 2/3 of it"
                )
        out += [f"note: {x}" for x in dict.fromkeys(notes)]
        out.append("")
    return out, failed
