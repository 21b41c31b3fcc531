"""Read-only stores on plain HTTP(S) servers: ``http://host/path``, ``https://host/path``.

Any static file server (nginx, a CDN, a bucket's public website, ``python -m http.server``) serves
a precomputed volume. The client is urllib3 (extra ``http``): a thread-safe connection pool that
this store sizes to its concurrency; measured against ``requests`` (which sits on urllib3) it
does the same work with less CPU per request and no session that is unsafe to share.

- Writes raise :class:`~bigarrays.errors.ReadOnlyError`; there is no listing, so :meth:`list`
  raises :class:`~bigarrays.errors.UnsupportedError`.
- A 404 (or 410) is a missing key; 401 is :class:`~bigarrays.errors.CredentialsError`, 403
  :class:`~bigarrays.errors.AccessDeniedError`; 408, 429 and 5xx and dropped connections are
  retried (:mod:`bigarrays.stores.retry`).
- ``Content-Encoding`` is undone on read (gzip always; br and zstd when their packages are
  installed, and only those are offered in ``Accept-Encoding``). Range reads ask for the
  identity encoding; a server that sends an encoded body anyway, or ignores the range, gets the
  whole value decoded and cut.
- ``get_ranges`` asks for its merged spans in one request (``multipart/byteranges``) and copes
  with servers that answer with one range or the whole body.
- ``headers={"Authorization": "Bearer ..."}`` adds headers to every request.

The small urllib3 layer here (:class:`Pool`) is also what the GCS store speaks JSON through.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from bigarrays.errors import (
    AccessDeniedError,
    CredentialsError,
    ReadOnlyError,
    StaleReadError,
    StoreError,
    UnsupportedError,
)
from bigarrays.stores.base import Buffer, Run
from bigarrays.stores.ranges import Span, cut_range
from bigarrays.stores.remote import (
    RemoteStore,
    as_stored,
    decode_body,
    range_header,
    require,
)
from bigarrays.stores.retry import (
    RetryPolicy,
    Transient,
    is_transient_exception,
    is_transient_status,
    parse_retry_after,
)
from bigarrays.stores.versions import ANY_VERSION

#: At most this many ranges go in one multi-range request.
MAX_RANGES_PER_REQUEST = 64


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    data: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)


class Pool:
    """A urllib3 pool manager that turns network failures into :class:`Transient`.

    Redirects are followed unless ``follow_redirects=False`` (then a 3xx is an answer like any
    other); urllib3's own retries are off (the store's policy retries). ``ca_certs`` is a CA
    bundle to verify TLS with instead of the system's.
    """

    def __init__(
        self,
        size: int,
        *,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        ca_certs: str | None = None,
        follow_redirects: bool = True,
    ) -> None:
        import urllib3

        self._urllib3 = urllib3
        self.manager = urllib3.PoolManager(
            num_pools=8,
            maxsize=size,
            retries=urllib3.Retry(
                total=None,
                connect=0,
                read=0,
                status=0,
                other=0,
                redirect=5 if follow_redirects else 0,
                raise_on_redirect=follow_redirects,
                raise_on_status=False,
            ),
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            ca_certs=ca_certs,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        exceptions = self._urllib3.exceptions
        try:
            r = self.manager.request(method, url, headers=dict(headers or {}), body=body,
                                     preload_content=False, decode_content=False)  # fmt: skip
            try:
                data = r.read(decode_content=False) if method != "HEAD" else b""
            finally:
                r.release_conn()
        except (exceptions.MaxRetryError, exceptions.SSLError) as exc:
            # urllib3 wraps the failure of a connection (a TLS one too) in MaxRetryError.
            reason = getattr(exc, "reason", None) or exc
            if "CERTIFICATE_VERIFY_FAILED" in str(reason):  # it will not verify next time either
                raise StoreError(
                    f"{method} {url}: TLS certificate does not verify: {reason}"
                ) from exc
            raise Transient(f"{type(reason).__name__}: {reason}") from exc
        except (exceptions.ProtocolError, exceptions.TimeoutError, exceptions.NewConnectionError,
                exceptions.IncompleteRead, exceptions.DecodeError) as exc:  # fmt: skip
            raise Transient(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            if is_transient_exception(exc):
                raise Transient(f"{type(exc).__name__}: {exc}") from exc
            raise
        return Response(r.status, r.headers, data)

    def close(self) -> None:
        self.manager.clear()


def check_status(r: Response, what: str, *, hint: str = "") -> None:
    """Raise the typed error for a failed answer (404 and 416 are the caller's to handle)."""
    if r.status < 300 or r.status == 416:
        return
    detail = r.data[:300].decode("utf-8", "replace").strip()
    detail = f" ({detail})" if detail else ""
    if r.status == 401:
        raise CredentialsError(f"{what}: the server asks for credentials (401){detail}{hint}")
    if r.status == 403:
        raise AccessDeniedError(f"{what}: access denied (403){detail}{hint}")
    if is_transient_status(r.status):
        raise Transient(f"HTTP {r.status}{detail}",
                        retry_after=parse_retry_after(r.header("Retry-After")))  # fmt: skip
    raise StoreError(f"{what}: HTTP {r.status}{detail}")


def accept_encoding() -> str:
    """The encodings this installation can undo, for ``Accept-Encoding``."""
    names = ["gzip"]
    if importlib.util.find_spec("brotli") is not None:
        names.append("br")
    if importlib.util.find_spec("zstandard") is not None:
        names.append("zstd")
    return ", ".join(names)


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def parse_content_range(value: str | None) -> tuple[int, int] | None:
    """``bytes a-b/n`` -> ``(a, b + 1)``."""
    m = _CONTENT_RANGE.match(value or "")
    return None if m is None else (int(m.group(1)), int(m.group(2)) + 1)


def parse_byteranges(body: bytes, content_type: str) -> list[tuple[int, bytes]]:
    """The parts of a ``multipart/byteranges`` body as ``(start, bytes)``."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if m is None:
        raise StoreError(f"multipart answer without a boundary: {content_type!r}")
    delimiter = b"--" + m.group(1).encode()
    parts = []
    pos = body.find(delimiter)
    while pos >= 0:
        pos += len(delimiter)
        if body[pos : pos + 2] == b"--":
            break
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise StoreError("a multipart/byteranges part has no end of headers")
        headers = body[pos:head_end].decode("latin-1")
        span = None
        for line in headers.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-range":
                span = parse_content_range(value.strip())
        if span is None:
            raise StoreError("a multipart/byteranges part has no Content-Range")
        start = head_end + 4
        parts.append((span[0], body[start : start + span[1] - span[0]]))
        pos = body.find(delimiter, start + span[1] - span[0])
    return parts


class HTTPStore(RemoteStore):
    schemes = ("http", "https")
    DEFAULT_CONCURRENCY = 32

    def __init__(
        self,
        url: str,
        *,
        read_only: bool = True,
        headers: Mapping[str, str] | None = None,
        concurrency: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        require("urllib3", "urllib3", "http", "http(s):// URLs")
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise StoreError(f"an HTTP store URL is http(s)://host/path, got {url!r}")
        if parts.query or parts.fragment:
            raise StoreError(f"an HTTP store URL has no query or fragment, got {url!r}")
        self.base = f"{parts.scheme.lower()}://{parts.netloc}{parts.path}".rstrip("/")
        self.headers = tuple(sorted((headers or {}).items()))
        # HTTP is read-only whatever was asked: writes raise ReadOnlyError.
        super().__init__(read_only=True, concurrency=concurrency, retry=retry)

    @property
    def url(self) -> str:
        return self.base

    @property
    def options(self) -> dict[str, Any]:
        opts = super().options
        if self.headers:
            opts["headers"] = dict(self.headers)
        return opts

    def _config(self) -> tuple[Any, ...]:
        return (*super()._config(), self.headers)

    def _check_writable(self) -> None:
        raise ReadOnlyError(
            f"{self.url}: HTTP stores are read-only; write through the server's own store "
            "(a folder, s3://, gs://) instead"
        )

    def _connect(self) -> Pool:
        return Pool(self.concurrency)

    def _disconnect(self, client: Any) -> None:
        client.close()

    def _key_url(self, key: str) -> str:
        # The URL's path may hold escapes ("%20"): undo them, join the key, escape once.
        base_path = urlsplit(self.base).path
        path = self.join_root(unquote(base_path).strip("/"), key, self.url)
        host = self.base[: len(self.base) - len(base_path)]
        return f"{host}/{quote(path)}"

    def _send(
        self, method: str, key: str, headers: Mapping[str, str] | None = None
    ) -> Response | None:
        """One request with retries; None on 404/410; other failures typed."""
        url = self._key_url(key)
        what = f"{method} {url}"
        pool: Pool = self.client()
        all_headers = {**dict(self.headers), **(headers or {})}

        def attempt() -> Response | None:
            r = pool.request(method, url, headers=all_headers)
            if r.status in (404, 410):
                return None
            if r.status == 412 and "If-Match" in all_headers:
                raise StaleReadError(key, self.url)
            check_status(r, what)
            return r

        return self._call(what, attempt)

    # -- the contract ------------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        r = self._send("GET", key, {"Accept-Encoding": accept_encoding()})
        return None if r is None else decode_body(r.data, r.header("Content-Encoding"), key)

    def _get_encoded(self, key: str) -> tuple[bytes, str | None] | None:
        r = self._send("GET", key, {"Accept-Encoding": accept_encoding()})
        return None if r is None else as_stored(r.data, r.header("Content-Encoding"), key)

    def _get_range(self, key: str, start: int, length: int | None) -> bytes | None:
        return self._fetch_range(key, start, length, None)[0]

    # -- versions: a strong ETag names a state of the object, If-Match reads only at it ----------
    def _get_range_with_version(
        self, key: str, start: int, length: int | None
    ) -> tuple[bytes | None, str | None]:
        return self._fetch_range(key, start, length, None)

    def _get_range_if_version(
        self, key: str, start: int, length: int | None, version: str | None
    ) -> bytes | None:
        if version is None or version == ANY_VERSION:
            data, _ = self._fetch_range(key, start, length, None)
            if version is None and data is not None:
                raise StaleReadError(key, self.url)
            return data
        data, etag = self._fetch_range(key, start, length, version)
        if data is None or etag != version:  # gone, or a server that ignores If-Match
            raise StaleReadError(key, self.url)
        return data

    def _fetch_range(
        self, key: str, start: int, length: int | None, if_match: str | None
    ) -> tuple[bytes | None, str | None]:
        """A range and the object's strong ETag (None when the server gives none, or when the
        range had to be cut from a whole value read by another request)."""
        if length == 0:
            return (b"" if self._exists(key) else None), None
        headers = {"Range": range_header(start, length), "Accept-Encoding": "identity"}
        if if_match is not None:
            headers["If-Match"] = if_match
        r = self._send("GET", key, headers)
        if r is None:
            return None, None
        etag = r.header("ETag")
        etag = None if etag is None or etag.startswith("W/") else etag
        if r.status == 416:
            # Past the end of the stored bytes, which may be shorter than the value (encoded).
            return super()._get_range(key, start, length), None
        if r.status == 206 and not r.header("Content-Encoding"):
            span = parse_content_range(r.header("Content-Range"))
            if span is not None and (start < 0 or span[0] == start):
                return r.data, etag
        # The whole body (the range was ignored), or an encoded one: decode, then cut.
        if r.status == 206:  # an encoded range, which cannot be decoded alone
            return cut_range(self._get(key), start, length), None
        return cut_range(
            decode_body(r.data, r.header("Content-Encoding"), key), start, length
        ), etag

    def _get_spans(
        self, key: str, spans: Sequence[Span], checked: bool, version: str | None,
        run: Run | None,
    ) -> list[bytes | None]:  # fmt: skip
        """Unconditional spans in as few requests as the server allows (``multipart/byteranges``
        of up to :data:`MAX_RANGES_PER_REQUEST` spans); held to a version, one ``If-Match`` each."""
        if checked:
            return super()._get_spans(key, spans, checked, version, run)
        wanted = [s for s in spans if s.length > 0]
        if not wanted:
            return [b"" if self._exists(key) else None for _ in spans]
        got: dict[int, bytes] = {}  # start of a part the server sent -> its bytes
        whole: bytes | None = None
        for i in range(0, len(wanted), MAX_RANGES_PER_REQUEST):
            batch = wanted[i : i + MAX_RANGES_PER_REQUEST]
            spec = "bytes=" + ",".join(f"{s.start}-{s.end - 1}" for s in batch)
            r = self._send("GET", key, {"Range": spec, "Accept-Encoding": "identity"})
            if r is None:
                return [None for _ in spans]
            if r.status == 416:  # perhaps an encoded body, shorter than the value
                whole = self._get(key)
                if whole is None:
                    return [None for _ in spans]
                break
            content_type = r.header("Content-Type") or ""
            if r.status == 206 and not r.header("Content-Encoding"):
                if content_type.startswith("multipart/byteranges"):
                    got.update(parse_byteranges(r.data, content_type))
                    continue
                span = parse_content_range(r.header("Content-Range"))
                if span is not None:
                    got[span[0]] = r.data
                    continue
            whole = self._get(key) if r.status == 206 else decode_body(
                r.data, r.header("Content-Encoding"), key)  # fmt: skip
            if whole is None:
                return [None for _ in spans]
            break
        out: list[bytes | None] = []
        for s in spans:
            if whole is not None:
                out.append(whole[s.start : s.end])
                continue
            piece = b""
            for start, data in got.items():
                if start <= s.start < start + len(data):
                    piece = data[s.start - start : s.end - start]
                    break
            out.append(piece)
        return out

    def _head(self, key: str) -> Response | None:
        r = self._send("HEAD", key, {"Accept-Encoding": accept_encoding()})
        if r is not None and r.status == 405:
            # No HEAD here: the first byte tells whether the key exists.
            r = self._send("GET", key, {"Range": "bytes=0-0", "Accept-Encoding": "identity"})
        return r

    def _exists(self, key: str) -> bool:
        return self._head(key) is not None

    def _size(self, key: str) -> int | None:
        r = self._head(key)
        if r is None:
            return None
        span = r.header("Content-Range")
        if span and "/" in span and not span.endswith("*"):
            return int(span.rsplit("/", 1)[1])
        length = r.header("Content-Length")
        if length is not None and r.status == 200:
            return int(length)
        data = self._send("GET", key, {"Accept-Encoding": accept_encoding()})
        return None if data is None else len(data.data)

    def _put(self, key: str, value: Buffer, encoding: str | None) -> None:  # pragma: no cover
        self._check_writable()

    def _delete(self, key: str) -> None:  # pragma: no cover - put/delete check first
        self._check_writable()

    def _list(self, prefix: str) -> Iterator[str]:
        raise UnsupportedError(
            f"{self.url}: HTTP servers have no listing; list the store the server serves "
            "from (a folder or a bucket) instead"
        )
