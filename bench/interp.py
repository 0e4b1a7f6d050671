"""Interpolation: energy + gradient throughput of EnergyMap against map_coordinates and interpax.

For each dimension d, one grid of random values, random points inside the bounds, one process:

- ``groundstate linear``: ``jax.jit(jax.vmap(jax.value_and_grad(m.energy)))`` (the fused
  analytic gradient); ``groundstate linear (A/A)``: the same, timed as a second engine;
- ``map_coordinates order=1``: ``jax.scipy.ndimage.map_coordinates`` differentiated by autodiff;
- ``interpax cubic`` (d <= 3, when installed) against groundstate's ``method="cubic"``.
"""

from __future__ import annotations

import numpy as np

from . import _common as C

SUITE = "interp"
GRIDS = {1: (4096,), 2: (256, 256), 3: (64, 64, 64), 4: (32,) * 4, 5: (16,) * 5, 6: (12,) * 6}
SIZES = {
    "smoke": {"dims": [2], "points": 4096, "repeats": 2},
    "quick": {"dims": [2, 4], "points": 65536, "repeats": 7},
    "full": {"dims": [2, 3, 4, 6], "points": 65536, "repeats": 15},
}


def _ours(m):
    import jax

    return jax.jit(jax.vmap(jax.value_and_grad(m.energy)))


def _map_coordinates(values, lo, hi, shape):
    import jax
    import jax.numpy as jnp

    n1 = jnp.asarray(shape, jnp.float32) - 1

    def e(x):
        u = jnp.clip((x - lo) / (hi - lo) * n1, 0.0, n1)
        return jax.scipy.ndimage.map_coordinates(values, list(u), order=1, mode="nearest")

    return jax.jit(jax.vmap(jax.value_and_grad(e)))


def _interpax(values, grid, d):
    import interpax
    import jax
    import jax.numpy as jnp

    axes = [jnp.asarray(g, jnp.float32) for g in grid]
    fns = {1: interpax.interp1d, 2: interpax.interp2d, 3: interpax.interp3d}

    def e(x):
        return fns[d](*[x[i] for i in range(d)], *axes, values, method="cubic")

    return jax.jit(jax.vmap(jax.value_and_grad(e)))


PAIRS = (
    ("groundstate linear", "groundstate linear (A/A)"),
    ("groundstate linear", "map_coordinates order=1"),
    ("groundstate cubic", "interpax cubic"),
)


def run(size: str, backend: str, repeats: int | None = None) -> dict:
    import jax.numpy as jnp

    import energy

    cfg = SIZES[size]
    rng = np.random.default_rng(0)
    rows, ratios = [], []
    n = cfg["points"]
    for d in cfg["dims"]:
        shape = GRIDS[d]
        case = {"d": d, "grid": "x".join(map(str, shape)), "points": n}
        values = rng.normal(size=shape).astype(np.float32)
        bounds = [(-1.0, 1.0)] * d
        x = jnp.asarray(rng.uniform(-1, 1, size=(n, d)), jnp.float32)
        m = energy.EnergyMap.from_grid(values, bounds, noise_levels=[0.5])
        fns = {
            "groundstate linear": _ours(m),
            "groundstate linear (A/A)": _ours(m),
            "map_coordinates order=1": _map_coordinates(jnp.asarray(values), m.lo, m.hi, shape),
        }
        if d <= 3:
            mc = energy.EnergyMap.from_grid(values, bounds, method="cubic", noise_levels=[0.5])
            fns["groundstate cubic"] = _ours(mc)
            if C.optional("interpax"):
                fns["interpax cubic"] = _interpax(jnp.asarray(values), m.grid, d)
            else:
                rows.append(C.skipped(SUITE, case, "interpax cubic", "not installed"))
        engines = {name: (lambda f=f, x=x: f(x)) for name, f in fns.items()}
        timings = C.measure(engines, repeats or cfg["repeats"])
        rows += C.rows_of(SUITE, case, timings, n, "points")
        ratios += [r for a, b in PAIRS if (r := C.ratio(SUITE, case, timings, a, b))]
    return {"rows": rows, "ratios": ratios}


def print_result(res: dict) -> None:
    C.print_table(
        "interpolation: energy + gradient (M points/s)", res["rows"], res["ratios"], ["d", "grid"]
    )
