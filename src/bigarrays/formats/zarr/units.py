"""NGFF's unit names: the space and time units OME-Zarr axes may carry, their short forms, and
how many nanometres (precomputed's unit of resolution) one of each space unit is."""

from __future__ import annotations

from bigarrays.errors import InvalidMetadataError

# (long prefix, short prefixes, power of ten): the SI prefixes in NGFF's unit lists (no deca).
_PREFIXES = (
    ("yocto", ("y",), -24), ("zepto", ("z",), -21), ("atto", ("a",), -18),
    ("femto", ("f",), -15), ("pico", ("p",), -12), ("nano", ("n",), -9),
    ("micro", ("u", "\u00b5", "\u03bc"), -6), ("milli", ("m",), -3), ("centi", ("c",), -2),
    ("deci", ("d",), -1), ("", ("",), 0), ("hecto", ("h",), 2), ("kilo", ("k",), 3),
    ("mega", ("M",), 6), ("giga", ("G",), 9), ("tera", ("T",), 12), ("peta", ("P",), 15),
    ("exa", ("E",), 18), ("zetta", ("Z",), 21), ("yotta", ("Y",), 24),
)  # fmt: skip


def _powers_of_ten(unit: str, shift: int) -> dict[str, float]:
    return {f"{long}{unit}": 10.0 ** (power + shift) for long, _, power in _PREFIXES}


#: NGFF's space units and the nanometres in one of each.
SPACE_UNITS: dict[str, float] = {
    **_powers_of_ten("meter", 9),
    "angstrom": 0.1, "foot": 304.8e6, "inch": 25.4e6, "yard": 914.4e6, "mile": 1609.344e9,
    "parsec": 3.0856775814913673e25,
}  # fmt: skip
#: NGFF's time units and the seconds in one of each.
TIME_UNITS: dict[str, float] = {
    **_powers_of_ten("second", 0), "minute": 60.0, "hour": 3600.0, "day": 86400.0,
}  # fmt: skip
UNITS_OF = {"space": SPACE_UNITS, "time": TIME_UNITS}
#: Symbols, matched as written: "Mm" is a megametre, "mm" a millimetre.
_SYMBOLS: dict[str, str] = {
    **{f"{short}m": f"{long}meter" for long, shorts, _ in _PREFIXES for short in shorts},
    **{f"{short}s": f"{long}second" for long, shorts, _ in _PREFIXES for short in shorts},
    "\u00c5": "angstrom", "\u212b": "angstrom", "min": "minute", "h": "hour", "d": "day",
}  # fmt: skip
#: Words other than NGFF's names, matched in any case and also as plurals.
_WORDS = {"micron": "micrometer", "hr": "hour"}


def ngff_unit(unit: str) -> str:
    """NGFF's name for a unit: ``"nm"`` -> ``"nanometer"``, ``"µm"`` / ``"microns"`` ->
    ``"micrometer"``, ``"ms"`` -> ``"millisecond"``; InvalidMetadataError for what it is not."""
    if not isinstance(unit, str):
        raise InvalidMetadataError(f"expected a unit name such as 'nanometer', got {unit!r}")
    text = unit.strip()
    if text in _SYMBOLS:
        return _SYMBOLS[text]
    word = text.lower().replace("metre", "meter")
    for candidate in (word, word.removesuffix("s")):
        if candidate in SPACE_UNITS or candidate in TIME_UNITS:
            return candidate
        if candidate in _WORDS:
            return _WORDS[candidate]
    raise InvalidMetadataError(
        f"unknown unit {unit!r}; expected one of NGFF's space units ({', '.join(SPACE_UNITS)}) "
        f"or time units ({', '.join(TIME_UNITS)}), or a short form such as 'nm' or 'ms'"
    )


def nanometres_per(unit: str) -> float:
    """Nanometres in one ``unit`` (a space unit, by NGFF name or short form): precomputed's
    resolution is in nanometres, so ``resolution_nm = scale * nanometres_per(axis.unit)``."""
    name = ngff_unit(unit)
    if name not in SPACE_UNITS:
        raise InvalidMetadataError(f"{unit!r} is not a unit of length; expected one such as 'nm'")
    return SPACE_UNITS[name]


__all__ = ["SPACE_UNITS", "TIME_UNITS", "UNITS_OF", "nanometres_per", "ngff_unit"]
