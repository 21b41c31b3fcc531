"""Dask in and out: bigarrays' to_dask / from_dask against direct access and the peers' Dask paths.

Run by hand, never by the test suite::

    python bench/dask_compare.py                      # 512³ uint8, 64³ raw chunks, 3 repeats
    python bench/dask_compare.py --size 128 --repeat 1 --workers ''   # a smoke run, ~10 s
    python bench/dask_compare.py --workers 1,2        # plus our rows on a LocalCluster
    python bench/dask_compare.py --cluster-peers      # and the peers' there too (slow)
    python bench/dask_compare.py --only write --workers ''   # repeat the threaded write rows

Every row moves the whole volume on local disk (a fresh folder per write, a fresh handle per
read, each result checked against the source array) and prints MiB/s of voxels (median of
--repeat, after one untimed run; the rows of a section take turns, one run of each per round).
Reads: ``vol.to_dask().sum()`` on Dask's threaded scheduler against a direct ``vol[...]`` (and
``vol[...].sum()``, the same work without Dask), and CloudVolume's
``cloudvolume.dask.from_cloudvolume(...).sum()``. Writes: ``ba.from_dask`` against a direct
``vol[...] = data``, CloudVolume's ``to_cloudvolume`` and ``dask.array.to_zarr`` into a
zarr-python v3 array of the same chunks, uncompressed; and, as "write zarr" rows,
``ba.from_dask`` into a Zarr v3 array against a direct write of it and ``to_zarr`` (the same
format on both sides: no transposition into x-fastest chunks). With --workers, the same Dask
rows on a ``distributed.LocalCluster`` of that many single-threaded worker processes."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bigarrays as ba
import compare as cmp  # a sibling script, found through the path set above

MiB = 2**20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=512, help="edge of the cube (voxels)")
    p.add_argument("--chunk", type=int, default=64, help="edge of a stored chunk")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dir", default=None, help="where the datasets go (default: a temp folder)")
    p.add_argument("--workers", default="1,2",
                   help="LocalCluster sizes to run the Dask rows on ('' for none)")  # fmt: skip
    p.add_argument(
        "--cluster-peers",
        action="store_true",
        help="run CloudVolume and zarr-python on the cluster too (slow: minutes)",
    )
    p.add_argument("--no-threads", action="store_true", help="only the cluster rows")
    p.add_argument("--only", choices=("read", "write"), default=None,
                   help="only the read rows or only the write rows (to repeat them)")  # fmt: skip
    return p.parse_args(argv)


class Bench:
    def __init__(self, args: argparse.Namespace, data: np.ndarray, root: str) -> None:
        self.args, self.data, self.root = args, data, root
        self.mib = data.nbytes / MiB
        self.rows: list[tuple[str, str, float]] = []  # (section, name, MiB/s)
        self.serial = 0
        self._turns: list[Any] | None = None

    def fresh(self, name: str) -> str:
        self.serial += 1
        return os.path.join(self.root, f"{name}-{self.serial}")

    def time(self, section: str, name: str, run: Callable[[], Any], check: Callable[[Any], bool],
             setup: Callable[[], Any] | None = None) -> None:  # fmt: skip
        row = (section, name, run, check, setup)
        if self._turns is None:
            self._run([row])
        else:
            self._turns.append(row)

    @contextlib.contextmanager
    def taking_turns(self) -> Iterator[None]:
        """Rows timed inside run in rounds, one run of each per round: a slow spell of the
        machine (writeback, another job) then falls on every row, not on one, and the ratios
        between them hold."""
        self._turns = []
        try:
            yield
            rows = self._turns
        finally:
            self._turns = None
        self._run(rows)

    def _run(self, rows: list[tuple[str, str, Callable[..., Any], Callable[[Any], bool],
                                    Callable[[], Any] | None]]) -> None:  # fmt: skip
        seconds: list[list[float]] = [[] for _ in rows]
        # The first round pays for imports, and on a cluster for the workers' imports: untimed,
        # as a long job amortises them.
        for i in range(self.args.repeat + 1):
            for (section, name, run, check, setup), took in zip(rows, seconds, strict=True):
                state = setup() if setup is not None else None
                t, out = cmp.timed(lambda s=state, f=run: f() if s is None else f(s))  # type: ignore[misc]
                if not check(out if state is None else (state, out)):
                    raise SystemExit(f"{section} / {name}: wrong result")
                if i:
                    took.append(t)
        for (section, name, *_), took in zip(rows, seconds, strict=True):
            rate = self.mib / statistics.median(took)
            self.rows.append((section, name, rate))
            cmp.log(f"  {section:<6} {name:<58} {rate:8,.0f} MiB/s")


def reads(b: Bench, path: str, cv_path: str, scheduler: Any, tag: str) -> None:
    data = b.data
    total = int(data.sum(dtype=np.uint64))

    def is_total(x: Any) -> bool:
        return int(x) == total

    if tag == "threads":
        b.time("read", "bigarrays vol[...]", lambda: ba.open(path)[...],
               lambda got: np.array_equal(got, data))  # fmt: skip
        b.time("read", "bigarrays vol[...].sum()", lambda: ba.open(path)[...].sum(dtype=np.uint64),
               is_total)  # fmt: skip
    b.time("read", f"bigarrays to_dask().sum() [{tag}]",
           lambda: ba.open(path).to_dask().sum(dtype=np.uint64).compute(scheduler=scheduler),
           is_total)  # fmt: skip
    b.time("read", f"bigarrays to_dask(chunks='auto').sum() [{tag}]",
           lambda: ba.open(path).to_dask(chunks="auto").sum(dtype=np.uint64)
           .compute(scheduler=scheduler), is_total)  # fmt: skip
    if tag != "threads" and not b.args.cluster_peers:
        return
    from cloudvolume.dask import from_cloudvolume

    b.time("read", f"cloudvolume from_cloudvolume().sum() [{tag}]",
           lambda: from_cloudvolume(f"file://{cv_path}").sum(dtype=np.uint64)
           .compute(scheduler=scheduler), is_total)  # fmt: skip


def source(data: np.ndarray, block: int, scheduler: Any) -> da.Array:
    """``data`` (C-ordered) as a Dask array of ``block``³ chunks, held where the scheduler
    computes: on a cluster, persisted in the workers' memory first, so a row times the writes,
    not the shipping of the array in the graph.

    ``from_array`` hands its blocks over C-ordered, copying them so: from a C-ordered array that
    copy is a plain one, as the direct C-ordered write's input is given; from the Fortran-ordered
    volume it would be a transposition inside every Dask row that no direct row pays."""
    darr = da.from_array(data, chunks=block)
    if isinstance(scheduler, str):
        return darr
    from distributed import wait

    darr = scheduler.persist(darr)
    wait(darr)
    return darr


def writes(b: Bench, scheduler: Any, tag: str) -> None:
    data, c = b.data, b.args.chunk
    same = (c, c, c)
    # Dask hands blocks over in C order; the direct rows write the same C-ordered voxels (and
    # the volume's own Fortran-ordered ones, for scale: a precomputed volume stores x fastest,
    # so a C-ordered write transposes).
    c_data = np.ascontiguousarray(data)

    def check_ba(state: Any) -> bool:
        return bool(np.array_equal(ba.open(state[0])[...], data))

    if tag == "threads":
        for name, voxels in (("data (C order)", c_data), ("data (Fortran order)", data)):

            def direct(path: str, voxels: np.ndarray = voxels) -> str:
                ba.create(path, shape=data.shape, dtype="uint8", chunks=same)[...] = voxels
                return path

            b.time("write", f"bigarrays vol[...] = {name}", direct, check_ba,
                   lambda: b.fresh("direct"))  # fmt: skip

        # The same voxels into a Zarr array (C order, as Dask's blocks): no transposition, the
        # like of what dask.array.to_zarr writes.
        def direct_zarr(path: str) -> str:
            ba.create(path, shape=data.shape, dtype="uint8", chunks=same, format="zarr")[...] = (
                c_data
            )
            return path

        b.time("write zarr", "bigarrays zarr vol[...] = data (C order)", direct_zarr, check_ba,
               lambda: b.fresh("direct-zarr"))  # fmt: skip
    for block in (c, 4 * c):
        darr = source(c_data, block, scheduler)

        def from_dask(path: str, darr: da.Array = darr, **options: Any) -> str:
            ba.from_dask(darr, path, chunks=same, scheduler=scheduler, **options)
            return path

        b.time("write", f"bigarrays from_dask(dask chunks {block}³) [{tag}]", from_dask, check_ba,
               lambda: b.fresh("from-dask"))  # fmt: skip
        b.time("write zarr", f"bigarrays from_dask(dask chunks {block}³) into Zarr [{tag}]",
               lambda path, f=from_dask: f(path, format="zarr"), check_ba,
               lambda: b.fresh("from-dask-zarr"))  # fmt: skip
    if tag != "threads" and not b.args.cluster_peers:
        return
    from cloudvolume.dask import to_cloudvolume

    darr = source(c_data, c, scheduler)

    def cloudvolume(path: str) -> str:
        to_cloudvolume(darr, f"file://{path}", compute=False, compress=False).compute(
            scheduler=scheduler
        )
        return path

    def check_cv(state: Any) -> bool:
        from cloudvolume import CloudVolume

        got = CloudVolume(f"file://{state[0]}", progress=False)[...][..., 0]
        return bool(np.array_equal(got, data))

    b.time("write", f"cloudvolume to_cloudvolume() [{tag}]", cloudvolume, check_cv,
           lambda: b.fresh("cv"))  # fmt: skip
    import zarr

    def to_zarr(z: Any) -> None:
        darr.to_zarr(z, compute=False).compute(scheduler=scheduler)

    def zarr_array() -> Any:
        return zarr.create_array(b.fresh("zarr"), shape=data.shape, chunks=same, dtype="uint8",
                                 compressors=None, fill_value=0)  # fmt: skip

    for section in ("write", "write zarr"):  # a peer of both: the precomputed and Zarr rows
        b.time(section, f"dask.array.to_zarr (zarr-python) [{tag}]", to_zarr,
               lambda state: bool(np.array_equal(state[0][...], data)), zarr_array)  # fmt: skip


def report(b: Bench) -> str:
    rates = {(s, n): r for s, n, r in b.rows}
    base = {
        "read": rates.get(("read", "bigarrays vol[...].sum()")),
        "write": rates.get(("write", "bigarrays vol[...] = data (C order)")),
        "write zarr": rates.get(("write zarr", "bigarrays zarr vol[...] = data (C order)")),
    }

    def tag(name: str) -> str:
        return name[name.rfind("[") :] if name.endswith("]") else ""

    def fastest_peer(section: str, name: str) -> float | None:
        """The fastest peer of the same operation on the same scheduler."""
        return max((r for (sec, n), r in rates.items() if sec == section and tag(n) == tag(name)
                    and not n.startswith("bigarrays")), default=None)  # fmt: skip

    lines = ["| op | what | MiB/s | ÷ direct | ÷ fastest peer |", "|---|---|--:|--:|--:|"]
    for section, name, rate in b.rows:
        ours = name.startswith("bigarrays")
        direct = base[section]
        peer = fastest_peer(section, name)
        lines.append(
            f"| {section} | {name} | {rate:,.0f} | "
            f"{cmp.fmt_ratio(rate, direct) if ours and direct else '—'} | "
            f"{cmp.fmt_ratio(rate, peer) if ours and peer else '—'} |"
        )
    ups = ["", "| Dask row | 1 → 2 worker processes |", "|---|--:|"]
    for (section, name), rate in rates.items():
        if name.endswith("[1 process]"):
            two = rates.get((section, name.replace("[1 process]", "[2 processes]")))
            if two is not None:
                ups.append(
                    f"| {section}: {name.removesuffix(' [1 process]')} | {two / rate:.2f}x |"
                )
    return "\n".join(lines + (ups if len(ups) > 3 else []))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = tempfile.mkdtemp(prefix="dask-bench-", dir=args.dir)
    try:
        data = np.asfortranarray(cmp.em_like(args.size))
        b = Bench(args, data, root)
        path, cv_path = os.path.join(root, "source"), os.path.join(root, "source-cv")
        c = args.chunk
        ba.create(path, shape=data.shape, dtype="uint8", chunks=(c, c, c))[...] = data
        from cloudvolume import CloudVolume

        info = CloudVolume.create_new_info(1, "image", "uint8", "raw", (1, 1, 1), (0, 0, 0),
                                           data.shape, chunk_size=(c, c, c))  # fmt: skip
        cv = CloudVolume(f"file://{cv_path}", info=info, progress=False, compress=False)
        cv.commit_info()
        cv[...] = data
        cmp.log(f"{args.size}³ uint8, {c}³ raw chunks, {os.cpu_count()} cores, "
                f"dask {dask.__version__}, median of {args.repeat}")  # fmt: skip
        if not args.no_threads:
            with dask.config.set(scheduler="threads"):
                if args.only != "write":
                    with b.taking_turns():
                        reads(b, path, cv_path, "threads", "threads")
                if args.only != "read":
                    with b.taking_turns():
                        writes(b, "threads", "threads")
        for n in [int(w) for w in args.workers.split(",") if w.strip()]:
            from distributed import Client, LocalCluster

            with (
                LocalCluster(n_workers=n, processes=True, threads_per_worker=1,
                             dashboard_address=None, host="127.0.0.1") as cluster,
                Client(cluster) as client,
            ):  # fmt: skip
                tag = f"{n} process{'es' if n > 1 else ''}"
                if args.only != "write":
                    with b.taking_turns():
                        reads(b, path, cv_path, client, tag)
                if args.only != "read":
                    with b.taking_turns():
                        writes(b, client, tag)
        print(report(b))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
