"""The ``groundstate sample`` sub-command."""

import numpy as np
import pytest

import energy
from groundstate import cli


@pytest.fixture(scope="module")
def map_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    m = energy.EnergyMap.from_samples(rng.normal(size=(5000, 2)), bins=32, names=["speed", "load"])
    path = tmp_path_factory.mktemp("maps") / "m.npz"
    m.save(path)
    return path


def test_sample_to_csv(map_file, tmp_path, capsys):
    out = tmp_path / "s.csv"
    rc = cli.main(
        [
            "sample",
            str(map_file),
            "-n",
            "200",
            "--steps",
            "100",
            "-o",
            str(out),
            "--fix",
            "load=0.5",
        ]
    )
    assert rc == 0
    table = np.genfromtxt(out, delimiter=",", names=True)
    assert table.dtype.names == ("speed", "load", "energy")
    assert table.shape == (200,)
    assert np.all(table["load"] == 0.5)
    assert abs(np.mean(table["speed"])) < 0.3 and 0.6 < np.std(table["speed"]) < 1.4
    assert "sampled 200 chains" in capsys.readouterr().err


def test_sample_to_npy(map_file, tmp_path):
    out = tmp_path / "s.npy"
    rc = cli.main(
        [
            "sample",
            str(map_file),
            "-n",
            "50",
            "--steps",
            "50",
            "-o",
            str(out),
            "--schedule",
            "none",
            "--method",
            "mala",
            "--seed",
            "3",
        ]
    )
    assert rc == 0
    assert np.load(out).shape == (50, 2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "x.txt"], "must end in .csv or .npy"),
        (["-o", "x.csv", "--fix", "load"], "NAME=VALUE"),
        (["-o", "x.csv", "--fix", "nope=1"], "unknown variable"),
    ],
)
def test_sample_errors(map_file, tmp_path, capsys, extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["sample", str(map_file), "-n", "4", "--steps", "5", *extra])
    assert rc == 1
    assert message in capsys.readouterr().err


def test_missing_map(tmp_path, capsys):
    rc = cli.main(["sample", str(tmp_path / "none.npz"), "-n", "4", "-o", str(tmp_path / "o.csv")])
    assert rc == 1
    assert "none.npz" in capsys.readouterr().err
