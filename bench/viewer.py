"""The viewer's server against its peers, and the time to the first rendered data.

Run by hand, never by the test suite::

    python bench/viewer.py                       # 512x512x256 uint8, 5 s per server
    python bench/viewer.py --size 256 --seconds 2
    python bench/viewer.py --screenshot docs/images/viewer.png   # the README's picture

1. Chunk files: one precomputed volume (raw, 64³ chunks of an EM-like volume) on local disk,
   served by our viewer (``ba.view(vol)``) and by ``python -m http.server`` (a subprocess) on the
   same files.
2. In memory: the same voxels as a NumPy array, served by our viewer (``ba.view(array)``, chunks
   encoded on request) and by Neuroglancer's own ``LocalVolume`` behind ``neuroglancer.Viewer``
   (its default encoding, npz: its raw encoding calls ``ndarray.tostring``, which NumPy 2 has
   removed). Both are asked for chunks of the same size.

Each server gets the same load: a client process (not the server's) with 8 threads, each with
one keep-alive connection, fetching every chunk of the volume in a shuffled order, round after
round, for ``--seconds``. Requests/s count 200 responses; MiB/s count voxels delivered (chunk
voxels x requests), so a compressed encoding is neither rewarded nor penalised for its size.

3. Time to first data: from ``ba.view(...)`` to the first frame of a headless Chromium (already
   running) with a visible chunk in GPU memory, and to the first with every visible chunk drawn
   (Neuroglancer's ``viewer.isReady()``), for the file volume and the in-memory array, beside
   the same client and state reading the files from ``http.server``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

MiB = 2**20
CHUNK = 64
CLIENTS = 8


# -- the load -----------------------------------------------------------------------------------


def _hammer(host: str, port: int, paths: list[str], threads: int, seconds: float) -> dict:
    """Fetch ``paths`` from ``threads`` keep-alive connections until ``seconds`` pass."""
    stop = time.perf_counter() + seconds
    counts = [0] * threads
    errors: list[str] = []

    def worker(i: int) -> None:
        order = paths[:]
        random.Random(i).shuffle(order)
        conn = http.client.HTTPConnection(host, port, timeout=60)
        n = 0
        while time.perf_counter() < stop:
            path = order[n % len(order)]
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"{response.status} for {path}")
                return
            n += 1
        counts[i] = n
        conn.close()

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {"requests": sum(counts), "seconds": time.perf_counter() - start, "errors": errors}


def load(urls: list[str], chunk_bytes: int, seconds: float) -> dict[str, float]:
    """Requests/s and voxel MiB/s under ``CLIENTS`` connections, from a separate process."""
    parsed = urllib.parse.urlsplit(urls[0])
    paths = [urllib.parse.urlsplit(u).path for u in urls]
    job = {
        "host": parsed.hostname,
        "port": parsed.port,
        "paths": paths,
        "threads": CLIENTS,
        "seconds": seconds,
    }
    out = subprocess.run(
        [sys.executable, __file__, "--hammer"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    if result["errors"]:
        raise RuntimeError(f"{urls[0]}...: {result['errors'][:3]}")
    rate = result["requests"] / result["seconds"]
    return {"req_s": rate, "mib_s": rate * chunk_bytes / MiB}


# -- the servers --------------------------------------------------------------------------------


def chunk_names(shape: tuple[int, ...], chunk: int) -> list[str]:
    """Precomputed chunk keys of scale 0 (voxel offset 0): ``x0-x1_y0-y1_z0-z1``."""
    names = []
    for z in range(0, shape[2], chunk):
        for y in range(0, shape[1], chunk):
            for x in range(0, shape[0], chunk):
                spans = [f"{a}-{min(a + chunk, s)}" for a, s in zip((x, y, z), shape, strict=True)]
                names.append("_".join(spans))
    return names


class StaticServer:
    """``python -m http.server`` on a folder, on a free 127.0.0.1 port."""

    def __init__(self, folder: Path) -> None:
        from network_servers import free_port, wait_for_http

        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for_http(self.base + "/", self.proc)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def local_volume_urls(data: np.ndarray, chunk: int) -> tuple[list[str], Any]:
    """Chunk URLs of ``data`` served as a ``neuroglancer.LocalVolume`` by a
    ``neuroglancer.Viewer``: ``/neuroglancer/<encoding>/<viewer>.<volume>/<scale>/<start>/<end>``
    (neuroglancer/server.py), scale 1,1,1."""
    import neuroglancer

    neuroglancer.set_server_bind_address("127.0.0.1")
    viewer = neuroglancer.Viewer()
    dims = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=[8, 8, 8])
    volume = neuroglancer.LocalVolume(data, dimensions=dims, volume_type="image")
    with viewer.txn() as state:
        state.layers["em"] = neuroglancer.ImageLayer(source=volume)
    key = viewer.volume_manager.get_volume_key(volume)
    base = urllib.parse.urlsplit(viewer.get_viewer_url())
    urls = []
    for name in chunk_names(data.shape, chunk):
        ranges = [span.split("-") for span in name.split("_")]
        start = ",".join(r[0] for r in ranges)
        end = ",".join(r[1] for r in ranges)
        urls.append(
            f"{base.scheme}://{base.netloc}/neuroglancer/{volume.encoding}/{key}/1,1,1/{start}/{end}"
        )
    return urls, viewer


# -- the report ---------------------------------------------------------------------------------


def ratio(a: dict[str, float], b: dict[str, float]) -> str:
    return f"{a['req_s'] / b['req_s']:.2f}x" if b["req_s"] else "-"


def row(name: str, figures: dict[str, float]) -> str:
    return f"  {name:<34} {figures['req_s']:>9.0f} req/s {figures['mib_s']:>9.1f} MiB/s"


def em_volume(size: tuple[int, int, int]) -> np.ndarray:
    from bigarrays.box import Box
    from bigarrays.synthetic import synthetic_em

    return synthetic_em(Box((0, 0, 0), size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="x and y of the volume (z: half)")
    parser.add_argument("--seconds", type=float, default=5.0, help="load time per server")
    parser.add_argument("--first-data", action="store_true", help="only the browser timings")
    parser.add_argument("--screenshot", type=Path, help="write the README's screenshot here")
    parser.add_argument("--hammer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hammer:
        job = json.load(sys.stdin)
        print(json.dumps(_hammer(**job)))
        return 0
    if args.screenshot:
        return screenshot(args.screenshot)
    return run(args.size, args.seconds, args.first_data)


def run(size: int, seconds: float, first_data_only: bool = False) -> int:
    import bigarrays as ba

    shape = (size, size, size // 2)
    data = em_volume(shape)
    print(f"volume {shape} uint8, {CLIENTS} clients, {seconds:g} s per server", flush=True)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        vol = ba.create(
            Path(tmp) / "vol", shape=shape, dtype="uint8", chunks=(CHUNK,) * 3,
            resolution=(8, 8, 8),
        )  # fmt: skip
        vol[:, :, :] = data
        if first_data_only:
            first_data(vol, data, Path(tmp))
            return 0
        scale_key = vol.info["scales"][0]["key"]
        names = chunk_names(shape, CHUNK)
        chunk_bytes = CHUNK**3

        static = StaticServer(Path(tmp))
        try:
            urls = [f"{static.base}/vol/{scale_key}/{n}" for n in names]
            results["http.server"] = load(urls, chunk_bytes, seconds)
        finally:
            static.close()
        with ba.view(vol) as viewer:
            urls = [f"{viewer.data_url(0)}{scale_key}/{n}" for n in names]
            results["ours, files"] = load(urls, chunk_bytes, seconds)

        with ba.view(data, resolution=(8, 8, 8)) as viewer:
            key, chunk = memory_scale(viewer.data_url(0))
            names = chunk_names(shape, chunk)
            urls = [f"{viewer.data_url(0)}{key}/{n}" for n in names]
            results["ours, memory"] = load(urls, chunk**3, seconds)
        lv_urls, lv_viewer = local_volume_urls(data, chunk)
        results["LocalVolume"] = load(lv_urls, chunk**3, seconds)
        del lv_viewer

        print(f"chunk files: {CHUNK}³ raw chunks of a precomputed volume on local disk")
        print(row("bigarrays view", results["ours, files"]))
        print(row("python -m http.server", results["http.server"]))
        print(f"  ratio {ratio(results['ours, files'], results['http.server'])} (target >= 1x)")
        print(f"in memory: a NumPy array, {chunk}³ chunks")
        print(row("bigarrays view", results["ours, memory"]))
        print(row("neuroglancer LocalVolume (npz)", results["LocalVolume"]))
        print(f"  ratio {ratio(results['ours, memory'], results['LocalVolume'])} (target >= 2x)")
        first_data(vol, data, Path(tmp))
    return 0


def memory_scale(data_url: str) -> tuple[str, int]:
    """The key and (cubic) chunk size of scale 0 of an in-memory source's info."""
    with urllib.request.urlopen(data_url + "info") as response:
        info = json.load(response)
    scale = info["scales"][0]
    sizes = set(scale["chunk_sizes"][0])
    if len(sizes) != 1:
        raise RuntimeError(f"expected cubic chunks, got {scale['chunk_sizes'][0]}")
    return scale["key"], sizes.pop()


