"""A read-only store whose keys are references into other files (kerchunk's model).

``reference://PATH/refs.json`` (kerchunk JSON, version 0 or 1) or ``reference://PATH/refs.parquet``
(the Parquet layout, a folder) maps each key to inline bytes or to ``(url, offset, length)`` in a
target file; a read of the key is one ranged read of that file, through the store bigarrays has
for the target's URL (file, S3, GCS, HTTP, fsspec). Targets without a scheme are paths relative
to the references' folder. A key without a reference is a missing key, so a chunk never indexed
reads as the fill value. ``reference://refs.json#group/array`` (or ``refs.json/group/array``)
roots the store at a path inside the references (one array of an HDF5 file).

:meth:`ReferenceStore.get_many` reads many keys at once: the ranges of one target file go to its
store's ``get_ranges``, which merges neighbours into one request. A read of one key from a
remote target also fetches the references that follow it in the file
(:mod:`bigarrays.refs.readahead`), so the engine's chunk-by-chunk reads are merged too. Writes
are refused: the bytes belong to the files referenced; ``bigarrays cp`` copies the dataset into
a writable store.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from bigarrays.errors import (
    BrokenReferenceError,
    DatasetNotFoundError,
    InvalidReferencesError,
    ReadOnlyError,
)
from bigarrays.refs.local import LocalFiles
from bigarrays.refs.model import Ref, Target
from bigarrays.refs.ranged import open_file_store
from bigarrays.refs.read import JsonTable, ParquetTable, Table
from bigarrays.refs.readahead import ReadAhead
from bigarrays.stores import join_url, open_store, split_scheme
from bigarrays.stores.base import Buffer, Run, Store
from bigarrays.stores.file import FileStore
from bigarrays.stores.ranges import LOCAL, REMOTE

SCHEME = "reference://"
#: A references document larger than this is refused rather than parsed.
MAX_JSON_BYTES = 2 << 30


def _is_parquet(url: str) -> bool:
    return url.rstrip("/").lower().endswith((".parquet", ".parq"))


_DOCUMENT = re.compile(r"^(.*?\.(?:json|parquet|parq))/+(.+)$", re.IGNORECASE)


def _split_document(body: str) -> tuple[str, str]:
    """``("refs.json", "group/array")`` for ``refs.json/group/array``: the path below a
    references document is a path inside it, as the path below a dataset's URL is."""
    m = _DOCUMENT.match(body)
    return (m.group(1), m.group(2).strip("/")) if m else (body, "")


