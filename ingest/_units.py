"""Unit conversion for ingest: UDUNITS-style strings through pint, reduced to ``a * x + b``."""

from __future__ import annotations

import functools
import math
import re
import threading

__all__ = ["UnitError", "conversion", "is_time_reference", "normalise_unit"]


class UnitError(ValueError):
    """A unit string pint cannot read, or two units that do not convert into each other."""


# Whole-string spellings found in real files (CF/UDUNITS, loggers, SCADA exports) that pint
# does not read as they stand. Keys are lower case, without surrounding whitespace.
_ALIASES = {
    "degree_celsius": "degC",
    "degrees_celsius": "degC",
    "degree celsius": "degC",
    "degrees celsius": "degC",
    "deg_c": "degC",
    "deg c": "degC",
    "degc": "degC",
    "degree_c": "degC",
    "degrees_c": "degC",
    "\u2103": "degC",  # ℃, the single-character degree Celsius
    "\u2109": "degF",  # ℉
    "celsius": "degC",
    "°c": "degC",
    "ºc": "degC",
    "degree_fahrenheit": "degF",
    "degrees_fahrenheit": "degF",
    "degree fahrenheit": "degF",
    "deg_f": "degF",
    "degf": "degF",
    "fahrenheit": "degF",
    "°f": "degF",
    "degree_kelvin": "K",
    "degrees_kelvin": "K",
    "deg_k": "K",
    "kelvin": "K",
    "degrees": "degree",
    "degree_north": "degree",
    "degrees_north": "degree",
    "degree_east": "degree",
    "degrees_east": "degree",
    "°": "degree",
    "deg": "degree",
    "1": "dimensionless",
    "-": "dimensionless",
    "none": "dimensionless",
    "unitless": "dimensionless",
    "fraction": "dimensionless",
    "%": "percent",
    "ppm": "ppm",
    "ppb": "ppb",
    "ppt": "ppt",
    "ppmv": "ppm",
    "ppbv": "ppb",
    "lpm": "L/min",
    "l/min": "L/min",
    "l/s": "L/s",
    "l/h": "L/h",
    "r/min": "rpm",
    "rev/min": "rpm",
    "rpms": "rpm",
    "1/min": "1/minute",
    "min-1": "1/minute",
    "1/s": "1/second",
}

# A UDUNITS power: a unit symbol directly followed by an integer exponent ("m2", "s-1", "m^2").
_POWER = re.compile(r"^([A-Za-z_°µ]+)\^?([-+]?\d+)$")


def normalise_unit(text: str) -> str:
    """A UDUNITS-style unit string rewritten for pint ("W m-2" -> "W * m**-2").

    Every factor of a product or quotient is rewritten: ``W/m2`` -> ``W / m**2``,
    ``kg/m2/s`` -> ``kg / m**2 / s``; aliases (``degree_C``, ``%``, ``ppb``) are replaced.

    Args:
        text: a unit as a file states it, e.g. ``"m s-1"``, ``"degree_Celsius"``, ``"kg.m-3"``.

    Returns:
        A string pint's parser reads.

    Example:
        >>> normalise_unit("W m-2")
        'W * m**-2'
        >>> normalise_unit("kg/m2/s")
        'kg / m**2 / s'
    """
    s = text.strip()
    low = s.lower()
    if low in _ALIASES:
        return _ALIASES[low]
    if not s:
        return "dimensionless"
    if "(" in s or "**" in s or "^" in s:
        return s  # already an expression in pint's syntax: left as it is (checked by _guard)
    # A quotient: each side a UDUNITS product ("W/m2", "kg/m2/s", "m3/s").
    if "/" in s:
        return " / ".join(f"({p})" if " * " in p else p for p in map(_product, s.split("/")))
    return _product(s)


def _product(s: str) -> str:
    """One UDUNITS product ("kg.m-3", "W m-2", "m*s") in pint's syntax."""
    # UDUNITS products are separated by blanks, by "*" or by a period between symbols ("kg.m-3").
    parts = re.split(r"\s+|\*|(?<=[A-Za-z0-9])\.(?=[A-Za-z])", s.strip())
    out = []
    for part in parts:
        if not part:
            continue
        low = part.lower()
        if low in _ALIASES:
            out.append(_ALIASES[low])
            continue
        m = _POWER.match(part)
        if m and not part.isdigit():
            out.append(f"{m.group(1)}**{int(m.group(2))}")
        else:
            out.append(part)
    return " * ".join(out) if out else "dimensionless"


