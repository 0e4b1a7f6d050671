"""A real data set: La Haute Borne wind-farm SCADA (ENGIE open data, Etalab Open Licence 2.0).

Turbine R80711 (Senvion MM82, rated 2050 kW), 10-minute averages of 2014, shipped in
examples/data/la_haute_borne.zip. The basin of its (wind speed, power) map must follow the
turbine's power curve.
"""

from __future__ import annotations

import csv
import os
import zipfile

import numpy as np
import pytest

import ingest

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "data", "la_haute_borne.zip")
RATED_KW = 2050.0


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("lhb")
    with zipfile.ZipFile(DATA) as z:
        z.extractall(root)
    return root


def _raw_curve(root, ws_nodes):
    """Quartiles of power per wind-speed bin, straight from the CSV (the independent oracle)."""
    path = next(p for p in root.iterdir() if p.name.startswith("la-haute-borne-data"))
    ws, p = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["Ws_avg"] and row["P_avg"]:
                ws.append(float(row["Ws_avg"]))
                p.append(float(row["P_avg"]))
    ws, p = np.array(ws), np.array(p)
    dx = ws_nodes[1] - ws_nodes[0]
    near = [p[np.abs(ws - w) < dx / 2] for w in ws_nodes]
    q = [np.percentile(v, [25, 75]) if v.size else [np.nan, np.nan] for v in near]
    return np.array(q), len(ws)


def test_wind_map_basin_follows_the_power_curve(lake):
    m, report = ingest.ingest(
        lake,
        ["wind_speed:m/s", "power:kW"],
        profile="wind",
        bins=(51, 48),
        workers=1,
        progress=False,
    )
    assert m.names == ("wind_speed", "power") and m.units == ("m/s", "kW")
    assert len(report.files_read) == 1 and len(report.files_skipped) == 2
    ws_nodes, p_nodes = (
        np.linspace(lo, hi, n) for (lo, hi), n in zip(m.bounds, m.shape, strict=True)
    )
    curve, n_rows = _raw_curve(lake, ws_nodes)
    assert report.rows_used + report.rows_dropped.get("outside bounds", 0) == n_rows
    e = np.asarray(m.values)
    basin = p_nodes[np.argmin(e, axis=1)]  # the most visited power at each wind speed
    dp = p_nodes[1] - p_nodes[0]
    rising = (ws_nodes >= 4.0) & (ws_nodes <= 11.0)
    # Between cut-in and rated wind speed the basin rises with the wind and stays inside the
    # data's interquartile band of power at that wind speed (give or take one power cell).
    assert np.all(np.diff(basin[rising]) > 0)
    assert np.all(basin[rising] >= curve[rising, 0] - dp)
    assert np.all(basin[rising] <= curve[rising, 1] + dp)
    assert np.all(basin[ws_nodes <= 2.0] < 0.05 * RATED_KW)  # below cut-in: idle
    full = (ws_nodes >= 14.0) & np.isfinite(curve[:, 0])
    assert np.all(basin[full] > 0.9 * RATED_KW)  # above rated wind speed: at rated power
