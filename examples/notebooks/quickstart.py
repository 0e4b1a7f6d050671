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
# # groundstate quickstart: lake -> map -> shield -> chains
#
# The whole workflow on the wind-turbine records shipped with the package: a folder of
# records becomes an energy map, the map becomes a shield, and Langevin chains sample it.
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
# ## The data: a small lake of wind-turbine records
#
# The package ships an extract of ENGIE's La Haute Borne open data (turbine R80711, 2014,
# 10-minute SCADA records, Etalab Open Licence 2.0). Three quarters of the records (random rows)
# become the "lake" the map is built from; the other quarter is held out for the shield.

# %%
import importlib.resources
import tempfile
import zipfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import energy
import ingest
import langevin

ZIP = Path(str(importlib.resources.files("groundstate") / "data" / "la_haute_borne.zip"))
CSV = "la-haute-borne-data-2014-R80711.csv"
with zipfile.ZipFile(ZIP) as z:
    records = pd.read_csv(z.open(CSV))
order = np.random.default_rng(0).permutation(len(records))
n_lake = 3 * len(records) // 4
lake = Path(tempfile.mkdtemp(prefix="groundstate-lake-"))
records.iloc[np.sort(order[:n_lake])].to_csv(lake / CSV, index=False)
held = records.iloc[order[n_lake:]][["Ws_avg", "P_avg"]].to_numpy(dtype=float)
held = held[np.all(np.isfinite(held), axis=1)]
print(f"{len(records)} records: {n_lake} in the lake {lake}, {len(held)} held out")

# %% [markdown]
# ## 1. ingest: the lake becomes an energy map
#
# `ingest.ingest` crawls the folder, finds the variables by name (the `wind` profile knows
# `Ws_avg` and `P_avg`), converts units, drops rows it cannot use (and says why), and counts the
# rest into a histogram whose smoothed `-log` density is the map.

# %%
m, report = ingest.ingest(
    lake,
    ["wind_speed:m/s", "power:kW"],
    profile="wind",
    bins=(51, 48),
    progress=False,
    workers=1,
)
print(f"{report.rows_used} rows used; dropped: {report.rows_dropped}")
print(m)

# %% [markdown]
# ## 2. energy: the basin of the map is the power curve the turbine proved

# %%
ws, pw = m.grid
E = np.asarray(m.values)
fig, ax = plt.subplots(figsize=(7, 4.5))
im = ax.pcolormesh(ws, pw, E.T, shading="auto", cmap="viridis_r", vmax=np.percentile(E, 90))
ax.plot(ws, pw[np.argmin(E, axis=1)], "w--", lw=1, label="lowest energy per wind speed")
ax.scatter(held[:2000, 0], held[:2000, 1], s=1, c="k", alpha=0.3, label="held-out records")
ax.set(xlabel="wind speed [m/s]", ylabel="power [kW]", title="energy map E = -log p")
fig.colorbar(im, ax=ax, label="E")
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## 3. shield: block what the data has not proven
#
# Calibrated on half of the held-out records at `alpha = 0.01`: a new normal state is blocked
# with probability at most 1 %. NaN inputs, states outside the map and states above the
# threshold are blocked, each with its reason.

# %%
cal, test = held[: len(held) // 2], held[len(held) // 2 :]
sh = energy.Shield.calibrate(m, cal, alpha=0.01)
print(
    f"threshold E = {float(sh.threshold):.2f}; held-out records allowed: "
    f"{np.mean(np.asarray(sh(test).allow)):.3%}"
)
probes = np.array([[9.0, 1000.0], [3.0, 1800.0], [12.0, 0.0], [9.0, np.nan], [40.0, 1000.0]])
d = sh(probes)
for x, a, r, e in zip(
    probes, np.asarray(d.allow), np.asarray(d.reason), np.asarray(d.energy), strict=True
):
    print(f"{str(x):>20}  E = {e:7.2f}  {'allow' if a else 'BLOCK: ' + energy.Reason(int(r)).name}")

# %% [markdown]
# ## 4. langevin: chains sample exp(-E)
#
# Annealed Langevin chains over the map's noise pyramid; then a conditional question: at
# 9 m/s, which power outputs has the turbine proven? (chains with the wind speed fixed, filtered
# through the shield).

# %%
n_chains = 512 if SMOKE else 8192
res = langevin.sample(m, jax.random.key(0), n_chains=n_chains, progress=False)
x = np.asarray(res.positions)
cond = langevin.sample(
    m, jax.random.key(1), n_chains=n_chains // 4, fixed={"wind_speed": 9.0}, progress=False
)
allowed, _ = sh.filter(cond.positions)
print(
    f"{len(allowed)}/{n_chains // 4} conditional samples pass the shield; power 5/50/95 %: "
    f"{np.percentile(allowed[:, 1], [5, 50, 95]).round()} kW"
)

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
axes[0].set(xlabel="wind speed [m/s]", ylabel="power [kW]", title=f"{n_chains} chains")
axes[1].hist(allowed[:, 1], bins=30)
axes[1].set(xlabel="power [kW]", title="proven power at 9 m/s (shield-allowed)")
plt.show()