# A unit string is parsed only when it is short and flat: pint evaluates exponents as it
# parses, and "m**10**10**10" would take forever (a timeout would need a worker per parse).
# 128 characters hold every unit of CF's standard-name table many times over.
MAX_UNIT_CHARS = 128
_MAX_EXPONENT = 64  # |n| of a power: m**64 is already no physical unit
_EXPONENT = re.compile(r"(\*\*|\^)\s*\(?\s*([-+]?[0-9.]+(?:/[0-9]+)?)?")


def _guard(text: str, parsed: str):
    """Refuse a unit string that is too long or has nested or huge exponents, before pint."""
    if len(text) > MAX_UNIT_CHARS or len(parsed) > 4 * MAX_UNIT_CHARS:
        raise UnitError(f"unit string of {len(text)} characters (at most {MAX_UNIT_CHARS})")
    if parsed.count("(") > 8:
        raise UnitError(f"unit {text!r}: too many parentheses")
    for m in _EXPONENT.finditer(parsed):
        power = m.group(2)
        if power is None:
            raise UnitError(f"unit {text!r}: an exponent must be a plain number")
        try:
            value = float(eval_fraction(power))
        except (ValueError, ZeroDivisionError) as err:
            raise UnitError(f"unit {text!r}: bad exponent {power!r}") from err
        if abs(value) > _MAX_EXPONENT:
            raise UnitError(f"unit {text!r}: exponent {power} (at most {_MAX_EXPONENT})")
        rest = parsed[m.end() :].lstrip(" )")
        if rest.startswith(("**", "^")):
            raise UnitError(f"unit {text!r}: nested exponents")
    # A number with a large decimal exponent (1e999) overflows in pint's arithmetic.
    for m in re.finditer(r"\d[eE][-+]?(\d+)", parsed):
        if int(m.group(1)) > 300:
            raise UnitError(f"unit {text!r}: number out of range")


def eval_fraction(text: str) -> float:
    """``"3"`` -> 3.0, ``"1/2"`` -> 0.5 (an exponent as a unit string writes it)."""
    num, _, den = text.partition("/")
    return float(num) / float(den) if den else float(num)


# ----------------------------------------------------------------------------- time references
# "days since 2000-01-01 00:00:00", "seconds since 1970-1-1T00:00:00Z" (CF / UDUNITS).
_SINCE = re.compile(r"^\s*([A-Za-z]+)\s+(?:since|after|from)\s+(.+?)\s*$", re.IGNORECASE)
_TIME_STEPS = {  # the CF time units of a fixed length, in seconds
    "microseconds": 1e-6, "microsecond": 1e-6, "us": 1e-6,
    "milliseconds": 1e-3, "millisecond": 1e-3, "msec": 1e-3, "ms": 1e-3,
    "seconds": 1.0, "second": 1.0, "secs": 1.0, "sec": 1.0, "s": 1.0,
    "minutes": 60.0, "minute": 60.0, "mins": 60.0, "min": 60.0,
    "hours": 3600.0, "hour": 3600.0, "hrs": 3600.0, "hr": 3600.0, "h": 3600.0,
    "days": 86400.0, "day": 86400.0, "d": 86400.0,
}  # fmt: skip
# Months and years have no fixed length (UDUNITS' year is 365.242198781 days): refused.
_VAGUE_STEPS = {"months", "month", "years", "year", "yr", "common_years", "common_year"}
_UNIX_EPOCH = "1970-01-01"


def is_time_reference(text: str | None) -> bool:
    """True for a CF time unit with a reference date: ``"days since 2000-01-01"``."""
    return bool(text) and _SINCE.match(text) is not None