def first_data(vol: Any, data: np.ndarray, folder: Path, repeat: int = 3) -> None:
    """Seconds from ``ba.view(...)`` to the first frame with data and to the first with every
    visible chunk, in a running Chromium (medians of ``repeat``); beside them, the same client
    and state with the volume's files on ``http.server`` (``folder``, where the volume is
    ``vol``): the floor that the browser and the machine set."""
    import statistics

    import bigarrays as ba
    from viewer_browser_support import Browser, StaticNeuroglancer

    print(f"time from view() to the first data / to all visible data drawn (headless Chromium, "
          f"800x600, median of {repeat})")  # fmt: skip
    with Browser() as browser, StaticNeuroglancer(folder) as static:
        # The browser and the client's scripts are warm, as in a session that has shown
        # something before; the data is not.
        with ba.view(np.zeros((64, 64, 64), np.uint8)) as warm:
            browser.time_to_ready(warm.url)
        for layout in ("4panel", "xy"):
            times: dict[str, list[tuple[float, float]]] = {"files": [], "memory": [], "floor": []}
            for _ in range(repeat):
                start = time.perf_counter()
                with ba.view(vol, layout=layout) as v:
                    times["files"].append(browser.time_to_ready(v.url, start=start))
                    state = v.state
                start = time.perf_counter()
                with ba.view(data, resolution=(8, 8, 8), layout=layout) as v:
                    times["memory"].append(browser.time_to_ready(v.url, start=start))
                state["layers"][0]["source"] = "precomputed://{data}/vol"
                times["floor"].append(browser.time_to_ready(static.url(state)))
            print(f"  layout {layout}")
            for key, name in (
                ("files", "bigarrays view, precomputed volume"),
                ("memory", "bigarrays view, NumPy array"),
                ("floor", "http.server, same client and state"),
            ):
                first = statistics.median(t[0] for t in times[key])
                full = statistics.median(t[1] for t in times[key])
                print(f"    {name:<36} {first:>6.2f} s / {full:>6.2f} s")
    print("  (target: first data < 3 s)")


