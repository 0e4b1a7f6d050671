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
# `energy.tnn` learns an energy where a grid cannot go, and says where it does not know.
#
# Set `GROUNDSTATE_SMOKE=1` for small sizes (CI). Inside a checkout the first cell uses it;
# on Colab (the README's badges open it there) set `REPO_URL` in that cell, or the environment
# variable `GROUNDSTATE_REPO`, to the project's git repository: it is cloned and installed.

# %%
# ruff: noqa: E402 (a notebook imports where a cell needs it)
# Where the project comes from: the checkout this notebook sits in; elsewhere (Colab) the git
# repository named in this field or in the environment variable GROUNDSTATE_REPO, cloned here.
REPO_URL = ""  # @param {type:"string"}

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

SMOKE = os.environ.get("GROUNDSTATE_SMOKE") == "1"  # small sizes (CI)
REPO_URL = REPO_URL.strip() or os.environ.get("GROUNDSTATE_REPO", "").strip()


def is_checkout(p: Path) -> bool:
    toml = p / "pyproject.toml"
    return toml.is_file() and 'name = "groundstate"' in toml.read_text()


here = Path.cwd().resolve()
CHECKOUT = next((p for p in (here, *here.parents) if is_checkout(p)), None)
if CHECKOUT is None and REPO_URL:
    CHECKOUT = here / "groundstate"  # cloned once; a later run of this cell reuses it
    if not CHECKOUT.exists():
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, str(CHECKOUT)], check=True)
    if not is_checkout(CHECKOUT):
        raise RuntimeError(f"{CHECKOUT} is not a groundstate checkout (REPO_URL = {REPO_URL!r})")
if importlib.util.find_spec("energy") is None:
    if CHECKOUT is None:
        raise RuntimeError(
            "groundstate is not installed and this notebook is not inside a checkout: set REPO_URL "
            "at the top of this cell (a form field in Colab) or the environment variable "
            "GROUNDSTATE_REPO to the project's git repository, then run this cell again."
        )
    # Install the checkout. Its requirements only put floors on jax and jaxlib, so pip keeps the
    # accelerator build the runtime ships and never replaces it.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", str(CHECKOUT)], check=True)
    importlib.invalidate_caches()
print("groundstate checkout:", CHECKOUT)

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
