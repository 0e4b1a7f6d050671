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
    # issue 9, case 12: UDUNITS quotients and spellings of real files
    ("W/m2", "W m-2", 800.0, 800.0),
    ("W/m2", "kW/m2", 800.0, 0.8),
    ("kg/m2/s", "kg m-2 h-1", 1.0, 3600.0),
    ("m3/s", "L/s", 2.0, 2000.0),
    ("m/s2", "m s-2", 9.81, 9.81),
    ("g/m3", "kg m-3", 1000.0, 1.0),
    ("degree_C", "K", 0.0, 273.15),
    ("\u2103", "K", 10.0, 283.15),  # ℃
    ("%", "1", 12.0, 0.12),
    ("ppm", "ppb", 1.5, 1500.0),
    ("ppb", "1", 1e9, 1.0),
    ("mb", "hPa", 1013.0, 1013.0),  # millibar for a pressure, not millibarn
    ("hPa", "mb", 1013.0, 1013.0),
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


def test_mb_is_millibar_for_a_pressure_else_refused():
    assert conversion("mb", "Pa") == pytest.approx((100.0, 0.0))
    with pytest.raises(UnitError, match="'mb' is ambiguous"):
        conversion("mb", "m2")  # pint would read millibarn


@pytest.mark.parametrize(
    "unit", ["m**10**10**10", "m^2^3", "(m**2)**3", "m**(10**10)", "m**1000", "x" * 200]
)
def test_unit_strings_are_parsed_with_a_size_limit(unit):
    # "m**10**10**10" hung the crawl inside pint: refused before pint sees it.
    import time

    t0 = time.perf_counter()
    with pytest.raises(UnitError):
        conversion(unit, "m")
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(
    ("src", "dst", "x", "y"),
    [
        ("days since 1970-01-01", "s", 1.0, 86400.0),
        ("days since 2000-01-01 00:00:00", "s", 0.5, 946684800.0 + 43200.0),
        ("hours since 2000-01-01T06:00:00Z", "h", 0.0, 262974.0),
        ("seconds since 1970-01-01 01:00:00 +01:00", "s", 5.0, 5.0),
        ("minutes since 1970-01-01", "days since 1970-01-02", 2880.0, 1.0),
    ],
)
def test_time_references_convert_to_one_epoch(src, dst, x, y):
    a, b = conversion(src, dst)
    assert a * x + b == pytest.approx(y, rel=1e-12)


@pytest.mark.parametrize(
    ("src", "dst", "needle"),
    [
        ("months since 2000-01-01", "s", "no fixed length"),
        ("days since 1500-01-01", "s", "before 1582-10-15"),
        ("days since 2000-01-01", "m", "not a time unit"),
        ("s", "days since 2000-01-01", "no reference date"),
        ("days since yesterday", "s", "cannot read the reference date"),
    ],
)
def test_time_references_refused_with_a_reason(src, dst, needle):
    with pytest.raises(UnitError, match=needle):
        conversion(src, dst)


def test_files_on_different_epochs_count_on_one(tmp_path):
    # Two files, the same instants written from different epochs: one histogram when a time
    # unit is asked; refused (never counted raw) when none is.
    import h5py
    import numpy as np

    import ingest

    t = np.arange(10) * 3600.0 + 946684800.0  # seconds since 1970, from 2000-01-01
    for name, unit, values in [
        ("a.h5", "seconds since 1970-01-01", t),
        ("b.h5", "hours since 2000-01-01", (t - 946684800.0) / 3600.0),
    ]:
        with h5py.File(tmp_path / name, "w") as f:
            f["time"] = values
            f["time"].attrs["units"] = unit
    c = ingest.count(str(tmp_path), ["time:s"], bins=10, workers=1, progress=False)
    assert c.bounds == [(t[0], t[-1])] and c.counts.sum() == 20
    assert np.all(c.counts == 2)
    with pytest.raises(ingest.EmptyCrawlError, match="time since a reference date"):
        ingest.count(str(tmp_path), ["time"], bins=10, workers=1, progress=False)
