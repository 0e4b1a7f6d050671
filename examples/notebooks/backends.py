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
# # Backends: the benchmark on this runtime (CPU, GPU, TPU)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/groundstate/blob/main/examples/notebooks/backends.ipynb)
#
# Runs `python -m bench --quick` on every backend this runtime has and shows the merged table.
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
# ## The benchmark on whatever this runtime has
#
# `python -m bench` lives in the repository (not in the installed package): it runs from a
# checkout, cloned here when this notebook is not already inside one. It picks the platform
# before jax is imported, times ours and the peers interleaved, and writes one JSON per run.
# `--quick` takes a couple of minutes on a 2-core CPU; on a GPU or TPU runtime run it once per
# backend (`--backend cpu`, then `--backend gpu` or `tpu`) and merge with `report`.

# %%
from pathlib import Path

here = Path.cwd().resolve()
root = next((p for p in [here, *here.parents] if (p / "bench" / "__main__.py").is_file()), None)
if root is None:
    root = Path("groundstate-checkout").resolve()
    if not (root / "bench").is_dir():
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, str(root)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "blackjax", "scikit-learn", "numba"],
        check=False,  # peers are optional: a missing one is a "skipped" row
    )
print("benchmarks from", root)

# %%
import tempfile

out = Path(tempfile.mkdtemp(prefix="groundstate-bench-"))
size = ["--smoke", "--only", "interp,maps"] if SMOKE else ["--quick"]
backends = ["cpu"] + ([jax.default_backend()] if jax.default_backend() != "cpu" else [])
for b in backends:
    cmd = [sys.executable, "-m", "bench", *size, "--backend", b, "--out", str(out)]
    print("$", " ".join(cmd[1:]))
    p = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    print(p.stdout[-6000:])
    if p.returncode != 0:
        print(p.stderr[-3000:])

# %% [markdown]
# ## One table for all backends
#
# `python -m bench report` merges the runs: rates as median [min-max] of the interleaved
# rounds, ratios of ours over each peer (the A/A line is the noise floor), the roofline of a
# chain-step, and a log-log plot of chain-steps/s against chains when the chains suite ran.

# %%
from IPython.display import Image, Markdown, display

p = subprocess.run(
    [sys.executable, "-m", "bench", "report", "--in", str(out), "-o", str(out / "BENCHMARKS.md")],
    cwd=root,
    capture_output=True,
    text=True,
)
print(p.stdout, p.stderr)
if (out / "BENCHMARKS.md").is_file():
    display(Markdown((out / "BENCHMARKS.md").read_text()))
if (out / "BENCHMARKS-chains.png").is_file():
    display(Image(str(out / "BENCHMARKS-chains.png")))
