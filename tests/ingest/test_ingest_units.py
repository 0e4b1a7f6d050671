"""Unit conversion: UDUNITS spellings, offsets, the rpm -> Hz trap, refusals."""

from __future__ import annotations

import math

import pytest

from ingest import UnitError, conversion, normalise_unit

# (source, target, x, expected y): each row a conversion a controller relies on.
_CASES = [
    ("degC", "K", 20.0, 293.15),
    ("degree_Celsius", "K", -273.15, 0.0),
    ("deg_C", "degF", 100.0, 212.0),
    ("degF", "K", 32.0, 273.15),
    ("degF", "degC", 212.0, 100.0),
    ("K", "degC", 1000.0, 726.85),
    ("kW", "MW", 2050.0, 2.05),
    ("kW", "W", 1.5, 1500.0),
    ("Mvar", "kvar", 1.5, 1500.0),
    ("rpm", "Hz", 1500.0, 25.0),
    ("rpm", "rad/s", 60.0, 2.0 * math.pi),
    ("Hz", "rpm", 50.0, 3000.0),
    ("r/min", "s-1", 120.0, 2.0),
    ("m s-1", "km/h", 10.0, 36.0),
    ("m/s", "m s-1", 3.0, 3.0),
    ("L/min", "m3 s-1", 60.0, 1e-3),
    ("l min-1", "L/s", 120.0, 2.0),
    ("W m-2", "kW m-2", 1000.0, 1.0),
    ("kg.m-3", "g cm-3", 1000.0, 1.0),
    ("percent", "1", 50.0, 0.5),
    ("degrees", "rad", 180.0, math.pi),
]


@pytest.mark.parametrize(("src", "dst", "x", "y"), _CASES)
def test_conversion_table(src, dst, x, y):
    a, b = conversion(src, dst)
    assert a * x + b == pytest.approx(y, rel=1e-12, abs=1e-9)


def test_round_trip_is_identity():
    for src, dst, x, _ in _CASES:
        a, b = conversion(src, dst)
        c, d = conversion(dst, src)
        assert c * (a * x + b) + d == pytest.approx(x, rel=1e-12, abs=1e-9)


def test_rpm_trap_is_turns_per_second_not_radians():
    # pint alone says 1500 rpm = 157.08 Hz (radians per second); a controller wants 25 Hz.
    a, b = conversion("rpm", "Hz")
    assert (a * 1500.0 + b) == pytest.approx(25.0)
    assert a * 1500.0 != pytest.approx(1500.0 * 2 * math.pi / 60.0)


def test_udunits_preprocessor():
    assert normalise_unit("m s-1") == "m * s**-1"
    assert normalise_unit("W m-2") == "W * m**-2"
    assert normalise_unit("kg.m-3") == "kg * m**-3"
    assert normalise_unit("m2 s-2") == "m**2 * s**-2"
    assert normalise_unit("degrees_Celsius") == "degC"
    assert normalise_unit(" K ") == "K"


@pytest.mark.parametrize(
    ("src", "dst", "needle"),
    [("m", "K", "cannot convert 'm' to 'K'"), ("furlongz", "m", "unknown unit 'furlongz'")],
)
def test_refusals_name_the_units(src, dst, needle):
    with pytest.raises(UnitError, match=needle):
        conversion(src, dst)
