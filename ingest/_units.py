"""Unit conversion for ingest: UDUNITS-style strings through pint, reduced to ``a * x + b``."""

from __future__ import annotations

import functools
import math
import re
import threading

__all__ = ["UnitError", "conversion", "normalise_unit"]


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

    Args:
        text: a unit as a file states it, e.g. ``"m s-1"``, ``"degree_Celsius"``, ``"kg.m-3"``.

    Returns:
        A string pint's parser reads.

    Example:
        >>> normalise_unit("W m-2")
        'W * m**-2'
    """
    s = text.strip()
    low = s.lower()
    if low in _ALIASES:
        return _ALIASES[low]
    if not s:
        return "dimensionless"
    if "/" in s or "*" in s or "(" in s:
        # Already an expression (``m/s``, ``kg*m**2``): only fix the aliases of its factors.
        return s
    # UDUNITS products are separated by blanks or by a period between symbols ("kg.m-3").
    parts = re.split(r"\s+|(?<=[A-Za-z0-9])\.(?=[A-Za-z])", s)
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
    return " * ".join(out)


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
    return reg


def _parse(text: str):
    reg = _registry()
    try:
        return reg.parse_units(normalise_unit(text))
    except Exception as err:  # pint raises several unrelated types for bad strings
        raise UnitError(f"unknown unit {text!r}") from err


def _radian_power(units) -> float:
    """Exponent of radian in the root units (rpm -> 1, rad/s -> 1, Hz -> 0)."""
    _, root = _registry().get_root_units(units)
    return float(dict(root._units).get("radian", 0))


@functools.lru_cache(maxsize=1024)
def conversion(source: str, target: str) -> tuple[float, float]:
    """Scale and offset that convert values in ``source`` units into ``target`` units.

    The rule is affine: ``y = a * x + b``. Rotation rates count turns when the other side is a
    plain frequency: pint treats a revolution as 2 pi radians and radians as dimensionless, so
    it turns 1500 rpm into 157 Hz; a controller reading Hz wants turns per second, 25 Hz. When
    the two sides differ in their power ``p`` of radians and are not dimensionless, the factor
    is corrected by ``(2 pi)^-p`` (rpm -> Hz: 1/60; rpm -> rad/s keeps 2 pi / 60).

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
    """
    with _LOCK:
        return _conversion(source, target)


def _conversion(source: str, target: str) -> tuple[float, float]:
    reg = _registry()
    src = _parse(source)
    dst = _parse(target)
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