def cells(em: np.ndarray, count: int = 40, seed: int = 3) -> np.ndarray:
    """Voronoi cells around random seeds, cut by the dark membranes of ``em`` (label 0 there):
    a segmentation of many colours that follows the image's dark lines."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    shape = em.shape
    seeds = rng.uniform(0, 1, (count, 3)) * shape
    grid = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), axis=-1)
    _, nearest = cKDTree(seeds).query(grid.reshape(-1, 3), workers=-1)
    ids = rng.choice(np.arange(1, 2**20), size=count, replace=False).astype(np.uint32)
    labels = ids[nearest].reshape(shape)
    labels[ndimage.uniform_filter(em, 5) < 70] = 0
    return np.asfortranarray(labels)


def screenshot(path: Path, size: int = 256) -> int:
    """The README's picture: an EM-like volume with a segmentation over it, in the default
    layout, as ``vol.view()`` opens it."""
    import bigarrays as ba
    from viewer_browser_support import Browser

    shape = (size, size, size)
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        em = ba.create(
            Path(tmp) / "em", shape=shape, dtype="uint8", chunks=(64, 64, 64),
            resolution=(8, 8, 8),
        )  # fmt: skip
        em[:, :, :] = em_volume(shape)
        labels = cells(em[:, :, :])
        layers = ["em", {"name": "cells", "selectedAlpha": 0.3}]
        with (
            Browser(window_size=(960, 600)) as browser,
            ba.view(em, labels, layers=layers, resolution=(8, 8, 8)) as v,
        ):
            shot = browser.load(v.url, "readme", layers=2)
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    # A palette of 256 colours keeps the picture small at no visible cost.
    Image.fromarray(shot.image).quantize(256).save(path, optimize=True)
    print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
