"""Index TIFF files as Zarr v2 arrays whose chunks are the files' strips or tiles.

tifffile reads the image file directories (through ranged reads, so a TIFF on S3 or HTTP is not
downloaded) and gives each page's strip or tile offsets and byte counts. A page is an array of
``(rows, columns[, samples])``; a multi-page TIFF whose pages agree in shape, type and layout is
a stack ``(pages, rows, columns[, samples])``, and so is a folder of single-page TIFFs, in the
order of their names. Tiles are stored at full size; the last strip of a page may be shorter
than the others, and Zarr's chunks are not: such a strip is read, padded and kept inline.

Referenced as they are: uncompressed and deflate (zlib) data, without a predictor, in whole
bytes, samples interleaved. Other pages (LZW, JPEG, a predictor, planar samples, bit-packed) are
reported with the reason.
"""

from __future__ import annotations

import json
import math
import posixpath
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigarrays.errors import MissingDependencyError
from bigarrays.refs.model import References, Target
from bigarrays.refs.ranged import RangedFile, open_file_store
from bigarrays.stores import Store, join_url

#: TIFF compression tags referenced as they are, and their numcodecs compressor.
_COMPRESSORS: dict[int, dict[str, Any] | None] = {1: None, 8: {"id": "zlib"}, 32946: {"id": "zlib"}}
TIFF_SUFFIXES = (".tif", ".tiff")


def _tifffile() -> Any:
    try:
        import tifffile
    except ImportError:
        raise MissingDependencyError("tifffile", "tiff", "indexing TIFF files") from None
    return tifffile


@dataclass(frozen=True)
class PageLayout:
    """What must agree between the pages of a stack: shape, type, chunking, compression."""

    shape: tuple[int, ...]  # rows, columns[, samples]
    dtype: str
    chunk: tuple[int, ...]
    compression: int


def page_layout(page: Any, byteorder: str) -> tuple[PageLayout | None, str]:
    """The layout of a tifffile page, or None and the reason it cannot be referenced."""
    compression = int(page.compression)
    if compression not in _COMPRESSORS:
        return None, f"compression {page.compression.name} has no numcodecs codec referenced here"
    if int(page.predictor) != 1:
        return None, f"predictor {page.predictor.name} is not referenced (undo it by reading)"
    if page.samplesperpixel > 1 and int(page.planarconfig) != 1:
        return None, "samples stored as separate planes are not referenced"
    if page.imagedepth != 1 or page.bitspersample != page.dtype.itemsize * 8:
        return None, f"{page.bitspersample}-bit samples or volumetric pages are not referenced"
    if page.dtype.kind not in "biuf":
        return None, f"sample type {page.dtype} is not referenced"
    rows, cols = page.imagelength, page.imagewidth
    if page.is_tiled:
        chunk: tuple[int, ...] = (page.tilelength, page.tilewidth)
    else:
        chunk = (min(page.rowsperstrip or rows, rows), cols)
    extra = (page.samplesperpixel,) if page.samplesperpixel > 1 else ()
    dtype = page.dtype.newbyteorder(byteorder).str if page.dtype.itemsize > 1 else page.dtype.str
    return PageLayout((rows, cols, *extra), dtype, (*chunk, *extra), compression), ""


def _padded(data: bytes, layout: PageLayout, key: str) -> bytes:
    """A short last strip at a full chunk's size (filled with zeros), in its own compression."""
    nbytes = math.prod(layout.chunk) * np.dtype(layout.dtype).itemsize
    raw = zlib.decompress(data) if layout.compression != 1 else data
    raw = raw[:nbytes].ljust(nbytes, b"\0")
    return zlib.compress(raw) if layout.compression != 1 else raw


