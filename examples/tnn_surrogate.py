"""Neural energy surrogates: learn a map, then a 6-D energy straight from samples.

Run: python examples/tnn_surrogate.py  (about a minute on a laptop CPU)

1. A 2-D map of two operating regimes -> `energy.tnn.fit` -> the surrogate agrees with the map
   where the data is and is unsure (large ensemble spread) where nothing was recorded.
2. 6-D samples (too many variables for a fine grid) -> `energy.tnn.fit_samples` -> annealed
   Langevin on the surrogate recovers both regimes; their shares only roughly (0.41 for 0.35
   here): score matching is nearly blind to the relative weight of modes at its finest noise
   levels, which pulls shares toward equal (see docs/tnn.md, "Limitation").
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import energy  # noqa: E402
import langevin  # noqa: E402

rng = np.random.default_rng(0)

# ---- 1. a map and its surrogate
regime = rng.random(40_000) < 0.7
pressure = np.where(regime, rng.normal(4.0, 0.3, 40_000), rng.normal(6.0, 0.4, 40_000))
temp = np.where(regime, rng.normal(350.0, 8.0, 40_000), rng.normal(390.0, 6.0, 40_000))
m = energy.EnergyMap.from_samples(
    np.c_[pressure, temp],
    bins=40,
    bounds=[(2.0, 8.0), (300.0, 420.0)],
    names=["pressure", "temperature"],
    units=["bar", "K"],
)
s = energy.tnn.fit(m, jax.random.key(0), members=3, steps=800, progress=False)
near = np.c_[pressure[:1000], temp[:1000]]
far = np.array([[2.5, 410.0], [7.5, 310.0]])
print(f"surrogate vs map at the data: corr = {np.corrcoef(m(near), s(near))[0, 1]:.4f}")
print(
    f"uncertainty near the data {float(s.uncertainty(near).mean()):.3f}, far from it "
    f"{np.round(np.asarray(s.uncertainty(far)), 3)}"
)

with tempfile.TemporaryDirectory() as tmp:
    s.save(f"{tmp}/boiler_tnn")
    s2 = energy.tnn.load(f"{tmp}/boiler_tnn")
    assert np.array_equal(np.asarray(s2(near)), np.asarray(s(near)))
    print("saved and restored:", s2)

# ---- 2. straight from 6-D samples
d = 6
centres = np.zeros((2, d))
centres[1, :2] = [7.0, 4.0]  # about 8 standard deviations apart (see docs/tnn.md)
label = (rng.random(5000) < 0.35).astype(int)
x = centres[label] + rng.normal(size=(5000, d))
s6 = energy.tnn.fit_samples(x, jax.random.key(1), members=2, width=64, steps=4000, progress=False)
res = langevin.sample(s6, jax.random.key(2), n_chains=1000, progress=False)
share = np.mean(
    np.linalg.norm(np.asarray(res.positions) - centres[1], axis=1)
    < np.linalg.norm(np.asarray(res.positions) - centres[0], axis=1)
)
print(f"share of chains in the second regime: {share:.3f} (data: 0.35)")
