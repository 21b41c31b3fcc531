"""Reading a chunked, gzip-compressed HDF5 dataset through references, against h5py and
kerchunk + fsspec + zarr-python; and indexing a tar of many members over HTTP.

    python bench/references.py                   # 1 GiB dataset, 10,000-member tar
    python bench/references.py --mib 128 --members 2000    # a quick run

Every read is compared with h5py's (outside the timers). Over HTTP the file is served by a small
ranged server on 127.0.0.1 started here (seek + read per request, threads per connection).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

import bigarrays as ba
from bigarrays.refs import index_hdf5, index_tar, write_references


def make_hdf5(path: Path, mib: int) -> tuple[int, ...]:
    import h5py

    rows = max(64, mib * (1 << 20) // (1024 * 512 * 2))
    shape = (rows, 1024, 512)
    rng = np.random.default_rng(0)
    base = (np.sin(np.arange(512) / 9.0)[None, :] * 300 + 2000).astype("u2")
    with h5py.File(path, "w") as f:
        d = f.create_dataset("data", shape=shape, dtype="u2", chunks=(16, 128, 128),
                             compression="gzip", compression_opts=4, shuffle=True)  # fmt: skip
        for z in range(0, rows, 16):
            noise = rng.integers(0, 64, (min(16, rows - z), 1024, 512), dtype="u2")
            d[z : z + 16] = base + noise
    return shape


class _Ranged(BaseHTTPRequestHandler):
    root: Path
    # Headers and body go out as two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK of the headers (~40 ms a request), which no real server does.
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        path = self.root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            if a:
                start, end = int(a), min(size - 1, int(b) if b else size - 1)
            else:
                start = max(0, size - int(b))
        self.send_response(206 if rng else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not head:
            # sendfile, as web servers serve files: the bytes go from the page cache to the
            # socket without passing through this process, whose CPU time the readers share.
            with path.open("rb") as f:
                self.connection.sendfile(f, start, end - start + 1)


def serve_forever(root: Path) -> None:
    """Serve ``root`` on 127.0.0.1 and print the URL; the server runs in a process of its own,
    so that it takes no interpreter lock from the readers measured."""
    handler = type("Handler", (_Ranged,), {"root": root, "protocol_version": "HTTP/1.1"})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    httpd.serve_forever()


def serve(root: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(root)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def row(name: str, seconds: float, nbytes: int, ok: bool, ratios: str = "") -> None:
    speed = f"{nbytes / seconds / (1 << 20):8.0f} MiB/s" if ok else "    FAIL"
    print(f"{name:<48} {seconds:7.2f} s {speed}{ratios}", flush=True)


def warm_imports() -> None:
    """Import every reader's modules before any timer starts: the first row of a tool would
    otherwise pay its imports (zarr-python's take ~0.5 s) and the next rows not."""
    import fsspec.implementations.reference  # noqa: F401
    import h5py  # noqa: F401
    import kerchunk.hdf  # noqa: F401
    import numcodecs  # noqa: F401
    import zarr  # noqa: F401

    import bigarrays.formats.zarr
    import bigarrays.stores.http
    import bigarrays.stores.reference  # noqa: F401


def read_kerchunk(h5: str, fs_url: str | None) -> np.ndarray:
    import fsspec
    import zarr
    from kerchunk.hdf import SingleHdf5ToZarr

    refs = SingleHdf5ToZarr(h5 if fs_url is None else fs_url).translate()
    remote = "file" if fs_url is None else "http"
    options = {} if fs_url is None else {"asynchronous": True}
    fs = fsspec.filesystem("reference", fo=refs, asynchronous=True, remote_protocol=remote,
                           remote_options=options)  # fmt: skip
    group = zarr.open_group(zarr.storage.FsspecStore(fs, read_only=True), mode="r",
                            zarr_format=2)  # fmt: skip
    out: np.ndarray = group["data"][...]
    return out


def bench_hdf5(folder: Path, mib: int, url: str, local: bool = True) -> None:
    import h5py

    h5 = folder / "data.h5"
    print(f"making a {mib} MiB gzip HDF5 dataset ...", file=sys.stderr, flush=True)
    make_hdf5(h5, mib)
    os.sync()  # no writeback of the new file inside a timer
    seconds, truth = timed(lambda: h5py.File(h5)["data"][()])
    nbytes = truth.nbytes
    print(f"dataset {truth.shape} uint16, {nbytes / (1 << 20):.0f} MiB, "
          f"{h5.stat().st_size / (1 << 20):.0f} MiB stored; {os.cpu_count()} cores")  # fmt: skip
    row("h5py, local file", seconds, nbytes, True)

    def ours(source: str) -> np.ndarray:
        refs = index_hdf5(source)
        write_references(refs, str(folder / "refs.json"))
        vol = ba.open(f"reference://{folder / 'refs.json'}#data")
        try:
            return np.asarray(vol[:, :, :])
        finally:
            vol.close()

    h5py_seconds = seconds
    places = [("local file", str(h5))] if local else []
    for where, source in (*places, ("HTTP", f"{url}/data.h5")):
        theirs, got = timed(lambda s=source: read_kerchunk(s, None if s == str(h5) else s))  # type: ignore[misc]
        row(f"kerchunk + fsspec + zarr-python, {where}", theirs, nbytes,
            np.array_equal(got, truth))  # fmt: skip
        del got
        seconds, got = timed(lambda s=source: ours(s))  # type: ignore[misc]
        ratios = f"  {theirs / seconds:4.2f}x kerchunk, {h5py_seconds / seconds:4.2f}x h5py"
        row(f"bigarrays references (index + read), {where}", seconds, nbytes,
            np.array_equal(got, truth), ratios)  # fmt: skip
        del got


def bench_tar(folder: Path, members: int, url: str) -> None:
    payload = np.random.default_rng(1).bytes(4096)
    with tarfile.open(folder / "many.tar", "w") as tar:
        info = tarfile.TarInfo("vol/.zgroup")
        data = b'{"zarr_format": 2}'
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for i in range(members):
            info = tarfile.TarInfo(f"vol/c/{i // 100}/{i % 100}")
            info.size = 1000 + i % 3000
            tar.addfile(info, io.BytesIO(payload[: info.size]))
    size = (folder / "many.tar").stat().st_size
    seconds, refs = timed(lambda: index_tar(f"{url}/many.tar"))
    ok = len(refs.refs) == members + 1
    print(f"{'tar index over HTTP, ' + format(members, ',') + ' members':<48} {seconds:7.2f} s "
          f"({size / (1 << 20):.0f} MiB tar){'' if ok else ' FAIL'}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="dataset size (default 1024)")
    parser.add_argument("--members", type=int, default=10_000, help="tar members")
    parser.add_argument("--dir", default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--skip-local", action="store_true", help="HTTP rows only")
    args = parser.parse_args()
    if args.serve:
        serve_forever(Path(args.serve))
        return 0
    warm_imports()
    print(f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        server, url = serve(folder)
        try:
            bench_tar(folder, args.members, url)
            bench_hdf5(folder, args.mib, url, local=not args.skip_local)
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
