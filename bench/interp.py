"""Energy + gradient throughput of EnergyMap against jax.scipy.ndimage.map_coordinates and interpax.

For each dimension d, one grid, 64k random points inside the bounds, one process:

- ``groundstate``: ``jax.vmap(jax.value_and_grad(m.energy))`` (the fused analytic gradient);
- ``map_coordinates``: ``jax.scipy.ndimage.map_coordinates(order=1)`` differentiated by autodiff;
- ``interpax`` (cubic, d <= 3): ``interpax.interp{1,2,3}d(method="cubic")`` by autodiff, against
  groundstate's ``method="cubic"``.

Reports points/s (median of repeats after warm-up), the first-call time (trace + compile + run)
and the ratio to map_coordinates. Prints a table and writes ``bench/results/interp.json``.

Usage: ``python bench/interp.py [--points 65536] [--repeats 20] [--dims 2,3,4,6]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import energy

GRIDS = {1: (4096,), 2: (256, 256), 3: (64, 64, 64), 4: (32,) * 4, 5: (16,) * 5, 6: (12,) * 6}


def _time(fn, *args, repeats: int) -> tuple[float, float]:
    """(first call seconds including compilation, median seconds of later calls)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times))


def _ours(m):
    return jax.jit(jax.vmap(jax.value_and_grad(m.energy)))


def _map_coordinates(values, lo, hi, shape):
    n1 = jnp.asarray(shape, jnp.float32) - 1

    def e(x):
        u = jnp.clip((x - lo) / (hi - lo) * n1, 0.0, n1)
        return jax.scipy.ndimage.map_coordinates(values, list(u), order=1, mode="nearest")

    return jax.jit(jax.vmap(jax.value_and_grad(e)))


def _interpax(values, grid, d):
    import interpax

    axes = [jnp.asarray(g, jnp.float32) for g in grid]
    fns = {1: interpax.interp1d, 2: interpax.interp2d, 3: interpax.interp3d}

    def e(x):
        return fns[d](*[x[i] for i in range(d)], *axes, values, method="cubic")

    return jax.jit(jax.vmap(jax.value_and_grad(e)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dims", default="2,3,4,6")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "interp.json"))
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for d in [int(s) for s in args.dims.split(",")]:
        shape = GRIDS[d]
        values = rng.normal(size=shape).astype(np.float32)
        bounds = [(-1.0, 1.0)] * d
        x = jnp.asarray(rng.uniform(-1, 1, size=(args.points, d)), jnp.float32)
        entries = {}
        jax.clear_caches()
        m = energy.EnergyMap.from_grid(values, bounds, noise_levels=[0.5])
        entries["groundstate linear"] = _time(_ours(m), x, repeats=args.repeats)
        jax.clear_caches()
        entries["map_coordinates order=1"] = _time(
            _map_coordinates(jnp.asarray(values), m.lo, m.hi, shape), x, repeats=args.repeats
        )
        if d <= 3:
            jax.clear_caches()
            mc = energy.EnergyMap.from_grid(values, bounds, method="cubic", noise_levels=[0.5])
            entries["groundstate cubic"] = _time(_ours(mc), x, repeats=args.repeats)
            try:
                jax.clear_caches()
                entries["interpax cubic"] = _time(
                    _interpax(jnp.asarray(values), m.grid, d), x, repeats=args.repeats
                )
            except ImportError:
                pass
        base = entries["map_coordinates order=1"][1]
        for name, (first, med) in entries.items():
            rows.append(
                {
                    "d": d,
                    "grid": list(shape),
                    "method": name,
                    "points_per_s": args.points / med,
                    "first_call_s": first,
                    "speedup_vs_map_coordinates": base / med,
                }
            )
    result = {
        "benchmark": "interp",
        "points": args.points,
        "backend": jax.default_backend(),
        "devices": [str(dv) for dv in jax.devices()],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "jax": jax.__version__,
        "rows": rows,
    }
    print(f"{'d':>2} {'grid':>14} {'method':<26} {'Mpts/s':>9} {'first call s':>12} {'x map_coord':>11}")
    for r in rows:
        grid = "x".join(str(n) for n in r["grid"])
        print(
            f"{r['d']:>2} {grid:>14} {r['method']:<26} {r['points_per_s'] / 1e6:9.2f} "
            f"{r['first_call_s']:12.2f} {r['speedup_vs_map_coordinates']:11.2f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
