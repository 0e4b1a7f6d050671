"""Chains: chain-steps per second of langevin's ULA / MALA against the samplers a user would pick.

Same map values, same chains, same step size, one process, fixed temperature (no annealing):

- ``ours-ula`` / ``ours-mala``: ``langevin.sample(m, ..., schedule=None, bounds=None)``;
  ``ours-ula (A/A)`` is the same call timed as a second engine: its ratio to ``ours-ula`` is the
  run's noise floor;
- ``blackjax-sgld[map_coordinates]`` / ``blackjax-mala[map_coordinates]``: BlackJAX on
  ``jax.scipy.ndimage.map_coordinates`` (order 1, the same multilinear energy): what a user
  would write;
- ``blackjax-sgld[m.energy]`` / ``blackjax-mala[m.energy]``: BlackJAX on our map's own energy,
  so that the sampler's gain is told apart from the interpolation's;
- ``numpyro-hmc1[m.energy]``: NumPyro's HMC kernel with one leapfrog step (MALA in momentum
  form, eps = sqrt(2h)), vmapped over chains in ``lax.scan``, on our map's energy;
- ``numba-ula``: a compiled CPU loop parallel over chains (CPU only).

A roofline line per case gives the bytes and flops of one chain-step and the bound they imply
on this device (`bench._roofline`); each of our rates is printed as a fraction of it. The full
size adds the one-million-chain run (d = 4) in a child process: time with and without
compilation and the child's peak RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from . import _common as C
from . import _roofline

try:  # the numba peer's parallel loop (a plain range when numba is absent: never compiled then)
    from numba import prange
except ImportError:  # pragma: no cover
    prange = range

SUITE = "chains"
NODES = {2: 256, 4: 32, 6: 12}  # 256^2, 32^4, 12^6 nodes (issue 10's baselines: 256^2, 32^4)
BOX = 3.0  # maps cover [-BOX, BOX]^d

SIZES = {
    # dims, chain counts, chain-steps per timed call (steps = work / chains, 10..200), repeats,
    # methods compared (quick: ULA and its peers only, to keep compilations few)
    "smoke": {"dims": [2], "chains": [256], "work": 256 * 10, "repeats": 2, "methods": ["ula"]},
    "quick": {
        "dims": [2, 4],
        "chains": [4096],
        "work": 4096 * 100,
        "repeats": 5,
        "methods": ["ula"],
    },
    "full": {
        "dims": [2, 4, 6],
        "chains": [1_000, 10_000, 100_000],
        "work": 2_000_000,
        "repeats": 5,
        "methods": ["ula", "mala"],
        "million": {"d": 4, "chains": 1_000_000, "steps": 100},
    },
}


def make_values(d: int) -> np.ndarray:
    """A rough multimodal energy on the grid: a quadratic bowl plus a product of cosines."""
    g = np.linspace(-BOX, BOX, NODES[d])
    mesh = np.meshgrid(*([g] * d), indexing="ij")
    r2 = sum(m**2 for m in mesh)
    return (0.5 * r2 + 0.5 * np.prod([np.cos(2.0 * m) for m in mesh], axis=0)).astype(np.float32)


def make_map(d: int):
    import energy

    return energy.EnergyMap.from_grid(make_values(d), [(-BOX, BOX)] * d)


def step_size(d: int) -> float:
    """A quarter of the squared node spacing (physical units)."""
    return 0.25 * (2 * BOX / (NODES[d] - 1)) ** 2


# ----------------------------------------------------------------------------- engines
def ours(m, x0, n_steps: int, h_phys: float, method: str, box: float = BOX, langevin=None):
    """Our sampler (``langevin``: another copy of the package, e.g. main's as a baseline)."""
    import jax

    if langevin is None:
        import langevin

    scale2 = float((2 * box) ** 2)  # sample() preconditions by scale^2: h_rel = h_phys / scale^2

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


def _map_coordinates_energy(values, d):
    import jax
    import jax.numpy as jnp

    vals = jnp.asarray(values)
    inv_dx = (NODES[d] - 1) / (2 * BOX)

    def e(x):
        coords = [((x[j] + BOX) * inv_dx)[None] for j in range(d)]
        return jax.scipy.ndimage.map_coordinates(vals, coords, order=1, mode="nearest")[0]

    return e


def blackjax_engine(energy_fn, x0, n_steps: int, h_phys: float, method: str):
    import blackjax
    import jax

    def logdensity(x):
        return -energy_fn(x)

    if method == "ula":
        alg = blackjax.sgld(lambda x, _: jax.grad(logdensity)(x))

        def one(key, x):
            return alg.step(key, x, None, h_phys)

        def init(x):
            return x

    else:
        alg = blackjax.mala(logdensity, h_phys)

        def one(key, s):
            return alg.step(key, s)[0]

        init = jax.vmap(alg.init)

    @jax.jit
    def run(x, key):
        def body(s, k):
            return jax.vmap(one)(jax.random.split(k, x.shape[0]), s), None

        state, _ = jax.lax.scan(body, init(x), jax.random.split(key, n_steps))
        return state if method == "ula" else state.position

    return lambda: run(x0, jax.random.key(0))


def numpyro_engine(energy_fn, x0, n_steps: int, h_phys: float):
    """NumPyro's HMC kernel (``numpyro.infer.hmc.hmc``), one leapfrog step, no adaptation,
    vmapped over chains in ``lax.scan`` like the others (``MCMC.run`` recompiles per call)."""
    import jax
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(potential_fn=energy_fn, algo="HMC")
    eps = float(np.sqrt(2.0 * h_phys))  # one leapfrog step of size eps is MALA with h = eps^2/2

    def init_one(key, x):
        return init_kernel(
            x,
            num_warmup=0,
            step_size=eps,
            num_steps=1,
            adapt_step_size=False,
            adapt_mass_matrix=False,
            rng_key=key,
        )

    @jax.jit
    def run(x, key):
        state = jax.vmap(init_one)(jax.random.split(key, x.shape[0]), x)

        def body(s, _):
            return jax.vmap(sample_kernel)(s), None

        state, _ = jax.lax.scan(body, state, None, length=n_steps)
        return state.z

    return lambda: run(x0, jax.random.key(0))


def _ula_loop(x, n_steps, h, table, strides, n_nodes, inv_dx, box):  # pragma: no cover - numba
    """ULA on the multilinear map, a chain per iteration of a parallel loop (compiled by numba)."""
    n, d = x.shape
    noise = np.sqrt(2.0 * h)
    for c in prange(n):
        xc = x[c].copy()
        i0 = np.empty(d, np.int64)
        t = np.empty(d)
        g = np.empty(d)
        for _ in range(n_steps):
            for j in range(d):
                u = min(max((xc[j] + box) * inv_dx, 0.0), n_nodes - 1.0)
                i = min(int(u), n_nodes - 2)
                i0[j] = i
                t[j] = u - i
                g[j] = 0.0
            for corner in range(1 << d):
                off = 0
                for j in range(d):
                    off += (i0[j] + ((corner >> j) & 1)) * strides[j]
                v = table[off]
                for j in range(d):  # d/dx_j of the corner's weight, times its value
                    others = 1.0
                    for k in range(d):
                        if k != j:
                            others *= t[k] if (corner >> k) & 1 else 1.0 - t[k]
                    g[j] += v * others * (1.0 if (corner >> j) & 1 else -1.0) * inv_dx
            for j in range(d):
                xc[j] = xc[j] - h * g[j] + noise * np.random.standard_normal()  # noqa: NPY002
        x[c] = xc
    return x


_NUMBA: list = []  # the compiled loop, once per process


def numba_engine(values, x0, n_steps: int, h_phys: float):
    import numba

    if not _NUMBA:
        # cache=True: the compiled loop is kept in bench/__pycache__ between runs
        _NUMBA.append(numba.njit(parallel=True, fastmath=True, cache=True)(_ula_loop))
    run = _NUMBA[0]
    d = x0.shape[1]
    n_nodes = NODES[d]
    table = np.ascontiguousarray(values.reshape(-1), dtype=np.float64)
    strides = np.array([n_nodes ** (d - 1 - j) for j in range(d)], dtype=np.int64)
    inv_dx = (n_nodes - 1) / (2 * BOX)
    x64 = np.asarray(x0, dtype=np.float64)
    return lambda: run(x64.copy(), n_steps, h_phys, table, strides, n_nodes, inv_dx, BOX)


# ----------------------------------------------------------------------------- the suite
PAIRS = (
    ("ours-ula", "ours-ula (A/A)"),
    ("ours-ula", "blackjax-sgld[map_coordinates]"),
    ("ours-ula", "blackjax-sgld[m.energy]"),
    ("ours-ula", "numba-ula"),
    ("ours-mala", "blackjax-mala[map_coordinates]"),
    ("ours-mala", "blackjax-mala[m.energy]"),
    ("ours-mala", "numpyro-hmc1[m.energy]"),
)


def run(size: str, backend: str, repeats: int | None = None) -> dict:
    """Run the suite; returns ``{"rows", "ratios", "roofline", ...}`` for the JSON."""
    import jax
    import jax.numpy as jnp

    cfg = SIZES[size]
    reps = repeats or cfg["repeats"]
    have_bj, have_np = C.optional("blackjax"), C.optional("numpyro")
    have_nb = C.optional("numba") if backend == "cpu" else None
    kind = jax.devices()[0].device_kind
    limits = _roofline.device_limits(backend, kind)
    rows, ratios, roof = [], [], []
    for d in cfg["dims"]:
        values = make_values(d)
        m = make_map(d)
        h = step_size(d)
        e_mc = _map_coordinates_energy(values, d)
        for n in cfg["chains"]:
            steps = int(max(10, min(200, cfg["work"] // n)))
            case = {"d": d, "map": f"{NODES[d]}^{d}", "chains": n, "steps": steps}
            x0 = np.random.default_rng(0).uniform(-BOX, BOX, (n, d)).astype(np.float32)
            xj = jnp.asarray(x0)
            methods = cfg["methods"]
            engines = {
                "ours-ula": ours(m, xj, steps, h, "ula"),
                "ours-ula (A/A)": ours(m, xj, steps, h, "ula"),
            }
            if "mala" in methods:
                engines["ours-mala"] = ours(m, xj, steps, h, "mala")
            algs = [(meth, {"ula": "sgld", "mala": "mala"}[meth]) for meth in methods]
            for meth, alg in algs:
                for label, fn in (("map_coordinates", e_mc), ("m.energy", m.energy)):
                    name = f"blackjax-{alg}[{label}]"
                    if have_bj:
                        engines[name] = blackjax_engine(fn, xj, steps, h, meth)
                    else:
                        rows.append(C.skipped(SUITE, case, name, "not installed"))
            if "mala" in methods:
                if have_np:
                    engines["numpyro-hmc1[m.energy]"] = numpyro_engine(m.energy, xj, steps, h)
                else:
                    rows.append(C.skipped(SUITE, case, "numpyro-hmc1[m.energy]", "not installed"))
            if have_nb:
                engines["numba-ula"] = numba_engine(values, x0, steps, h)
            elif backend == "cpu":
                rows.append(C.skipped(SUITE, case, "numba-ula", "not installed"))
            timings = C.measure(engines, reps)
            rows += C.rows_of(SUITE, case, timings, n * steps, "chain-steps")
            for a, b in PAIRS:
                r = C.ratio(SUITE, case, timings, a, b)
                if r:
                    ratios.append(r)
            for method in methods:
                b = _roofline.bound(d, method, limits)
                t = timings[f"ours-{method}"]
                rate = n * steps / float(np.median(t.rounds_s)) if t.rounds_s else None
                roof.append(
                    {
                        "suite": SUITE,
                        "case": case,
                        "engine": f"ours-{method}",
                        **b,
                        "rate_median": rate,
                        "fraction_of_bound": rate / b["bound"] if rate and b["bound"] else None,
                    }
                )
    out = {"rows": rows, "ratios": ratios, "roofline": roof, "limits": limits}
    if "million" in cfg:
        out["million"] = million(**cfg["million"], backend=backend)
    return out


def million(d: int, chains: int, steps: int, backend: str) -> dict:
    """The one-million-chain run in a child process (its own peak RSS): cold and warm times."""
    cmd = [sys.executable, "-m", "bench._million", str(d), str(chains), str(steps)]
    env = dict(__import__("os").environ, JAX_PLATFORMS={"gpu": "cuda"}.get(backend, backend))
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=C.ROOT, env=env, timeout=1800)
    if p.returncode != 0:
        return {"d": d, "chains": chains, "steps": steps, "error": p.stderr[-500:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def print_result(res: dict) -> None:
    C.print_table("chains (M chain-steps/s)", res["rows"], res["ratios"], ["d", "chains", "steps"])
    lim = res["limits"]
    bw = lim.get("bandwidth_Bps")
    fl = lim.get("flops")
    C.say(
        f"  roofline: {bw / 1e9:.1f} GB/s, {fl / 1e9:.0f} GFLOP/s ({lim['source']})"
        if bw and fl
        else f"  roofline: {lim['source']}"
    )
    for r in res["roofline"]:
        c = r["case"]
        frac = r.get("fraction_of_bound")
        C.say(
            f"  roofline d={c['d']} chains={c['chains']} {r['engine']}: {r['bytes']} B and "
            f"{r['flops']} flop per chain-step -> bound "
            + (
                f"{r['bound'] / 1e6:.0f} M/s ({r['bound_by']}); measured {frac:.1%} of it"
                if r.get("bound") and frac is not None
                else "unknown"
            )
        )
    mil = res.get("million")
    if mil:
        if "error" in mil:
            C.say(f"  1M chains: failed: {mil['error']}")
        else:
            C.say(
                f"  {mil['chains']:,} chains d={mil['d']} {mil['steps']} steps: "
                f"{mil['cold_s']:.2f} s with compilation, {mil['warm_s']:.2f} s without "
                f"({mil['chains'] * mil['steps'] / mil['warm_s'] / 1e6:.1f} M chain-steps/s), "
                f"peak RSS {mil['peak_rss_mb']:.0f} MB"
            )


# ----------------------------------------------------------------------------- issue 10's case
# ULA against BlackJAX sgld on map_coordinates: a random map on [-5, 5]^d (256^2, 32^4), 4096
# chains, 400 steps, step 1e-3, no annealing, both warm; and where the time of one step goes.
ISSUE10 = {"box": 5.0, "nodes": {2: 256, 4: 32}, "chains": 4096, "steps": 400, "h": 1e-3}


def issue10_map(d: int, energy=None):
    """The random map of issue 10's chain benchmark (uniform energies in [0, 1), seeded);
    ``energy``: the package that builds it (another copy for a baseline)."""
    if energy is None:
        import energy

    k = ISSUE10["nodes"][d]
    values = np.random.default_rng(d).random((k,) * d).astype(np.float32)
    return values, energy.EnergyMap.from_grid(values, [(-ISSUE10["box"], ISSUE10["box"])] * d)


def load_baseline(path) -> tuple:
    """``(energy, langevin)`` of another version of this project, from a folder holding its
    ``energy/`` and ``langevin/`` packages (``git archive 312078e energy langevin | tar -x -C
    PATH``), imported as ``baseline_energy`` / ``baseline_langevin`` beside ours (both use
    relative imports only), so that both run interleaved in one process."""
    import importlib.util
    from pathlib import Path

    mods = []
    for name in ("energy", "langevin"):
        pkg = Path(path) / name
        if not (pkg / "__init__.py").is_file():
            raise FileNotFoundError(f"--baseline {path}: no package {pkg}/__init__.py")
        spec = importlib.util.spec_from_file_location(
            f"baseline_{name}", pkg / "__init__.py", submodule_search_locations=[str(pkg)]
        )
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        mods.append(mod)
    return tuple(mods)


def step_parts(m, x0, n_steps: int, h_phys: float, e_mc=None) -> dict:
    """Engines that each run ``n_steps`` steps of one part of a ULA step (same shapes, one
    ``lax.scan``; every loop also pays the loop itself and a cheap dependence on its result).
    Ours: ``interpolation`` (the map's energy), ``gradient`` (energy gradient by ``jax.grad``,
    i.e. the map's fused analytic value-and-gradient, what a step computes), ``rng`` (the
    step's normal draws, as the runner makes them: counter-based Threefry and Box-Muller, in
    blocks of flat rows),
    ``update`` (the constrained move of `langevin._kernels.ula_move` on a fixed gradient and
    noise). BlackJAX's (``e_mc``: the map_coordinates energy): ``bj interpolation``, ``bj
    gradient`` (autodiff through map_coordinates), ``bj rng`` (a key split per chain and one
    normal draw per chain, as ``sgld`` vmapped over chains does)."""
    import jax
    import jax.numpy as jnp

    from langevin import _draw_blocks, _kernels

    n, d = x0.shape
    energy_b = jax.vmap(m.energy)
    grad_b = jax.vmap(jax.grad(m.energy))
    box = _kernels.Constraints(jnp.ones(d, bool), jnp.zeros(d))
    key = jax.random.fold_in(jax.random.key(0), 2)

    def loop(body):
        @jax.jit
        def run(x):
            return jax.lax.scan(lambda x, t: (body(x, t), None), x, jnp.arange(n_steps))[0]

        return lambda: run(x0)

    draw = _draw_blocks.normal_draw(key, (n * d,), x0.dtype)  # flat rows, as the runner draws

    @jax.jit
    def rng(x):
        def step(x, xs_t):
            _, z = xs_t
            return x + z.reshape(x.shape), None

        return _draw_blocks.scan_blocked(step, x, (jnp.arange(n_steps),), draw, n * d)

    def bj_rng(x, t):
        keys = jax.random.split(jax.random.fold_in(key, t), n)
        return x + jax.vmap(lambda k: jax.random.normal(k, (d,), x.dtype))(keys)

    g0 = grad_b(x0)
    z0 = jax.random.normal(key, (n, d), x0.dtype)
    parts = {
        "part: interpolation": loop(lambda x, t: x + 1e-9 * energy_b(x)[:, None]),
        "part: gradient": loop(lambda x, t: x - h_phys * grad_b(x)),
        "part: rng": lambda: rng(x0),
        "part: update": loop(lambda x, t: _kernels.ula_move(x, g0, z0, h_phys, 1.0, 1.0, box)[0]),
    }
    if e_mc is not None:
        mc_b, mc_grad = jax.vmap(e_mc), jax.vmap(jax.grad(e_mc))
        parts["part: bj interpolation"] = loop(lambda x, t: x + 1e-9 * mc_b(x)[:, None])
        parts["part: bj gradient"] = loop(lambda x, t: x - h_phys * mc_grad(x))
        parts["part: bj rng"] = loop(bj_rng)
    return parts


def measure_wall_cpu(engines: dict, repeats: int) -> tuple[dict, dict]:
    """Like `bench._common.measure` (cold call, warm-up, ``repeats`` rounds in a new random
    order each), recording beside each round's wall time its CPU time (``time.process_time``:
    all threads of this process), which a loaded machine inflates far less. Returns
    ``(timings, cpu_rounds)``."""
    import time

    out, cpu, live = {}, {}, {}
    for name, fn in engines.items():
        try:
            t0 = time.perf_counter()
            C._block(fn())
            out[name] = C.Timing(time.perf_counter() - t0)
            C._block(fn())
            live[name], cpu[name] = fn, []
        except Exception as err:  # noqa: BLE001 - reported in the row
            out[name] = C.Timing(float("nan"), error=f"{type(err).__name__}: {err}"[:300])
    names = list(live)
    order_rng = np.random.default_rng(0)
    for _ in range(repeats):
        for i in order_rng.permutation(len(names)):
            name = names[i]
            t0, c0 = time.perf_counter(), time.process_time()
            C._block(live[name]())
            out[name].rounds_s.append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return out, cpu


def _spread(per: list) -> dict:
    return {
        "median": float(np.median(per)),
        "min": float(min(per)),
        "max": float(max(per)),
        "rounds": [float(v) for v in per],
    }


def issue10(d: int, repeats: int = 7, parts: bool = True, baseline=None) -> dict:
    """Issue 10's chain case at ``d`` (2 or 4): rows, the ratios (wall and CPU, per round) of
    ours over BlackJAX sgld on map_coordinates, of the baseline (``(energy, langevin)`` of
    another version, `load_baseline`) over BlackJAX and of ours over the baseline, and the
    step's parts as fractions of ours and of BlackJAX's time."""
    import jax
    import jax.numpy as jnp

    box, n, steps, h = ISSUE10["box"], ISSUE10["chains"], ISSUE10["steps"], ISSUE10["h"]
    values, m = issue10_map(d)
    x0 = jnp.asarray(np.random.default_rng(0).uniform(-box, box, (n, d)), jnp.float32)
    vals = jnp.asarray(values)
    inv_dx = (values.shape[0] - 1) / (2 * box)

    def e_mc(x):
        coords = [((x[j] + box) * inv_dx)[None] for j in range(d)]
        return jax.scipy.ndimage.map_coordinates(vals, coords, order=1, mode="nearest")[0]

    bj = "blackjax-sgld[map_coordinates]"
    engines = {
        "ours-ula": ours(m, x0, steps, h, "ula", box),
        bj: blackjax_engine(e_mc, x0, steps, h, "ula"),
    }
    if baseline is not None:
        _, m_base = issue10_map(d, baseline[0])
        engines["baseline-ula"] = ours(m_base, x0, steps, h, "ula", box, langevin=baseline[1])
    if parts:
        engines.update(step_parts(m, x0, steps, h, e_mc))
    timings, cpu = measure_wall_cpu(engines, repeats)
    case = {
        "d": d,
        "map": f"{values.shape[0]}^{d} random on [-5, 5]^{d}",
        "chains": n,
        "steps": steps,
    }
    rows = C.rows_of(SUITE, case, timings, n * steps, "chain-steps")
    for row in rows:
        if row["engine"] in cpu:
            row["cpu_rounds_s"] = [float(v) for v in cpu[row["engine"]]]
    pairs = [("ours-ula", bj)]
    if baseline is not None:
        pairs += [("baseline-ula", bj), ("ours-ula", "baseline-ula")]
    ratios = {}
    for a, b in pairs:
        if a in cpu and b in cpu:
            ratios[f"{a} / {b}"] = {
                "wall": _spread(
                    [
                        tb / ta
                        for ta, tb in zip(timings[a].rounds_s, timings[b].rounds_s, strict=True)
                    ]
                ),
                "cpu": _spread([tb / ta for ta, tb in zip(cpu[a], cpu[b], strict=True)]),
            }
    med = {k: float(np.median(v)) for k, v in cpu.items() if v}
    out = {"case": case, "rows": rows, "ratios": ratios}
    out["parts_cpu"] = {
        k: {"of_ours": med[k] / med["ours-ula"], "of_blackjax": med[k] / med[bj]}
        for k in med
        if k.startswith("part: ") and "ours-ula" in med and bj in med
    }
    return out


def main_issue10(argv=None) -> None:
    """``python -m bench.chains [--dims 2,4] [--repeats 7] [--no-parts] [--baseline PATH]``:
    issue 10's case, JSON in bench/results/chains-issue10.json (machine, load average at start
    and end, every round's wall and CPU time). ``--baseline``: a folder with another version's
    ``energy/`` and ``langevin/`` (see `load_baseline`), timed interleaved with ours."""
    import argparse
    import os

    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", default="2,4")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-parts", action="store_true")
    ap.add_argument("--baseline", default=None)
    ap.add_argument("--out", default=str(C.RESULTS / "chains-issue10.json"))
    args = ap.parse_args(argv)
    baseline = load_baseline(args.baseline) if args.baseline else None
    res = {"machine": C.machine(), "argv": sys.argv[1:], "cases": []}
    for d in map(int, args.dims.split(",")):
        r = issue10(d, args.repeats, parts=not args.no_parts, baseline=baseline)
        res["cases"].append(r)
        for name, rt in r["ratios"].items():
            w, c = rt["wall"], rt["cpu"]
            C.say(
                f"d={d}: {name} = wall {w['median']:.2f}x [{w['min']:.2f}-{w['max']:.2f}], "
                f"CPU {c['median']:.2f}x [{c['min']:.2f}-{c['max']:.2f}]"
            )
        for k, v in r["parts_cpu"].items():
            C.say(f"  {k} (CPU): {v['of_ours']:.0%} of ours, {v['of_blackjax']:.0%} of BlackJAX's")
    res["load_average_end"] = list(os.getloadavg())
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main_issue10()
