"""Index the datasets of an HDF5 file as Zarr v2 arrays whose chunks lie in the file.

h5py lists each chunk's offset and size (``chunk_iter``, or ``get_chunk_info`` on older
libraries); HDF5's filter pipeline becomes the array's numcodecs chain in the same order:
shuffle -> ``shuffle``, deflate -> ``zlib``, fletcher32 -> ``fletcher32``. HDF5 stores edge
chunks at full size, as Zarr does, so they need nothing special. A contiguous dataset is one
chunk, or with ``split_bytes`` runs of whole rows of about that size (rows that divide the first
axis, since Zarr's chunks have one shape). Compact datasets (a few KiB kept in the header) are
inlined. Whatever cannot be referenced (another filter, a chunk stored with a filter skipped,
strings, compound or variable-length types, virtual or external datasets) is reported with the
dataset's name and the reason.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from bigarrays.errors import MissingDependencyError
from bigarrays.refs.model import References, Target
from bigarrays.refs.ranged import RangedFile, open_file_store

#: HDF5 filter ids (H5Z_FILTER_*) this indexer maps to numcodecs.
DEFLATE, SHUFFLE, FLETCHER32 = 1, 2, 3
_FILTER_NAMES = {4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf", 32001: "blosc", 32004: "lz4",
                 32008: "bitshuffle", 32015: "zstd"}  # fmt: skip


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError("h5py", "refs", "indexing HDF5 files") from None
    return h5py


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()] if value.ndim else _json_value(value[()])
    if isinstance(value, np.generic):
        return _json_value(value.item())
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _attributes(obj: Any, name: str, out: References) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key in obj.attrs:
        try:
            value = _json_value(obj.attrs[key])
            json.dumps(value)
        except (TypeError, ValueError, OSError) as exc:
            out.skipped.append((f"{name}@{key}", f"attribute not representable in JSON: {exc}"))
            continue
        attrs[key] = value
    return attrs


def _codecs(dset: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The numcodecs filters of ``dset``'s pipeline, in HDF5's (encoding) order, or a reason."""
    plist = dset.id.get_create_plist()
    chain: list[dict[str, Any]] = []
    for i in range(plist.get_nfilters()):
        code, _flags, values, _name = plist.get_filter(i)
        if code == SHUFFLE:
            chain.append({"id": "shuffle", "elementsize": dset.dtype.itemsize})
        elif code == DEFLATE:
            chain.append({"id": "zlib", "level": int(values[0]) if values else 6})
        elif code == FLETCHER32:
            chain.append({"id": "fletcher32"})
        else:
            what = _FILTER_NAMES.get(code, f"id {code}")
            return [], f"HDF5 filter {what} has no numcodecs equivalent here"
    return chain, None


def _zarray(dset: Any, chunks: tuple[int, ...], chain: list[dict[str, Any]]) -> bytes:
    # The last codec of the pipeline as the compressor, when the bounded inflate can take it.
    compressor = chain[-1] if chain and chain[-1]["id"] == "zlib" else None
    filters = chain[:-1] if compressor is not None else chain
    fill = _json_value(dset.fillvalue) if dset.dtype.kind != "c" else None
    doc = {
        "zarr_format": 2, "shape": list(dset.shape), "chunks": list(chunks),
        "dtype": dset.dtype.str, "compressor": compressor, "fill_value": fill, "order": "C",
        "filters": filters or None, "dimension_separator": ".",
    }  # fmt: skip
    return json.dumps(doc).encode()


def _rows_per_chunk(shape: tuple[int, ...], itemsize: int, split_bytes: int | None) -> int:
    """Rows of the first axis in one chunk of a contiguous dataset: a divisor of the axis."""
    if not shape or split_bytes is None:
        return shape[0] if shape else 1
    row = math.prod(shape[1:]) * itemsize
    best = 1
    for k in range(1, shape[0] + 1):
        if shape[0] % k == 0 and k * row <= max(split_bytes, row):
            best = k
    return best


