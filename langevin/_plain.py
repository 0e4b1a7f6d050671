"""`langevin.sample` on a plain function with ``schedule="auto"``: adapt over the ensemble.

A target without a noise pyramid, a grid or a box (a posterior, an objective) is not tempered:
tempering from 10 T throws scale parameters far out and a fixed-length final phase does not
bring them back (issue 12: a funnel's v at median 5.8 against 0 +- 3). Instead the chains start
in superchains (`N_SUPERCHAINS` points ``N(0, I)``, each shared by ``n_chains / K`` chains, so
that nested R-hat can tell whether they forgot their start), a warm-up of MALA steps adapts the
step and a dense (or diagonal) preconditioner over the whole ensemble (`langevin._ensemble`;
by default it ends early once the ensemble is stationary, `PLAIN_WARMUP` steps at most),
and the sampling phase runs MALA or ULA untempered with them (`langevin._ensemble_run`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _ensemble, _ensemble_run, _progress, _target

# Warm-up of a plain function when n_warmup is not given: at most Stan's 1000 (windows of
# 150 | 50 100 200 400 | 100; measured on the banana, 1000 steps against 500 lowered the sd
# error of 2000 final states from 0.13 to 0.10), ended after a slow window once the ensemble is
# stationary in two consecutive windows (`_ensemble.converged`: 600 steps on a logistic
# regression; a banana, a funnel, centred eight schools run all 1000).
PLAIN_WARMUP = 1000
# ... and when the ensemble is still changing at its last slow window, up to this many more
# windows of the last one's length (400 steps: a cap of 3000), each re-estimating the
# preconditioner and checking again (`_ensemble.windows(n, n_extend)`). Measured (2000
# chains, seeds 0-2): the banana's sd error 0.095-0.126 -> 0.015-0.050 (2600-3000 steps; not
# every seed: where `converged` passes before its arms fill it still stops at 1000-1800);
# targets that converge in the first 1000 steps are unchanged.
PLAIN_EXTEND = 5
# Superchains for nested R-hat: K = 16 start points when there are at least 8 chains for each.
N_SUPERCHAINS = 16
MIN_CHAINS_PER_SUPERCHAIN = 8


def applies(target, schedule, step_size, temperature, bounds) -> bool:
    """Whether ``sample`` takes the ensemble-adaptation path for these arguments."""
    if not (isinstance(schedule, str) and schedule == "auto") or step_size is not None:
        return False
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        return False  # prepare() raises the clear error
    if not (math.isfinite(t) and t > 0):
        return False  # T = 0 is optimisation: the old descent path
    if getattr(target, "noise_levels", None) is not None or callable(
        getattr(target, "energy_at", None)
    ):
        return False
    if getattr(target, "spacing", None) is not None or getattr(target, "lo", None) is not None:
        return False
    return bounds is None or (isinstance(bounds, str) and bounds == "auto")


def superchains(n_chains: int) -> int | None:
    """How many superchains the default start uses (None: too few chains)."""
    k = min(N_SUPERCHAINS, n_chains // MIN_CHAINS_PER_SUPERCHAIN)
    return k if k >= 2 else None


class PlainConfig(NamedTuple):
    """Static part of a plain-function run (hashable: one compilation per distinct value)."""

    run: _ensemble_run.EnsembleConfig
    target: Any
    objective: Any
    free: tuple[int, ...]
    d: int
    init_kind: str
    n_super: int


def _program(p: dict, cfg: PlainConfig) -> dict:
    target = _target.join(p["target"], cfg.target)
    objective = None if cfg.objective is None else _target.from_key(cfg.objective)
    free = np.asarray(cfg.free)
    fixed = p["fixed"]
    n = cfg.run.n_real
    n_pad = p["x0"].shape[0] if p["x0"] is not None else None

    def full(z):
        return fixed.at[free].set(z) if free.size < cfg.d else z

    def total(z):
        x = full(z)
        e = target(x)
        return e + p["weight"] * objective(x) if objective is not None else e

    if cfg.init_kind == "given":
        z0 = p["x0"][:, free]
    else:  # superchains: K points N(0, init_hi^2), chain i starts at point i // M
        n_pad = p["n_pad"].shape[0]
        k_init = jax.random.fold_in(p["key"], 0)
        pts = jax.random.normal(k_init, (cfg.n_super, cfg.d), fixed.dtype) * p["init_hi"]
        m = n // cfg.n_super
        idx = jnp.minimum(jnp.arange(n_pad) // m, cfg.n_super - 1)
        idx = jnp.where(jnp.arange(n_pad) < n, idx, 0)
        z0 = pts[idx][:, free]
    out = _ensemble_run.program(
        total, jax.random.fold_in(p["key"], 1), z0, p["temperature"], cfg.run, p["run_id"]
    )
    positions = jax.vmap(full)(out["positions"])
    energies = jax.vmap(target)(positions)
    out["objective"] = None if objective is None else jax.vmap(objective)(positions)
    out["total"] = out["energies"]
    out["energies"] = energies
    out["positions"] = positions
    if out["trajectory"] is not None:
        out["trajectory"] = jax.vmap(jax.vmap(full))(out["trajectory"])
    return out


_compiled = jax.jit(_program, static_argnames=("cfg",))


@dataclasses.dataclass(frozen=True)
class PlainRun:
    """What the ensemble path adds to a `SampleResult`."""

    out: dict
    n_warmup: int
    n_superchains: int | None
    schedule: str
    wall_time: float


def run(prep, n_warmup: int | None) -> PlainRun:
    """Run the ensemble path on a `_sample.prepare` result (validated arguments)."""
    p, cfg = prep.p, prep.cfg
    free = tuple(int(i) for i in np.flatnonzero(np.asarray(p["free"])))
    d_free = len(free)
    warm = PLAIN_WARMUP if n_warmup is None else int(n_warmup)
    n_super = superchains(cfg.n_real) if cfg.init_kind != "given" else prep.n_superchains
    run_cfg = _ensemble_run.EnsembleConfig(
        method=cfg.method,
        n_warmup=warm,
        n_steps=cfg.n_steps,
        thin=cfg.thin,
        dense=d_free <= _ensemble.DENSE_MAX_D,
        restart_stuck=True,
        n_real=cfg.n_real,
        sharding=cfg.sharding,
        progress_every=cfg.progress_every,
        early_stop=n_warmup is None,
        n_extend=PLAIN_EXTEND if n_warmup is None else 0,
    )
    objective = cfg.objective  # already a static key (`_target.callable_key`)
    pcfg = PlainConfig(run_cfg, cfg.target, objective, free, cfg.d, cfg.init_kind, n_super or 1)
    q = {k: p[k] for k in ("target", "key", "x0", "fixed", "weight", "temperature", "init_hi")}
    q["run_id"] = jnp.int32(0)
    if cfg.init_kind != "given":
        q["n_pad"] = jnp.zeros(cfg.n, jnp.int8)  # carries the padded chain count as a shape

    def set_run_id(i):
        q["run_id"] = jnp.int32(i)

    t0 = time.perf_counter()
    # a bar over warm-up and sampling (`langevin._progress`; every = 0: no bar, no callback)
    cap = _ensemble_run.warmup_length(run_cfg)  # with the extension windows
    out = _progress.run_with_progress(
        lambda: _compiled(q, pcfg), cap + cfg.n_steps, cfg.progress_every, set_run_id
    )
    jax.block_until_ready(out)
    wall = time.perf_counter() - t0
    kind = "dense" if run_cfg.dense else "diagonal"
    used = int(out["n_warmup"])  # below `cap` when the ensemble converged early
    early = f" (converged; cap {cap})" if used < cap else ""
    schedule = (
        f"ensemble adaptation: {used} warm-up steps{early} ({kind} preconditioner), untempered"
    )
    return PlainRun(out, used, n_super, schedule, wall)
