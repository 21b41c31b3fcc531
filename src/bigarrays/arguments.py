"""What callers pass to ``create``, checked before anything is written.

Numbers are exact, never silently truncated. A size or a coordinate is a whole number: a Python
int, a NumPy integer, or a float with an integral value (``64.0``, as arithmetic gives); ``1.5`` is
refused, not cut to 1, and so is a bool (True is no size). A resolution is a finite real number.
Errors are InvalidInfoError: the values become members of the info document. Codec and
compression choices are checked against the codec and content-encoding tables
(:func:`check_codec_choices`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from bigarrays.codecs import blosc as blosc_codec
from bigarrays.codecs import codec_class, make_codec
from bigarrays.errors import InvalidInfoError, UnsupportedError, ViewerCompatibilityWarning
from bigarrays.formats.precomputed.chunks import blosc_typesize
from bigarrays.stores import content_encoding


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def whole(value: Any, name: str) -> int:
    """``value`` as an int, or InvalidInfoError when it is no whole number."""
    if not _is_bool(value):
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value):
            return int(value)
    raise InvalidInfoError(f"{name} must be a whole number, got {value!r}")


def real(value: Any, name: str) -> float:
    """``value`` as a finite float, or InvalidInfoError."""
    if not _is_bool(value) and isinstance(value, int | float | np.integer | np.floating):
        try:
            out = float(value)
        except OverflowError:  # an int past 1.8e308
            out = math.inf
        if math.isfinite(out):
            return out
    raise InvalidInfoError(f"{name} must be a finite number, got {value!r}")


def _three(value: Any, name: str) -> tuple[Any, Any, Any]:
    try:
        items = tuple(value)
    except TypeError:
        items = ()
    if len(items) != 3 or isinstance(value, str | bytes):
        raise InvalidInfoError(f"{name} must be three numbers (x, y, z), got {value!r}")
    return items[0], items[1], items[2]


def whole3(value: Any, name: str) -> tuple[int, int, int]:
    """Three whole numbers ``(x, y, z)``; the message names the axis of a bad one."""
    x, y, z = (whole(v, f"{name}[{i}]") for i, v in enumerate(_three(value, name)))
    return x, y, z


def real3(value: Any, name: str) -> tuple[float, float, float]:
    """Three finite numbers ``(x, y, z)``."""
    x, y, z = (real(v, f"{name}[{i}]") for i, v in enumerate(_three(value, name)))
    return x, y, z


def check_codec_choices(
    encoding: str,
    data_type: str,
    num_channels: int,
    chunk_size: Sequence[int],
    compression: str | None,
    compression_level: int | None,
    *,
    sharded: bool,
    layer_type: str,
    blosc_cname: str | None,
    blosc_shuffle: str | None,
    **codec_options: Any,
) -> dict[str, Any]:
    """Check create()'s encoding and compression choices; the Scale members they give."""
    cls = codec_class(encoding)
    for name, value in codec_options.items():
        if value is not None and name not in cls.option_names:
            raise InvalidInfoError(f"{name} does not apply to encoding {encoding!r}")
    codec = make_codec(encoding, np.dtype(data_type), num_channels, **codec_options)
    codec.check_chunk_size(chunk_size)
    members: dict[str, Any] = dict(codec.options())
    known = (None, "blosc", *content_encoding.SUFFIXES)
    if not sharded and compression not in known:
        raise UnsupportedError(
            f"unknown compression {compression!r}: neither a content encoding viewers read "
            f"({', '.join(content_encoding.known())}) nor blosc (bigarrays' own)"
        )
    if compression == "blosc":
        if sharded:
            raise InvalidInfoError(
                "blosc compresses unsharded volumes; a sharded one takes gzip or None"
            )
        blosc_codec.check(compression_level, blosc_cname, blosc_shuffle)
        typesize = blosc_typesize(encoding, np.dtype(data_type))
        members["blosc_cname"] = blosc_cname or blosc_codec.DEFAULT_CNAME
        # Shuffling groups the bytes of smooth values, but scatters the runs of equal 8-byte ids
        # that labels are made of (measured: 3-4x worse ratio): none for segmentation.
        default = "none" if layer_type == "segmentation" else blosc_codec.default_shuffle(typesize)
        members["blosc_shuffle"] = blosc_shuffle or default
        warnings.warn(
            "blosc is bigarrays' own compression: Neuroglancer, TensorStore and CloudVolume "
            "cannot read this volume (gzip, zstd and br are the ones viewers read)",
            ViewerCompatibilityWarning,
            stacklevel=3,
        )
    elif blosc_cname is not None or blosc_shuffle is not None:
        raise InvalidInfoError("blosc_cname and blosc_shuffle apply to compression='blosc' only")
    elif not sharded:
        content_encoding.check_level(compression, compression_level)
    return members
