# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Surrogates: a tnn energy in 8-D, with uncertainty far from the data
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/groundstate/blob/main/examples/notebooks/surrogate.ipynb)
#
# `energy.tnn` learns an energy where a grid cannot go, and says where it does not know.
#
# Set `GROUNDSTATE_SMOKE=1` for small sizes (CI). On a fresh Colab runtime the first cell
# installs the project from `REPO_URL`.

# %%
# ruff: noqa: E402 (a notebook imports where a cell needs it)
# The project's repository: set this to its address if you opened the notebook elsewhere.
REPO_URL = "https://github.com/OWNER/groundstate"

import importlib.util
import os
import subprocess
import sys

SMOKE = os.environ.get("GROUNDSTATE_SMOKE") == "1"  # small sizes (CI)
if importlib.util.find_spec("energy") is None:
    # A fresh runtime (Colab): install the project. Its requirements only put floors on jax and
    # jaxlib, so pip keeps the accelerator build the runtime ships and never replaces it.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", f"groundstate @ git+{REPO_URL}"],
        check=True,
    )

import jax

print("jax", jax.__version__, "on", jax.default_backend(), jax.devices())
if jax.default_backend() == "cpu":
    print(
        "No accelerator is attached: everything below runs on the CPU. In Colab, pick a GPU or "
        "TPU under Runtime > Change runtime type."
    )

# %% [markdown]
# ## Beyond the grid: an energy in 8 dimensions
#
# A grid of 32 nodes per axis in 8-D would hold 2^40 values. `energy.tnn.fit_samples` learns a
# smooth, noise-conditional energy straight from samples instead (an ensemble of small
# networks), usable like a map: `s(x)`, `jax.grad`, `langevin.sample`, and `s.uncertainty(x)`,
# the spread of the ensemble, which grows where there was no data.

# %%
import matplotlib.pyplot as plt
import numpy as np

import energy.tnn as tnn
import langevin

d = 8
rng = np.random.default_rng(0)
means = np.zeros((3, d))
means[:, :3] = [[-4.0, 0.0, 0.0], [4.0, 0.0, 2.0], [0.0, 5.0, -2.0]]
weights = np.array([0.5, 0.3, 0.2])
n = 2000 if SMOKE else 20000
comp = rng.choice(3, size=n, p=weights)
x = means[comp] + rng.normal(size=(n, d))
s = tnn.fit_samples(
    x,
    jax.random.key(0),
    members=2 if SMOKE else 4,
    steps=100 if SMOKE else 4000,
    progress=False,
)
print(s)

# %% [markdown]
# ## Uncertainty far from the data
#
# Along a line from the centre of the first mode out to 12 standard deviations away: the
# energy keeps rising, and the ensemble's spread grows once the line leaves the data.

# %%
t = np.linspace(0.0, 12.0, 49)
direction = np.ones(d) / np.sqrt(d)
line = means[0] + t[:, None] * direction
e = np.asarray(s(line))
u = np.asarray(s.uncertainty(line))
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].plot(t, e)
axes[0].set(xlabel="distance from mode 0 (sd)", ylabel="energy", title="surrogate energy")
axes[1].plot(t, u)
axes[1].set(xlabel="distance from mode 0 (sd)", ylabel="ensemble spread", title="uncertainty")
plt.show()
near = np.asarray(s.uncertainty(x[:500])).mean()
far = np.asarray(s.uncertainty(means[0] + 10.0 * rng.normal(size=(500, d)))).mean()
print(f"mean uncertainty at the data {near:.3f}, 10 sd away {far:.3f} ({far / near:.1f}x)")

# %% [markdown]
# ## Sampling the surrogate
#
# Annealed Langevin over the surrogate's noise levels finds the modes and, at the full size,
# their weights (the smoke size used in CI trains too briefly for the weights).

# %%
res = langevin.sample(s, jax.random.key(1), n_chains=256 if SMOKE else 4096, progress=False)
pos = np.asarray(res.positions)
label = np.argmin(((pos[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
print("mode weights found:", np.bincount(label, minlength=3) / len(label), "true:", weights)
plt.scatter(x[:2000, 0], x[:2000, 1], s=2, alpha=0.3, label="data")
plt.scatter(pos[:, 0], pos[:, 1], s=2, alpha=0.3, label="chains")
plt.xlabel("x0")
plt.ylabel("x1")
plt.legend()
plt.show()
