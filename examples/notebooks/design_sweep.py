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
# # Design sweep: shield-filtered designs on real turbine data
#
# Sweep objective weights and fixed wind speeds with `langevin.sweep`, rank the designs,
# keep those the shield allows, and plot the frontier.
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
# ## The question
#
# On the shipped La Haute Borne records (turbine R80711, 2014): **at a given wind speed, which
# blade pitch gives the most power among operating points the turbine has actually proven?**
#
# A 3-D map over (wind speed, pitch, power) is the envelope of proven states. Each *setting*
# of the sweep fixes the wind speed and weights an objective, `-power`; `langevin.sweep` runs
# all settings in one compiled program, ranks each setting's designs by
# `E + weight * objective`, and a shield (calibrated on held-out records) flags designs outside
# the envelope. Small weights stay near the most typical states; large ones push toward high
# power until the shield says the data no longer backs the design.

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
held = records.iloc[order[n_lake:]][["Ws_avg", "Ba_avg", "P_avg"]].to_numpy(dtype=float)
held = held[np.all(np.isfinite(held), axis=1)]

m, report = ingest.ingest(
    lake,
    ["wind_speed:m/s", "pitch:degree", "power:kW"],
    profile="wind",
    bins=(26, 24, 32) if SMOKE else (41, 40, 48),
    progress=False,
    workers=1,
)
print(m)
print(f"{report.rows_used} rows used; dropped: {report.rows_dropped}")
sh = energy.Shield.calibrate(m, held, alpha=0.05)
print(f"shield: threshold E = {float(sh.threshold):.2f} from {len(held)} held-out records")

# %% [markdown]
# ## The sweep: objective weights x fixed wind speeds

# %%
winds = np.array([5.0, 7.0, 9.0, 11.0]) if SMOKE else np.arange(4.0, 13.5, 1.0)
weights = np.array([0.0, 0.01]) if SMOKE else np.array([0.0, 0.002, 0.005, 0.01, 0.02])
W, V = np.meshgrid(weights, winds, indexing="ij")
fixed = np.full((W.size, 3), np.nan)
fixed[:, 0] = V.ravel()  # wind speed fixed per setting; pitch and power free
settings = {"weight": W.ravel(), "fixed": fixed}


def objective(x):
    return -x[2]  # maximise power (kW)


n_chains = 128 if SMOKE else 1024
sw = langevin.sweep(
    m,
    jax.random.key(0),
    settings,
    n_chains=n_chains,
    n_best=8,
    objective=objective,
    shield=sh,
    progress=False,
)
print(
    f"{len(W.ravel())} settings x {n_chains} chains; designs kept per setting: "
    f"{sw.positions.shape[1]}"
)

# %% [markdown]
# ## Ranked designs
#
# The best valid (shield-allowed) design of each setting, and how many of its final chain
# states the shield allowed.

# %%
rows = []
for b in range(len(W.ravel())):
    ok = np.flatnonzero(sw.valid[b])
    best = ok[0] if ok.size else None
    rows.append(
        {
            "wind [m/s]": fixed[b, 0],
            "weight": settings["weight"][b],
            "pitch [deg]": sw.positions[b, best, 1] if best is not None else np.nan,
            "power [kW]": sw.positions[b, best, 2] if best is not None else np.nan,
            "E": sw.energies[b, best] if best is not None else np.nan,
            "allowed chains": int(sw.n_allowed[b]),
        }
    )
table = pd.DataFrame(rows).sort_values(["wind [m/s]", "weight"])
print(table.round(2).to_string(index=False))

# %% [markdown]
# ## The frontier
#
# For each wind speed, the most power among allowed designs (any weight): the proven frontier,
# against the median power of the records at that wind speed. On the right, the trade-off the
# weight buys: power gained against energy (how unusual the design is for the data).

# %%
front = table.groupby("wind [m/s]")["power [kW]"].max()
ws_all = records["Ws_avg"].to_numpy()
p_all = records["P_avg"].to_numpy()
med = [np.nanmedian(p_all[np.abs(ws_all - v) < 0.5]) for v in front.index]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].plot(front.index, front.values, "o-", label="best allowed design")
axes[0].plot(front.index, med, "s--", label="median of records")
axes[0].set(xlabel="wind speed [m/s]", ylabel="power [kW]", title="proven power frontier")
axes[0].legend()
for v, grp in table.groupby("wind [m/s]"):
    axes[1].plot(grp["E"], grp["power [kW]"], "o-", label=f"{v:g} m/s")
axes[1].set(xlabel="energy E of the design", ylabel="power [kW]", title="weight sweep")
axes[1].legend(fontsize=7)
plt.show()
