"""Surrogate: energy + gradient evaluations per second of a tnn surrogate against its map.

A two-blob map (2-D 48^2, 4-D 12^4) is learnt by ``energy.tnn.fit`` (a short fit: the point is
evaluation speed, the fit time is recorded beside it), then, interleaved in one process:

- ``map value_and_grad``: ``jit(vmap(value_and_grad(m.energy)))``;
- ``tnn value_and_grad`` and its A/A twin: the same on the surrogate (all ensemble members);
- ``tnn uncertainty``: ``jit(s.uncertainty)`` (the ensemble's spread).
"""

from __future__ import annotations

import time

import numpy as np

from . import _common as C

SUITE = "surrogate"
SIZES = {
    "smoke": {"dims": [2], "batch": 4096, "steps": 30, "members": 2, "repeats": 2},
    "quick": {"dims": [2], "batch": 16384, "steps": 50, "members": 2, "repeats": 5},
    "full": {"dims": [2, 4], "batch": 65536, "steps": 1000, "members": 4, "repeats": 9},
}
BINS = {2: 48, 4: 12}

PAIRS = (
    ("tnn value_and_grad", "tnn value_and_grad (A/A)"),
    ("tnn value_and_grad", "map value_and_grad"),
)


def _two_blobs(d: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu = np.zeros((2, d))
    mu[0, 0], mu[1, 0] = -1.5, 1.5
    k = (rng.random(n) < 0.4).astype(int)
    return mu[k] + rng.normal(size=(n, d)) * np.linspace(0.4, 0.7, d)


def run(size: str, backend: str, repeats: int | None = None) -> dict:
    import jax
    import jax.numpy as jnp

    import energy
    import energy.tnn as tnn

    cfg = SIZES[size]
    rows, ratios = [], []
    for d in cfg["dims"]:
        m = energy.EnergyMap.from_samples(
            _two_blobs(d, 100_000), bins=BINS[d], bounds=[(-4.0, 4.0)] * d
        )
        t0 = time.perf_counter()
        s = tnn.fit(
            m, jax.random.key(0), steps=cfg["steps"], members=cfg["members"], progress=False
        )
        fit_s = time.perf_counter() - t0
        n = cfg["batch"]
        x = jnp.asarray(np.random.default_rng(1).uniform(-3, 3, (n, d)).astype(np.float32))
        vg_map = jax.jit(jax.vmap(jax.value_and_grad(m.energy)))
        vg_tnn = jax.jit(jax.vmap(jax.value_and_grad(s.energy)))
        unc = jax.jit(s.uncertainty)
        case = {"d": d, "map": f"{BINS[d]}^{d}", "members": s.members, "batch": n}
        engines = {
            "tnn value_and_grad": lambda f=vg_tnn, x=x: f(x),
            "tnn value_and_grad (A/A)": lambda f=vg_tnn, x=x: f(x),
            "map value_and_grad": lambda f=vg_map, x=x: f(x),
            "tnn uncertainty": lambda f=unc, x=x: f(x),
        }
        timings = C.measure(engines, repeats or cfg["repeats"])
        new = C.rows_of(SUITE, case, timings, n, "evaluations")
        for row in new:
            row["fit_s"] = fit_s if row["engine"].startswith("tnn") else None
        rows += new
        ratios += [r for a, b in PAIRS if (r := C.ratio(SUITE, case, timings, a, b))]
    return {"rows": rows, "ratios": ratios}


def print_result(res: dict) -> None:
    C.print_table(
        "surrogate: energy + gradient (M evaluations/s)",
        res["rows"],
        res["ratios"],
        ["d", "members"],
    )
    fits = {r["case"]["d"]: r["fit_s"] for r in res["rows"] if r.get("fit_s")}
    for d, t in fits.items():
        C.say(f"  d={d}: tnn.fit took {t:.1f} s (compilation included)")
