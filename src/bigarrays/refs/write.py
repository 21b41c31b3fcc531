"""Writing references: kerchunk JSON version 1 (or 0), and the Parquet layout.

Inline values are written as text when they are UTF-8 (metadata documents) and as ``base64:``
otherwise. Version 1 names each target file once, as a template (``{{u0}}``), when it is
referenced more than once. The Parquet layout (fsspec's ``LazyReferenceMapper``) needs every
chunk key to belong to a Zarr v2 array (a ``.zarray`` beside it), whose chunk grid orders its
rows; other keys cannot be kept there and are refused.
"""

from __future__ import annotations

import base64
import io
import json
import math
import posixpath
from collections import Counter
from typing import Any

from bigarrays.errors import UnsupportedError
from bigarrays.refs.model import Ref, References, Target
from bigarrays.refs.ranged import split_url
from bigarrays.stores import open_store

#: Rows per Parquet file, as fsspec writes them by default.
RECORD_SIZE = 10_000


def _inline(value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()
    return "base64:" + base64.b64encode(value).decode() if text.startswith("base64:") else text


def _target(ref: Target, url: str) -> list[Any]:
    return [url] if ref.offset is None else [url, ref.offset, ref.length]


def to_json(refs: References, version: int = 1) -> bytes:
    """The kerchunk JSON document of ``refs`` (``version`` 1 or 0)."""
    if version not in (0, 1):
        raise UnsupportedError(f"kerchunk references have versions 0 and 1, not {version!r}")
    if version == 0:
        flat = {
            k: _inline(v) if isinstance(v, bytes) else _target(v, v.url)
            for k, v in refs.refs.items()
        }  # fmt: skip
        return json.dumps(flat, separators=(",", ":")).encode()
    counts = Counter(v.url for v in refs.refs.values() if isinstance(v, Target))
    names = {url: f"u{i}" for i, (url, n) in enumerate(counts.most_common()) if n > 1}
    out: dict[str, Any] = {}
    for key, value in refs.refs.items():
        if isinstance(value, bytes):
            out[key] = _inline(value)
        else:
            name = names.get(value.url)
            out[key] = _target(value, value.url if name is None else "{{" + name + "}}")
    doc = {"version": 1, "templates": {n: url for url, n in names.items()}, "refs": out}
    return json.dumps(doc, separators=(",", ":")).encode()


def _fields(refs: dict[str, Ref]) -> tuple[dict[str, Any], dict[str, dict[int, Ref]], int]:
    """The metadata documents, each array's references by chunk number, and its chunk count."""
    meta: dict[str, Any] = {}
    grids: dict[str, tuple[tuple[int, ...], str]] = {}
    for key, value in refs.items():
        if posixpath.basename(key).startswith(".z"):
            if not isinstance(value, bytes):
                raise UnsupportedError(f"{key!r}: metadata must be inline to go in .zmetadata")
            meta[key] = json.loads(value)
            if key.endswith(".zarray"):
                doc = meta[key]
                grid = tuple(
                    math.ceil(s / c) for s, c in zip(doc["shape"], doc["chunks"], strict=True)
                )
                grids[posixpath.dirname(key)] = (
                    grid or (1,),
                    doc.get("dimension_separator") or ".",
                )
    rows: dict[str, dict[int, Ref]] = {field: {} for field in grids}
    strays = []
    for key, value in refs.items():
        if key in meta:
            continue
        field, _, chunk = key.rpartition("/")
        if field not in grids:
            strays.append(key)
            continue
        grid, sep = grids[field]
        index = [int(c) for c in chunk.split(sep)]
        number = 0
        for i, n in zip(index, grid, strict=True):
            number = number * n + i
        rows[field][number] = value
    if strays:
        raise UnsupportedError(
            f"the Parquet layout keeps only the chunks of Zarr v2 arrays; {len(strays)} key(s) "
            f"are not ({', '.join(strays[:3])}): write JSON references instead"
        )
    counts = {f: math.prod(g) for f, (g, _) in grids.items()}
    return meta, rows, max(counts.values(), default=0)


def to_parquet_files(refs: References, record_size: int = RECORD_SIZE) -> dict[str, bytes]:
    """The files of the Parquet layout of ``refs``, by path inside its folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta, rows, _ = _fields(refs.refs)
    files = {".zmetadata": json.dumps({"metadata": meta, "record_size": record_size}).encode()}
    for field, by_number in rows.items():
        doc = meta[f"{field}/.zarray" if field else ".zarray"]
        total = math.prod(
            math.ceil(s / c) for s, c in zip(doc["shape"], doc["chunks"], strict=True)
        )
        for record in range(math.ceil(max(total, 1) / record_size)):
            numbers = range(record * record_size, min(max(total, 1), (record + 1) * record_size))
            paths: list[str | None] = []
            offsets: list[int] = []
            sizes: list[int] = []
            raws: list[bytes | None] = []
            for n in numbers:
                ref = by_number.get(n)
                if isinstance(ref, Target):
                    paths.append(ref.url)
                    offsets.append(ref.offset or 0)
                    sizes.append(ref.length or 0)
                else:
                    paths.append(None)
                    offsets.append(0)
                    sizes.append(0)
                raws.append(ref if isinstance(ref, bytes) else None)
            table = pa.table({
                "path": pa.array(paths, pa.string()), "offset": pa.array(offsets, pa.int64()),
                "size": pa.array(sizes, pa.int64()), "raw": pa.array(raws, pa.binary()),
            })  # fmt: skip
            sink = io.BytesIO()
            pq.write_table(table, sink)
            files[f"{field}/refs.{record}.parq" if field else f"refs.{record}.parq"] = (
                sink.getvalue()
            )
    return files


def write_references(
    refs: References, url: str, *, version: int = 1, record_size: int = RECORD_SIZE,
    **options: Any,
) -> None:  # fmt: skip
    """Write ``refs`` to ``url``: the Parquet layout when it ends in ``.parquet`` / ``.parq``
    (a folder), kerchunk JSON of ``version`` otherwise. ``options`` open the store."""
    if url.rstrip("/").lower().endswith((".parquet", ".parq")):
        folder = open_store(url.rstrip("/"), **options)
        try:
            for key, data in to_parquet_files(refs, record_size).items():
                folder.put(key, data)
        finally:
            folder.close()
        return
    head, name = split_url(url)
    store = open_store(head, **options)
    try:
        store.put(name, to_json(refs, version))
    finally:
        store.close()
