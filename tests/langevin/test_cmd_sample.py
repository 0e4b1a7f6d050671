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


def test_sample_refuses_its_input_map_as_output(map_file, tmp_path, capsys):
    # A map saved under a name `-o` accepts: the command must stop before any work.
    same = tmp_path / "m.npy"
    same.write_bytes(map_file.read_bytes())
    before = same.read_bytes()
    rc = cli.main(["sample", str(same), "-n", "10", "-o", str(same)])
    assert rc == 1
    assert "is the input map" in capsys.readouterr().err
    assert same.read_bytes() == before


def test_ctrl_c_stops_sample_within_two_seconds_with_130_and_no_partial_output(map_file, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "s.npy"
    env = dict(os.environ, JAX_PLATFORMS="cpu", GROUNDSTATE_COMPILATION_CACHE="off")
    # Millions of steps: the chains are still running (or compiling) when the signal comes.
    cmd = [sys.executable, "-m", "groundstate.cli", "sample", str(map_file), "-n", "4000"]
    cmd += ["--steps", "2000000", "-o", str(out)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, bufsize=1)
    try:
        line = proc.stderr.readline()  # "sampling 4000 chains on ..." once the map is loaded
        assert line.startswith("sampling"), line
        time.sleep(1.0)
        assert proc.poll() is None, "the run ended before the interrupt"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    proc.stderr.close()
    assert rc == 130, err[-2000:]
    assert elapsed < 2.0, elapsed
    assert "interrupted" in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sample-")]
