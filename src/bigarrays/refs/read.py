"""Reading references documents: kerchunk JSON version 0 and 1, and the Parquet layout.

Version 1 has ``refs`` plus ``templates`` (``{{name}}`` in a URL) and ``gen`` (keys generated
from ranges of integers, rendered with jinja2 as fsspec does). A value is inline bytes (a string,
``base64:`` for binary), a JSON object (a metadata document), ``[url]`` (a whole file) or
``[url, offset, length]``. The Parquet layout (fsspec's ``LazyReferenceMapper``) keeps the
metadata documents in ``.zmetadata`` and the chunks of each array in ``ARRAY/refs.N.parq``, one
row per chunk in C order of the chunk grid, ``record_size`` rows a file; its files are read only
when one of their keys is.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import math
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from bigarrays.errors import InvalidReferencesError, MissingDependencyError
from bigarrays.refs.model import Ref, Target
from bigarrays.stores import Store


class Table(Protocol):
    """What the reference store needs: a key's reference, and every key."""

    def get(self, key: str) -> Ref | None: ...
    def keys(self) -> Iterator[str]: ...


def _bad(message: str, where: str) -> InvalidReferencesError:
    return InvalidReferencesError(f"{where}: {message}")


def decode_value(key: str, value: Any, where: str) -> Ref:
    """One reference of a JSON document as inline bytes or a :class:`Target`."""
    if isinstance(value, str):
        if value.startswith("base64:"):
            try:
                return base64.b64decode(value[7:], validate=True)
            except ValueError:
                raise _bad(f"key {key!r} holds invalid base64", where) from None
        return value.encode()
    if isinstance(value, dict):
        return json.dumps(value).encode()
    if isinstance(value, list) and len(value) in (1, 3) and isinstance(value[0], str):
        if len(value) == 1:
            return Target(value[0])
        offset, length = value[1], value[2]
        if (
            isinstance(offset, int) and isinstance(length, int) and offset >= 0 and length >= 0
            and not isinstance(offset, bool) and not isinstance(length, bool)
        ):  # fmt: skip
            return Target(value[0], offset, length)
    raise _bad(
        f"key {key!r} is {json.dumps(value)[:80]}; expected a string, base64:..., a JSON object, "
        "[url] or [url, offset, length] with non-negative integers", where,
    )  # fmt: skip


class JsonTable:
    """The references of a kerchunk JSON document, all held in memory."""

    def __init__(self, doc: Any, where: str) -> None:
        if not isinstance(doc, dict):
            raise _bad("a references document is a JSON object", where)
        version = doc.get("version")
        if version is None:
            items: Mapping[str, Any] = doc
            templates: dict[str, str] = {}
        elif version == 1:
            items = doc.get("refs", {})
            templates = doc.get("templates") or {}
            if not isinstance(items, dict) or not isinstance(templates, dict):
                raise _bad("'refs' and 'templates' are JSON objects", where)
        else:
            raise _bad(f"version {version!r} is not a kerchunk references version (0 or 1)", where)
        self.refs: dict[str, Ref] = {}
        for key, value in items.items():
            ref = decode_value(key, value, where)
            if isinstance(ref, Target) and "{{" in ref.url:
                ref = Target(_render(ref.url, templates, {}, where), ref.offset, ref.length)
            self.refs[key] = ref
        if version == 1:
            self.refs.update(_generate(doc.get("gen") or [], templates, where))

    def get(self, key: str) -> Ref | None:
        return self.refs.get(key)

    def keys(self) -> Iterator[str]:
        return iter(list(self.refs))


_SIMPLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _render(text: str, templates: Mapping[str, Any], values: Mapping[str, Any], where: str) -> str:
    names = {**templates, **values}
    simple = _SIMPLE.sub(lambda m: str(names.get(m.group(1), m.group(0))), text)
    if "{{" not in simple:
        return simple
    try:
        import jinja2
    except ImportError:
        raise MissingDependencyError(
            "jinja2", "refs", "references with template expressions"
        ) from None
    try:
        rendered: str = jinja2.Template(text, undefined=jinja2.StrictUndefined).render(**names)
        return rendered
    except jinja2.TemplateError as exc:
        raise _bad(f"cannot render {text!r}: {exc}", where) from None


