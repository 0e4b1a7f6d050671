"""The ``groundstate shield calibrate`` / ``check`` commands, end to end on files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import energy
from groundstate import _cmd_shield
from groundstate.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2-D map (axes 'wind', 'power') and CSVs of held-out and test states."""
    d = tmp_path_factory.mktemp("shield_cli")
    rng = np.random.default_rng(0)
    m = energy.EnergyMap.from_samples(
        rng.normal(size=(50_000, 2)), bins=32, bounds=[(-5, 5), (-5, 5)], names=["wind", "power"]
    )
    m.save(d / "map.npz")
    held = rng.normal(size=(400, 2))
    with open(d / "held.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "Power", "Wind"])  # other order and case, plus an extra column
        for i, (a, b) in enumerate(held):
            w.writerow([i, b, a])
    with open(d / "test.csv", "w", newline="") as f:
        f.write("wind,power\n0.1,0.2\n4.0,4.0\nnan,0\n,1\n7,0\n")
    return d, m, held


def test_calibrate_then_check(files, tmp_path, capsys):
    d, m, held = files
    out = tmp_path / "shield.npz"
    rc = main(
        [
            "shield",
            "calibrate",
            str(d / "map.npz"),
            str(d / "held.csv"),
            "--alpha",
            "0.05",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    assert "threshold" in capsys.readouterr().err
    sh = energy.Shield.load(out)
    ref = energy.Shield.calibrate(m, held, alpha=0.05)
    assert float(sh.threshold) == float(ref.threshold)
    assert sh.provenance["states"].endswith("held.csv")

    res = tmp_path / "decisions.csv"
    rc = main(["shield", "check", str(out), str(d / "test.csv"), "-o", str(res)])
    assert rc == 0
    with open(res, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["allow"] for r in rows] == ["true", "false", "false", "false", "false"]
    assert [r["reason"] for r in rows] == [
        "allowed",
        "above_threshold",
        "not_finite",
        "not_finite",
        "out_of_bounds",
    ]
    assert [int(r["reason_code"]) for r in rows] == [0, 1, 3, 3, 2]
    assert rows[0]["wind"] == "0.1"  # input columns are kept
    assert 0 < float(rows[0]["p_value"]) <= 1
    err = capsys.readouterr().err
    assert "5 states" in err and "allowed 1" in err


def test_check_to_stdout(files, tmp_path, capsys):
    d, _, _ = files
    out = tmp_path / "s.npz"
    assert (
        main(
            [
                "shield",
                "calibrate",
                str(d / "map.npz"),
                str(d / "held.csv"),
                "-o",
                str(out),
                "--alpha",
                "0.1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["shield", "check", str(out), str(d / "test.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "wind,power,allow,reason,reason_code,energy,p_value"
    assert len(lines) == 6


def test_errors_name_the_file(files, tmp_path, capsys):
    d, _, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("wind,power\n0.1,abc\n")
    rc = main(["shield", "calibrate", str(d / "map.npz"), str(bad), "-o", str(tmp_path / "x.npz")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "bad.csv" in err and "line 2" in err and "'abc'" in err
    few = tmp_path / "few.csv"
    few.write_text("wind,power\n0,0\n0.1,0.1\n")
    rc = main(
        [
            "shield",
            "calibrate",
            str(d / "map.npz"),
            str(few),
            "--alpha",
            "0.01",
            "-o",
            str(tmp_path / "x.npz"),
        ]
    )
    assert rc == 1
    assert "too few calibration states" in capsys.readouterr().err
    cols = tmp_path / "cols.csv"
    cols.write_text("a,b,c\n1,2,3\n")
    rc = main(["shield", "check", str(tmp_path / "missing.npz"), str(cols)])
    assert rc == 1
    assert "missing.npz" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"cols\.csv.*wind"):
        _cmd_shield.read_states(cols, ("wind", "power"), 2)


def test_shield_without_action_prints_help(capsys):
    assert main(["shield"]) == 2
    assert "calibrate" in capsys.readouterr().err
