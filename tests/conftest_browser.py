"""The headless Chromium of the browser tests: one per test session (per xdist worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from viewer_browser_support import Browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with Browser() as chrome:
        yield chrome
