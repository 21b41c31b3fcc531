"""In CI a skipped test fails the run: a skip is a test that did not run (a package missing from
the test extras, a server that did not start), never a pass."""

from __future__ import annotations

import os

import pytest

#: Tests skipped in this run (the controller's count under xdist).
_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI a skipped test is a test that did not run: the run fails rather than passing
    # without it (a package missing from the test extras, a server that did not start).
    if os.environ.get("CI") and _SKIPPED and exitstatus == 0:
        names = ", ".join(_SKIPPED[:5]) + (" ..." if len(_SKIPPED) > 5 else "")
        print(f"\nCI: {len(_SKIPPED)} test(s) skipped, which counts as a failure: {names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
