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
# # The shield: calibration, the alpha guarantee, reasons, transitions
#
# What `energy.Shield` promises, checked empirically over many calibration draws.
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
# ## A map and a pool of held-out normal states
#
# The (wind speed, power) map of turbine R80711 from three quarters of the shipped records;
# the remaining quarter is a pool of normal states the map never saw.

# %%
import importlib.resources
import tempfile
import zipfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

import energy
import ingest

ZIP = Path(str(importlib.resources.files("groundstate") / "data" / "la_haute_borne.zip"))
CSV = "la-haute-borne-data-2014-R80711.csv"
with zipfile.ZipFile(ZIP) as z:
    records = pd.read_csv(z.open(CSV))
order = np.random.default_rng(0).permutation(len(records))
n_lake = 3 * len(records) // 4
lake = Path(tempfile.mkdtemp(prefix="groundstate-lake-"))
records.iloc[np.sort(order[:n_lake])].to_csv(lake / CSV, index=False)
pool = records.iloc[order[n_lake:]][["Ws_avg", "P_avg"]].to_numpy(dtype=float)
pool = pool[np.all(np.isfinite(pool), axis=1)]
m, _ = ingest.ingest(
    lake, ["wind_speed:m/s", "power:kW"], profile="wind", bins=(51, 48), progress=False, workers=1
)
print(m, f"\npool of {len(pool)} held-out normal states")

# %% [markdown]
# ## The alpha guarantee, checked over many calibration draws
#
# `Shield.calibrate(m, states, alpha)` sets the threshold at the `k`-th smallest held-out
# energy, `k = ceil((n + 1)(1 - alpha))`. For a new state exchangeable with the calibration
# states, P(blocked) <= alpha **on average over calibration draws**; for one draw the blocked
# fraction is random, Beta(n + 1 - k, k). Counting blocks among `t` fresh test states then
# follows a Beta-binomial(t, n + 1 - k, k). We draw many calibration/test splits of the pool
# (exchangeable by construction), and compare.

# %%
alpha, n_cal, n_test = 0.05, 200, 1000
draws = 40 if SMOKE else 400
k = int(np.ceil((n_cal + 1) * (1 - alpha)))
rng = np.random.default_rng(1)
blocked = np.empty(draws, int)
for i in range(draws):
    perm = rng.permutation(len(pool))
    sh_i = energy.Shield.calibrate(m, pool[perm[:n_cal]], alpha=alpha)
    blocked[i] = int(np.sum(~np.asarray(sh_i.allow(pool[perm[n_cal : n_cal + n_test]]))))
bb = stats.betabinom(n_test, n_cal + 1 - k, k)
lo, hi = bb.ppf(0.025), bb.ppf(0.975)
rate = blocked / n_test
se = rate.std(ddof=1) / np.sqrt(draws)
print(
    f"mean blocked fraction {rate.mean():.4f} +- {se:.4f} (alpha = {alpha}, "
    f"exact expectation 1 - k/(n+1) = {1 - k / (n_cal + 1):.4f})"
)
verdict = "within" if rate.mean() <= alpha + 3 * se else "ABOVE"
print(f"{verdict} the guarantee: mean <= alpha + 3 standard errors ({alpha + 3 * se:.4f})")
print(
    f"draws inside the central 95% Beta-binomial band [{lo:.0f}, {hi:.0f}]: "
    f"{np.mean((blocked >= lo) & (blocked <= hi)):.1%}"
)

fig, ax = plt.subplots(figsize=(7, 4))
ax.hist(
    blocked,
    bins=np.arange(blocked.min(), blocked.max() + 2) - 0.5,
    density=True,
    alpha=0.6,
    label=f"{draws} calibration draws",
)
xs = np.arange(int(bb.ppf(0.001)), int(bb.ppf(0.999)) + 1)
ax.plot(xs, bb.pmf(xs), "k-", label="Beta-binomial")
ax.axvspan(lo, hi, color="grey", alpha=0.15, label="central 95% band")
ax.axvline(alpha * n_test, color="r", ls="--", label="alpha x test states")
ax.set(xlabel=f"blocked among {n_test} fresh normal states", ylabel="density")
ax.legend()
plt.show()

# %% [markdown]
# ## Reasons
#
# Every decision carries a reason: `ALLOWED`, `ABOVE_THRESHOLD`, `OUT_OF_BOUNDS`, `NOT_FINITE`
# (fail closed), and a conformal p-value.

# %%
sh = energy.Shield.calibrate(m, pool[:2000], alpha=0.01)
probes = np.array(
    [[9.0, 1000.0], [3.0, 1800.0], [12.0, 0.0], [9.0, np.nan], [40.0, 1000.0], [np.inf, 0.0]]
)
d = sh(probes)
print(
    pd.DataFrame(
        {
            "wind [m/s]": probes[:, 0],
            "power [kW]": probes[:, 1],
            "E": np.asarray(d.energy).round(2),
            "allow": np.asarray(d.allow),
            "reason": [energy.Reason(int(r)).name for r in np.asarray(d.reason)],
            "p-value": np.asarray(d.p_value).round(4),
        }
    ).to_string(index=False)
)
print(d.summary())

# %% [markdown]
# ## Transitions
#
# A per-state check says nothing about the path between two safe states. `sh.transition`
# checks points along the segment: raising power at 9 m/s stays on the curve, while a move
# from low wind and low power to high wind and high power can cross states the turbine never
# visited: the straight move from 4 m/s, 100 kW to 12 m/s, 2000 kW cuts the corner of the
# curve (around 6 m/s it asks for power the turbine never made at that wind).

# %%
x0 = np.array([[9.0, 900.0], [4.0, 100.0]])
x1 = np.array([[9.0, 1300.0], [12.0, 2000.0]])
t = sh.transition(x0, x1, n_points=65)
for a, b, ok, r in zip(x0, x1, np.asarray(t.allow), np.asarray(t.reason), strict=True):
    print(f"{a} -> {b}: {'allowed' if ok else 'BLOCKED (' + energy.Reason(int(r)).name + ')'}")
