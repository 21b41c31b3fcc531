"""What the network stores (S3, GCS, HTTP) share: a lazy client, bounded concurrency, retries.

- The client (a connection pool, a boto3 client, credentials) is made on first use, once per
  process, and never pickled: a store pickles its configuration, so a Dask worker that unpickles
  it makes its own client. A child process made by ``fork`` notices the new pid and makes its own
  too, since pools and locks do not survive a fork.
- At most ``concurrency`` requests of one store are in flight at once; the connection pool holds
  as many connections, so no thread waits for a socket while holding a slot.
- Every request goes through :func:`bigarrays.stores.retry.call` with the store's
  :class:`~bigarrays.stores.retry.RetryPolicy`.
- Stores compare equal when their configuration is equal (``_config``), secrets included, so two
  stores with different credentials on the same bucket are two stores.
"""

from __future__ import annotations

import abc
import importlib.util
import os
import posixpath
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bigarrays.errors import MissingDependencyError, StaleReadError, StoreError
from bigarrays.stores import content_encoding, retry
from bigarrays.stores.base import Buffer, Run, Store
from bigarrays.stores.ranges import REMOTE, Span
from bigarrays.stores.retry import RetryPolicy
from bigarrays.stores.versions import ANY_VERSION

T = TypeVar("T")


