"""Benchmark: plain-function posteriors with known truth, langevin (MALA / ULA) beside NUTS.

Targets (built in ``tests/langevin/posteriors.py``, exact or quadrature truth): banana,
rotated 100-D Gaussian (condition 1e4), logistic regression, Brownian motion with unknown
scales, eight schools (centred / non-centred), Neal's funnel.

Engines, one process, interleaved per target:

- ``mala`` / ``ula``: langevin at its defaults for a plain function (warm-up adapted over the
  ensemble, then untempered sampling), chains from ``N(0, I)``; errors from the FINAL states.
- ``nuts``: BlackJAX NUTS with ``window_adaptation`` (Stan's windows, diagonal mass matrix, the
  default a user gets), a few chains vmapped; errors from all their draws after warm-up.

Figures per target and engine: max over coordinates of |mean error| / sd and |sd error| / sd,
the gradient evaluations (warm-up included), the smallest ESS over coordinates (langevin: of the
sampling trajectory, every step recorded; NUTS: of its draws) and gradient evaluations per
effective sample (with and without warm-up), wall and CPU time (compilation included: each
engine compiles once per target, as a user pays it).

Counting, the same for both: langevin pays one gradient per chain and step of warm-up (as many
steps as it used: by default it ends when the ensemble is stationary, 3000 at most) and of
sampling, one per chain at the start and one per chain at each slow window's end (the chains
move to the new preconditioner's coordinates), and for ULA `_ensemble.CURVATURE_ITERS` per
chain (the curvature that sets its step); NUTS pays its integration steps, warm-up included. Both get 1000 sampling steps / draws. The trajectory is not thinned (until 2026-11-29
it was thinned by 10, which caps the ESS at the number of recorded draws: ~n_chains x 100, so
a chain mixing in fewer than 10 steps was counted at 10 gradients per effective sample at best;
NUTS's draws were never thinned).

    python bench/posteriors.py            # full: 2000 chains; NUTS 4 chains x 1000 + 1000
    python bench/posteriors.py --quick    # 256 chains; NUTS 2 chains x 300 + 300
    python bench/posteriors.py --targets banana,logistic   # some targets only

Writes bench/results/posteriors[-quick].json and prints a Markdown table.
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
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "langevin"))

import posteriors as P  # noqa: E402

import langevin  # noqa: E402
from langevin import _ensemble, _plain  # noqa: E402

TARGETS = [
    "banana",
    "gaussian",
    "logistic",
    "brownian",
    "eight_schools_noncentred",
    "eight_schools_centred",
    "funnel",
]


def _min_ess(draws) -> float:
    """Smallest bulk ESS over coordinates of ``(n_draws, n_chains, d)``, one coordinate at a
    time (the rank normalisation of all of a 100-D trajectory at once would need ~3 GB)."""
    return min(float(langevin.ess(draws[:, :, j : j + 1])[0]) for j in range(draws.shape[2]))


def _window_ends(n_used: int) -> int:
    """Slow windows a default warm-up that used ``n_used`` steps went through (each moves the
    chains to new coordinates: one gradient per chain)."""
    w = _ensemble.windows(_plain.PLAIN_WARMUP, _plain.PLAIN_EXTEND)
    stop = int(np.flatnonzero(w.average)[0])
    done = n_used - (w.end.size - stop)  # steps before the terminal buffer
    return int(np.sum(np.flatnonzero(w.end) < done))


def _ours(post, method, n_chains, thin, seed):
    """langevin at its defaults on a plain function; returns figures."""
    x0 = jax.random.normal(jax.random.key(seed), (n_chains, post.d))
    t0, c0 = time.perf_counter(), time.process_time()
    res = langevin.sample(
        post.energy,
        jax.random.key(seed + 1),
        n_chains=n_chains,
        init=x0,
        method=method,
        thin=thin,
        progress=False,
    )
    pos, traj = np.asarray(res.positions), res.trajectory
    n_warmup, n_steps, n_stuck, h = res.n_warmup, res.n_steps, res.n_stuck, res.step_size
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    e_mean, e_sd = P.errors(pos, post)
    ess = _min_ess(np.asarray(traj))
    del traj, res
    grads_sampling = n_chains * n_steps
    # ULA: the curvature that sets its step, `_ensemble.CURVATURE_ITERS` gradients per chain
    extra = _ensemble.CURVATURE_ITERS if method == "ula" else 0
    grads = n_chains * (n_warmup + n_steps + 1 + _window_ends(n_warmup) + extra)
    return {
        "mean_err": e_mean,
        "sd_err": e_sd,
        "ess": ess,
        "grads": grads,
        "grads_per_ess": grads / ess,
        "grads_per_ess_sampling": grads_sampling / ess,
        "wall_s": wall,
        "cpu_s": cpu,
        "n_warmup": int(n_warmup),
        "n_stuck": int(n_stuck) if n_stuck is not None else None,
        "step_size": float(h),
    }


def _nuts(post, n_chains, n_warmup, n_draws, seed):
    """BlackJAX NUTS + window adaptation, ``n_chains`` vmapped chains from N(0, I)."""
    import blackjax

    def logdensity(x):
        return -post.energy(x)

    def one(key, x0):
        k_warm, k_draw = jax.random.split(key)
        wa = blackjax.window_adaptation(blackjax.nuts, logdensity)
        (state, params), info = wa.run(k_warm, x0, num_steps=n_warmup)
        kernel = blackjax.nuts(logdensity, **params).step

        def step(s, k):
            s, inf = kernel(k, s)
            return s, (s.position, inf.num_integration_steps)

        _, (draws, n_int) = jax.lax.scan(step, state, jax.random.split(k_draw, n_draws))
        return draws, jnp.sum(n_int), jnp.sum(info.info.num_integration_steps)

    keys = jax.random.split(jax.random.key(seed), n_chains)
    x0 = jax.random.normal(jax.random.key(seed + 1), (n_chains, post.d))
    t0, c0 = time.perf_counter(), time.process_time()
    draws, n_samp, n_warm = jax.jit(jax.vmap(one))(keys, x0)
    draws = np.asarray(draws)  # (chains, draws, d)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    e_mean, e_sd = P.errors(draws.reshape(-1, post.d), post)
    ess = _min_ess(draws.transpose(1, 0, 2))
    grads_sampling = float(np.sum(n_samp))
    grads = grads_sampling + float(np.sum(n_warm))
    return {
        "mean_err": e_mean,
        "sd_err": e_sd,
        "ess": ess,
        "grads": grads,
        "grads_per_ess": grads / ess,
        "grads_per_ess_sampling": grads_sampling / ess,
        "wall_s": wall,
        "cpu_s": cpu,
        "n_warmup": n_warmup,
    }


def run(quick: bool, targets=TARGETS) -> dict:
    """Run the targets with every engine; returns the JSON-able results."""
    if quick:
        n_chains, thin, nuts_chains, nuts_warm, nuts_draws = 256, 1, 2, 300, 300
    else:
        n_chains, thin, nuts_chains, nuts_warm, nuts_draws = 2000, 1, 4, 1000, 1000
    out = {
        "machine": platform.platform(),
        "processor": platform.processor(),
        "load_average": os.getloadavg(),
        "versions": {"jax": jax.__version__, "python": platform.python_version()},
        "backend": jax.default_backend(),
        "n_chains": n_chains,
        "thin": thin,
        "nuts": {"chains": nuts_chains, "warmup": nuts_warm, "draws": nuts_draws},
        "targets": {},
    }
    try:
        import blackjax

        out["versions"]["blackjax"] = blackjax.__version__
    except ImportError:
        blackjax = None
    for i, name in enumerate(TARGETS):
        if name not in targets:
            continue
        post = P.ALL[name]()
        row = {"d": post.d, "truth": post.how}
        for method in ("mala", "ula"):
            row[method] = _ours(post, method, n_chains, thin, seed=10 * i)
        if blackjax is not None:
            row["nuts"] = _nuts(post, nuts_chains, nuts_warm, nuts_draws, seed=10 * i + 5)
        out["targets"][name] = row
        print(_line(name, row), flush=True)
    return out


def _fmt(r) -> str:
    if r is None:
        return "-"
    return (
        f"{r['mean_err']:.3f} / {r['sd_err']:.3f} ({r['grads_per_ess']:.0f}, "
        f"{r['grads_per_ess_sampling']:.0f}; W {r['n_warmup']}; {r['wall_s']:.0f} s)"
    )


def _line(name, row) -> str:
    return f"| {name} | {_fmt(row['mala'])} | {_fmt(row['ula'])} | {_fmt(row.get('nuts'))} |"


def table(out: dict) -> str:
    """Markdown: mean / sd errors in true sds (gradient evaluations per effective sample with
    and without warm-up; warm-up steps per chain; wall time)."""
    head = "| target | MALA | ULA | NUTS |\n|---|---|---|---|"
    return "\n".join([head] + [_line(k, v) for k, v in out["targets"].items()])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="256 chains, short NUTS")
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated subset")
    args = ap.parse_args(argv)
    targets = args.targets.split(",")
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        ap.error(f"--targets: unknown {unknown}; known: {TARGETS}")
    out = run(args.quick, targets)
    print(table(out))
    suffix = ("-quick" if args.quick else "") + ("" if targets == TARGETS else "-subset")
    path = ROOT / "bench" / "results" / f"posteriors{suffix}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
