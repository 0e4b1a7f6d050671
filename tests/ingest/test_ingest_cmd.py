"""``groundstate ingest`` through the command line's main()."""

from __future__ import annotations

import os

import numpy as np
import pytest
from ingest_helpers import make_lake

import energy
from groundstate import cli
from groundstate._cmd_ingest import parse_bounds


def test_cli_writes_map_with_units_bounds_and_report(tmp_path, capsys):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=3, rows=100, seed=5)
    out = tmp_path / "m.npz"
    code = cli.main(
        [
            "ingest",
            str(lake),
            "--var",
            "x:km",
            "--var",
            "Y:ms",
            "--bins",
            "9",
            "--bounds=-0.003:0.003,-2000:2000",
            "--workers",
            "1",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    cap = capsys.readouterr()
    assert "[3/3] " in cap.err  # progress on stderr, the report on stdout
    assert "files read: 3" in cap.out and "junk line: 20" in cap.out and "wrote " in cap.out
    m = energy.load(out)
    assert m.names == ("x", "Y") and m.units == ("km", "ms") and m.shape == (9, 9)
    np.testing.assert_allclose(m.bounds, [(-0.003, 0.003), (-2000.0, 2000.0)], rtol=1e-6)
    assert m.provenance["rows_used"] == m.n_samples > 0
    assert not (tmp_path / "m.npz.ingest-state").exists()
    assert np.all(np.isfinite(np.asarray(m.values)))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--var", "x:furlongz"], "furlongz"),
        (["--var", "x", "--profile", "nuclear"], "unknown profile 'nuclear'"),
        (["--var", "x", "--workers", "0"], "--workers 0"),
        (["--var", "x", "--smoothing", "nan"], "--smoothing nan"),
        (["--var", "x", "--smoothing", "-2"], "--smoothing -2"),
        (["--var", "x", "-o", "{tmp}/no/such/o.npz"], "does not exist: {tmp}/no/such"),
        (["--var", "x", "-o", "{tmp}/lake/o.npz"], "inside the lake being crawled"),
    ],
)
def test_cli_errors_are_clear(tmp_path, capsys, argv, needle):
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "a.csv").write_text("x,y\n1,2\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "o.npz")]
    code = cli.main(["ingest", str(lake), "--workers", "1", *argv])
    err = capsys.readouterr().err
    assert code == 1
    assert needle.replace("{tmp}", str(tmp_path)) in err
    assert sorted(os.listdir(tmp_path)) == ["lake"]  # nothing written


def test_cli_empty_lake_is_an_error(tmp_path, capsys):
    (tmp_path / "lake").mkdir()
    code = cli.main(["ingest", str(tmp_path / "lake"), "--var", "x", "-o", str(tmp_path / "o.npz")])
    assert code == 1
    assert "no rows counted" in capsys.readouterr().err


def test_parse_bounds():
    assert parse_bounds("0:25,-100:2100") == [(0.0, 25.0), (-100.0, 2100.0)]
    with pytest.raises(Exception, match="LO:HI"):
        parse_bounds("5:1")
