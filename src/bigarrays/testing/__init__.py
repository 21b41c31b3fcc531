"""Test suites shipped with bigarrays, so that every backend and codec is held to the same contract.

A backend's tests subclass :class:`StoreConformance` and provide a ``store`` fixture::

    from bigarrays.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(tmp_path)

pytest is a test extra, not a dependency of bigarrays: the suites are loaded on first use so that
``import bigarrays.testing`` (and tools that walk every submodule) work where pytest is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bigarrays.testing.arrays import ArrayConformance
    from bigarrays.testing.stores import StoreConformance

__all__ = ["ArrayConformance", "StoreConformance"]


def __getattr__(name: str) -> Any:
    if name == "StoreConformance":
        from bigarrays.testing.stores import StoreConformance

        return StoreConformance
    if name == "ArrayConformance":
        from bigarrays.testing.arrays import ArrayConformance

        return ArrayConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