class ReferenceStore(Store):
    """The keys of a references document; reads go to the files it references."""

    schemes = ("reference",)
    range_policy = REMOTE

    def __init__(
        self, url: str, *, read_only: bool = True, target_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:  # fmt: skip
        super().__init__(read_only=True)
        body = url[len(SCHEME) :] if url.lower().startswith(SCHEME) else url
        body, _, root = body.partition("#")
        if not root:
            body, root = _split_document(body)
        if not body:
            raise DatasetNotFoundError(f"{url!r} names no references file")
        self._refs_url = body
        self._root = root.strip("/")
        self._options = options
        self._target_options = dict(target_options or {})
        self._stores: dict[str, tuple[Store, str]] = {}
        self._ahead: dict[str, ReadAhead] = {}
        self._local = LocalFiles()
        self._lock = threading.Lock()
        self.table = self._load()

    def _load(self) -> Table:
        where = f"references {self._refs_url}"
        if _is_parquet(self._refs_url):
            self._folder = self._refs_url.rstrip("/")
            return ParquetTable(open_store(self._folder, read_only=True, **self._options), where)
        store, name = open_file_store(self._refs_url, **self._options)
        self._folder = store.url
        try:
            data = store.get(name, max_size=MAX_JSON_BYTES)
        finally:
            store.close()
        if data is None:
            folder = open_store(self._refs_url, read_only=True, **self._options)
            if folder.get(".zmetadata") is not None:
                self._folder = self._refs_url.rstrip("/")
                return ParquetTable(folder, where)
            raise DatasetNotFoundError(f"no references file at {self._refs_url}")
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise InvalidReferencesError(f"{where}: not JSON ({exc})") from None
        return JsonTable(doc, where)

    @property
    def url(self) -> str:
        return SCHEME + self._refs_url + (f"#{self._root}" if self._root else "")

    def _config(self) -> tuple[Any, ...]:
        return (type(self), self.url)

    def __getstate__(self) -> dict[str, Any]:
        return {**self._reopen_state(), "options": self._options,
                "target_options": self._target_options}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"], target_options=state["target_options"], **state["options"]
        )

    @property
    def write_hint(self) -> str:
        """How to get a writable copy, for messages that refuse a write."""
        return (
            f"; to write, copy it to a writable store first (bigarrays cp {self.url} DST): the "
            "bytes of a references store belong to the files it references"
        )

    def _check_writable(self) -> None:
        raise ReadOnlyError(f"{self.url} is read-only{self.write_hint}")

    # -- references ------------------------------------------------------------------------------
    def _full(self, key: str) -> str:
        return f"{self._root}/{key}" if self._root else key

    def reference(self, key: str) -> Ref | None:
        """The reference of ``key``: inline bytes, a :class:`Target`, or None."""
        return self.table.get(self._full(self._key(key)))

    def _target(self, url: str) -> tuple[Store, str]:
        """The store of the folder holding target ``url``, and the target's key in it."""
        with self._lock:
            found = self._stores.get(url)
            if found is None:
                full = url
                if split_scheme(url)[0] == "file" and not url.startswith(("/", "file:")):
                    full = join_url(self._folder, url)  # relative to the references
                found = open_file_store(full, **self._options_for(full))
                self._stores[url] = found
            return found

    def _options_for(self, url: str) -> dict[str, Any]:
        """``target_options`` when given; else the references' own store options for targets
        of the same scheme (a public bucket's references point into the same bucket)."""
        if self._target_options or not self._options:
            return self._target_options
        same = split_scheme(url)[0] == split_scheme(self._refs_url)[0]
        return dict(self._options) if same else {}

    def _read(self, key: str, ref: Target) -> bytes:
        store, name = self._target(ref.url)
        if ref.offset is None:
            return self._checked(key, ref, store.get(name))
        return self._checked(key, ref, self._read_range(key, ref, store, name))

    def _read_range(self, key: str, ref: Target, store: Store, name: str) -> bytes | None:
        assert ref.offset is not None
        if isinstance(store, FileStore) and ref.length is not None:
            fd = self._local.fd(os.path.join(store.root, name))
            if fd is not None:
                return self._local.read(fd, ref.offset, ref.length)
        ahead = self._read_ahead(ref.url, store)
        if ahead is None:
            return store.get_range(name, ref.offset, ref.length)
        return ahead.get(key, ref, lambda a, n: store.get_range(name, a, n))

    def _read_ahead(self, url: str, store: Store) -> ReadAhead | None:
        """The merged reads of target ``url``: for remote targets of references held in
        memory (a request costs more than the bytes between neighbouring chunks)."""
        if store.range_policy == LOCAL or not isinstance(self.table, JsonTable):
            return None
        with self._lock:
            found = self._ahead.get(url)
            if found is None:
                head = f"{self._root}/" if self._root else ""
                refs = [
                    (k[len(head) :], t) for k, t in self.table.refs.items()
                    if isinstance(t, Target) and t.url == url and t.offset is not None
                    and k.startswith(head)
                ]  # fmt: skip
                found = self._ahead[url] = ReadAhead(refs, store.range_policy)
            return found

    def _checked(self, key: str, ref: Target, data: bytes | memoryview | None) -> bytes:
        if data is None:
            raise BrokenReferenceError(key, f"its target {ref.url} does not exist")
        if ref.length is not None and len(data) != ref.length:
            raise BrokenReferenceError(
                key, f"it names {ref.length} bytes at offset {ref.offset} of {ref.url}, but the "
                f"file ends after {len(data)} of them",
            )  # fmt: skip
        return bytes(data)

    # -- the store contract ----------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        ref = self.table.get(self._full(key))
        if ref is None or isinstance(ref, bytes):
            return ref
        return self._read(key, ref)

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        ref = self.table.get(self._full(key))
        if ref is None or isinstance(ref, bytes) or ref.offset is None or start < 0:
            return super()._get_range(key, start, length)
        assert ref.length is not None
        start = min(start, ref.length)
        n = ref.length - start if length is None else min(length, ref.length - start)
        store, name = self._target(ref.url)
        data = store.get_range(name, ref.offset + start, n)
        part = Target(ref.url, ref.offset + start, n)
        return self._checked(key, part, data)

    def _exists(self, key: str) -> bool:
        return self.table.get(self._full(key)) is not None

    def _size(self, key: str) -> int | None:
        ref = self.table.get(self._full(key))
        if isinstance(ref, Target) and ref.length is not None:
            return ref.length
        return super()._size(key)

    def _list(self, prefix: str) -> Iterator[str]:
        head = f"{self._root}/" if self._root else ""
        for key in list(self.table.keys()):
            if key.startswith(head) and key[len(head) :].startswith(prefix):
                yield key[len(head) :]

    def _put(self, key: str, value: Buffer, content_encoding: str | None) -> str | None:
        raise AssertionError("unreachable: _check_writable refuses every write")

    def _delete(self, key: str) -> None:
        raise AssertionError("unreachable: _check_writable refuses every delete")

    # -- many keys at once -----------------------------------------------------------------------
    def get_many(self, keys: Iterable[str], *, run: Run | None = None) -> dict[str, bytes | None]:
        """The value of every key; the ranges of each target file are read together through its
        store's :meth:`~bigarrays.stores.base.Store.get_ranges` (neighbours merged)."""
        out: dict[str, bytes | None] = {}
        by_file: dict[str, list[tuple[str, Target]]] = defaultdict(list)
        for key in keys:
            ref = self.reference(key)
            if isinstance(ref, Target) and ref.offset is not None:
                by_file[ref.url].append((key, ref))
            else:
                out[key] = ref if not isinstance(ref, Target) else self._read(key, ref)
        for url, items in by_file.items():
            store, name = self._target(url)
            ranges: Sequence[tuple[int, int]] = [(r.offset or 0, r.length or 0) for _, r in items]
            parts = store.get_ranges(name, ranges, run=run)
            for j, (key, ref) in enumerate(items):
                out[key] = self._checked(key, ref, None if parts is None else parts[j])
        return out

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store, _ in stores:
            store.close()
        self._local.close()
