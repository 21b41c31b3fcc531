"""The store contract: a flat map from string keys to bytes.

Stores know nothing of arrays or formats. Keys are checked and normalized alike on every backend
and for every method (:mod:`bigarrays.stores.keys`): none reaches past the store's root unless
the store is opened with ``allow_parent_keys=True``.

Transfer encodings (gzip, ...) are the store's business, as they are in HTTP: ``put`` receives bytes
already encoded together with the encoding's name and stores them the store's way; ``get`` returns
the decoded bytes, and ``get_encoded`` the stored bytes with the name of their encoding, so that a
copy between stores keeps gzip as gzip.

Every ``put`` returns the version of what it wrote. Conditional writes are optional: a backend with
``conditional_writes = True`` gives every value a version (``get_with_version``), creates only
where there is no value (``put(mode="create")``) and writes or deletes only if the version is
unchanged (``put(mode="if_version", version=...)``, ``delete_if_version``), raising
``VersionConflictError`` otherwise. Object
stores map this to generations or ETags (``If-Match`` / ``If-None-Match: *``); the file store to a
lock file per key; the memory store to its lock. The sharded writer needs it to merge part of a
shard safely while other processes write the same shard; without it such writes are refused.

Versioned ranged reads name the object state a range came from, with the token of
``get_with_version``: ``get_range_with_version`` returns a range and the version it was read at,
and ``get_range_if_version`` reads a range only while the object is still at a given version
(``If-Match`` / ``ifGenerationMatch`` on a ranged GET; an ``fstat`` of the opened file). The
sharded reader keeps each cached minishard index with the version of the shard it was read from
and reads chunk bytes conditionally on it, so a rewritten shard is noticed on the read itself.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from bigarrays.errors import KeyOutsideRootError, ReadOnlyError, StaleReadError, UnsupportedError
from bigarrays.stores import content_encoding
from bigarrays.stores.content_encoding import ANY_ENCODING as ANY_ENCODING
from bigarrays.stores.keys import check_key, object_key
from bigarrays.stores.ranges import (
    LOCAL,
    ByteRange,
    RangePolicy,
    Span,
    check_range,
    check_ranges,
    coalesce,
    cut,
    cut_range,
)
from bigarrays.stores.value_writer import ValueWriter
from bigarrays.stores.versions import ANY_VERSION, PutMode, check_mode

Buffer = bytes | bytearray | memoryview

#: ``run(fn, items)`` calls ``fn`` on every item, perhaps on several threads (the chunk engine's
#: bounded pool); :meth:`Store.get_ranges` reads its spans through it when given one.
Run = Callable[[Callable[[Any], None], Iterable[Any]], None]

#: What :meth:`Store.read_into` returns, asked for plain bytes, for a key that has no value.
NOT_FOUND = -2


def local_disk_concurrency() -> int:
    """Reads in flight that suit a local disk: a few per core keep an SSD's queue busy, and more
    than 16 only add threads (single-file stores serialise much of their work anyway)."""
    return min(16, max(4, 2 * (os.cpu_count() or 1)))


class Store(abc.ABC):
    """A key -> bytes store. Subclasses implement the ``_``-prefixed primitives.

    Every public method normalizes the key, enforces read-only mode, and leaves the backend to do
    only what is specific to it. All methods are safe to call from many threads at once.
    """

    #: URL schemes this backend serves, for the URL table and error messages.
    schemes: tuple[str, ...] = ()

    #: True serves keys that resolve beside the root (``../other/x``; see
    #: :mod:`bigarrays.stores.keys`). ``open_store(..., allow_parent_keys=True)`` sets it.
    allow_parent_keys: bool = False

    def __init__(self, *, read_only: bool = False) -> None:
        self.read_only = read_only

    def _key(self, key: str) -> str:
        """``key`` checked against this store's rules and normalized (it names an object)."""
        try:
            return object_key(key, self.allow_parent_keys)
        except KeyOutsideRootError:
            # The URL only now: some backends build it on every call (a file URI), and this runs
            # once per chunk.
            raise KeyOutsideRootError(key, self.url) from None

    # -- identity --------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def url(self) -> str:
        """A URL that ``bigarrays.stores.open_store`` turns back into an equal store."""

    @property
    def default_concurrency(self) -> int:
        """How many requests in flight suit this backend (threads of the I/O pipeline)."""
        return max(4, 2 * (os.cpu_count() or 1))

    def _config(self) -> tuple[Any, ...]:
        return (type(self), self.url, self.read_only, self.allow_parent_keys)

    def _reopen_state(self) -> dict[str, Any]:
        """Pickle state of a store that its URL reopens: the settings, never handles."""
        return {
            "url": self.url, "read_only": self.read_only,
            "allow_parent_keys": self.allow_parent_keys,
        }  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Store) and self._config() == other._config()

    def __hash__(self) -> int:
        return hash(self._config())

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"{type(self).__name__}({self.url!r}{mode})"

    # -- the contract ----------------------------------------------------------------------------
    def get(
        self, key: str, *, max_size: int | None = None, encoding: str | None = ANY_ENCODING
    ) -> bytes | None:
        """The value at ``key`` (transfer encoding removed), or None when there is none.

        ``max_size`` bounds the decoding of a transfer encoding: once the output passes it,
        decoding stops with :class:`~bigarrays.errors.CorruptChunkError`, so a small hostile
        object cannot inflate to gigabytes. Readers that know a value's size (a chunk) pass it.

        ``encoding`` is the transfer encoding the value's writers use (None: plain bytes), for
        readers that know it (a format): a store that keeps the encoding in the name
        (:attr:`names_encodings`) then looks under that one name (``KEY`` or ``KEY.gz``), and a
        missing key costs one lookup instead of one per suffix. Other stores learn the encoding
        from the object and ignore it.
        """
        if encoding != ANY_ENCODING and self.names_encodings:
            norm = self._key(key)
            return content_encoding.decode_stored(
                self._get_encoded_as(norm, encoding), norm, max_size
            )
        if max_size is None:
            return self._get(self._key(key))
        return self._get_bounded(self._key(key), max_size)

    def get_range(self, key: str, start: int, length: int | None = None) -> bytes | None:
        """``length`` bytes from offset ``start`` (to the end when None); None if no such key.

        A range that reaches past the end is cut short, as HTTP range requests are. A negative
        ``start`` counts from the end of the value (a suffix range) and takes no ``length``.
        """
        check_range(start, length)
        return self._get_range(self._key(key), start, length)

    def get_range_with_version(
        self, key: str, start: int, length: int | None = None
    ) -> tuple[bytes | None, str | None]:
        """A range as :meth:`get_range` reads it, and the version of the value it was read from.

        The version is the token :meth:`get_with_version` gives for the same stored value, so
        that one token names one state of the object. ``(None, None)`` when there is no such key.
        A store without versions returns None as the version: its ranges cannot be checked
        against each other, and a reader must not trust what it derived from one range (an
        index) when it reads another later.
        """
        check_range(start, length)
        return self._get_range_with_version(self._key(key), start, length)

    def get_range_if_version(
        self, key: str, start: int, length: int | None, version: str | None
    ) -> bytes | None:
        """A range of ``key`` only if the value is still at ``version`` (see :meth:`get_range`).

        ``version`` comes from :meth:`get_range_with_version` or :meth:`get_with_version`; None
        means "only if there is no value" (and returns None). When the stored value is at another
        version, nothing is returned and :class:`~bigarrays.errors.StaleReadError` (a
        :class:`~bigarrays.errors.VersionConflictError`) is raised. Backends without versions
        raise :class:`~bigarrays.errors.UnsupportedError`.
        """
        check_range(start, length)
        return self._get_range_if_version(self._key(key), start, length, version)

    # -- several ranges of one value ---------------------------------------------------------------
    #: How :meth:`get_ranges` merges close ranges into one read (:mod:`bigarrays.stores.ranges`).
    range_policy: RangePolicy = LOCAL

    def get_ranges(
        self, key: str, ranges: Sequence[ByteRange], *, run: Run | None = None
    ) -> list[memoryview] | None:
        """The bytes of each ``(start, length)`` of ``key``, or None when ``key`` is missing.

        Ranges closer than the backend's :attr:`range_policy` allows are read as one span, one
        backend read per span (through ``run`` when given, so that they overlap). Each range
        comes as a view of its span's bytes (no copy; ``bytes(view)`` makes one). A range past
        the end is cut short, as in :meth:`get_range`.
        """
        return self._read_ranges(key, ranges, run, checked=False, version=None)

    def get_ranges_if_version(
        self, key: str, ranges: Sequence[ByteRange], version: str | None, *,
        run: Run | None = None,
    ) -> list[memoryview] | None:  # fmt: skip
        """:meth:`get_ranges`, every span held to ``version`` as :meth:`get_range_if_version`
        holds one range: :class:`~bigarrays.errors.StaleReadError` when the value is at another."""
        return self._read_ranges(key, ranges, run, checked=True, version=version)

    def _read_ranges(
        self, key: str, ranges: Sequence[ByteRange], run: Run | None, *, checked: bool,
        version: str | None,
    ) -> list[memoryview] | None:  # fmt: skip
        check_ranges(ranges)
        norm = self._key(key)
        if not ranges:
            if checked:
                found = self._get_range_if_version(norm, 0, 0, version)
            else:
                found = b"" if self._exists(norm) else None
            return None if found is None else []
        spans = coalesce(ranges, self.range_policy)
        parts = self._get_spans(norm, spans, checked, version, run)
        if any(p is None for p in parts):
            return None
        return cut(ranges, spans, parts)  # type: ignore[arg-type]

    def _get_spans(
        self, key: str, spans: Sequence[Span], checked: bool, version: str | None,
        run: Run | None,
    ) -> list[bytes | None]:  # fmt: skip
        """The bytes of each merged span, one backend read each (None: no such key)."""
        parts: list[bytes | None] = [None] * len(spans)

        def read(j: int) -> None:
            s = spans[j]
            if checked:
                parts[j] = self._get_range_if_version(key, s.start, s.length, version)
            else:
                parts[j] = self._get_range(key, s.start, s.length)

        if run is None or len(spans) == 1:
            for j in range(len(spans)):
                read(j)
                if parts[j] is None:
                    break  # no such key: the other spans are not there either
        else:
            run(read, range(len(spans)))
        return parts

    def put(
        self,
        key: str,
        value: Buffer,
        *,
        mode: PutMode = "overwrite",
        version: str | None = None,
        content_encoding: str | None = None,
    ) -> str | None:
        """Store ``value`` at ``key`` atomically (a reader sees the old value or the new one) and
        return the new value's version: the token :meth:`get_with_version` gives for it, or None
        on a store without versions.

        ``mode``: ``"overwrite"`` replaces whatever is stored; ``"create"`` writes only where
        there is no value; ``"if_version"`` only while the value is at ``version`` (a token from
        :meth:`get_with_version`; :data:`ANY_VERSION` matches whatever is stored, ordered with
        other conditional writes). A failed condition writes nothing and raises
        :class:`~bigarrays.errors.VersionConflictError`: read again and retry. Stores without
        conditional writes refuse the last two modes with
        :class:`~bigarrays.errors.UnsupportedError`. ``content_encoding`` names the transfer
        encoding ``value`` is already in (e.g. "gzip").
        """
        self._check_writable()
        norm = self._key(key)
        check_mode(mode, version)
        if mode == "overwrite":
            return self._put(norm, value, content_encoding)
        if not self.conditional_writes:
            raise self._no_versions()
        return self._put_if_version(norm, value, version, content_encoding)

    #: Whether :meth:`put_parts` writes the parts an iterator gives as they come (a file),
    #: rather than taking them all before the first write.
    writes_parts_in_turn = False

    def put_parts(
        self,
        key: str,
        parts: Iterable[Buffer],
        *,
        mode: PutMode = "overwrite",
        version: str | None = None,
    ) -> str | None:
        """:meth:`put` of ``parts`` one after another as one value, just as atomic and with the
        same modes. A backend that can write them in turn (a file) never joins them, so a value
        made of many pieces (a shard of chunks) is not copied whole once more; others join.

        ``parts`` may be an iterator that makes them on the way: where the backend
        :attr:`writes_parts_in_turn`, each is written as it comes and let go (a shard is stored
        while its last chunks are still being encoded); an error raised by the iterator stores
        nothing and leaves the old value."""
        self._check_writable()
        norm = self._key(key)
        check_mode(mode, version)
        if mode != "overwrite" and not self.conditional_writes:
            raise self._no_versions()
        if self.writes_parts_in_turn and not isinstance(parts, Sequence):
            return self._put_parts_in_turn(norm, (memoryview(p) for p in parts), mode, version)
        views = [memoryview(p) for p in parts]  # before any write: a part that is no buffer
        return self._put_parts(norm, views, mode, version)

    def _put_parts(
        self, key: str, parts: list[memoryview], mode: PutMode, version: str | None
    ) -> str | None:
        """Write the parts as one value (``mode`` and ``version`` checked as :meth:`put` does)."""
        value = b"".join(parts)
        if mode == "overwrite":
            return self._put(key, value, None)
        return self._put_if_version(key, value, version, None)

    def _put_parts_in_turn(
        self, key: str, parts: Iterator[memoryview], mode: PutMode, version: str | None
    ) -> str | None:
        """:meth:`_put_parts` of the parts an iterator gives, each written as it comes (only
        where the backend :attr:`writes_parts_in_turn`)."""
        raise NotImplementedError

    #: Whether :meth:`open_value` can write a value at offsets before it is published whole
    #: (a file): a stream copies frames straight to where their chunks are stored.
    writes_at_offsets = False

    def open_value(self, key: str) -> ValueWriter:
        """A new value of ``key`` to write at offsets (any order, gaps read as zeros) and then
        publish whole, as atomically as :meth:`put` (overwrite) stores one: until
        :meth:`ValueWriter.publish`, readers see the old value. Other writes of the key wait for
        the publish or :meth:`ValueWriter.discard` where the backend orders them (a file's
        lock). Only where :attr:`writes_at_offsets`."""
        self._check_writable()
        norm = self._key(key)
        if not self.writes_at_offsets:
            raise UnsupportedError(f"{self.url} cannot write a value at offsets")
        return self._open_value(norm)

    def _open_value(self, key: str) -> ValueWriter:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a key that does not exist is not an error."""
        self._check_writable()
        self._delete(self._key(key))

    def exists(self, key: str) -> bool:
        return self._exists(self._key(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with ``prefix`` (a plain string prefix, not a folder)."""
        try:
            norm = check_key(prefix, self.allow_parent_keys) if prefix else ""
        except KeyOutsideRootError:
            raise KeyOutsideRootError(prefix, self.url) from None
        return self._list(norm + ("/" if prefix.endswith("/") and norm else ""))

    def size(self, key: str) -> int | None:
        """The stored (possibly compressed) size of ``key`` in bytes, or None when missing."""
        return self._size(self._key(key))

    def get_encoded(
        self, key: str, *, encoding: str | None = ANY_ENCODING
    ) -> tuple[bytes, str | None] | None:
        """The bytes of ``key`` as stored and their transfer encoding, or None when missing.

        Unlike :meth:`get`, nothing is decoded: ``put(key, data, content_encoding=encoding)`` of
        the result recreates the object as it was (gzip stays gzip), which is how ``bigarrays cp``
        copies between stores without decoding and re-encoding. ``encoding`` is None for plain
        bytes. Backends that keep the encoding (a file suffix, a header) override
        ``_get_encoded``; the default returns the decoded value as plain bytes. ``encoding``
        narrows where to look, as in :meth:`get`.
        """
        if encoding != ANY_ENCODING and self.names_encodings:
            return self._get_encoded_as(self._key(key), encoding)
        return self._get_encoded(self._key(key))

    # -- reading into a caller's buffer (optional; ``reads_into_buffers`` says who has it) -------
    #: True when :meth:`read_into` reads stored bytes straight into memory (a local file).
    reads_into_buffers: bool = False

    def read_into(
        self,
        key: str,
        buffer: memoryview,
        offset: int = 0,
        size: int | None = None,
        *,
        encoding: str | None = ANY_ENCODING,
    ) -> int | None:
        """Read the plain stored bytes of ``key`` from ``offset`` into ``buffer``; bytes read.

        The zero-allocation path of the chunk pipeline: no bytes object is made, so a reused
        buffer costs no page faults. At most ``len(buffer)`` bytes are read. With ``size``, an
        object of any other stored size is not read and gives -1. None means "use :meth:`get`":
        the key is missing, stored with a transfer encoding, or the backend cannot read into a
        buffer (the default). With ``encoding=None`` (the caller's writers store plain bytes, see
        :meth:`get`), a key with no value gives :data:`NOT_FOUND` instead, so the caller need not
        look again. ``key`` must already be normalized.
        """
        return None

    def read_ranges_into(
        self,
        key: str,
        ranges: Sequence[ByteRange],
        buffer: memoryview,
        each: Callable[[int, memoryview], None],
        version: str | None,
    ) -> bool:
        """Read each ``(start, length)`` of the plain value of ``key`` into ``buffer`` in turn
        and call ``each(i, view)`` with the bytes read (fewer past the end) before the next range
        overwrites them; False, with nothing read, when there is no plain value. Every range is
        held to ``version`` (:data:`ANY_VERSION`: whatever is stored) as in
        :meth:`get_ranges_if_version`. Only for backends with ``reads_into_buffers``: the few
        ranges of a small request cost one open and no allocation. ``key`` must be normalized.
        """
        raise UnsupportedError(f"{type(self).__name__} does not read into buffers")

    # -- conditional writes (optional; ``conditional_writes`` says whether a backend has them) ----
    #: True when the backend implements versions and the ``*_if_version`` methods below.
    conditional_writes: bool = False

    def get_with_version(
        self, key: str, *, max_size: int | None = None, encoding: str | None = ANY_ENCODING
    ) -> tuple[bytes | None, str | None]:
        """The value at ``key`` and an opaque version token; ``(None, None)`` when there is none.

        The token changes whenever the value is replaced (a generation, an ETag, a file's
        identity). Backends without versions raise :class:`~bigarrays.errors.UnsupportedError`.
        ``max_size`` bounds the decoding and ``encoding`` narrows where to look, as in :meth:`get`.
        """
        if encoding != ANY_ENCODING and self.names_encodings:
            return self._get_with_version_as(self._key(key), max_size, encoding)
        return self._get_with_version(self._key(key), max_size)

    def delete_if_version(self, key: str, version: str | None) -> None:
        """Remove ``key`` only if it is still at ``version`` (a token from
        :meth:`get_with_version`; None: only if there is no value; :data:`ANY_VERSION`: whatever
        is stored, ordered with conditional writes); else
        :class:`~bigarrays.errors.VersionConflictError`."""
        self._check_writable()
        self._delete_if_version(self._key(key), version)

    def checkpoint(self, *, flush: bool = True) -> None:  # noqa: B027 - optional hook
        """Make what was written so far visible to other processes where the backend holds it
        back (a zip's central directory) and, with ``flush``, durable on disk (``fsync``); a
        failure is a ``StoreError``. Writers that keep checkpoints (a stream) call it around
        their metadata; a backend whose puts are visible and durable one by one does nothing."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for most backends
        """Release connections or file handles; the store may not be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self.url} is opened read-only")

    # -- backend primitives ----------------------------------------------------------------------
    @abc.abstractmethod
    def _get(self, key: str) -> bytes | None: ...

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        return cut_range(self._get(key), start, length)

    @abc.abstractmethod
    def _put(self, key: str, value: Buffer, content_encoding: str | None) -> str | None:
        """Write unconditionally; the new version, or None on a store without versions."""

    @abc.abstractmethod
    def _delete(self, key: str) -> None: ...

    def _exists(self, key: str) -> bool:
        return self._get(key) is not None

    @abc.abstractmethod
    def _list(self, prefix: str) -> Iterator[str]: ...

    def _size(self, key: str) -> int | None:
        value = self._get(key)
        return None if value is None else len(value)

    def _get_encoded(self, key: str) -> tuple[bytes, str | None] | None:
        value = self._get(key)
        return None if value is None else (value, None)

    #: True when the backend keeps a transfer encoding in the name (``KEY.gz``) and implements
    #: the ``*_as`` primitives below, which look under the one name of a known encoding.
    names_encodings: bool = False

    def _get_encoded_as(self, key: str, encoding: str | None) -> tuple[bytes, str | None] | None:
        """The stored bytes under the name of ``encoding`` (see
        :func:`~bigarrays.stores.content_encoding.stored_names`), or None."""
        return self._get_encoded(key)

    def _get_with_version_as(
        self, key: str, max_size: int | None, encoding: str | None
    ) -> tuple[bytes | None, str | None]:
        return self._get_with_version(key, max_size)

    def _get_bounded(self, key: str, max_size: int) -> bytes | None:
        # The stored bytes and their encoding, decoded here under the bound: one place for
        # every backend that keeps the encoding (a suffix, a header).
        return content_encoding.decode_stored(self._get_encoded(key), key, max_size)

    def _no_versions(self) -> UnsupportedError:
        return UnsupportedError(
            f"the {type(self).__name__} store ({self.url}) has no conditional writes "
            "(versions, compare-and-swap)"
        )

    def _get_with_version(
        self, key: str, max_size: int | None = None
    ) -> tuple[bytes | None, str | None]:
        raise self._no_versions()

    def _get_range_with_version(
        self, key: str, start: int, length: int | None
    ) -> tuple[bytes | None, str | None]:
        # Correct for every versioned backend (the whole value and its version are read
        # together), if costly: backends that can read a range at a version override it.
        if not self.conditional_writes:
            return self._get_range(key, start, length), None
        value, version = self._get_with_version(key)
        return cut_range(value, start, length), version

    def _get_range_if_version(
        self, key: str, start: int, length: int | None, version: str | None
    ) -> bytes | None:
        if not self.conditional_writes:
            raise self._no_versions()
        data, current = self._get_range_with_version(key, start, length)
        if version != ANY_VERSION and current != version:
            raise StaleReadError(key, self.url)
        return data

    def _put_if_version(
        self, key: str, value: Buffer, version: str | None, content_encoding: str | None
    ) -> str:
        """Write only at ``version`` (None: only where there is no value); the new version."""
        raise self._no_versions()

    def _delete_if_version(self, key: str, version: str | None) -> None:
        raise self._no_versions()
