"""The shield on real data: the La Haute Borne extract (turbine R80711, 2014, 10-minute SCADA).

States are (wind speed Ws_avg in m/s, active power P_avg in kW). The 52 554 records are split
at random (exchangeable) into halves: the map is built from every finite record of the first
half, faults included (the data is what it is); the shield is calibrated on the normal records
of a quarter and tested on the last quarter. Faults / curtailment are records with power far
below the power curve at high wind: Ws >= 7 m/s and P < 0.5 x the median power of its 0.5 m/s
wind bin (the curve from the training half only).
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

import energy
from energy import Reason

ZIP = Path(__file__).resolve().parents[2] / "examples" / "data" / "la_haute_borne.zip"
MEMBER = "la-haute-borne-data-2014-R80711.csv"


@pytest.fixture(scope="module")
def lhb():
    """(train, calibration, test) arrays of (Ws_avg, P_avg) and the fault labeller."""
    with zipfile.ZipFile(ZIP) as z:
        raw = np.genfromtxt(
            io.BytesIO(z.read(MEMBER)), delimiter=",", names=True, dtype=None, encoding="utf-8"
        )
    x = np.stack([raw["Ws_avg"].astype(float), raw["P_avg"].astype(float)], axis=-1)
    x = x[np.random.default_rng(0).permutation(len(x))]
    n = len(x)
    train, cal, test = x[: n // 2], x[n // 2 : 3 * n // 4], x[3 * n // 4 :]
    ok = np.all(np.isfinite(train), axis=-1)
    edges = np.arange(0.0, 26.0, 0.5)
    which = np.digitize(train[ok, 0], edges)
    # Median power per 0.5 m/s wind bin with at least 10 records: the empirical power curve.
    med = np.array(
        [
            np.median(train[ok][which == i, 1]) if np.sum(which == i) >= 10 else np.nan
            for i in range(1, len(edges))
        ]
    )
    has = np.isfinite(med)

    def is_fault(s):
        finite = np.all(np.isfinite(s), axis=-1)
        w = np.where(finite, s[:, 0], 0.0)
        curve = np.interp(w, (edges[:-1] + 0.25)[has], med[has])
        return finite & (w >= 7.0) & (s[:, 1] < 0.5 * curve)

    return train[ok], cal, test, is_fault


def test_lhb_faults_blocked_normal_pass(lhb):
    train, cal, test, is_fault = lhb
    m = energy.EnergyMap.from_samples(
        train, bins=64, names=["Ws_avg", "P_avg"], units=["m/s", "kW"]
    )
    finite_cal = np.all(np.isfinite(cal), axis=-1)
    finite_test = np.all(np.isfinite(test), axis=-1)
    normal_cal = cal[finite_cal & ~is_fault(cal)]
    normal_test = test[finite_test & ~is_fault(test)]
    alpha = 0.05
    sh = energy.Shield.calibrate(m, normal_cal, alpha=alpha)
    passed = float(np.mean(np.asarray(sh(normal_test).allow)))
    # Band: the rate given the calibration draw (Beta, sd ~ sqrt(a(1-a)/n_cal)) plus the
    # binomial error of the test states; 4 standard deviations.
    sd = math.sqrt(alpha * (1 - alpha) * (1 / len(normal_cal) + 1 / len(normal_test)))
    assert abs(passed - (1 - alpha)) < 4 * sd, (passed, sd)
    # Faults and curtailment of both held-out quarters (never in the map): mostly blocked.
    faults = np.concatenate([cal[is_fault(cal)], test[is_fault(test)]])
    assert len(faults) >= 30  # 35 with this split
    d = sh(faults)
    blocked = 1.0 - float(np.mean(np.asarray(d.allow)))
    assert blocked >= 0.9, blocked
    assert set(np.asarray(d.reason)[~np.asarray(d.allow)].tolist()) <= {
        Reason.ABOVE_THRESHOLD,
        Reason.OUT_OF_BOUNDS,
    }
    # Faults look anomalous: their conformal p-values are small.
    assert float(np.median(np.asarray(d.p_value))) < alpha
    # Records with a missing value are blocked as not finite.
    missing = test[~finite_test]
    assert len(missing) > 0
    dm = sh(missing)
    assert not np.asarray(dm.allow).any()
    assert np.all(np.asarray(dm.reason) == Reason.NOT_FINITE)
