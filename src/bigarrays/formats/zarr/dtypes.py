"""Zarr data types as NumPy dtypes, and fill values as NumPy scalars, for both format versions.

Zarr v3 names its types (``uint16``, ``complex64``); the byte order of the stored chunks belongs
to the ``bytes`` codec, so a v3 dtype is in native order. Zarr v2 uses NumPy type strings with the
byte order in them (``<u2``, ``>f4``, ``|b1``).

A fill value is a NumPy scalar of the array's dtype and is kept bit for bit: ``-0.0`` stays
negative and a NaN keeps its payload. Zarr v3 writes a NaN other than the canonical one (the
NaN NumPy makes of ``float("nan")``) as its hex bit pattern (``"0x7fc00001"``); Zarr v2 has no
such form, so there every NaN is written as ``"NaN"``, as zarr-python does.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any, cast

import numpy as np

from bigarrays.errors import UnsupportedError
from bigarrays.formats.zarr.document import fail

#: The core data types of Zarr v3.
V3_DATA_TYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)  # fmt: skip
#: Zarr v2 type strings: byte order, kind, item size. ``S`` (bytes) and ``V`` (raw) are v2 only.
_V2_TYPESTR = re.compile(r"([<>|])([biufcSV])([0-9]{1,9})")
_V2_SIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8), "c": (8, 16)}
#: ``S``/``V`` items are raw bytes; more than this per element is not an image voxel.
MAX_BYTES_ITEMSIZE = 2**16
_FLOAT_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# -- data types ------------------------------------------------------------------------------------


def v3_dtype(value: Any, field: str = "data_type") -> np.dtype:
    """The NumPy dtype of a v3 ``data_type``; extension types are UnsupportedError."""
    if isinstance(value, dict) and not value.get("configuration"):
        value = value.get("name", value)  # {"name": "uint8"}: the long form of a core type
    if isinstance(value, str) and value in V3_DATA_TYPES:
        return np.dtype(value)
    if isinstance(value, str | dict):
        raise UnsupportedError(f"Zarr data type {value!r} is not supported; bigarrays reads "
                               f"{', '.join(V3_DATA_TYPES)}")  # fmt: skip
    raise fail(field, f"expected a data type name such as 'uint8', got {value!r}")


def v3_name(dtype: Any) -> str:
    """The v3 ``data_type`` of a NumPy dtype (its byte order goes to the ``bytes`` codec)."""
    name = str(np.dtype(dtype).name)
    if name not in V3_DATA_TYPES:
        raise UnsupportedError(f"{name!r} has no Zarr v3 data type; choose one of "
                               f"{', '.join(V3_DATA_TYPES)}")  # fmt: skip
    return name


def v2_dtype(value: Any, field: str = "dtype") -> np.dtype:
    """The NumPy dtype of a v2 ``dtype`` type string; structured and object types are refused."""
    if isinstance(value, list):
        raise UnsupportedError(f"structured Zarr v2 dtype {value!r} is not supported")
    if not isinstance(value, str):
        raise fail(field, f"expected a NumPy type string such as '<u2', got {value!r}")
    match = _V2_TYPESTR.fullmatch(value)
    if match is None:
        if re.fullmatch(r"[<>|][OUMm].*", value):
            raise UnsupportedError(f"Zarr v2 dtype {value!r} is not supported")
        raise fail(field, f"expected a NumPy type string such as '<u2', got {value!r}")
    order, kind, size_text = match.groups()
    size = int(size_text)
    if kind in "SV":
        if not 1 <= size <= MAX_BYTES_ITEMSIZE:
            raise fail(field, f"{value!r}: items of 1 to {MAX_BYTES_ITEMSIZE} bytes expected")
    elif size not in _V2_SIZES[kind]:
        raise fail(field, f"{value!r}: no such type; item sizes of kind {kind!r} are "
                   f"{_V2_SIZES[kind]}")  # fmt: skip
    elif order == "|" and size > 1:
        raise fail(field, f"{value!r} gives no byte order to a {size}-byte type; expected "
                   f"'<{kind}{size}' or '>{kind}{size}'")  # fmt: skip
    return np.dtype(value)


def v2_typestr(dtype: Any) -> str:
    """The v2 type string of a NumPy dtype: ``<u2``, ``>f4``, ``|b1``."""
    dtype = np.dtype(dtype)
    text = str(dtype.str)
    if dtype.fields is not None or _V2_TYPESTR.fullmatch(text) is None:
        raise UnsupportedError(f"{dtype} has no Zarr v2 type string that bigarrays writes")
    return text


# -- fill values -----------------------------------------------------------------------------------


def scalar(values: Any, dtype: np.dtype) -> np.generic:
    """The one element of ``values`` as a NumPy scalar of ``dtype`` (native byte order)."""
    return cast(np.generic, np.asarray(values, dtype=dtype).reshape(1)[0])


def _from_bits(bits: int, dtype: np.dtype) -> np.generic:
    unsigned = np.dtype(f"u{dtype.itemsize}")
    return scalar(np.array([bits], dtype=unsigned).view(dtype), dtype)


def _float(value: Any, dtype: np.dtype, field: str, *, hex_bits: bool) -> np.generic:
    if isinstance(value, str):
        if value in _FLOAT_NAMES:
            return scalar(_FLOAT_NAMES[value], dtype)
        digits = 2 * dtype.itemsize
        if hex_bits and re.fullmatch(f"0x[0-9a-fA-F]{{1,{digits}}}", value):
            return _from_bits(int(value, 16), dtype)
        forms = '"NaN", "Infinity", "-Infinity"' + (
            f' or "0x" and up to {digits} hex digits' if hex_bits else ""
        )
        raise fail(field, f"expected a number, {forms}; got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(field, f"expected a {dtype} number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # a bare NaN that Python's json read
        return scalar(value, dtype)
    try:
        with np.errstate(over="ignore"):  # refused below, with the member's name
            out = scalar(np.array(float(value)).astype(dtype), dtype)
    except OverflowError:  # an integer beyond float64
        out = dtype.type(math.inf)
    if not np.isfinite(out):
        raise fail(field, f"{value!r} does not fit in {dtype}")
    return out


def _integer(value: Any, dtype: np.dtype, field: str) -> np.generic:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(field, f"expected an integer for {dtype}, got {value!r}")
    info = np.iinfo(dtype)
    if not info.min <= value <= info.max:
        raise fail(field, f"{value} lies outside {dtype}'s range [{info.min}, {info.max}]")
    return scalar(value, dtype)


def _complex(value: Any, dtype: np.dtype, field: str, *, hex_bits: bool) -> np.generic:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise fail(field, f"expected [real, imaginary] for {dtype}, got {value!r}")
    part = np.dtype(f"f{dtype.itemsize // 2}")
    real, imag = (_float(v, part, f"{field}[{i}]", hex_bits=hex_bits) for i, v in enumerate(value))
    return scalar(np.array([real, imag], dtype=part).view(dtype), dtype)


def _bytes(value: Any, dtype: np.dtype, field: str) -> np.generic:
    if not isinstance(value, str):
        raise fail(field, f"expected base64 bytes for {dtype}, got {value!r}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise fail(field, f"expected base64 bytes for {dtype}, got {value!r}") from None
    if len(raw) > dtype.itemsize:
        raise fail(field, f"{len(raw)} bytes for items of {dtype.itemsize}")
    return scalar(raw.ljust(dtype.itemsize, b"\0"), dtype)


def decode_fill(
    value: Any, dtype: np.dtype, field: str = "fill_value", *, version: int = 3
) -> np.generic:
    """The fill value of ``dtype`` that a JSON ``value`` stands for (never None: see v2)."""
    dtype = dtype.newbyteorder("=")  # NumPy scalars are in native order whatever the array's
    kind = dtype.kind
    if kind == "b":
        if not isinstance(value, bool):
            raise fail(field, f"expected true or false, got {value!r}")
        return np.bool_(value)
    if kind in "iu":
        return _integer(value, dtype, field)
    if kind == "f":
        return _float(value, dtype, field, hex_bits=version == 3)
    if kind == "c":
        return _complex(value, dtype, field, hex_bits=version == 3)
    if kind in "SV" and version == 2:
        return _bytes(value, dtype, field)
    raise UnsupportedError(f"fill values of {dtype} are not supported")


def _bits(value: Any, dtype: np.dtype) -> int:
    return int(np.array([value], dtype=dtype).view(f"u{dtype.itemsize}")[0])


def _encode_float(value: Any, dtype: np.dtype, *, hex_bits: bool) -> float | str:
    number = float(value)
    if math.isnan(number):
        bits = _bits(value, dtype)
        if not hex_bits or bits == _bits(math.nan, dtype):
            return "NaN"
        return f"0x{bits:0{2 * dtype.itemsize}x}"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number  # every float16/32 is exact as a float64, and back


def encode_fill(value: Any, dtype: np.dtype, *, version: int = 3) -> Any:
    """The JSON form of a fill value: bit-exact in v3; v2 writes every NaN as ``"NaN"``."""
    kind = dtype.kind
    if kind == "b":
        return bool(value)
    if kind in "iu":
        return int(value)
    native = dtype.newbyteorder("=")
    if kind == "f":
        return _encode_float(value, native, hex_bits=version == 3)
    if kind == "c":
        part = np.dtype(f"f{dtype.itemsize // 2}")
        pair = np.array([value], dtype=native).view(part)
        return [_encode_float(v, part, hex_bits=version == 3) for v in pair]
    if kind in "SV":  # every byte of the item: TensorStore reads no shorter form
        return base64.b64encode(np.array(value, dtype=dtype).tobytes()).decode()
    raise UnsupportedError(f"fill values of {dtype} are not supported")


def as_fill_value(value: Any, dtype: Any) -> np.generic:
    """A fill value given by a user (a Python or NumPy number) as a scalar of ``dtype``.

    NumPy scalars of the same kind keep their bits; numbers that do not fit are refused rather
    than wrapped or rounded to infinity.
    """
    dtype = np.dtype(dtype)
    if isinstance(value, np.generic) and (value.dtype.kind, value.dtype.itemsize) == (
        dtype.kind,
        dtype.itemsize,
    ):
        return scalar(np.array(value).astype(dtype), dtype.newbyteorder("="))
    if isinstance(value, np.generic):
        value = value.item()
    if (
        dtype.kind == "c"
        and isinstance(value, complex | int | float)
        and not isinstance(value, bool)
    ):
        value = [value.real, value.imag]
    if dtype.kind == "b" and isinstance(value, int) and value in (0, 1):
        value = bool(value)  # the default fill value 0, for a bool array
    if dtype.kind in "SV" and isinstance(value, bytes):
        value = base64.b64encode(value).decode()
    return decode_fill(value, dtype, "fill_value", version=2 if dtype.kind in "SV" else 3)