def _epoch_seconds(text: str) -> tuple[float, float]:
    """``"hours since 2000-01-01 06:00"`` -> (3600.0, seconds of the epoch since 1970 UTC)."""
    import datetime as dt

    m = _SINCE.match(text)
    if m is None:
        raise UnitError(f"not a time reference: {text!r}")
    step = m.group(1).lower()
    if step in _VAGUE_STEPS:
        raise UnitError(f"time unit {text!r}: {step} have no fixed length; not converted")
    if step not in _TIME_STEPS:
        raise UnitError(f"time unit {text!r}: unknown step {m.group(1)!r}")
    date = m.group(2).strip()
    d = re.match(
        r"^(-?\d{1,4})-(\d{1,2})-(\d{1,2})"
        r"(?:[T\s]+(\d{1,2}):(\d{1,2})(?::(\d{1,2})(\.\d*)?)?)?"
        r"\s*(Z|UTC|GMT|[-+]\d{1,2}(?::?\d{2})?)?\s*$",
        date,
        re.IGNORECASE,
    )
    if d is None:
        raise UnitError(f"time unit {text!r}: cannot read the reference date {date!r}")
    year, month, day = int(d.group(1)), int(d.group(2)), int(d.group(3))
    hh, mm, ss = (int(d.group(i) or 0) for i in (4, 5, 6))
    frac = float(d.group(7) or 0.0)
    zone = (d.group(8) or "").upper()
    shift = 0
    if zone and zone not in ("Z", "UTC", "GMT"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours, minutes = (
            (int(digits[:-2]), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
        )
        shift = sign * (hours * 3600 + minutes * 60)
    try:
        epoch = dt.datetime(year, month, day, hh, mm, ss, tzinfo=dt.timezone.utc)
    except ValueError as err:
        raise UnitError(f"time unit {text!r}: bad reference date ({err})") from err
    if epoch < dt.datetime(1582, 10, 15, tzinfo=dt.timezone.utc):
        # The standard calendar is Julian before 1582-10-15: not the proleptic dates used here.
        raise UnitError(f"time unit {text!r}: reference date before 1582-10-15 (Julian calendar)")
    unix = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return _TIME_STEPS[step], (epoch - unix).total_seconds() + frac - shift


# pint's registry caches parsed units in plain dicts: one thread at a time (a thread-pool
# executor, a dask worker's threads).
_LOCK = threading.RLock()


@functools.lru_cache(maxsize=1)
def _registry():
    """The process-wide pint registry (built once per process: pint takes ~0.2 s to load)."""
    import pint

    reg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # Reactive power (grid data): pint has VA but not var; Mvar and kvar follow from prefixes.
    reg.define("volt_ampere_reactive = volt * ampere = var = VAr")
    # Mixing ratios (air quality): pint has ppm only.
    reg.define("parts_per_billion = 1e-9 = ppb")
    reg.define("parts_per_trillion = 1e-12 = ppt")
    return reg


# "mb" is millibar in meteorology and millibarn (an area) to pint: read as millibar only when
# the other side of the conversion is a pressure, else refused.
_MB = re.compile(r"(?<![A-Za-z_0-9])mb(?![A-Za-z_0-9])")


def _parse(text: str, mb_is_millibar: bool = False):
    reg = _registry()
    parsed = normalise_unit(text)
    _guard(text, parsed)
    if _MB.search(parsed):
        if not mb_is_millibar:
            raise UnitError(
                f"unit {text!r}: 'mb' is ambiguous (millibar or millibarn); write mbar or hPa"
            )
        parsed = _MB.sub("mbar", parsed)
    try:
        return reg.parse_units(parsed)
    except Exception as err:  # pint raises several unrelated types for bad strings
        raise UnitError(f"unknown unit {text!r}") from err


def _is_pressure(text: str) -> bool:
    """True when ``text`` (without any "mb") is a pressure unit."""
    if _MB.search(normalise_unit(text)):
        return False
    try:
        units = _parse(text)
    except UnitError:
        return False
    return (1 * units).dimensionality == _registry().pascal.dimensionality


def _radian_power(units) -> float:
    """Exponent of radian in the root units (rpm -> 1, rad/s -> 1, Hz -> 0)."""
    _, root = _registry().get_root_units(units)
    return float(dict(root._units).get("radian", 0))


# Unit strings that pint reads as themselves (tests/ingest/test_ingest_units.py checks each
# against the registry): asking for one of them (``--var x:m``) is checked without building
# pint's registry (0.5 s quiet, seconds on a loaded machine) in the calling process; workers
# build it only when a file states another unit than the one asked.
KNOWN_UNITS = frozenset(
    (
        *("m", "km", "cm", "mm", "s", "ms", "min", "h", "kg", "g", "K", "degC", "mol"),
        *("W", "kW", "MW", "GW", "Wh", "kWh", "MWh", "J", "kJ", "MJ", "N", "kN", "Nm"),
        *("Pa", "hPa", "kPa", "MPa", "bar", "mbar", "V", "kV", "A", "kA", "Hz", "rpm"),
        *("m/s", "km/h", "m/s**2", "rad", "rad/s", "degree", "kg/m**3", "kg/s", "m**3/s"),
        *("VA", "kVA", "MVA", "var", "kvar", "Mvar", "ppm"),
    )
)


def check_unit(unit: str) -> None:
    """Raise UnitError unless pint reads ``unit`` (a unit of `KNOWN_UNITS` without pint)."""
    if unit not in KNOWN_UNITS:
        conversion(unit, unit)


@functools.lru_cache(maxsize=1024)
def conversion(source: str, target: str) -> tuple[float, float]:
    """Scale and offset that convert values in ``source`` units into ``target`` units.

    The rule is affine: ``y = a * x + b``. Rotation rates count turns when the other side is a
    plain frequency: pint treats a revolution as 2 pi radians and radians as dimensionless, so
    it turns 1500 rpm into 157 Hz; a controller reading Hz wants turns per second, 25 Hz. When
    the two sides differ in their power ``p`` of radians and are not dimensionless, the factor
    is corrected by ``(2 pi)^-p`` (rpm -> Hz: 1/60; rpm -> rad/s keeps 2 pi / 60).

    A time with a reference date (``"days since 2000-01-01"``, CF) converts to a plain time
    unit as a time since 1970-01-01 00:00 UTC (``"s"``: Unix time), or to another reference
    (``"hours since 1990-01-01"``); months and years (no fixed length) and reference dates
    before 1582-10-15 are refused. ``mb`` is millibar when the other side is a pressure, else
    refused as ambiguous (pint reads it as millibarn). Strings over ``MAX_UNIT_CHARS`` or with
    nested exponents are refused before pint parses them.

    Args:
        source: the unit the values are in (as written in the file).
        target: the unit wanted.

    Returns:
        ``(a, b)`` with ``y = a * x + b``.

    Raises:
        UnitError: a unit is unknown or the two do not convert (naming both).

    Example:
        >>> conversion("rpm", "Hz")
        (0.016666666666666666, 0.0)
        >>> conversion("degC", "K")
        (1.0, 273.15)
        >>> conversion("days since 1970-01-02", "s")
        (86400.0, 86400.0)
    """
    with _LOCK:
        return _conversion(source, target)


def _time_conversion(source: str, target: str) -> tuple[float, float]:
    """A time since a reference date into another reference or into Unix time in a time unit."""
    step, epoch = _epoch_seconds(source)
    if is_time_reference(target):
        t_step, t_epoch = _epoch_seconds(target)
        return step / t_step, (epoch - t_epoch) / t_step
    reg = _registry()
    dst = _parse(target)
    if (1 * dst).dimensionality != reg.second.dimensionality:
        raise UnitError(f"cannot convert {source!r} to {target!r}: not a time unit")
    f = float(reg.Quantity(1.0, reg.second).to(dst).magnitude)
    return step * f, epoch * f


def _conversion(source: str, target: str) -> tuple[float, float]:
    if is_time_reference(source) or is_time_reference(target):
        if not is_time_reference(source):
            raise UnitError(
                f"cannot convert {source!r} to {target!r}: the values have no reference date"
            )
        a, b = _time_conversion(source, target)
        if not (math.isfinite(a) and math.isfinite(b)) or a == 0.0:
            raise UnitError(f"cannot convert {source!r} to {target!r}: degenerate factor {a}")
        return a, b
    reg = _registry()
    src = _parse(source, mb_is_millibar=_is_pressure(target))
    dst = _parse(target, mb_is_millibar=_is_pressure(source))
    try:
        y0 = reg.Quantity(0.0, src).to(dst).magnitude
        # The slope from a distant second point: 1 and 0 would lose digits to the offset
        # (degF -> K: 255.93 - 255.37).
        y1 = reg.Quantity(1e6, src).to(dst).magnitude
    except Exception as err:
        raise UnitError(f"cannot convert {source!r} to {target!r}: {err}") from err
    a, b = float((y1 - y0) / 1e6), float(y0)
    p = _radian_power(src) - _radian_power(dst)
    if p != 0 and not (1 * src).dimensionless:
        a *= (2.0 * math.pi) ** (-p)
        b *= (2.0 * math.pi) ** (-p)
    if not (math.isfinite(a) and math.isfinite(b)) or a == 0.0:
        raise UnitError(f"cannot convert {source!r} to {target!r}: degenerate factor {a}")
    return a, b
