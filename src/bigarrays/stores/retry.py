"""Retries with exponential backoff and full jitter, shared by the network stores.

A backend runs each request through :func:`call`. The request itself decides what a failure
means: it raises :class:`Transient` for a failure that may pass (a 5xx answer, throttling, a
dropped or reset connection, a timeout), and anything else (a typed permanent error such as
:class:`~bigarrays.errors.AccessDeniedError`, or a 4xx turned into a
:class:`~bigarrays.errors.StoreError`) goes straight to the caller. :func:`is_transient_status`
and :func:`is_transient_exception` are the shared half of that classification; each backend adds
its client library's own exception types.

Attempts are bounded both in number and in total time. The delay before attempt ``n`` (counted
from 0) is drawn uniformly from ``[0, min(max_delay, base_delay * 2**n)]`` ("full jitter"), so
many clients that failed together do not come back together; a server's ``Retry-After`` raises
that delay (up to ``max_delay``). When the attempts or the time run out,
:class:`~bigarrays.errors.StoreUnavailableError` says so and carries the last failure.
"""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bigarrays.errors import StoreUnavailableError

T = TypeVar("T")

#: HTTP statuses worth another try: timeouts, throttling and server-side failures. 501 (not
#: implemented) and 505 are answers that do not change, so they are not here.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 509, 598, 599})


class Transient(Exception):
    """An attempt failed in a way that may pass; :func:`call` tries again.

    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a store tries before giving up. Frozen and picklable: it is store configuration.

    - ``attempts``: tries in all, the first one included (1 means no retry).
    - ``base_delay`` / ``max_delay``: the backoff starts at ``base_delay`` seconds, doubles each
      attempt, and never exceeds ``max_delay``.
    - ``deadline``: no new attempt starts later than this many seconds after the first one.
    """

    attempts: int = 8
    base_delay: float = 0.1
    max_delay: float = 10.0
    deadline: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.deadline < 0:
            raise ValueError("delays and the deadline must not be negative")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0 for the first)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(attempt, 60))
        wait = random.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


#: No retries at all: one attempt.
NO_RETRY = RetryPolicy(attempts=1)


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES


def is_transient_exception(exc: BaseException) -> bool:
    """True for the standard library's network failures that another attempt may cure.

    Connections refused, reset or dropped, timeouts, truncated bodies and TLS hiccups are; a
    certificate that does not verify is not (it will not verify next time either).
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    return isinstance(
        exc,
        ConnectionError  # refused, reset, aborted, broken pipe
        | TimeoutError  # socket.timeout is TimeoutError
        | socket.gaierror  # DNS failures are often passing
        | http.client.IncompleteRead
        | http.client.RemoteDisconnected
        | http.client.BadStatusLine
        | ssl.SSLError,
    )


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (HTTP dates are ignored: clocks disagree)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``fn()``, tried again after each :class:`Transient` within ``policy``'s bounds.

    ``what`` names the request in the final error ("GET s3://bucket/vol/info").
    """
    start = clock()
    attempt = 0
    while True:
        try:
            return fn()
        except Transient as exc:
            attempt += 1
            elapsed = clock() - start
            wait = policy.delay(attempt - 1, exc.retry_after)
            if attempt >= policy.attempts or elapsed + wait > policy.deadline:
                tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                raise StoreUnavailableError(
                    f"{what} failed after {tries} in {elapsed:.1f}s: {str(exc).rstrip('.')}. "
                    "The server or the "
                    "network kept failing with transient errors; try again later, check the "
                    "endpoint, or allow more attempts (retry=RetryPolicy(attempts=..., "
                    "deadline=...))"
                ) from exc
            sleep(wait)
