"""Benchmark: per-step cost of the ensemble path (plain functions) before and after blocked draws.

"before" is ``langevin/_ensemble_run.py`` at commit 942f97a (the normals and uniforms drawn
inside each step), loaded from git into a temporary module; "after" is the working tree's
(draws for blocks of steps, `langevin._draw_blocks.scan_blocked`). Both run the sampling
phase only (no warm-up) of 2000 chains on a cheap quadratic target, MALA and ULA, d = 4 and
32, in paired rounds whose order alternates, one process. The figure is CPU time of the
process (all threads) per step: on a shared machine under heavy load wall time mostly measures
the scheduler (ratios from 0.1 to 4.6 in one run), CPU time the work.

    python bench/ensemble_draws.py        # writes bench/results/ensemble_draws.json
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from langevin import _ensemble_run as new  # noqa: E402

BEFORE = "942f97a"  # the last commit with draws made inside each step


def _before():
    src = subprocess.run(
        ["git", "show", f"{BEFORE}:langevin/_ensemble_run.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    src = src.replace(
        "from . import _ensemble, _kernels", "from langevin import _ensemble, _kernels"
    )
    path = Path(tempfile.mkdtemp()) / "ensemble_run_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("ensemble_run_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def energy(x):
    return 0.5 * jnp.sum(x**2 * jnp.arange(1, x.size + 1)) + 0.1 * jnp.sum(jnp.sin(x))


def main(n=2000, steps=200, rounds=9) -> dict:
    old = _before()
    out = {"load_start": os.getloadavg(), "n_chains": n, "steps": steps, "rounds": rounds}
    out["unit"] = "CPU ms per step (process time, all threads); median [min, max]"
    for d, method in [(4, "mala"), (4, "ula"), (32, "mala"), (32, "ula")]:
        x0 = jax.random.normal(jax.random.key(1), (n, d))
        run = {
            "before": lambda k, m=method, x0=x0: old.run(
                energy, k, x0, method=m, n_warmup=0, n_steps=steps
            ),
            "after": lambda k, m=method, x0=x0: new.run(
                energy, k, x0, method=m, n_warmup=0, n_steps=steps
            ),
        }
        for f in run.values():
            jax.block_until_ready(f(jax.random.key(0)))  # compile
        t = {"before": [], "after": []}
        for r in range(rounds):
            for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
                t0 = time.process_time()
                jax.block_until_ready(run[name](jax.random.key(r + 1)))
                t[name].append((time.process_time() - t0) / steps * 1e3)
        ratio = np.asarray(t["before"]) / np.asarray(t["after"])
        row = {k: [float(np.median(v)), float(np.min(v)), float(np.max(v))] for k, v in t.items()}
        row["before_over_after"] = [float(np.median(ratio)), float(ratio.min()), float(ratio.max())]
        out[f"d{d}_{method}"] = row
        print(
            d,
            method,
            {k: f"{v[0]:.3f} [{v[1]:.3f}-{v[2]:.3f}]" for k, v in row.items()},
            flush=True,
        )
    out["load_end"] = os.getloadavg()
    path = ROOT / "bench" / "results" / "ensemble_draws.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
