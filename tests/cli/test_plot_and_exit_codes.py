"""``shield check --fail-on-block`` (exit 3), ``--plot`` on ``shield check`` and ``sample``.

Pictures are checked by their data (the states drawn, the image of the map), not by pixels.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

import energy
from groundstate.cli import main

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("plots")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, 2))
    m = energy.EnergyMap.from_samples(x, bins=24, bounds=[(-5, 5), (-5, 5)], names=["a", "b"])
    m.save(d / "map.npz")
    with open(d / "held.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b"])
        w.writerows(rng.normal(size=(300, 2)).tolist())
    assert (
        main(
            [
                "shield",
                "calibrate",
                str(d / "map.npz"),
                str(d / "held.csv"),
                "-o",
                str(d / "sh.npz"),
            ]
        )
        == 0
    )
    (d / "normal.csv").write_text("a,b\n0.1,-0.2\n0.0,0.3\n")
    (d / "mixed.csv").write_text("a,b\n0.1,-0.2\n4.5,4.5\nnan,0\n")
    return d


def test_fail_on_block_exits_3_only_when_something_is_blocked(lake, tmp_path):
    sh = str(lake / "sh.npz")
    assert (
        main(
            [
                "shield",
                "check",
                sh,
                str(lake / "normal.csv"),
                "-o",
                str(tmp_path / "n.csv"),
                "--fail-on-block",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "shield",
                "check",
                sh,
                str(lake / "mixed.csv"),
                "-o",
                str(tmp_path / "m.csv"),
                "--fail-on-block",
            ]
        )
        == 3
    )
    # Without the flag a blocked state is a decision, not a failure; the file is written whole.
    assert (
        main(["shield", "check", sh, str(lake / "mixed.csv"), "-o", str(tmp_path / "m2.csv")]) == 0
    )
    with open(tmp_path / "m2.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["allow"] for r in rows] == ["true", "false", "false"]
    assert (tmp_path / "m.csv").read_text() == (tmp_path / "m2.csv").read_text()


def test_shield_check_plot_draws_allowed_and_blocked_states(lake, tmp_path, monkeypatch):
    from groundstate import _plot

    seen = {}
    real = _plot.landscape

    def spy(m, out, **kw):
        seen.update(kw)
        seen["fig"] = real(m, out, **kw)
        return seen["fig"]

    monkeypatch.setattr(_plot, "landscape", spy)
    png = tmp_path / "check.png"
    rc = main(
        [
            "shield",
            "check",
            str(lake / "sh.npz"),
            str(lake / "mixed.csv"),
            "-o",
            str(tmp_path / "o.csv"),
            "--plot",
            str(png),
        ]
    )
    assert rc == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < png.stat().st_size < 2_000_000
    np.testing.assert_array_equal(np.asarray(seen["decisions"].allow), [True, False, False])
    assert np.asarray(seen["states"]).shape == (3, 2)
    m = energy.load(lake / "map.npz")
    img = np.asarray(seen["fig"].axes[0].images[0].get_array())
    assert img.shape == m.shape[::-1] or img.shape == m.shape


def test_plot_equal_to_an_input_is_refused_before_work(lake, tmp_path, capsys):
    states = lake / "normal.csv"
    before = states.read_bytes()
    rc = main(["shield", "check", str(lake / "sh.npz"), str(states), "--plot", str(states)])
    assert rc == 1
    assert "is the states input" in capsys.readouterr().err
    assert states.read_bytes() == before


def test_sample_plot_draws_the_chains(lake, tmp_path, monkeypatch):
    from groundstate import _plot

    seen = {}
    real = _plot.landscape
    monkeypatch.setattr(
        _plot, "landscape", lambda m, out, **kw: seen.update(kw) or real(m, out, **kw)
    )
    png, out = tmp_path / "chains.png", tmp_path / "s.csv"
    rc = main(
        [
            "sample",
            str(lake / "map.npz"),
            "-n",
            "64",
            "--steps",
            "50",
            "-o",
            str(out),
            "--plot",
            str(png),
        ]
    )
    assert rc == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = np.asarray(seen["chains"])
    written = np.loadtxt(out, delimiter=",", skiprows=1)[:, :2]
    np.testing.assert_allclose(drawn, written, rtol=1e-7, atol=1e-7)
