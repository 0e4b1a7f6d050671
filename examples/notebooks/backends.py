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
# Runs `python -m bench --quick` on every backend this runtime has and shows the merged table.
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
# ## The benchmark on whatever this runtime has
#
# `python -m bench` lives in the repository (not in the installed package): it runs from the
# checkout the first cell found or cloned. It picks the platform before jax is imported, times
# ours and the peers interleaved, and writes one JSON per run. `--quick` takes a couple of
# minutes on a 2-core CPU; on a GPU or TPU runtime it runs once per backend (`--backend cpu`,
# then `--backend gpu` or `tpu`) and `report` merges the runs.

# %%
if CHECKOUT is None:
    raise RuntimeError(
        "the benchmarks run from a checkout: set REPO_URL in the first cell (or the environment "
        "variable GROUNDSTATE_REPO) to the project's git repository and run it again."
    )
root = CHECKOUT
if importlib.util.find_spec("blackjax") is None:  # a fresh runtime: the peers (bench extra)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", f"{root}[bench]"],
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
