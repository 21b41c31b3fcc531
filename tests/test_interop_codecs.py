"""The encodings and compressions against the oracles, TensorStore and CloudVolume, both ways.

- Golden files (``tests/data/golden``, made by ``tests/data/make_golden.py``) written by the
  oracles decode bit for bit, and compressed_segmentation chunks re-encode to the same bytes.
- TensorStore and CloudVolume read what bigarrays writes (jpeg, png, compressed_segmentation,
  and raw with gzip, br and zstd), and bigarrays reads what they write, live.
- TensorStore's ``file`` kvstore reads no ``KEY.gz`` files, but its ``http`` kvstore honours
  ``Content-Encoding``: a local HTTP server that serves ``KEY.gz``/``.br``/``.zstd`` with the
  matching header (what a static server for Neuroglancer does) lets it read compressed volumes.

CloudVolume reads multi-channel jpeg and png chunks in a layout of its own (a bug on its side:
it reshapes the interleaved pixels as planar), and its png writer cannot write 16-bit grey or
RGB; those cases are checked against TensorStore only.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorstore as ts
from cloudvolume import CloudVolume

import bigarrays as ba
from bigarrays.errors import ViewerCompatibilityWarning
from bigarrays.formats.precomputed.chunks import parse_chunk_name
from bigarrays.stores import content_encoding

pytestmark = pytest.mark.interop

GOLDEN = Path(__file__).parent / "data" / "golden"
GOLDEN_CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "info").exists())
SUFFIX_ENCODING = {"gz": "gzip", "br": "br", "zstd": "zstd"}

SIZE = (21, 13, 7)
CHUNKS = (8, 8, 4)
OFFSET = (-5, 3, -2)
LO = np.array(OFFSET)
HI = LO + np.array(SIZE)


def volume_data(encoding: str, dtype: str, nch: int, seed: int = 0) -> np.ndarray:
    """(x, y, z, c) data for an encoding: smooth for jpeg, labels for cseg, random otherwise."""
    rng = np.random.default_rng(seed)
    shape = (*SIZE, nch)
    x, y, z = np.meshgrid(*(np.arange(s) for s in SIZE), indexing="ij")
    if encoding == "jpeg":
        chans = [128 + 60 * np.sin(0.3 * x + c) * np.cos(0.2 * y - c) + 20 * np.sin(z)
                 for c in range(nch)]  # fmt: skip
        return np.asfortranarray(np.stack(chans, -1).astype(np.uint8))
    if encoding == "compressed_segmentation":
        region = x // 3 + 7 * (y // 4) + 29 * (z // 2)
        ids = rng.integers(0, np.iinfo(dtype).max, size=region.max() + 1, dtype=dtype)
        return np.asfortranarray(np.stack([np.roll(ids, c)[region] for c in range(nch)], -1))
    info = np.iinfo(dtype)
    return np.asfortranarray(rng.integers(0, info.max, size=shape, dtype=dtype, endpoint=True))


def as4d(a: np.ndarray) -> np.ndarray:
    return a if a.ndim == 4 else a[..., None]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ba_write(path: Path, encoding: str, dtype: str, nch: int, data: np.ndarray,
             **kwargs: Any) -> ba.BigArray:  # fmt: skip
    layer = "segmentation" if encoding == "compressed_segmentation" and nch == 1 else "image"
    vol = ba.create(path, shape=SIZE, dtype=dtype, chunks=CHUNKS, voxel_offset=OFFSET,
                    resolution=(4, 4, 40), num_channels=nch, layer_type=layer,
                    encoding=encoding, **kwargs)  # fmt: skip
    vol[...] = data if nch > 1 else data[..., 0]
    return vol


def ts_spec(kvstore: Any) -> dict[str, Any]:
    return {"driver": "neuroglancer_precomputed", "kvstore": kvstore}


def ts_read(kvstore: Any) -> np.ndarray:
    store = ts.open(ts_spec(kvstore)).result()
    assert tuple(store.domain.inclusive_min[:3]) == OFFSET
    out: np.ndarray = store[...].read().result()
    return out


def ts_write(path: Path, encoding: str, dtype: str, nch: int, data: np.ndarray,
             **scale: Any) -> np.ndarray:  # fmt: skip
    spec = ts_spec({"driver": "file", "path": str(path)}) | {
        "multiscale_metadata": {"type": "image", "data_type": dtype, "num_channels": nch},
        "scale_metadata": {"size": list(SIZE), "voxel_offset": list(OFFSET),
                           "chunk_size": list(CHUNKS), "resolution": [4, 4, 40],
                           "encoding": encoding, **scale},
    }  # fmt: skip
    store = ts.open(spec, create=True).result()
    store[...] = data
    back: np.ndarray = store[...].read().result()
    return back


def cv_open(path: Path, **kwargs: Any) -> CloudVolume:
    return CloudVolume(f"file://{path}", progress=False, fill_missing=False, **kwargs)


def cv_read(path: Path) -> np.ndarray:
    cut = cv_open(path)[LO[0] : HI[0], LO[1] : HI[1], LO[2] : HI[2]]
    return np.asarray(cut)


def cv_write(path: Path, encoding: str, dtype: str, data: np.ndarray, compress: Any = False,
             block: tuple[int, int, int] | None = None) -> None:  # fmt: skip
    info = CloudVolume.create_new_info(
        num_channels=data.shape[3], layer_type="image", data_type=dtype, encoding=encoding,
        resolution=[4, 4, 40], voxel_offset=list(OFFSET), chunk_size=list(CHUNKS),
        volume_size=list(SIZE), compressed_segmentation_block_size=block or (8, 8, 8),
    )  # fmt: skip
    vol = cv_open(path, info=info, compress=compress)
    vol.commit_info()
    vol[LO[0] : HI[0], LO[1] : HI[1], LO[2] : HI[2]] = data


# -- golden files --------------------------------------------------------------------------------


def golden_chunks(case: str) -> Iterator[tuple[str, str | None, bytes]]:
    """(chunk name, transfer encoding from the file suffix, bytes) of a golden dataset."""
    info = json.loads((GOLDEN / case / "info").read_text())
    for path in sorted((GOLDEN / case / info["scales"][0]["key"]).iterdir()):
        name, _, suffix = path.name.partition(".")
        yield name, SUFFIX_ENCODING.get(suffix), path.read_bytes()


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_golden_chunks_decode_bit_exact(case: str) -> None:
    expected = np.load(GOLDEN / case / "expected.npz")["expected"]
    vol = ba.open(GOLDEN / case, fill_missing=False)
    layout = vol.level.source
    origin = np.array(vol.voxel_offset)
    count = 0
    for name, encoding, raw in golden_chunks(case):
        box = parse_chunk_name(name)
        lo, hi = np.array(box.start) - origin, np.array(box.stop) - origin
        want = expected[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        shape = (*box.shape, vol.num_channels)
        got = layout.decode(content_encoding.decode(raw, encoding, name), shape, name)
        assert got.shape == want.shape
        assert np.array_equal(got, want), name
        count += 1
    assert count == vol.num_chunks == 8
    assert np.array_equal(as4d(vol[...]), expected)


@pytest.mark.parametrize("case", [c for c in GOLDEN_CASES if "cseg" in c])
def test_compressed_segmentation_bytes_match_the_oracles(case: str) -> None:
    """compressed_segmentation fixes its bytes: ours are TensorStore's and CloudVolume's."""
    vol = ba.open(GOLDEN / case)
    codec = vol.level.source.codec
    for name, encoding, raw in golden_chunks(case):
        plain = content_encoding.decode(raw, encoding, name)
        shape = (*parse_chunk_name(name).shape, vol.num_channels)
        chunk = codec.decode(plain, shape, name)
        assert codec.encode(np.asfortranarray(chunk)) == plain, name


def test_golden_files_say_what_made_them() -> None:
    oracles = {json.loads((GOLDEN / c / "case.json").read_text())["oracle"] for c in GOLDEN_CASES}
    assert oracles == {"tensorstore", "cloudvolume"}
    encodings = {json.loads((GOLDEN / c / "case.json").read_text())["encoding"]
                 for c in GOLDEN_CASES}  # fmt: skip
    assert encodings == {"jpeg", "png", "compressed_segmentation", "raw"}


# -- TensorStore ---------------------------------------------------------------------------------

TS_CASES = [
    ("jpeg", "uint8", 1), ("jpeg", "uint8", 3),
    *[("png", d, c) for d in ("uint8", "uint16") for c in (1, 2, 3, 4)],
    ("compressed_segmentation", "uint32", 1), ("compressed_segmentation", "uint64", 1),
    ("compressed_segmentation", "uint64", 2),
]  # fmt: skip


@pytest.mark.parametrize(("encoding", "dtype", "nch"), TS_CASES)
def test_tensorstore_reads_what_bigarrays_writes(
    tmp_path: Path, encoding: str, dtype: str, nch: int
) -> None:
    data = volume_data(encoding, dtype, nch)
    options = {"compressed_segmentation_block_size": (4, 4, 2)} if encoding[0] == "c" else {}
    vol = ba_write(tmp_path, encoding, dtype, nch, data, **options)
    theirs = ts_read({"driver": "file", "path": str(tmp_path)})
    ours = as4d(ba.open(tmp_path)[...])
    assert theirs.dtype == np.dtype(dtype)
    assert theirs.shape == data.shape
    if encoding == "jpeg":
        assert psnr(theirs, data) > 30
        assert np.array_equal(theirs, ours)  # both decode with libjpeg-turbo
    else:
        assert np.array_equal(theirs, data)
    assert vol.info["scales"][0]["encoding"] == encoding


@pytest.mark.parametrize(("encoding", "dtype", "nch"), TS_CASES)
def test_bigarrays_reads_what_tensorstore_writes(
    tmp_path: Path, encoding: str, dtype: str, nch: int
) -> None:
    data = volume_data(encoding, dtype, nch, seed=3)
    scale = {"compressed_segmentation_block_size": [4, 3, 2]} if encoding[0] == "c" else {}
    theirs = ts_write(tmp_path, encoding, dtype, nch, data, **scale)
    ours = as4d(ba.open(tmp_path, fill_missing=False)[...])
    assert np.array_equal(ours, theirs)
    if encoding != "jpeg":
        assert np.array_equal(ours, data)


class _EncodedFileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves KEY from KEY, KEY.gz, KEY.br or KEY.zstd, with the matching Content-Encoding."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.translate_path(self.path)
        for suffix, encoding in (("", None), (".gz", "gzip"), (".br", "br"), (".zstd", "zstd")):
            if os.path.isfile(path + suffix):
                body = Path(path + suffix).read_bytes()
                self.send_response(200)
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        self.send_error(404)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    handler = functools.partial(_EncodedFileHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("compression", ["gzip", "br", "zstd"])
@pytest.mark.parametrize(
    ("encoding", "dtype"), [("raw", "uint16"), ("compressed_segmentation", "uint64")]
)
def test_tensorstore_reads_compressed_chunks_over_http(
    http_root: tuple[Path, str], compression: str, encoding: str, dtype: str
) -> None:
    root, url = http_root
    data = volume_data(encoding, dtype, 1)
    ba_write(root, encoding, dtype, 1, data, compression=compression)
    suffix = content_encoding.SUFFIXES[compression]
    assert all(p.name.endswith(suffix) for p in (root / "4_4_40").iterdir())
    assert np.array_equal(ts_read(url), data)


# -- CloudVolume ---------------------------------------------------------------------------------

CV_CASES = [
    ("jpeg", "uint8", None), ("png", "uint8", None),
    ("compressed_segmentation", "uint32", None), ("compressed_segmentation", "uint64", "gzip"),
    ("raw", "uint16", "gzip"), ("raw", "uint64", "br"), ("raw", "float32", "zstd"),
    ("raw", "uint8", None),
]  # fmt: skip


@pytest.mark.parametrize(("encoding", "dtype", "compression"), CV_CASES)
def test_cloudvolume_reads_what_bigarrays_writes(
    tmp_path: Path, encoding: str, dtype: str, compression: str | None
) -> None:
    data = (volume_data(encoding, "uint32" if dtype == "float32" else dtype, 1)
            .astype(dtype))  # fmt: skip
    ba_write(tmp_path, encoding, dtype, 1, data, compression=compression)
    theirs = cv_read(tmp_path)
    assert theirs.shape == data.shape
    if encoding == "jpeg":
        assert np.array_equal(theirs, as4d(ba.open(tmp_path)[...]))  # same libjpeg-turbo
        assert psnr(theirs, data) > 30
    else:
        assert np.array_equal(theirs, data)


@pytest.mark.parametrize(("encoding", "dtype", "compression"), CV_CASES)
def test_bigarrays_reads_what_cloudvolume_writes(
    tmp_path: Path, encoding: str, dtype: str, compression: str | None
) -> None:
    data = (volume_data(encoding, "uint32" if dtype == "float32" else dtype, 1, seed=5)
            .astype(dtype))  # fmt: skip
    cv_write(tmp_path, encoding, dtype, data, compress=compression or False)
    files = list((tmp_path / "4_4_40").iterdir())
    if compression:
        assert all(f.name.endswith(content_encoding.SUFFIXES[compression]) for f in files)
    ours = as4d(ba.open(tmp_path, fill_missing=False)[...])
    if encoding == "jpeg":
        assert np.array_equal(ours, cv_read(tmp_path))
    else:
        assert np.array_equal(ours, data)


def test_bigarrays_reads_cloudvolume_rgb_jpeg(tmp_path: Path) -> None:
    """CloudVolume writes multi-channel images in the interleaved layout (it reads them wrong)."""
    data = volume_data("jpeg", "uint8", 3)
    cv_write(tmp_path, "jpeg", "uint8", data)
    ours = ba.open(tmp_path)[...]
    for c in range(3):
        assert psnr(ours[..., c], data[..., c]) > 30


def test_blosc_volumes_are_refused_by_the_oracles(tmp_path: Path) -> None:
    """What create()'s warning promises: the viewers' readers cannot decode blosc chunks."""
    data = volume_data("raw", "uint16", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ViewerCompatibilityWarning)
        ba_write(tmp_path, "raw", "uint16", 1, data, compression="blosc")
    with pytest.raises(ValueError, match=r"blosc|size|bytes|decod|Error"):
        ts_read({"driver": "file", "path": str(tmp_path)})
