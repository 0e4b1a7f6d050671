"""Interleaved A/B timing of `langevin.sample` against another checkout's langevin (not a test).

    python tests/langevin/ab_bench.py OTHER_REPO_ROOT [--repeat 7]

Loads OTHER_REPO_ROOT/langevin as the package ``langevin_other`` next to this checkout's
``langevin``, builds bench/langevin.py's maps (d = 2, 4), compiles both, then times them in
turn (A, B, A, B, ...) so that load from other processes hits both alike; prints the median and
the range (min-max) of the time ratio this/other per case.
"""

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import energy  # noqa: E402
import langevin  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_langevin", ROOT / "bench" / "langevin.py")
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
BOX, NODES, make_values = _bench.BOX, _bench.NODES, _bench.make_values


def load_other(root: Path):
    spec = importlib.util.spec_from_file_location(
        "langevin_other",
        root / "langevin" / "__init__.py",
        submodule_search_locations=[str(root / "langevin")],
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["langevin_other"] = mod
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("other")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--chains", default="4096,32768")
    args = ap.parse_args()
    other = load_other(Path(args.other))
    print(
        f"{'d':>2} {'chains':>7} {'method':>6} {'this s':>8} {'other s':>8} "
        f"{'ratio median':>12} {'range':>13}"
    )
    for d in (2, 4):
        values = make_values(d)
        m = energy.EnergyMap.from_grid(values, [(-BOX, BOX)] * d)
        h = 0.25 * (2 * BOX / (NODES[d] - 1)) ** 2 / float((2 * BOX) ** 2)
        for n in map(int, args.chains.split(",")):
            x0 = jnp.asarray(np.random.default_rng(0).uniform(-BOX, BOX, (n, d)), jnp.float32)
            for method in ("ula", "mala"):

                def run(lib, m=m, n=n, x0=x0, method=method, h=h):
                    return lib.sample(
                        m,
                        jax.random.key(0),
                        n_chains=n,
                        n_steps=args.steps,
                        init=x0,
                        method=method,
                        step_size=h,
                        schedule=None,
                        bounds=None,
                        progress=False,
                    ).positions

                for lib in (langevin, other):
                    jax.block_until_ready(run(lib))
                ta, tb = [], []
                for _ in range(args.repeat):
                    for lib, ts in ((langevin, ta), (other, tb)):
                        t = time.perf_counter()
                        jax.block_until_ready(run(lib))
                        ts.append(time.perf_counter() - t)
                r = np.array(ta) / np.array(tb)
                print(
                    f"{d:>2} {n:>7} {method:>6} {np.median(ta):8.3f} {np.median(tb):8.3f} "
                    f"{np.median(r):12.3f} {r.min():6.3f}-{r.max():.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