def _generate(gens: Any, templates: Mapping[str, Any], where: str) -> dict[str, Ref]:
    if not isinstance(gens, list):
        raise _bad("'gen' is a list", where)
    out: dict[str, Ref] = {}
    for gen in gens:
        try:
            dims = {
                name: spec if isinstance(spec, list)
                else range(spec.get("start", 0), spec["stop"], spec.get("step", 1))
                for name, spec in gen["dimensions"].items()
            }  # fmt: skip
            key_t, url_t = gen["key"], gen["url"]
        except (KeyError, TypeError, AttributeError):
            raise _bad(
                "each 'gen' entry has 'key', 'url' and 'dimensions' (lists, or objects with "
                "'stop' and optional 'start', 'step')", where,
            ) from None  # fmt: skip
        if ("offset" in gen) != ("length" in gen):
            raise _bad("a 'gen' entry has both 'offset' and 'length', or neither", where)
        for combo in itertools.product(*dims.values()):
            values = dict(zip(dims, combo, strict=True))
            key = _render(key_t, templates, values, where)
            url = _render(url_t, templates, values, where)
            if "offset" in gen:
                try:
                    offset = int(_render(str(gen["offset"]), templates, values, where))
                    length = int(_render(str(gen["length"]), templates, values, where))
                except ValueError:
                    raise _bad(
                        f"'gen' offset or length of {key!r} is not an integer", where
                    ) from None
                out[key] = Target(url, offset, length)
            else:
                out[key] = Target(url)
    return out


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "refs", "Parquet references") from None
    return pq


class ParquetTable:
    """The Parquet layout: ``.zmetadata`` and ``ARRAY/refs.N.parq`` files, read on demand."""

    def __init__(self, store: Store, where: str, cache_files: int = 64) -> None:
        self.store, self.where = store, where
        raw = store.get(".zmetadata")
        if raw is None:
            raise _bad("no .zmetadata: not a Parquet references folder", where)
        try:
            doc = json.loads(raw)
            self.meta: dict[str, Any] = dict(doc["metadata"])
            self.record_size = int(doc["record_size"])
        except (ValueError, KeyError, TypeError):
            raise _bad(".zmetadata holds 'metadata' (an object) and 'record_size'", where) from None
        if self.record_size < 1:
            raise _bad("record_size must be a positive integer", where)
        self._lock = threading.Lock()
        self._records = functools.lru_cache(cache_files)(self._read_record)

    def _grid(self, field: str) -> tuple[tuple[int, ...], str] | None:
        zarray = self.meta.get(f"{field}/.zarray" if field else ".zarray")
        if isinstance(zarray, str):
            zarray = json.loads(zarray)
        if not isinstance(zarray, dict):
            return None
        shape, chunks = zarray.get("shape", []), zarray.get("chunks", [])
        grid = tuple(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True)) or (1,)
        return grid, zarray.get("dimension_separator") or "."

    def _read_record(self, field: str, record: int) -> list[tuple[Any, Any, Any, Any]] | None:
        data = self.store.get(f"{field}/refs.{record}.parq" if field else f"refs.{record}.parq")
        if data is None:
            return None
        import pyarrow as pa

        try:
            table = _pyarrow_parquet().read_table(pa.BufferReader(data))
        except (pa.ArrowException, OSError, ValueError) as exc:
            name = f"{field}/refs.{record}.parq"
            raise _bad(f"{name} is not a Parquet file: {exc}", self.where) from None
        missing = {"path", "offset", "size"} - set(table.column_names)
        if missing and "raw" not in table.column_names:
            raise _bad(f"{field}/refs.{record}.parq has no {sorted(missing)} columns", self.where)
        cols = [
            table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
            for c in ("path", "offset", "size", "raw")
        ]
        return list(zip(*cols, strict=True))

    def get(self, key: str) -> Ref | None:
        if key in self.meta:
            value = self.meta[key]
            return value.encode() if isinstance(value, str) else json.dumps(value).encode()
        field, _, chunk = key.rpartition("/")
        found = self._grid(field)
        if found is None:
            return None
        grid, sep = found
        try:
            index = tuple(int(c) for c in chunk.split(sep))
        except ValueError:
            return None
        if len(index) != len(grid) or any(not 0 <= i < n for i, n in zip(index, grid, strict=True)):
            return None
        number = 0
        for i, n in zip(index, grid, strict=True):
            number = number * n + i
        with self._lock:
            rows = self._records(field, number // self.record_size)
        if rows is None or number % self.record_size >= len(rows):
            return None
        path, offset, size, raw = rows[number % self.record_size]
        if raw is not None:
            return bytes(raw)
        if not path:
            return None
        if not offset and not size:
            return Target(path)
        return Target(path, int(offset), int(size))

    def keys(self) -> Iterator[str]:
        yield from list(self.meta)
        for key in list(self.meta):
            if not (key == ".zarray" or key.endswith("/.zarray")):
                continue
            field = key[: -len("/.zarray")] if key != ".zarray" else ""
            found = self._grid(field)
            if found is None:
                continue
            grid, sep = found
            for number, index in enumerate(itertools.product(*(range(n) for n in grid))):
                with self._lock:
                    rows = self._records(field, number // self.record_size)
                if rows is None or number % self.record_size >= len(rows):
                    continue
                path, _, _, raw = rows[number % self.record_size]
                if raw is not None or path:
                    yield (f"{field}/" if field else "") + sep.join(map(str, index))
