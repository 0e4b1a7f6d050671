"""Benchmark: chain-steps per second of langevin's ULA / MALA against BlackJAX and a numba loop.

Same map values, same chains, same step, one process. BlackJAX (`blackjax.sgld` with the full
gradient is ULA; `blackjax.mala`) runs on ``jax.scipy.ndimage.map_coordinates`` (order 1, the
same multilinear energy), vmapped over chains with a key split per chain, in ``lax.scan``; the
numba loop is a compiled CPU loop parallel over chains (the practical limit on CPU).

    python bench/langevin.py                 # reduced sizes (a few minutes on 2 shared cores)
    python bench/langevin.py --full          # d = 2, 4, 6 and 1k .. 1M chains
    python bench/langevin.py --chains 4096,65536 --dims 2,4 --steps 500

Prints a table, writes bench/results/langevin.json (and langevin.png when matplotlib is
installed). Timings: the best of ``--repeat`` runs after a warm-up (compilation excluded),
the engines timed round-robin.
The machine may be shared and noisy: compare ratios measured within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import energy  # noqa: E402
import langevin  # noqa: E402

# Map sizes per dimension: 256^2, 32^4, 12^6 nodes (the baselines use 256^2 and 32^4).
NODES = {2: 256, 4: 32, 6: 12}
BOX = 3.0  # the map covers [-BOX, BOX]^d


def make_values(d: int) -> np.ndarray:
    """A rough multimodal energy on the grid: a quadratic bowl plus a product of cosines."""
    g = np.linspace(-BOX, BOX, NODES[d])
    mesh = np.meshgrid(*([g] * d), indexing="ij")
    r2 = sum(m**2 for m in mesh)
    return (0.5 * r2 + 0.5 * np.prod([np.cos(2.0 * m) for m in mesh], axis=0)).astype(np.float32)


# ----------------------------------------------------------------------------- engines
def ours(m, x0, n_steps, h_phys, method):
    scale2 = float((2 * BOX) ** 2)  # sample() preconditions by scale^2: h_rel = h_phys / scale^2

    def run():
        return langevin.sample(
            m,
            jax.random.key(0),
            n_chains=x0.shape[0],
            n_steps=n_steps,
            init=x0,
            method=method,
            step_size=h_phys / scale2,
            schedule=None,
            bounds=None,
            progress=False,
        ).positions

    return run


def blackjax_runner(values, x0, n_steps, h_phys, method):
    import blackjax

    d = x0.shape[1]
    vals = jnp.asarray(values)
    inv_dx = (NODES[d] - 1) / (2 * BOX)

    def logdensity(x):
        coords = [(x[j] + BOX) * inv_dx for j in range(d)]
        return -jax.scipy.ndimage.map_coordinates(
            vals, [c[None] for c in coords], order=1, mode="nearest"
        )[0]

    if method == "ula":
        alg = blackjax.sgld(lambda x, _: jax.grad(logdensity)(x))

        def one(key, x):
            return alg.step(key, x, None, h_phys)

        init = lambda x: x  # noqa: E731
    else:
        alg = blackjax.mala(logdensity, h_phys)

        def one(key, s):
            return alg.step(key, s)[0]

        init = jax.vmap(alg.init)

    @jax.jit
    def run(x, key):
        state = init(x)

        def body(s, k):
            keys = jax.random.split(k, x.shape[0])
            return jax.vmap(one)(keys, s), None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, n_steps))
        return state if method == "ula" else state.position

    return lambda: run(x0, jax.random.key(0))


def numba_runner(values, x0, n_steps, h_phys):
    import numba

    d = x0.shape[1]
    n_nodes = NODES[d]
    table = np.ascontiguousarray(values.reshape(-1), dtype=np.float64)
    strides = np.array([n_nodes ** (d - 1 - j) for j in range(d)], dtype=np.int64)
    inv_dx = (n_nodes - 1) / (2 * BOX)

    @numba.njit(parallel=True, fastmath=True, cache=False)
    def run(x, n_steps, h):
        n, d = x.shape
        noise = np.sqrt(2.0 * h)
        for c in numba.prange(n):
            xc = x[c].copy()
            i0 = np.empty(d, np.int64)
            t = np.empty(d)
            g = np.empty(d)
            for _ in range(n_steps):
                for j in range(d):
                    u = min(max((xc[j] + BOX) * inv_dx, 0.0), n_nodes - 1.0)
                    i = min(int(u), n_nodes - 2)
                    i0[j] = i
                    t[j] = u - i
                    g[j] = 0.0
                for corner in range(1 << d):
                    off = 0
                    w = 1.0
                    for j in range(d):
                        b = (corner >> j) & 1
                        off += (i0[j] + b) * strides[j]
                        w *= t[j] if b else 1.0 - t[j]
                    v = table[off]
                    for j in range(d):
                        b = (corner >> j) & 1
                        wj = t[j] if b else 1.0 - t[j]
                        others = w / wj if wj != 0.0 else 0.0
                        if wj == 0.0:  # recompute the product without axis j
                            others = 1.0
                            for k in range(d):
                                if k != j:
                                    bk = (corner >> k) & 1
                                    others *= t[k] if bk else 1.0 - t[k]
                        g[j] += v * others * (1.0 if b else -1.0) * inv_dx
                for j in range(d):
                    xc[j] = xc[j] - h * g[j] + noise * np.random.standard_normal()  # noqa: NPY002
            x[c] = xc
        return x

    x64 = np.asarray(x0, dtype=np.float64)

    def call():
        return run(x64.copy(), n_steps, h_phys)

    return call


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="d = 2, 4, 6 and 1k .. 1M chains")
    ap.add_argument("--dims", default=None, help="comma-separated dimensions (default 2,4)")
    ap.add_argument("--chains", default=None, help="comma-separated chain counts")
    ap.add_argument("--steps", type=int, default=200, help="steps per run (default 200)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case (default 3)")
    ap.add_argument("--skip", default="", help="comma-separated engines to skip")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "langevin.json"))
    args = ap.parse_args(argv)

    dims = [int(v) for v in (args.dims or ("2,4,6" if args.full else "2,4")).split(",")]
    if args.chains:
        chains = [int(v) for v in args.chains.split(",")]
    else:
        chains = [1024, 16384, 262144, 1048576] if args.full else [4096, 32768]
    skip = set(filter(None, args.skip.split(",")))
    backend = jax.default_backend()
    rows = []
    print(
        f"backend {backend} ({jax.devices()[0].device_kind}), {os.cpu_count()} cores, "
        f"{args.steps} steps, best of {args.repeat}"
    )
    header = f"{'d':>2} {'map':>10} {'chains':>8} {'engine':>14} {'s':>8} {'Mchain-steps/s':>15}"
    print(header)
    print("-" * len(header))
    for d in dims:
        values = make_values(d)
        m = energy.EnergyMap.from_grid(values, [(-BOX, BOX)] * d)
        spacing = 2 * BOX / (NODES[d] - 1)
        h_phys = 0.25 * spacing**2
        for n in chains:
            x0 = np.random.default_rng(0).uniform(-BOX, BOX, (n, d)).astype(np.float32)
            x0j = jnp.asarray(x0)
            engines = {
                "ours-ula": partial(ours, m, x0j, args.steps, h_phys, "ula"),
                "ours-mala": partial(ours, m, x0j, args.steps, h_phys, "mala"),
                "blackjax-sgld": partial(blackjax_runner, values, x0j, args.steps, h_phys, "ula"),
                "blackjax-mala": partial(blackjax_runner, values, x0j, args.steps, h_phys, "mala"),
            }
            if backend == "cpu":
                engines["numba"] = partial(numba_runner, values, x0, args.steps, h_phys)
            # Build and warm (compile) every engine, then time them round-robin so that a
            # burst of load from other processes hits all engines alike.
            runners = {}
            for name, make in engines.items():
                if name in skip:
                    continue
                try:
                    fn = make()
                    jax.block_until_ready(fn())
                    runners[name] = fn
                except Exception as err:  # report and go on (e.g. out of memory at 1M chains)
                    print(f"{d:>2} {name:>25}: failed: {type(err).__name__}: {err}")
            best = {name: np.inf for name in runners}
            for _ in range(args.repeat):
                for name, fn in runners.items():
                    t = time.perf_counter()
                    jax.block_until_ready(fn())
                    best[name] = min(best[name], time.perf_counter() - t)
            for name, sec in best.items():
                rate = n * args.steps / sec
                rows.append(
                    dict(
                        backend=backend,
                        d=d,
                        map_shape=[NODES[d]] * d,
                        n_chains=n,
                        n_steps=args.steps,
                        engine=name,
                        seconds=sec,
                        chain_steps_per_s=rate,
                    )
                )
                print(
                    f"{d:>2} {str(NODES[d]) + '^' + str(d):>10} {n:>8} {name:>14} {sec:8.3f} "
                    f"{rate / 1e6:15.2f}"
                )

    ratios = []
    for d in dims:
        for n in chains:
            by = {
                r["engine"]: r["chain_steps_per_s"]
                for r in rows
                if r["d"] == d and r["n_chains"] == n
            }
            for ours_e, peer in (
                ("ours-ula", "blackjax-sgld"),
                ("ours-mala", "blackjax-mala"),
                ("ours-ula", "numba"),
            ):
                if ours_e in by and peer in by:
                    ratios.append(
                        dict(d=d, n_chains=n, ours=ours_e, peer=peer, ratio=by[ours_e] / by[peer])
                    )
    print("\nratios (same run):")
    for r in ratios:
        print(f"  d={r['d']} chains={r['n_chains']}: {r['ours']} / {r['peer']} = {r['ratio']:.2f}x")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = dict(
        machine=dict(
            platform=platform.platform(),
            cpus=os.cpu_count(),
            backend=backend,
            device=jax.devices()[0].device_kind,
            jax=jax.__version__,
        ),
        steps=args.steps,
        repeat=args.repeat,
        rows=rows,
        ratios=ratios,
        peak_rss_mb=peak_mb,
        note="best of repeats after a warm-up; shared machine, compare ratios within a run",
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\npeak RSS {peak_mb:.0f} MB; wrote {out}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return 0
    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 4), squeeze=False)
    for ax, d in zip(axes[0], dims, strict=True):
        for name in sorted({r["engine"] for r in rows}):
            pts = sorted(
                (r["n_chains"], r["chain_steps_per_s"])
                for r in rows
                if r["d"] == d and r["engine"] == name
            )
            if pts:
                ax.loglog(*zip(*pts, strict=True), marker="o", label=name)
        ax.set_title(f"d = {d} ({NODES[d]}^{d} map, {backend})")
        ax.set_xlabel("chains")
        ax.set_ylabel("chain-steps / s")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"wrote {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
