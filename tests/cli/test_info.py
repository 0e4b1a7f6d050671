"""``groundstate info`` / ``fit`` and the pictures: files written, sane sizes, the data drawn."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import energy
from groundstate import _plot, cli

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("info")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, 2)) * [1.0, 2.0] + [5.0, 10.0]
    m = energy.EnergyMap.from_samples(x, bins=24, names=["ws", "p"], units=["m/s", "kW"])
    m.save(root / "m.npz")
    sh = energy.Shield.calibrate(m, rng.normal(size=(500, 2)) * [1.0, 2.0] + [5.0, 10.0], 0.05)
    sh.save(root / "sh.npz")
    x3 = rng.normal(size=(20_000, 3))
    m3 = energy.EnergyMap.from_samples(x3, bins=12, names=["a", "b", "c"])
    m3.save(root / "m3.npz")
    return root, m, sh, m3


def _png_ok(path, lo=5_000, hi=3_000_000):
    data = path.read_bytes()
    assert data[:8] == PNG and lo < len(data) < hi


def test_info_map_and_shield(files, capsys):
    root, m, sh, _ = files
    assert cli.main(["info", str(root / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert ": map" in out and "ws [m/s]" in out and "24 nodes" in out
    assert "samples counted: 20000" in out and "checksums: ok" in out
    assert cli.main(["info", str(root / "sh.npz")]) == 0
    out = capsys.readouterr().out
    assert ": shield" in out and f"{float(sh.threshold):.6g}" in out and "alpha 0.05" in out


def test_info_refuses_a_damaged_file(files, tmp_path, capsys):
    root, *_ = files
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    assert cli.main(["info", str(bad)]) == 1
    assert "bad.npz" in capsys.readouterr().err
    assert cli.main(["info", str(tmp_path / "none.npz")]) == 1


def test_info_plot_2d_draws_the_map_and_the_envelope(files, tmp_path):
    pytest.importorskip("matplotlib")
    root, m, sh, _ = files
    out = tmp_path / "m.png"
    assert cli.main(["info", str(root / "sh.npz"), "--plot", str(out)]) == 0
    _png_ok(out)
    fig = _plot.landscape(m, tmp_path / "again.png", shield=sh)
    ax = fig.axes[0]
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), np.asarray(m.values).T)
    assert ax.get_xlabel() == "ws [m/s]" and ax.get_ylabel() == "p [kW]"
    # The envelope is the contour at the shield's threshold.
    levels = [c.levels for c in ax.collections if hasattr(c, "levels")]
    assert any(np.allclose(lv, [float(sh.threshold)]) for lv in levels)


def test_info_plot_3d_is_a_corner_of_marginals(files, tmp_path):
    pytest.importorskip("matplotlib")
    root, _, _, m3 = files
    out = tmp_path / "m3.png"
    assert cli.main(["info", str(root / "m3.npz"), "--plot", str(out)]) == 0
    _png_ok(out)
    fig = _plot.landscape(m3, tmp_path / "m3b.png")
    assert len(fig.axes) == 3  # (b|a), (c|a), (c|b)
    v = np.asarray(m3.values, dtype=np.float64)
    p = np.exp(-(v - v.min())).sum(axis=2)  # marginal of (a, b)
    want = (-np.log(p) + v.min()).T  # rows: b, columns: a
    np.testing.assert_allclose(np.asarray(fig.axes[0].images[0].get_array()), want, rtol=1e-6)


def test_decided_states_and_chains_are_drawn(files, tmp_path):
    pytest.importorskip("matplotlib")
    _, m, sh, _ = files
    x = np.array([[5.0, 10.0], [9.0, 1.0], [5.5, 11.0]])
    d = sh(x)
    fig = _plot.landscape(m, tmp_path / "check.png", shield=sh, states=x, decisions=d, chains=x)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    allowed = np.asarray(d.allow)
    np.testing.assert_array_equal(lines["allowed"].get_xdata(), x[allowed, 0])
    np.testing.assert_array_equal(lines["blocked"].get_ydata(), x[~allowed, 1])
    _png_ok(tmp_path / "check.png")


def test_traces_sweep_and_ingest_pictures(files, tmp_path):
    pytest.importorskip("matplotlib")
    _, m, _, _ = files
    trace = np.cumsum(np.random.default_rng(0).normal(size=(50, 8)), axis=0)
    res = types.SimpleNamespace(energy_trace=trace, method="ula", schedule="noise pyramid")
    fig = _plot.traces(res, tmp_path / "t.png")
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), np.median(trace, axis=1))
    _png_ok(tmp_path / "t.png", lo=2_000)
    with pytest.raises(ValueError, match="thin"):
        _plot.traces(types.SimpleNamespace(energy_trace=None), tmp_path / "x.png")
    table = {
        "title": "t",
        "names": ["ws", "p"],
        "condition": "ws",
        "rows": [
            {"state": [3.0, 100.0]},
            {"state": None},
            {"state": [5.0, 400.0]},
        ],
    }
    fig = _plot.sweep(table, tmp_path / "s.png")
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_ydata(), [100.0, 400.0])
    report = {"rows_used": 900, "rows_dropped": {"missing value": 40, "outside bounds": 5}}
    fig = _plot.ingest_summary(m, report, tmp_path / "i.png")
    bars = [b.get_width() for b in fig.axes[0].patches]
    assert bars == [900, 40, 5]
    _png_ok(tmp_path / "i.png", lo=2_000)


def test_missing_matplotlib_says_how_to_install(files, tmp_path, monkeypatch, capsys):
    root, *_ = files
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"groundstate\[plot\]"):
        _plot.require()
    code = cli.main(["info", str(root / "m.npz"), "--plot", str(tmp_path / "x.png")])
    assert code == 1
    assert "groundstate[plot]" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_fit_writes_a_surrogate_that_info_reads(files, tmp_path, capsys):
    root, m, _, _ = files
    out = tmp_path / "s"
    args = ["fit", str(root / "m.npz"), "-o", str(out), "--members", "2", "--steps", "20"]
    args += ["--width", "8", "--depth", "1"]
    assert cli.main(args) == 0
    assert "validation loss" in capsys.readouterr().out
    s = energy.tnn.load(out)
    assert s.members == 2 and tuple(s.names) == ("ws", "p")
    assert cli.main(args) == 1  # exists
    assert "exists" in capsys.readouterr().err
    assert cli.main(["info", str(out)]) == 0
    assert ": surrogate" in capsys.readouterr().out