class RemoteStore(Store):
    """Base of stores that talk to a server. Subclasses implement :meth:`_connect`."""

    #: Requests in flight per store unless the ``concurrency`` option says otherwise.
    DEFAULT_CONCURRENCY = 32

    def __init__(
        self,
        *,
        read_only: bool = False,
        concurrency: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(read_only=read_only)
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency or self.DEFAULT_CONCURRENCY
        self.retry = retry or RetryPolicy()
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._client: Any = None
        self._slots = threading.BoundedSemaphore(self.concurrency)

    # -- identity and pickling -------------------------------------------------------------------
    @property
    def default_concurrency(self) -> int:
        return self.concurrency

    @property
    def options(self) -> dict[str, Any]:
        """Keyword options that, with :attr:`url`, open an equal store (``open_store``)."""
        opts: dict[str, Any] = {}
        if self.concurrency != self.DEFAULT_CONCURRENCY:
            opts["concurrency"] = self.concurrency
        if self.retry != RetryPolicy():
            opts["retry"] = self.retry
        return opts

    def _config(self) -> tuple[Any, ...]:
        return (*super()._config(), self.concurrency, self.retry)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_lock", "_pid", "_client", "_slots"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_state()

    # -- the client --------------------------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self) -> Any:
        """A new client for this process (imports the optional package, reads credentials)."""

    def _disconnect(self, client: Any) -> None:
        """Release ``client``'s connections."""

    def client(self) -> Any:
        """This process's client, made on first use."""
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    # After a fork the parent's client is left alone: its sockets are shared.
                    self._client = self._connect()
                    self._pid = pid
        return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client, self._pid = self._client, None, -1
        if client is not None:
            self._disconnect(client)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one request: at most ``concurrency`` at once, retried on transient failures."""

        def attempt() -> T:
            with self._slots:
                return fn()

        return retry.call(attempt, self.retry, what=what)

    # -- keys --------------------------------------------------------------------------------------
    @staticmethod
    def join_root(root: str, key: str, url: str) -> str:
        """The object name of ``key`` below ``root`` (a prefix without slashes at its ends)."""
        name = posixpath.normpath(f"{root}/{key}") if root else posixpath.normpath(key)
        if name == ".." or name.startswith("../") or name.startswith("/"):
            raise StoreError(f"key {key!r} climbs above the root of {url}")
        return name

    # -- ranges at a version (object stores that name versions: ETags, generations) -------------
    def _ranged_get(
        self, key: str, start: int, length: int | None, version: str | None
    ) -> tuple[bytes | None, str | None] | None:
        """One ranged request (conditional on ``version`` when given) and the object's version;
        ``(None, None)`` when there is no object; None when only the whole value will do (an
        encoded object, an empty or out-of-bounds range). Stores with versions implement it."""
        raise self._no_versions()

    def _get_range_with_version(
        self, key: str, start: int, length: int | None
    ) -> tuple[bytes | None, str | None]:
        got = self._ranged_get(key, start, length, None)
        return super()._get_range_with_version(key, start, length) if got is None else got

    def _get_range_if_version(
        self, key: str, start: int, length: int | None, version: str | None
    ) -> bytes | None:
        if version is None or version == ANY_VERSION:
            return super()._get_range_if_version(key, start, length, version)
        got = self._ranged_get(key, start, length, version)
        if got is None:
            return super()._get_range_if_version(key, start, length, version)
        if got[1] != version:  # a server that ignores the condition on reads (some emulators)
            raise StaleReadError(key, self.url)
        return got[0]

    # -- several ranges at once: the spans of get_ranges in parallel ------------------------------
    range_policy = REMOTE

    def _get_spans(
        self, key: str, spans: Sequence[Span], checked: bool, version: str | None,
        run: Run | None,
    ) -> list[bytes | None]:  # fmt: skip
        if run is not None or len(spans) == 1:
            return super()._get_spans(key, spans, checked, version, run)
        with ThreadPoolExecutor(min(len(spans), self.concurrency)) as pool:

            def run_in_pool(fn: Callable[[Any], None], items: Iterable[Any]) -> None:
                list(pool.map(fn, items))

            return super()._get_spans(key, spans, checked, version, run_in_pool)


def range_header(start: int, length: int | None) -> str:
    """The ``Range`` header of ``length`` bytes from ``start`` (to the end when None; a negative
    ``start`` is a suffix: the last ``-start`` bytes)."""
    if start < 0:
        return f"bytes={start}"
    return f"bytes={start}-" if length is None else f"bytes={start}-{start + length - 1}"


def iter_pages(fetch: Callable[[str | None], tuple[list[str], str | None]]) -> Iterator[str]:
    """Keys from a paginated listing: ``fetch(token) -> (keys, next_token)``."""
    token: str | None = None
    while True:
        keys, token = fetch(token)
        yield from keys
        if not token:
            return


def require(package: str, module: str, extra: str, feature: str) -> None:
    """Fail at open, not at the first request, when an optional package is not installed."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(package, extra, feature)


def to_bytes(value: Buffer) -> bytes:
    """The bytes of a buffer (no copy for ``bytes``); a ``str`` is a ``TypeError``."""
    if isinstance(value, bytes):
        return value
    return memoryview(value).cast("B").tobytes()  # a str raises TypeError here


def encodings(header: str | None) -> list[str]:
    """The transfer encodings a ``Content-Encoding`` header names, in the order applied.

    ``identity`` and S3's ``aws-chunked`` (an upload framing, not a stored encoding) are no
    encodings of the stored bytes.
    """
    if not header:
        return []
    names = [p.strip().lower() for p in header.split(",")]
    return [n for n in names if n and n not in ("identity", "aws-chunked")]


def as_stored(data: bytes, header: str | None, key: str) -> tuple[bytes, str | None]:
    """``(bytes, encoding)`` for ``Store.get_encoded``: the stored bytes when one known encoding
    is on them (a copy puts them back as they are), else the decoded bytes and None."""
    names = encodings(header)
    if not names:
        return data, None
    if len(names) == 1 and names[0] in content_encoding.SUFFIXES:
        return data, names[0]
    return decode_body(data, header, key), None


def decode_body(data: bytes, header: str | None, key: str, max_size: int | None = None) -> bytes:
    """``data`` with every encoding of a ``Content-Encoding`` header undone (last one first).

    An encoding this version cannot undo is a :class:`~bigarrays.errors.CorruptChunkError`;
    ``max_size`` bounds every step (see :func:`bigarrays.stores.content_encoding.decode`).
    """
    for name in reversed(encodings(header)):
        data = content_encoding.decode(data, "gzip" if name == "x-gzip" else name, key, max_size)
    return data
