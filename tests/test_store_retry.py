"""The retry policy shared by the network stores: backoff with jitter, bounded attempts and time."""

from __future__ import annotations

import http.client
import pickle
import random
import ssl
from collections.abc import Callable

import pytest

from bigarrays.errors import StoreUnavailableError
from bigarrays.stores.retry import (
    RetryPolicy,
    Transient,
    call,
    is_transient_exception,
    is_transient_status,
    parse_retry_after,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def failing(times: int, result: str = "ok") -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise Transient(f"failure {len(calls)}")
        return result

    return calls, fn


def test_transient_failures_are_retried_with_growing_jittered_delays() -> None:
    random.seed(0)
    clock = FakeClock()
    calls, fn = failing(5)
    policy = RetryPolicy(attempts=8, base_delay=0.1, max_delay=1.0, deadline=100)
    assert call(fn, policy, what="GET x", sleep=clock.sleep, clock=clock.clock) == "ok"
    assert len(calls) == 6
    ceilings = [min(1.0, 0.1 * 2**n) for n in range(5)]
    assert all(0 <= s <= c for s, c in zip(clock.sleeps, ceilings, strict=True))
    assert len(set(clock.sleeps)) == 5  # jittered, not a fixed schedule


def test_attempts_are_bounded() -> None:
    clock = FakeClock()
    calls, fn = failing(100)
    with pytest.raises(StoreUnavailableError, match="GET x failed after 3 attempts") as info:
        call(fn, RetryPolicy(attempts=3), what="GET x", sleep=clock.sleep, clock=clock.clock)
    assert len(calls) == 3
    assert isinstance(info.value.__cause__, Transient)
    assert "failure 3" in str(info.value)


def test_total_time_is_bounded() -> None:
    clock = FakeClock()
    calls, fn = failing(100)
    policy = RetryPolicy(attempts=1000, base_delay=1.0, max_delay=1.0, deadline=10)
    with pytest.raises(StoreUnavailableError):
        call(fn, policy, what="GET x", sleep=clock.sleep, clock=clock.clock)
    assert clock.now <= 10
    assert len(calls) < 1000


def test_retry_after_raises_the_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.0, max_delay=5.0)
    assert policy.delay(0, retry_after=2.0) == 2.0
    assert policy.delay(0, retry_after=60.0) == 5.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None


def test_permanent_errors_pass_through_at_once() -> None:
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        raise PermissionError("no")

    with pytest.raises(PermissionError):
        call(fn, RetryPolicy(), what="GET x", sleep=lambda s: None)
    assert calls == [1]


def test_classifiers() -> None:
    assert all(is_transient_status(s) for s in (408, 429, 500, 502, 503, 504))
    assert not any(is_transient_status(s) for s in (400, 401, 403, 404, 412, 416, 501))
    assert is_transient_exception(ConnectionResetError())
    assert is_transient_exception(TimeoutError())
    assert is_transient_exception(http.client.IncompleteRead(b""))
    assert not is_transient_exception(ssl.SSLCertVerificationError())
    assert not is_transient_exception(ValueError())


def test_policy_is_validated_and_picklable() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    policy = RetryPolicy(attempts=3, deadline=5)
    assert pickle.loads(pickle.dumps(policy)) == policy
