"""``groundstate shield``: columns matched by name, outputs never their own inputs (issue 9).

Case 1: a header that does not name every axis of a named map is an error naming the missing
columns (reading by position only with --by-position or for a map without names). Case 4: an
output path that is an input (same path, a symbolic link or a hard link) is refused before any
work, and nothing is written.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

import energy
from groundstate import _cmd_shield
from groundstate.cli import main

# A state the data never saw: full power at no wind.
IMPOSSIBLE = (0.5, 1200.0)


@pytest.fixture(scope="module")
def wind(tmp_path_factory):
    """A (wind_speed, power) map where power follows wind speed, and a shield calibrated on it."""
    d = tmp_path_factory.mktemp("wind")
    rng = np.random.default_rng(1)

    def states(n):
        ws = rng.uniform(0, 25, n)
        return np.stack([ws, np.clip(ws, 0, 12) * 100 + rng.normal(0, 20, n)], 1)

    m = energy.EnergyMap.from_samples(
        states(40_000), bins=24, bounds=[(0, 25), (-100, 1300)], names=["wind_speed", "power"]
    )
    m.save(d / "map.npz")
    with open(d / "held.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["wind_speed", "power"])
        w.writerows(states(400).tolist())
    shield = d / "shield.npz"
    rc = main(["shield", "calibrate", str(d / "map.npz"), str(d / "held.csv"), "-o", str(shield)])
    assert rc == 0
    return d


def _check(wind, tmp_path, header, row, *flags):
    """Run ``shield check`` on one row under ``header``: (rc, decisions or None)."""
    states = tmp_path / "states.csv"
    states.write_text(",".join(header) + "\n" + ",".join(str(v) for v in row) + "\n")
    out = tmp_path / "out.csv"
    rc = main(["shield", "check", str(wind / "shield.npz"), str(states), "-o", str(out), *flags])
    if rc != 0:
        return rc, None
    with open(out, newline="") as f:
        return rc, list(csv.DictReader(f))


def test_swapped_header_is_an_error_not_an_allowed_state_case1(wind, tmp_path, capsys):
    """The issue's case: 'power,windspeed' was read by position and full power at 1200 m/s..."""
    rc, _ = _check(wind, tmp_path, ["power", "windspeed"], IMPOSSIBLE[::-1])
    assert rc == 1
    err = capsys.readouterr().err
    assert "states.csv" in err and "'wind_speed'" in err and "--by-position" in err
    assert not (tmp_path / "out.csv").exists()


def test_header_naming_every_axis_in_any_order_and_case_case1(wind, tmp_path):
    rc, rows = _check(wind, tmp_path, ["Power", "time", "WIND_SPEED"], (IMPOSSIBLE[1], 3, 0.5))
    assert rc == 0 and rows[0]["allow"] == "false" and rows[0]["reason"] == "above_threshold"
    rc, rows = _check(wind, tmp_path, ["power", "wind_speed"], (400.0, 4.0))
    assert rc == 0 and rows[0]["allow"] == "true"


def test_exact_name_is_preferred_and_two_candidates_are_an_error_case1(wind, tmp_path, capsys):
    # 'power' (exact) wins over 'POWER': the row is read as power=400 at 4 m/s (allowed).
    rc, rows = _check(wind, tmp_path, ["POWER", "power", "wind_speed"], (1200.0, 400.0, 4.0))
    assert rc == 0 and rows[0]["allow"] == "true"
    rc, _ = _check(wind, tmp_path, ["POWER", "Power", "wind_speed"], (1200.0, 400.0, 4.0))
    assert rc == 1
    assert "'power' matches 2 columns" in capsys.readouterr().err


def test_header_naming_only_some_axes_is_an_error_case1(wind, tmp_path, capsys):
    rc, _ = _check(wind, tmp_path, ["wind_speed", "pwr"], (0.5, 1200.0))
    assert rc == 1
    err = capsys.readouterr().err
    assert "['power']" in err and "wind_speed" in err
    rc = main(
        [
            "shield",
            "calibrate",
            str(wind / "map.npz"),
            str(tmp_path / "states.csv"),
            "-o",
            str(tmp_path / "s.npz"),
        ]
    )
    assert rc == 1 and "['power']" in capsys.readouterr().err
    assert not (tmp_path / "s.npz").exists()


