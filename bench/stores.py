"""Chunk read and write throughput per backend: file, memory, S3, GCS and HTTP, raw and gzip.

Run by hand: ``python bench/stores.py [--chunks 256] [--repeat 3]``. Every backend stores the same
64³ uint8 chunks of synthetic EM (256 KiB each; gzip at the default level makes them ~1.3x
smaller) from the store's ``default_concurrency`` threads: a write is encode + put, a read is get
(+ decode, which every store does for gzip). The best of ``--repeat`` runs is printed in MiB/s of
uncompressed data and chunks/s.

The network backends talk to local servers that this script starts on 127.0.0.1 and stops: moto's
S3 server and fake-gcs-server (each its own process), and a static HTTP server (its own process;
HTTP is read-only, so its chunks are written to the folder it serves). These figures measure the
client stack against loopback emulators, and the emulators bound them, moto most of all (a Python
server); real clouds have more latency and more bandwidth, where the 32 requests in flight per
store matter more.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from bigarrays.box import Box
from bigarrays.stores import Store, content_encoding, open_store
from bigarrays.synthetic import synthetic_em

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SIDE = 64
MIB = 2**20


def make_chunks(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        x = (i % 16) * SIDE
        y = (i // 16) * SIDE
        box = Box((x, y, 0), (x + SIDE, y + SIDE, SIDE))
        out.append(np.asarray(synthetic_em(box), dtype=np.uint8).tobytes(order="F"))
    return out


@contextmanager
def http_server(root: Path) -> Iterator[str]:
    """A StaticServer serving ``root`` in a child process; yields its URL."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve-http", str(root)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait()


def serve_http(root: str) -> None:
    from network_servers import StaticServer

    server = StaticServer(Path(root)).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # pragma: no cover
        pass


# Each backend: (writer store factory, reader store factory), given a fresh name.
Backend = Callable[[str], tuple[Store, Store]]


def backends(stack: ExitStack, root: Path) -> dict[str, Backend]:
    from bigarrays.stores.gcs import GCSStore
    from bigarrays.stores.s3 import S3Store
    from conftest import make_gcs_bucket, make_s3_bucket
    from network_servers import FakeGCSServer, MotoServer

    moto = stack.enter_context(MotoServer())
    gcs = stack.enter_context(FakeGCSServer())
    served = root / "served"
    served.mkdir()
    http_url = stack.enter_context(http_server(served))
    s3_bucket = make_s3_bucket(moto.endpoint)
    gcs_bucket = make_gcs_bucket(gcs.endpoint)
    keys = {"access_key_id": "bench", "secret_access_key": "bench"}

    def same(store: Store) -> tuple[Store, Store]:
        return store, store

    return {
        "file": lambda n: same(open_store(str(root / n))),
        "memory": lambda n: same(open_store(f"memory://bench-{n}")),
        "s3 (moto)": lambda n: same(
            S3Store(f"s3://{s3_bucket}/{n}", endpoint=moto.endpoint, region="us-east-1", **keys)
        ),
        "gcs (fake-gcs-server)": lambda n: same(
            GCSStore(f"gs://{gcs_bucket}/{n}", endpoint=gcs.endpoint, anonymous=True)
        ),
        "http (read)": lambda n: (open_store(str(served / n)), open_store(f"{http_url}/{n}")),
    }


def measure(backend: Backend, chunks: list[bytes], compression: str | None) -> tuple[float, float]:
    """Seconds to write and to read every chunk, once."""
    writer, reader = backend(uuid.uuid4().hex[:8])
    keys = [f"1_1_1/{i * SIDE}-{i * SIDE + SIDE}_0-64_0-64" for i in range(len(chunks))]
    threads = reader.default_concurrency

    def put(key: str, chunk: bytes) -> None:
        writer.put(key, content_encoding.encode(chunk, compression), content_encoding=compression)

    def get(key: str) -> None:
        data = reader.get(key)
        assert data is not None
        assert len(data) == SIDE**3

    with ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        list(pool.map(put, keys, chunks))
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(pool.map(get, keys))
        t_read = time.perf_counter() - t0
    return t_write, t_read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=256, help="64³ chunks per run (256)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; best is kept")
    parser.add_argument("--serve-http", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_http:
        serve_http(args.serve_http)
        return
    chunks = make_chunks(args.chunks)
    ratio = sum(map(len, chunks)) / sum(len(content_encoding.encode(c, "gzip")) for c in chunks)
    mib = sum(map(len, chunks)) / MIB
    root = Path(tempfile.mkdtemp(prefix="bigarrays-bench-"))
    print(f"{args.chunks} chunks of 64³ uint8 ({mib:.0f} MiB; gzip ratio {ratio:.2f}), "
          f"best of {args.repeat}, {os.cpu_count()} cores\n")  # fmt: skip
    header = f"{'backend':24s} {'compression':11s} {'write MiB/s':>12s} {'chunks/s':>9s} "
    header += f"{'read MiB/s':>11s} {'chunks/s':>9s}"
    print(header)
    print("-" * len(header))
    try:
        with ExitStack() as stack:
            for name, backend in backends(stack, root).items():
                for compression in (None, "gzip"):
                    runs = [measure(backend, chunks, compression) for _ in range(args.repeat)]
                    tw = min(r[0] for r in runs)
                    tr = min(r[1] for r in runs)
                    n = len(chunks)
                    write = f"{mib / tw:12.0f} {n / tw:9.0f}"
                    if name.startswith("http"):  # written to the served folder, not over HTTP
                        write = f"{'(folder)':>12s} {'':9s}"
                    print(f"{name:24s} {compression or 'raw':11s} {write} "
                          f"{mib / tr:11.0f} {n / tr:9.0f}", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