def _chunk_key(offset: tuple[int, ...], chunks: tuple[int, ...]) -> str:
    return ".".join(str(o // c) for o, c in zip(offset, chunks, strict=True)) or "0"


def _dataset(dset: Any, url: str, base: int, split_bytes: int | None, out: References) -> None:
    h5py = _h5py()
    name = dset.name.strip("/")
    if dset.dtype.kind not in "biufc" or dset.dtype.hasobject:
        out.skipped.append((name, f"dtype {dset.dtype} (strings, compound or variable-length "
                                  "values) has no Zarr v2 numeric equivalent"))  # fmt: skip
        return
    plist = dset.id.get_create_plist()
    if dset.is_virtual or plist.get_external_count() > 0:
        out.skipped.append((name, "virtual or external dataset: its data lies in other files"))
        return
    if 0 in dset.shape:
        out.skipped.append((name, "empty dataset (an axis of length 0)"))
        return
    layout = plist.get_layout()
    attrs = _attributes(dset, name, out)
    if layout == h5py.h5d.CHUNKED:
        chain, reason = _codecs(dset)
        if reason is not None:
            out.skipped.append((name, reason))
            return
        chunks = tuple(dset.chunks)
        refs: dict[str, Target] = {}
        bad: list[str] = []

        def take(info: Any) -> None:
            if info.filter_mask:
                bad.append(str(info.chunk_offset))
            refs[f"{name}/{_chunk_key(info.chunk_offset, chunks)}"] = Target(
                url, base + info.byte_offset, info.size
            )

        if hasattr(dset.id, "chunk_iter"):
            dset.id.chunk_iter(take)
        else:
            for i in range(dset.id.get_num_chunks()):
                take(dset.id.get_chunk_info(i))
        if bad:
            out.skipped.append((name, f"chunks stored with a filter skipped ({', '.join(bad[:3])})"
                                      ", which one codec chain cannot read"))  # fmt: skip
            return
        out.refs.update(refs)
    elif layout == h5py.h5d.CONTIGUOUS:
        chain, chunks = [], tuple(dset.shape)
        offset = dset.id.get_offset()
        if dset.shape:
            rows = _rows_per_chunk(dset.shape, dset.dtype.itemsize, split_bytes)
            chunks = (rows, *dset.shape[1:])
        nbytes = math.prod(chunks) * dset.dtype.itemsize
        if offset is not None:  # None: never written, every value is the fill value
            for i in range(dset.shape[0] // chunks[0] if dset.shape else 1):
                key = ".".join([str(i)] + ["0"] * (len(chunks) - 1)) if chunks else "0"
                out.refs[f"{name}/{key}"] = Target(url, base + offset + i * nbytes, nbytes)
    else:  # compact: a few KiB in the object header, copied inline
        chain, chunks = [], tuple(dset.shape)
        data = np.ascontiguousarray(dset[()]).astype(dset.dtype, copy=False)
        out.refs[f"{name}/{'.'.join(['0'] * len(chunks)) or '0'}"] = data.tobytes()
    out.refs[f"{name}/.zarray"] = _zarray(dset, chunks, chain)
    out.refs[f"{name}/.zattrs"] = json.dumps(attrs).encode()


def index_hdf5_file(
    f: Any, url: str, *, base: int = 0, name: str | None = None, split_bytes: int | None = None
) -> References:
    """References to every dataset of the HDF5 file open as ``f`` (a file object), as Zarr v2
    arrays under their HDF5 paths; the chunks are ranges of ``url`` shifted by ``base``."""
    h5py = _h5py()
    out = References()
    try:
        h5 = h5py.File(f, "r")
    except OSError as exc:
        out.skipped.append((name or url, f"not an HDF5 file h5py can open: {exc}"))
        return out
    with h5:
        out.refs[".zgroup"] = b'{"zarr_format": 2}'
        out.refs[".zattrs"] = json.dumps(_attributes(h5, "/", out)).encode()

        def visit(path: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                _dataset(obj, url, base, split_bytes, out)
            elif isinstance(obj, h5py.Group):
                out.refs[f"{path}/.zgroup"] = b'{"zarr_format": 2}'
                out.refs[f"{path}/.zattrs"] = json.dumps(_attributes(obj, path, out)).encode()

        h5.visititems(visit)
    return out


def index_hdf5(url: str, *, split_bytes: int | None = None, **options: Any) -> References:
    """References to the datasets of the HDF5 file at ``url`` (any store: file, S3, HTTP...),
    read through ranged reads of its headers. ``options`` open the file's store."""
    store, key = open_file_store(url, **options)
    try:
        return index_hdf5_file(RangedFile(store, key), url, split_bytes=split_bytes)
    finally:
        store.close()
