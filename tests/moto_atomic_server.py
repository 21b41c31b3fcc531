"""moto's S3 server, with each write request handled whole before the next write starts.

moto checks a PUT's ``If-Match`` / ``If-None-Match`` and then stores the object, with no lock
between the two, on a threaded server: two conditional PUTs of one key that race can both
succeed, which S3 never allows (its conditional writes are atomic). Tests of concurrent writers
need the server to keep S3's promise, so this runs moto's own ``main`` with its WSGI app wrapped
in a lock held by every PUT, POST and DELETE. Reads still run in parallel.

Usage: ``python moto_atomic_server.py -H 127.0.0.1 -p PORT`` (moto_server's arguments).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto import server

_WRITES = frozenset({"PUT", "POST", "DELETE"})
_lock = threading.Lock()


def _one_write_at_a_time(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in _WRITES:
            return app(environ, start_response)
        with _lock:
            return list(app(environ, start_response))  # the whole answer, under the lock

    return wrapped


_run_simple = server.run_simple


def _run_simple_atomic(host: str, port: int, app: Any, **kwargs: Any) -> None:
    _run_simple(host, port, _one_write_at_a_time(app), **kwargs)


if __name__ == "__main__":
    server.run_simple = _run_simple_atomic  # type: ignore[assignment]
    server.main()
