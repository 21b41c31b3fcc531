"""The viewer's HTTP server: the Neuroglancer client and the registered sources, one origin.

Paths (every one starts with the server's unguessable token; any other path is a 404):

- ``/<token>/v/<page>/`` and ``/<token>/v/<page>/<file>``: the Neuroglancer client
  (:mod:`.client`; the page path is the one the client expects);
- ``/<token>/data/<source>/<generation>/<key>``: the value ``key`` of registered source
  ``source``. The generation is any number: :meth:`Viewer.refresh` moves to a new one, so the
  data URLs change and Neuroglancer drops the chunks it holds, while old URLs keep working.

Read-only (GET and HEAD, 405 otherwise), no listings, no keys outside a source (``..``,
absolute or empty segments are 404s). One server per process serves every viewer: a thread per
connection (the standard library's threading server) with HTTP/1.1 keep-alive, so a browser's
parallel chunk requests do not wait on one another or reconnect.
"""

from __future__ import annotations

import errno
import itertools
import secrets
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from bigarrays.errors import InvalidKeyError, ViewerPortInUseError
from bigarrays.viewer.client import Client
from bigarrays.viewer.ranges import Unsatisfiable, explicit_range, parse_range
from bigarrays.viewer.sources import Reply, Source

#: Bodies up to this size go out in the same write as the headers (one send, one packet).
_JOIN_BELOW = 1 << 16


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], viewer: ViewerServer) -> None:
        self.viewer = viewer
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser that closes a connection mid-answer (a tab closed, a chunk no longer
        # wanted) is routine: no traceback for it in a notebook's output.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up in DNS (getfqdn), which stalls on machines
        # without a resolver; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def _accepted(header: str | None) -> frozenset[str]:
    """The content codings an ``Accept-Encoding`` header takes (``q=0`` ones left out)."""
    if not header:
        return frozenset()
    names = set()
    for part in header.split(","):
        name, _, params = part.partition(";")
        if params.replace(" ", "").lower() in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        names.add(name.strip().lower())
    return frozenset(names)


def valid_key(key: str) -> bool:
    """Whether ``key`` names one value inside a source: no listing (empty or trailing ``/``),
    no absolute path, no ``.`` or ``..`` segment, no backslash or NUL."""
    if not key or "\\" in key or "\x00" in key:
        return False
    return all(part not in ("", ".", "..") for part in key.split("/"))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bigarrays-viewer"
    disable_nagle_algorithm = True
    #: Seconds an idle keep-alive connection keeps its thread.
    timeout = 120
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a line per chunk request would flood a notebook's output

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _refuse(self) -> None:
        self._send(
            405, b"only GET and HEAD are served\n", "text/plain", extra={"Allow": "GET, HEAD"}
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def _answer(self, send_body: bool) -> None:
        self._send_body = send_body
        viewer = self.server.viewer
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        head = f"/{viewer.token}/"
        if not path.startswith(head):
            self._not_found()
            return
        rest = unquote(path[len(head) :])
        if rest.startswith("data/"):
            self._data(rest[5:])
            return
        page = rest.split("/")
        found = None
        if len(page) == 3 and page[0] == "v" and page[1]:
            found = viewer.client.get(page[2])
        if found is None:
            self._not_found()
            return
        extra = {"Cache-Control": "no-store" if page[2] in ("", "index.html") else "max-age=86400"}
        body = found.body
        if found.gzipped is not None:
            extra["Vary"] = "Accept-Encoding"
            if "gzip" in _accepted(self.headers.get("Accept-Encoding")):
                body = found.gzipped
                extra["Content-Encoding"] = "gzip"
        self._send(200, body, found.content_type, extra=extra)

    def _data(self, rest: str) -> None:
        parts = rest.split("/", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not valid_key(parts[2]):
            self._not_found()
            return
        source = self.server.viewer.source(parts[0])
        if source is None:
            self._not_found()
            return
        key = parts[2]
        try:
            if self.headers.get("Range"):
                self._ranged(source, key, self.headers["Range"])
                return
            reply = source.get(key, _accepted(self.headers.get("Accept-Encoding")))
        except InvalidKeyError:  # a key the store's own rules refuse: outside the source
            self._not_found()
            return
        except Exception as exc:  # a store or codec failure: tell the client, keep serving
            self._send(500, f"{type(exc).__name__}: {exc}\n".encode(), "text/plain")
            return
        if reply is None:
            self._not_found()
            return
        extra = {"Cache-Control": "no-store"}
        if reply.encoding is not None:
            extra["Content-Encoding"] = reply.encoding
        self._send(200, reply.body, reply.content_type, extra=extra)

    def _ranged(self, source: Source, key: str, header: str) -> None:
        explicit = explicit_range(header)
        if explicit is not None:
            start, stop = explicit
            body = source.get_range(key, start, stop)
            if body is None:
                self._not_found()
                return
            if body:
                extra = {"Content-Range": f"bytes {start}-{start + len(body) - 1}/*",
                         "Accept-Ranges": "bytes", "Cache-Control": "no-store"}  # fmt: skip
                self._send(206, body, "application/octet-stream", extra=extra)
                return
            # Nothing there: past the end (416) or an empty object, which the size tells.
        total = source.size(key)
        if total is None:
            self._not_found()
            return
        try:
            wanted = parse_range(header, total)
        except Unsatisfiable:
            self._send(416, b"", "text/plain", extra={"Content-Range": f"bytes */{total}"})
            return
        if wanted is None:
            reply = source.get(key, ())
            if reply is None:
                self._not_found()
                return
            self._send(200, reply.body, reply.content_type, extra={"Accept-Ranges": "bytes"})
            return
        body = source.get_range(key, wanted.start, wanted.stop)
        if body is None:
            self._not_found()
            return
        extra = {"Content-Range": wanted.content_range(total), "Accept-Ranges": "bytes",
                 "Cache-Control": "no-store"}  # fmt: skip
        self._send(206, body, "application/octet-stream", extra=extra)

    def _not_found(self) -> None:
        self._send(404, b"not found\n", "text/plain")

    def _send(
        self,
        status: int,
        body: bytes | memoryview,
        kind: str,
        *,
        extra: dict[str, str] | None = None,
    ) -> None:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
                 f"Content-Type: {kind}", f"Content-Length: {len(body)}"]  # fmt: skip
        if extra:
            lines.extend(f"{k}: {v}" for k, v in extra.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.log_request(status)
        if not self._send_body or not body:
            self.wfile.write(head)
        elif len(body) < _JOIN_BELOW:
            self.wfile.write(head + bytes(body))
        else:
            self.wfile.write(head)
            self.wfile.write(body)

    _send_body = True


class ViewerServer:
    """One HTTP server in a daemon thread, with its token and its registered sources."""

    def __init__(self, bind: str = "127.0.0.1", port: int | None = None) -> None:
        self.token = secrets.token_urlsafe(18)
        self.client = Client(self.token)
        self._sources: dict[str, Source] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        try:
            self._httpd = _HTTPServer((bind, port or 0), self)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise ViewerPortInUseError(bind, port or 0, exc.strerror or str(exc)) from None
            raise
        self.bind = bind
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"bigarrays-viewer-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        """The host name of URLs: the bound address, or this machine's name for all of them."""
        if self.bind in ("", "0.0.0.0", "::"):
            return socket.gethostname()
        return f"[{self.bind}]" if ":" in self.bind else self.bind

    @property
    def url(self) -> str:
        """``http://host:port/<token>/``: the root of the client's page and the data URLs."""
        return f"http://{self.host}:{self.port}/{self.token}/"

    def register(self, source: Source) -> str:
        with self._lock:
            sid = str(next(self._ids))
            self._sources[sid] = source
        return sid

    def unregister(self, sid: str) -> None:
        with self._lock:
            source = self._sources.pop(sid, None)
        if source is not None:
            source.close()

    def source(self, sid: str) -> Source | None:
        return self._sources.get(sid)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def shutdown(self) -> None:
        """Stop serving and free the port (sources stay registered but unreachable)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


_servers: list[ViewerServer] = []
_servers_lock = threading.Lock()


def get_server(port: int | None = None, bind: str = "127.0.0.1") -> ViewerServer:
    """The process's server on ``bind`` (and ``port``, if given), started on first use."""
    with _servers_lock:
        for server in _servers:
            if server.running and server.bind == bind and port in (None, server.port):
                return server
        server = ViewerServer(bind, port)
        _servers.append(server)
        return server


def stop_servers() -> None:
    """Stop every server this process started (tests; the CLI on Ctrl-C)."""
    with _servers_lock:
        servers = list(_servers)
        _servers.clear()
    for server in servers:
        server.shutdown()


__all__ = ["Reply", "ViewerServer", "get_server", "stop_servers", "valid_key"]
