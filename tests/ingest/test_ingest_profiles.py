"""Domain profiles: shipped TOML files, aliases, unit-converted ranges, user files, errors."""

from __future__ import annotations

import pytest

from ingest import ProfileError, available_profiles, load_profile, parse_var, resolve_vars


def test_shipped_profiles_load():
    assert {"grid", "casting", "wind"} <= set(available_profiles())
    grid = load_profile("grid")
    f = grid.find("FREQ")
    assert f.name == "frequency" and f.unit == "Hz"
    assert f.range[0] < 50.0 < 60.0 < f.range[1]
    assert load_profile("casting").find("melt_temp").unit == "K"
    wind = load_profile("wind")
    assert wind.find("Ws_avg").unit == "m/s"
    assert wind.find("p_avg").unit == "kW"
    assert wind.find("pitch_angle") is not None
    assert wind.find("ot_avg").range[0] > -273.0  # the -273.2 degC glitch is out of range


def test_resolve_takes_profile_unit_aliases_and_converts_ranges():
    ws, temp = resolve_vars(["ws", "temperature:K"], "wind")
    assert ws.unit == "m/s" and "wind_speed" in ws.candidates and ws.candidates[0] == "ws"
    assert ws.bounds == (0.0, 25.0)
    assert temp.unit == "K"
    assert temp.range == pytest.approx((213.15, 333.15))  # [-60, 60] degC in K


def test_resolve_without_profile():
    (spec,) = resolve_vars(["Speed:km/h"])
    assert spec.candidates == ("Speed",) and spec.unit == "km/h" and spec.range is None


def test_parse_var():
    assert parse_var("temperature:K") == ("temperature", "K")
    assert parse_var("power") == ("power", None)
    assert parse_var("flow:L/min") == ("flow", "L/min")
    with pytest.raises(ValueError, match="empty unit"):
        parse_var("power:")


def test_user_profile_file(tmp_path):
    path = tmp_path / "plant.toml"
    path.write_text(
        'name = "plant"\n[variables.pressure]\nunit = "bar"\naliases = ["p1"]\n'
        "range = [0, 10]\nbounds = [1, 5]\n"
    )
    (spec,) = resolve_vars(["p1:kPa"], str(path))
    assert spec.unit == "kPa"
    assert spec.range == pytest.approx((0.0, 1000.0))
    assert spec.bounds == pytest.approx((100.0, 500.0))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[variables.x]\nunit = "furlongz"\n', "unknown unit"),
        ("[variables.x]\nrange = [5, 1]\n", "lo < hi"),
        ("[variables.x]\ncolour = 1\n", "unknown keys"),
        ('name = "empty"\n', "no \\[variables.NAME\\]"),
        ("not toml [", "cannot read"),
    ],
)
def test_bad_profiles_name_the_file(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=needle) as err:
        load_profile(str(path))
    assert "bad.toml" in str(err.value)


def test_unknown_profile_and_bad_vars():
    with pytest.raises(ProfileError, match="unknown profile 'nuclear'"):
        load_profile("nuclear")
    with pytest.raises(ValueError, match="furlongz"):
        resolve_vars(["x:furlongz"])
    with pytest.raises(ValueError, match="twice"):
        resolve_vars(["x", "X:m"])
    with pytest.raises(ValueError, match="at least one"):
        resolve_vars([])
