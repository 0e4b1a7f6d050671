"""Benchmark energy.tnn: training time to a target error, evaluation speed, high-D mode quality.

1. Maps (2-D, 4-D): `energy.tnn.fit` and the time its validation error (MSE of the normalised
   energy, about 1 - R^2) first reaches a target, from the loss log; correlation with the map
   on held-out data.
2. Energy + gradient evaluations per second (a jitted, vmapped value_and_grad over a batch) of
   the surrogate against the map itself, on each backend present.
3. Samples (8-D, 16-D Gaussian mixtures): `energy.tnn.fit_samples` then annealed Langevin
   (`langevin.sample`, defaults) against a scikit-learn GaussianMixture fitted to the same
   samples: recovered mode weights and centres; held-out log-likelihood for the mixture (the
   surrogate's energy is unnormalised, so only the mixture and the truth have one).

Usage: python bench/tnn.py [--full]   (default sizes are reduced to run in a few minutes on a
laptop CPU; timings on a shared machine are noisy: compare ratios within one run).
Writes a table to stdout and bench/results/tnn.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout: the packages beside bench/

import energy  # noqa: E402
import energy.tnn as tnn  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tnn.json"
TARGET_VAL = 0.01  # normalised validation MSE (~ 1 - R^2): correlation about 0.995
WEIGHTS = np.array([0.5, 0.3, 0.2])


def _map_case(d: int, full: bool):
    """A two-blob map in d dimensions and a sampler of held-out data."""
    rng = np.random.default_rng(d)
    mu = np.zeros((2, d))
    mu[0, 0], mu[1, 0], mu[1, 1 % d] = -1.5, 1.5, 1.0
    sd = np.linspace(0.4, 0.7, d)

    def draw(n):
        k = (rng.random(n) < 0.4).astype(int)
        return mu[k] + rng.normal(size=(n, d)) * sd

    bins = {2: 48, 4: 16 if full else 12}[d]
    m = energy.EnergyMap.from_samples(draw(200_000), bins=bins, bounds=[(-4.0, 4.0)] * d)
    return m, draw


def bench_maps(full: bool) -> list[dict]:
    """Training time to TARGET_VAL and accuracy on 2-D and 4-D maps."""
    rows = []
    for d in (2, 4):
        m, draw = _map_case(d, full)
        steps = 3000 if full else 1500
        t0 = time.perf_counter()
        s = tnn.fit(m, jax.random.key(0), steps=steps, members=4 if full else 3, progress=False)
        wall = time.perf_counter() - t0
        p = s.provenance
        log = np.asarray(p["loss_log"])
        hit = np.flatnonzero(log[:, 2] <= TARGET_VAL)
        per_step = p["train_seconds"] / p["steps_run"]
        x = draw(5000)
        em, es = np.asarray(m(x)), np.asarray(s(x))
        rows.append(
            {
                "ndim": d,
                "grid": list(m.shape),
                "members": s.members,
                "steps_run": p["steps_run"],
                "fit_seconds": wall,
                "seconds_to_target": float(log[hit[0], 0] * per_step) if hit.size else None,
                "steps_to_target": int(log[hit[0], 0]) if hit.size else None,
                "best_val": float(min(p["best_val_loss"])),
                "corr_at_data": float(np.corrcoef(em, es)[0, 1]),
                "rmse_over_std": float(np.sqrt(np.mean((em - es) ** 2)) / np.std(em)),
                "_pair": (m, s),
            }
        )
    return rows


def _rate(fn, x, repeats=5) -> float:
    """Evaluations per second of a jitted batched function (best of repeats, after warm-up)."""
    jax.block_until_ready(fn(x))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(x))
        best = min(best, time.perf_counter() - t0)
    return x.shape[0] / best


def bench_eval(pairs, n: int) -> list[dict]:
    """Energy + gradient evaluations per second: surrogate vs map, per backend."""
    rows = []
    backends = sorted({dev.platform for dev in jax.devices()} | {"cpu"})
    for backend in backends:
        device = jax.devices(backend)[0]
        for m, s in pairs:
            x = np.random.default_rng(0).uniform(-3, 3, size=(n, m.ndim)).astype(np.float32)
            xd = jax.device_put(x, device)
            md, sd = jax.device_put(m, device), jax.device_put(s, device)

            @jax.jit
            def run(target, x):
                return jax.vmap(jax.value_and_grad(lambda z: target(z)))(x)

            rate_map = _rate(lambda x, md=md: run(md, x), xd)
            rate_sur = _rate(lambda x, sd=sd: run(sd, x), xd)
            rows.append(
                {
                    "backend": backend,
                    "ndim": m.ndim,
                    "batch": n,
                    "map_evals_per_s": rate_map,
                    "surrogate_evals_per_s": rate_sur,
                    "surrogate_over_map": rate_sur / rate_map,
                }
            )
    return rows


def _mixture(d, n, seed):
    """Three unit-variance modes (weights 0.5/0.3/0.2), per-axis units 1..3."""
    rng = np.random.default_rng(seed)
    means = np.zeros((3, d))
    means[:, :3] = [[-4.0, 0.0, 0.0], [4.0, 0.0, 2.0], [0.0, 5.0, -2.0]]
    units = np.linspace(1.0, 3.0, d)
    comp = rng.choice(3, size=n, p=WEIGHTS)
    return (means[comp] + rng.normal(size=(n, d))) * units, means, units


def _true_loglik(x, means, units):
    """Mean log-likelihood of x under the true mixture."""
    from scipy.special import logsumexp

    z = x / units
    lp = [
        np.log(w) - 0.5 * ((z - mu) ** 2).sum(1) - 0.5 * len(mu) * np.log(2 * np.pi)
        for w, mu in zip(WEIGHTS, means, strict=True)
    ]
    return float(np.mean(logsumexp(np.stack(lp), axis=0) - np.log(units).sum()))


def bench_samples(full: bool) -> list[dict]:
    """Mode weights and centres: surrogate + annealed Langevin vs a GaussianMixture."""
    from sklearn.mixture import GaussianMixture

    import langevin

    sample = langevin.sample
    rows = []
    for d in (8, 16):
        x, means, units = _mixture(d, 6000, seed=d)
        held, _, _ = _mixture(d, 4000, seed=100 + d)
        t0 = time.perf_counter()
        kw = {} if full else {"members": 2}
        s = tnn.fit_samples(x, jax.random.key(0), progress=False, **kw)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        gm = GaussianMixture(3, covariance_type="full", random_state=0).fit(x)
        t_gm = time.perf_counter() - t0
        # GMM components matched to the true modes by nearest centre.
        g_lab = np.argmin(((gm.means_[:, None] / units - means[None]) ** 2).sum(-1), axis=1)
        g_w = np.bincount(g_lab, weights=gm.weights_, minlength=3)
        g_c = np.array(
            [np.abs(gm.means_[g_lab == k][0] / units - means[k]).max() for k in range(3)]
        )
        row = {
            "ndim": d,
            "n_samples": len(x),
            "fit_samples_seconds": t_fit,
            "gmm_seconds": t_gm,
            "gmm_weight_error": float(np.abs(g_w - WEIGHTS).max()),
            "gmm_centre_error": float(g_c.max()),
            "gmm_heldout_loglik": float(gm.score(held)),
            "true_heldout_loglik": _true_loglik(held, means, units),
        }
        t0 = time.perf_counter()
        pos = np.asarray(sample(s, jax.random.key(1), n_chains=2000, progress=False).positions)
        row["langevin_seconds"] = time.perf_counter() - t0
        z = pos / units
        lab = np.argmin(((z[:, None] - means[None]) ** 2).sum(-1), axis=1)
        frac = np.bincount(lab, minlength=3) / len(lab)
        cen = np.array([np.abs(z[lab == k].mean(0) - means[k]).max() for k in range(3)])
        row["tnn_weight_error"] = float(np.abs(frac - WEIGHTS).max())
        row["tnn_centre_error"] = float(cen.max())
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="full sizes (default: reduced)")
    args = ap.parse_args()
    maps = bench_maps(args.full)
    evals = bench_eval([r.pop("_pair") for r in maps], 65536 if args.full else 8192)
    samples = bench_samples(args.full)

    print(f"\nmaps (target normalised validation MSE {TARGET_VAL})")
    print(f"{'d':>3} {'grid':>14} {'K':>2} {'steps':>6} {'fit s':>7} {'s->tgt':>7} {'corr':>7}")
    for r in maps:
        tgt = "-" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.1f}"
        grid = "x".join(map(str, r["grid"]))
        print(
            f"{r['ndim']:>3} {grid:>14} {r['members']:>2} {r['steps_run']:>6} "
            f"{r['fit_seconds']:>7.1f} {tgt:>7} {r['corr_at_data']:>7.4f}"
        )
    print("\nenergy + gradient evaluations per second")
    print(f"{'backend':>8} {'d':>3} {'map/s':>12} {'tnn/s':>12} {'tnn/map':>8}")
    for r in evals:
        print(
            f"{r['backend']:>8} {r['ndim']:>3} {r['map_evals_per_s']:>12.3g} "
            f"{r['surrogate_evals_per_s']:>12.3g} {r['surrogate_over_map']:>8.3f}"
        )
    print("\nmixtures: max weight error, max centre error (mode std units), held-out log-lik")
    print(
        f"{'d':>3} {'tnn w':>7} {'gmm w':>7} {'tnn c':>7} {'gmm c':>7} "
        f"{'gmm ll':>8} {'true ll':>8} {'fit s':>6} {'gmm s':>6}"
    )
    for r in samples:
        tw = f"{r['tnn_weight_error']:.3f}" if "tnn_weight_error" in r else "-"
        tc = f"{r['tnn_centre_error']:.3f}" if "tnn_centre_error" in r else "-"
        print(
            f"{r['ndim']:>3} {tw:>7} {r['gmm_weight_error']:>7.3f} {tc:>7} "
            f"{r['gmm_centre_error']:>7.3f} {r['gmm_heldout_loglik']:>8.2f} "
            f"{r['true_heldout_loglik']:>8.2f} {r['fit_samples_seconds']:>6.1f} "
            f"{r['gmm_seconds']:>6.2f}"
        )
    out = {
        "benchmark": "tnn",
        "full": args.full,
        "jax": jax.__version__,
        "devices": [str(dev) for dev in jax.devices()],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "note": "shared machine: timings are noisy, compare ratios within one run",
        "maps": maps,
        "evaluations": evals,
        "mixtures": samples,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
