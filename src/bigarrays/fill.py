"""The fill value of a chunk: every bit 0, what a chunk never written reads as."""

from __future__ import annotations

import numpy as np


def is_fill(chunk: np.ndarray) -> bool:
    """True when every bit of ``chunk`` is 0 (the fill value; -0.0 is not, nor is NaN)."""
    if chunk.dtype.itemsize in (1, 2, 4, 8) and chunk.dtype.kind in "fciub":
        return not chunk.view(f"u{chunk.dtype.itemsize}").any()
    return not np.asarray(chunk).any()