def _page_refs(
    page: Any, f: RangedFile, url: str, layout: PageLayout, prefix: tuple[int, ...],
    out: References,
) -> None:  # fmt: skip
    grid = [math.ceil(s / c) for s, c in zip(layout.shape[:2], layout.chunk[:2], strict=True)]
    tail = (0,) if len(layout.shape) == 3 else ()
    short = not page.is_tiled and layout.shape[0] % layout.chunk[0] != 0
    for n, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts, strict=True)):
        if count == 0:
            continue  # a chunk never written: the fill value
        index = (*prefix, n // grid[1], n % grid[1], *tail)
        key = ".".join(map(str, index))
        if short and n // grid[1] == grid[0] - 1:
            out.refs[key] = _padded(f.read_at(offset, count), layout, key)
        else:
            out.refs[key] = Target(url, offset, count)


def _zarray(layout: PageLayout, pages: int | None) -> bytes:
    lead = (pages,) if pages is not None else ()
    doc = {
        "zarr_format": 2, "shape": [*lead, *layout.shape],
        "chunks": [*(1,) * len(lead), *layout.chunk], "dtype": layout.dtype,
        "compressor": _COMPRESSORS[layout.compression], "fill_value": 0, "order": "C",
        "filters": None, "dimension_separator": ".",
    }  # fmt: skip
    return json.dumps(doc).encode()


def _index_pages(f: RangedFile, url: str, out: References) -> None:
    tifffile = _tifffile()
    try:
        tif = tifffile.TiffFile(f)
    except tifffile.TiffFileError as exc:
        out.skipped.append((url, f"not a TIFF file tifffile can read: {exc}"))
        return
    with tif:
        pages = list(tif.pages)
        first, reason = page_layout(pages[0], tif.byteorder)
        if first is None:
            out.skipped.append((url, reason))
            return
        for i, page in enumerate(pages[1:], 1):
            layout, why = page_layout(page, tif.byteorder)
            if layout != first:
                out.skipped.append((f"{url} page {i}", why or "differs from page 0 in shape, type "
                                    "or layout; only page 0 is referenced"))  # fmt: skip
                pages = pages[:1]
                break
        stack = len(pages) > 1
        for i, page in enumerate(pages):
            _page_refs(page, f, url, first, (i,) if stack else (), out)
        out.refs[".zarray"] = _zarray(first, len(pages) if stack else None)
        out.refs[".zattrs"] = b"{}"


def index_tiff(url: str, **options: Any) -> References:
    """References to the TIFF at ``url``: one page as a 2-D array (3-D with samples), several
    pages as a stack. ``options`` open the file's store (credentials, endpoint)."""
    store, key = open_file_store(url, **options)
    out = References()
    try:
        _index_pages(RangedFile(store, key), url, out)
    finally:
        store.close()
    return out


def _folder_files(store: Store) -> list[str]:
    names = [k for k in store.list("") if "/" not in k and k.lower().endswith(TIFF_SUFFIXES)]
    return sorted(names)


def index_tiff_folder(url: str, **options: Any) -> References:
    """References to the single-page TIFFs of the folder at ``url`` as one stack, in the order
    of their names; a file that does not match the first is reported and left out (the stack
    ends before it)."""
    from bigarrays.stores import open_store

    tifffile = _tifffile()
    store = open_store(url, read_only=True, **options)
    out = References()
    try:
        names = _folder_files(store)
        first: PageLayout | None = None
        count = 0
        for name in names:
            f = RangedFile(store, name)
            file_url = join_url(url, name)
            with tifffile.TiffFile(f) as tif:
                layout, why = page_layout(tif.pages[0], tif.byteorder)
                if first is None and layout is None:
                    out.skipped.append((file_url, why))
                    break
                if layout is None or len(tif.pages) != 1 or (first is not None and layout != first):
                    why = why or "differs from the first file in pages, shape, type or layout"
                    out.skipped.append((file_url, why + "; the stack ends before it"))
                    break
                first = layout
                _page_refs(tif.pages[0], f, file_url, first, (count,), out)
                count += 1
        if first is None:
            if not names:
                out.skipped.append((url, "no .tif or .tiff files in the folder"))
            return out
        out.refs[".zarray"] = _zarray(first, count)
        out.refs[".zattrs"] = b"{}"
        return out
    finally:
        store.close()


def tiff_name(url: str) -> bool:
    return posixpath.basename(url.rstrip("/")).lower().endswith(TIFF_SUFFIXES)