def test_by_position_only_when_asked_case1(wind, tmp_path, capsys):
    # Asked for: the columns are read in the map's axis order, whatever the header says.
    rc, rows = _check(wind, tmp_path, ["a", "b"], IMPOSSIBLE, "--by-position")
    assert rc == 0 and rows[0]["allow"] == "false"
    rc, rows = _check(wind, tmp_path, ["a", "b"], (4.0, 400.0), "--by-position")
    assert rc == 0 and rows[0]["allow"] == "true"
    rc, _ = _check(wind, tmp_path, ["a", "b", "c"], (4.0, 400.0, 1), "--by-position")
    assert rc == 1 and "exactly 2 columns" in capsys.readouterr().err


def test_map_without_names_reads_by_position_case1(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("a,b\n1,2\n")
    _, _, x = _cmd_shield.read_states(path, ("x0", "x1"), 2)
    assert x.tolist() == [[1.0, 2.0]]
    path.write_text("x1,x0\n1,2\n")  # its default names, when given, are still matched by name
    _, _, x = _cmd_shield.read_states(path, ("x0", "x1"), 2)
    assert x.tolist() == [[2.0, 1.0]]
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="no names; expected exactly 2 columns"):
        _cmd_shield.read_states(path, ("x0", "x1"), 2)


# --------------------------------------------------------------------- case 4: output = input
def _snapshot(*paths):
    return {str(p): (p.read_bytes(), os.stat(p).st_mtime_ns) for p in paths}


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink", "dotted"])
def test_calibrate_output_equal_to_an_input_is_refused_case4(wind, tmp_path, capsys, link):
    for name in ("map.npz", "held.csv"):
        (tmp_path / name).write_bytes((wind / name).read_bytes())
    for name in ("map.npz", "held.csv"):
        src = tmp_path / name
        before = _snapshot(src)
        if link == "same":
            out = src
        elif link == "dotted":
            out = tmp_path / "." / name
        else:
            out = tmp_path / f"alias_{name}"
            (os.symlink if link == "symlink" else os.link)(src, out)
        args = ["shield", "calibrate", str(tmp_path / "map.npz"), str(tmp_path / "held.csv")]
        rc = main([*args, "-o", str(out)])
        assert rc == 1
        err = capsys.readouterr().err
        assert "is the" in err and "input" in err and str(src.name) in err
        assert _snapshot(src) == before, "the input was changed"
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_check_output_equal_to_an_input_is_refused_case4(wind, tmp_path, capsys, link):
    shield = tmp_path / "shield.npz"
    shield.write_bytes((wind / "shield.npz").read_bytes())
    states = tmp_path / "states.csv"
    states.write_text("wind_speed,power\n4,400\n")
    for src in (shield, states):
        before = _snapshot(shield, states)
        out = src
        if link != "same":
            out = tmp_path / f"alias_{link}_{src.name}"
            (os.symlink if link == "symlink" else os.link)(src, out)
        rc = main(["shield", "check", str(shield), str(states), "-o", str(out)])
        assert rc == 1
        assert "would destroy the input" in capsys.readouterr().err
        assert _snapshot(shield, states) == before


def test_refused_before_any_work_case4(wind, tmp_path, monkeypatch, capsys):
    """The map is not even loaded: the check comes first."""
    states = tmp_path / "held.csv"
    states.write_bytes((wind / "held.csv").read_bytes())

    def no_load(*a, **k):
        raise AssertionError("the map was loaded before the output check")

    monkeypatch.setattr(energy, "load", no_load)
    rc = main(["shield", "calibrate", str(wind / "map.npz"), str(states), "-o", str(states)])
    assert rc == 1 and "states input" in capsys.readouterr().err
