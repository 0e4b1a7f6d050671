"""From options to a program: `prepare` resolves a run on its target into arrays and a `Config`.

The arrays (``p``: the target's arrays, the key, bounds, fixed values, per-step tables of the
annealing) are the program's dynamic inputs; the `Config` is its static part (one compilation per
distinct `Config`). Shared by `langevin.sample` and `langevin.sweep`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import _options, _progress, _target
from ._options import Options
from ._schedules import NoiseAnnealing, TemperatureSchedule, geometric, linear

__all__ = ["Config", "Prepared", "prepare", "total_steps"]

# Grid rule for the default step on a gridded target: h = 0.25 * min_j (spacing_j / scale_j)^2 in
# relative units, i.e. each step moves a chain by sqrt(2h) ≈ 0.7 grid cell: small against any
# feature the grid can hold, so the ULA bias (variance factor 1 / (1 - h / 2 w^2) on a mode of
# width w cells) stays below 1% for modes wider than ~3.5 cells.
GRID_STEP_FACTOR = 0.25
# Adaptation: 200 warm-up steps of dual averaging (see `_adaptation`).
WARMUP_STEPS = 200
# First guess of the step when nothing is known (relative units).
DEFAULT_H0 = 0.1
# Temperature annealing for targets without a noise pyramid: geometric from 10 T down to T over
# 500 steps (cosine from 1 to 0 when T = 0).
TEMPERATURE_ANNEAL_STEPS = 500
TEMPERATURE_ANNEAL_FACTOR = 10.0


class Config(NamedTuple):
    """Static description of a run (hashable: one compilation per distinct Config)."""

    method: str
    n: int  # chains, padded to a multiple of the device count
    n_real: int  # chains asked for (the median of adapted steps uses these only)
    d: int
    init_kind: str  # "given" | "uniform" | "normal"
    n_pre: int
    anneal: str | None  # "noise" | "temperature" | None
    n_anneal: int
    anneal_row: int  # steps per noise level (the whole phase for temperature annealing)
    n_post: int
    n_steps: int
    thin: int
    reflect: bool
    progress_every: int
    target: Any  # static part of the target (see _target.split)
    objective: Any
    sharding: Any


@dataclasses.dataclass
class Prepared:
    """A run ready to go: dynamic arrays ``p``, static `Config`, and host-side facts."""

    p: dict
    cfg: Config
    info: _target.TargetInfo
    schedule: str
    n_warmup: int
    n_superchains: int | None = None


@functools.partial(jax.jit, static_argnums=1)
def _init_energies(arrays, static, x):
    """Energies of the initial states (checked for finiteness before a run)."""
    return jax.vmap(_target.join(arrays, static))(x)


def prepare(target, key, opts: Options, sharded: bool = True) -> Prepared:
    """Resolve ``opts`` on ``target`` and build the program's inputs (shared by `sample`/`sweep`)."""
    dtype = _options.float_dtype()
    key = _options.check_key(key)
    n_chains, n_steps, init, method = opts.n_chains, opts.n_steps, opts.init, opts.method
    step_size, temperature, schedule = opts.step_size, opts.temperature, opts.schedule
    bounds, fixed, objective, weight = opts.bounds, opts.fixed, opts.objective, opts.weight
    thin, n_warmup, progress, devices = opts.thin, opts.n_warmup, opts.progress, opts.devices

    # ---- init and dimension
    x0 = None
    n_super = None
    d_hint = None
    if init is not None:
        x0 = np.asarray(init, dtype=np.float64)
        if x0.ndim == 1:
            x0 = np.broadcast_to(x0, (n_chains, x0.shape[0]))
        elif x0.ndim == 2 and 2 <= x0.shape[0] < n_chains and n_chains % x0.shape[0] == 0:
            n_super = x0.shape[0]  # superchains: chain i starts at init[i // M]
            x0 = np.repeat(x0, n_chains // n_super, axis=0)
        if x0.ndim != 2 or x0.shape[0] != n_chains or x0.shape[1] < 1:
            raise ValueError(
                f"init must have shape (n_chains, d) = ({n_chains}, d), (d,) or (K, d) with K "
                f"dividing n_chains (superchains), got {np.shape(init)}"
            )
        bad_rows = np.flatnonzero(~np.all(np.isfinite(x0), axis=1))
        if bad_rows.size:
            raise ValueError(
                f"init contains NaN or inf in {bad_rows.size} chain(s), first at chain {bad_rows[0]}"
            )
        d_hint = x0.shape[1]
    info = _target.describe(target, d_hint)
    d = info.d
    _target.check_scalar_output(target, d, dtype)
    if objective is not None:
        try:
            _target.check_scalar_output(objective, d, dtype)
        except ValueError as err:
            raise ValueError(str(err).replace("target", "objective")) from err
    lo, hi = _options.box(bounds, info)
    reflect = lo is not None
    fixed_v = _options.fixed_vector(fixed, info)
    free = np.isnan(fixed_v)
    if reflect:
        outside = ~free & ((fixed_v < lo) | (fixed_v > hi))
        if np.any(outside):
            j = int(np.flatnonzero(outside)[0])
            raise ValueError(
                f"fixed value {fixed_v[j]} of axis {j} lies outside bounds [{lo[j]}, {hi[j]}]"
            )
    if not np.any(free):
        raise ValueError("every variable is fixed: nothing to sample")

    # ---- preconditioner and step sizes (relative units when the target has a scale)
    scale = info.scale
    if scale is None and info.lo is not None:
        scale = info.hi - info.lo
    m = np.ones(d) if scale is None else scale**2
    m = np.where(free, m, 0.0)
    n_pre = n_post = 0
    warm = WARMUP_STEPS if n_warmup is None else n_warmup
    if step_size is not None:
        h = step_size
    elif info.spacing is not None:
        rel = info.spacing / (scale if scale is not None else 1.0)
        h = GRID_STEP_FACTOR * float(np.min(rel[free]) ** 2)
        if method == "mala":
            n_post = warm
    else:
        h = DEFAULT_H0
        n_pre = warm

    # ---- schedule
    anneal = None
    sigma_t = h_t = t_t = np.zeros(0)
    n_anneal = anneal_row = 0
    if isinstance(schedule, str):
        if schedule != "auto":
            raise ValueError(
                f"schedule must be 'auto', None or a langevin schedule, got {schedule!r}"
            )
        if info.noise_levels is not None:
            schedule = NoiseAnnealing()
        elif temperature > 0:
            schedule = geometric(
                TEMPERATURE_ANNEAL_FACTOR * temperature, temperature, TEMPERATURE_ANNEAL_STEPS
            )
        else:
            schedule = linear(1.0, 0.0, TEMPERATURE_ANNEAL_STEPS)
    description = "none"
    if isinstance(schedule, NoiseAnnealing):
        levels = schedule.levels
        if levels is None:
            if info.noise_levels is None:
                raise ValueError(
                    "NoiseAnnealing() needs levels: this target has no `noise_levels` / `energy_at`"
                )
            schedule = schedule.with_levels(info.noise_levels)
        elif not callable(getattr(target, "energy_at", None)):
            raise ValueError("NoiseAnnealing needs a target with `energy_at(x, sigma)`")
        sigma_t, h_t = schedule.tables()
        t_t = np.full(sigma_t.shape, temperature)
        anneal, n_anneal = "noise", sigma_t.size
        anneal_row = int(schedule.steps_per_level)
        description = (
            f"noise annealing: {len(schedule.levels)} levels {schedule.levels[0]:.3g}.."
            f"{schedule.levels[-1]:.3g} x {schedule.steps_per_level} steps"
        )
    elif isinstance(schedule, TemperatureSchedule):
        t_t = schedule.table()
        anneal, n_anneal = "temperature", t_t.size
        anneal_row = n_anneal
        description = (
            f"temperature annealing: {schedule.kind} {schedule.start:g} -> {schedule.end:g} "
            f"over {schedule.n_steps} steps"
        )
    elif schedule is not None:
        raise ValueError(
            f"schedule must be 'auto', None, langevin.NoiseAnnealing(...) or a temperature "
            f"schedule (langevin.geometric / linear / cosine), got {schedule!r}"
        )

    # ---- init kind
    if x0 is not None:
        init_kind = "given"
        init_lo = init_hi = np.zeros(d)
    elif lo is not None:
        init_kind, init_lo, init_hi = "uniform", lo, hi
    elif info.lo is not None:
        init_kind, init_lo, init_hi = "uniform", info.lo, info.hi
    else:
        init_kind, init_lo = "normal", np.zeros(d)
        init_hi = scale if scale is not None else np.ones(d)

    # ---- devices: pad the chains to a multiple of the device count (extra chains are dropped)
    sharding = None
    n_pad = n_chains
    if sharded:
        devs = _options.devices_of(devices, n_chains)
        if len(devs) > 1:
            n_pad = -(-n_chains // len(devs)) * len(devs)
            mesh = Mesh(np.asarray(devs), ("chains",))
            sharding = NamedSharding(mesh, PartitionSpec("chains", None))
    if x0 is not None and n_pad > n_chains:
        x0 = np.concatenate([x0, np.broadcast_to(x0[:1], (n_pad - n_chains, d))])

    if x0 is not None:
        x0j = jnp.asarray(x0, dtype)
        if sharding is not None:
            x0j = jax.device_put(x0j, sharding)
        e0 = _init_energies(*_target.split(target), x0j[:n_chains])
        bad = np.flatnonzero(~np.isfinite(np.asarray(e0)))
        if bad.size:
            raise ValueError(
                f"target energy is not finite at init for {bad.size} chain(s), first at chain "
                f"{bad[0]} (x = {x0[bad[0]].tolist()})"
            )
    else:
        x0j = None

    if progress is None:
        progress = _progress.progress_default()
    target_arrays, target_static = _target.split(target)
    f32 = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    inf = np.full(d, np.inf)
    p = {
        "target": target_arrays,
        "key": key,
        "x0": x0j,
        "m": f32(m),
        "free": jnp.asarray(free),
        "fixed": f32(np.where(free, 0.0, fixed_v)),
        "lo": f32(lo if lo is not None else -inf),
        "hi": f32(hi if hi is not None else inf),
        "init_lo": f32(init_lo),
        "init_hi": f32(init_hi),
        "weight": f32(weight),
        "temperature": f32(temperature),
        "h": f32(h),
        "h0": f32(h),
        "anneal_sigma": f32(sigma_t),
        "anneal_h": f32(h_t),
        "anneal_t": f32(t_t),
        "run_id": jnp.int32(0),
    }
    cfg = Config(
        method=method,
        n=n_pad,
        n_real=n_chains,
        d=d,
        init_kind=init_kind,
        n_pre=n_pre,
        anneal=anneal,
        n_anneal=n_anneal,
        anneal_row=anneal_row,
        n_post=n_post,
        n_steps=n_steps,
        thin=thin or 0,
        reflect=reflect,
        progress_every=_progress.PROGRESS_EVERY if progress else 0,
        target=target_static,
        objective=None if objective is None else _target.callable_key(objective),
        sharding=sharding,
    )
    return Prepared(p, cfg, info, description, n_pre + n_post, n_super)


def total_steps(cfg: Config) -> int:
    """Steps of all phases of a run."""
    return cfg.n_pre + cfg.n_anneal + cfg.n_post + cfg.n_steps
