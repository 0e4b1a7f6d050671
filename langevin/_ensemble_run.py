"""Runner for plain functions: warm-up adapted over the ensemble, then untempered sampling.

Built from the kernels' pieces (`langevin.init`, `_kernels.drift_move`, `_kernels.mh_log_ratio`:
the move and the Metropolis ratio are written once, there) applied to the whitened energy
``E(L y)`` (see `langevin._ensemble`), batched over chains with one normal draw per step for all
chains (a key per chain cost 3-25x the step on CPU), in one ``lax.scan`` per phase inside one
``jax.jit``:

1. warm-up (``n_warmup`` MALA steps whatever the method): the step size follows the ensemble's
   acceptance, the preconditioner is re-estimated at the end of each slow window (the chains
   move to the new whitened coordinates, one gradient each), stuck chains are restarted at
   healthy ones' positions; with ``early_stop`` a window that finds the ensemble stationary
   (`_ensemble.converged`) sends it to the terminal buffer (``n_warmup`` is then a cap), and
   ``n_extend`` slow windows more (`_ensemble.windows`) let a warm-up that has not converged
   by then go on;
2. sampling (``n_steps``): MALA at the adapted step made position-dependent
   (`_kernels.local_step`, ``EnsembleConfig.kappa``; exact), or ULA by the Leimkuhler-Matthews
   scheme (the noise of a step is the mean of two consecutive normals, the previous one
   carried; exact on Gaussians, O(h^2) bias) at `_ensemble.ula_step_size`, the step stable at
   the stiffest chain (`_ensemble.curvature`, ``CURVATURE_ITERS`` gradients per chain), with
   the final preconditioner; positions recorded every ``thin`` steps if asked.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from . import _ensemble, _kernels
from ._draw_blocks import MALA_DRAW_BLOCK_MIN_D, chain_constraints, scan_blocked
from ._progress import tick

__all__ = ["EnsembleConfig", "run"]

Array = jax.Array


# MALA's sampling phase takes `_kernels.local_step` with this kappa (exact): the step adapted in
# warm-up where the gradient is typical, smaller where it is large (a neck). Measured on the
# Brownian model (2000 chains, same warm-up): `log b`'s sd error 0.31 -> 0.21 (0.20-0.24 over
# 3 seeds); kappa 1, 3, 6 tried at 500 chains, 3 the best; docs/langevin.md.
LOCAL_KAPPA = 3.0
# An early-stopping warm-up runs in chunks of this many steps (a multiple of the draw blocks'
# 32), each a scan, while steps of the schedule are left.
EARLY_CHUNK = 128


class EnsembleConfig(NamedTuple):
    """Static description of a run (hashable)."""

    method: str
    n_warmup: int
    n_steps: int
    thin: int
    dense: bool
    restart_stuck: bool
    n_real: int = 0  # chains asked for (0: all); padded chains never enter the statistics
    sharding: Any = None  # NamedSharding of (chains, d) over devices, or None
    progress_every: int = 0  # a progress callback every this many steps (0: none compiled)
    kappa: float | None = LOCAL_KAPPA  # MALA's sampling step made local (None: global)
    early_stop: bool = False  # end warm-up when the ensemble converged (n_warmup: the cap)
    n_extend: int = 0  # slow windows added before the terminal buffer (`_ensemble.windows`)


def warmup_length(cfg: EnsembleConfig) -> int:
    """Steps of the warm-up schedule: ``n_warmup``, plus its extension windows."""
    return len(_ensemble.windows(cfg.n_warmup, cfg.n_extend).end) if cfg.n_warmup else 0


def _draws(key: Array, n: int, d: int, dtype):
    """One step's normals ``(n, d)`` and uniforms ``(n,)`` for all chains in one draw each.

    Threefry is partitionable: row i depends on (key, i) only, so a padded run (more chains on
    more devices) gives its real chains the same draws.
    """
    kz, ku = jax.random.split(key)
    return jax.random.normal(kz, (n, d), dtype), jax.random.uniform(ku, (n,), dtype)


def program(
    energy_fn, key: Array, x0: Array, temperature: Array, cfg: EnsembleConfig, run_id=0
) -> dict:
    """The whole run (traceable; `run` jits it with ``energy_fn`` and ``cfg`` static).

    Results do not depend on how the chains are sharded: every statistic over chains is taken
    on a replicated copy of the real chains (padding excluded), and each chain draws from a key
    made from its index. Step ``t``'s draws are `_draws` of ``fold_in(phase key, t)`` whether
    they are made inside the step or for a block of steps at once (`scan_blocked`, from d =
    `MALA_DRAW_BLOCK_MIN_D` on, as the map runner), so the blocking changes no number.
    ``run_id`` names the progress bar the program reports to (``cfg.progress_every`` > 0).
    """
    n, d = x0.shape
    n_real = cfg.n_real or n
    dtype = x0.dtype
    init_b = jax.vmap(_kernels.init, in_axes=(0, None))
    k_warm, k_samp = jax.random.split(key)

    def mala_b(draws, state, fn, h, t, kappa=None):
        """A MALA step of every chain (`_kernels.mala_move`, batched) with draws ``(z, u)``;
        ``kappa``: the position-dependent step of `_kernels.local_step`."""
        z, u = draws
        x, e, g = state
        vg = jax.vmap(jax.value_and_grad(fn))
        vg_c = lambda y: vg(constrain(y))  # noqa: E731
        return _kernels.mala_move(x, e, g, z, u, h, t, 1.0, vg_c, None, kappa)

    def ula_b(draws, state, fn, h, t, noise):
        """A ULA step of every chain (`_kernels.ula_move`; gradient only, energies at the end)
        with the Leimkuhler-Matthews noise (`_ensemble.lm_noise`: this step's normal and the
        previous one, ``noise``); returns the state, the info and this step's normal."""
        z, _ = draws
        zn = _ensemble.lm_noise(noise, z)
        g_move = _ensemble.cap_drift(state.energy_grad, h, t)
        x, ok = _kernels.ula_move(state.position, g_move, zn, h, t, 1.0, None)
        g = jax.vmap(jax.grad(fn))(constrain(x))  # not finite: the next move keeps the chain
        g_ok = _kernels.row_all(jnp.isfinite(g))
        one = jnp.ones((n,), dtype)
        new = _kernels.LangevinState(x, state.energy, g)
        return new, _kernels.LangevinInfo(one, ok, ~(ok & g_ok)), z

    def gather(a):
        """The real chains' values, replicated on every device."""
        if cfg.sharding is not None:
            spec = PartitionSpec(*([None] * a.ndim))
            a = jax.lax.with_sharding_constraint(a, NamedSharding(cfg.sharding.mesh, spec))
        return a[:n_real]

    constrain, constrain_block = chain_constraints(cfg.sharding)

    def draw(phase_key):
        """``steps (K,) -> (z (K, n, d), u (K, n))``: `_draws` of each step's key."""

        def block(ts):
            z, u = jax.vmap(lambda t: _draws(jax.random.fold_in(phase_key, t), n, d, dtype))(ts)
            return constrain_block(z), constrain_block(u)

        return block

    # blocks of draws as in the map runner: from d = 3 on (below, a draw inside each step)
    block = (n * (d + 1), 0 if d >= MALA_DRAW_BLOCK_MIN_D else 1)

    # ---- warm-up
    adapt = _ensemble.init(n_real, d, cfg.dense, dtype=dtype)
    state = init_b(constrain(x0), _ensemble.whitened_energy(energy_fn, adapt.factor))
    bad = jnp.zeros(n, bool)
    n_warm = warmup_length(cfg)
    n_used = jnp.asarray(n_warm, jnp.int32)
    if n_warm:
        w = _ensemble.windows(cfg.n_warmup, cfg.n_extend)
        xs = (jnp.arange(n_warm),) + tuple(jnp.asarray(f) for f in w)

        def warm_step(state, adapt, t, flags, draws):
            collect, end, average, start = flags
            k_t = jax.random.fold_in(k_warm, t)
            fn = _ensemble.whitened_energy(energy_fn, adapt.factor)
            h = jnp.exp(adapt.log_step)
            state, info = mala_b(draws, state, fn, h, temperature)
            if not cfg.early_stop:
                tick(run_id, t, cfg.progress_every)
            new = _ensemble.update(
                adapt,
                gather(state.position),
                gather(info.acceptance_rate),
                collect,
                end,
                average,
                start,
            )

            def rewhiten(_):
                x = _ensemble.from_whitened(adapt.factor, state.position)
                n_restart = jnp.zeros((), jnp.int32)
                if cfg.restart_stuck:
                    xr = gather(x)
                    stuck = _ensemble.straggler_mask(new, gather(state.energy))
                    healthy = ~_ensemble.stuck_mask(new)
                    # a uniform pick among the healthy chains, O(n log n) (a categorical
                    # draw per chain over n chains costs n^2)
                    order = jnp.argsort(~healthy, stable=True)  # healthy chains first
                    n_h = jnp.sum(healthy)
                    u = jax.random.uniform(jax.random.fold_in(k_t, 1), (n,), dtype)
                    pick = jnp.clip((u * n_h).astype(jnp.int32), 0, jnp.maximum(n_h - 1, 0))
                    src = order[pick]
                    use = jnp.zeros(n, bool).at[:n_real].set(stuck & jnp.any(healthy))
                    x = constrain(jnp.where(use[:, None], xr[src], x))
                    n_restart = jnp.sum(use).astype(jnp.int32)
                y = _ensemble.to_whitened(new.factor, x)
                s = init_b(y, _ensemble.whitened_energy(energy_fn, new.factor))
                return s, n_restart

            def same(_):
                return state, jnp.zeros((), jnp.int32)

            state, n_restart = jax.lax.cond(end, rewhiten, same, None)
            new = new._replace(n_restarted=new.n_restarted + n_restart)
            return state, new

        def warm(carry, xs_t):
            (t, *flags), draws = xs_t
            return warm_step(*carry, t, flags, draws), None

        if not cfg.early_stop:
            state, adapt = scan_blocked(warm, (state, adapt), xs, draw(k_warm), *block)
        else:
            # `_ensemble.converged` at a window's end: jump to the terminal buffer (schedule
            # step t + skip); steps past the schedule do nothing
            table = jnp.stack(xs[1:])
            stop = int(np.flatnonzero(w.average)[0])

            def warm_early(carry, xs_t):
                state, adapt, skip = carry
                (t, *_), draws = xs_t
                s = t + skip
                flags = tuple(table[:, jnp.minimum(s, n_warm - 1)])

                def go(_):
                    st, ad = warm_step(state, adapt, s, flags, draws)
                    jump = flags[1] & ad.converged & (s + 1 < stop)
                    return st, ad, skip + jnp.where(jump, stop - (s + 1), 0)

                carry = jax.lax.cond(s < n_warm, go, lambda _: carry, None)
                tick(run_id, t, cfg.progress_every)
                return carry, None

            # in chunks of EARLY_CHUNK steps, while the schedule has steps left: after a jump
            # the steps left over are not run as no-ops (with the extension windows a
            # converged run would otherwise scan ~2400 of them, +11% CPU on the logistic)
            n_chunks = -(-n_warm // EARLY_CHUNK)

            def chunk(c):
                i, carry = c
                ts = i * EARLY_CHUNK + jnp.arange(EARLY_CHUNK)
                return i + 1, scan_blocked(warm_early, carry, (ts,), draw(k_warm), *block)

            def more(c):
                i, (_, _, skip) = c
                return (i < n_chunks) & (i * EARLY_CHUNK + skip < n_warm)

            carry = (jnp.zeros((), jnp.int32), (state, adapt, jnp.zeros((), jnp.int32)))
            _, (state, adapt, skip) = jax.lax.while_loop(more, chunk, carry)
            n_used = n_used - skip
    h_mala = _ensemble.final_step_size(adapt)

    # ---- sampling
    factor = adapt.factor
    fn = _ensemble.whitened_energy(energy_fn, factor)
    if cfg.method == "mala":
        h, noise0 = h_mala, None

        def kernel(draws, state, fn, h, t, noise):
            return (*mala_b(draws, state, fn, h, t, cfg.kappa), noise)
    else:
        # ULA: the step stable where the stiffest chain is; the first step's "previous" normal
        # from a stream of its own (rows depend on the chain index only, as `_draws`)
        vgrad = jax.vmap(jax.grad(fn))
        lam = _ensemble.curvature(
            lambda y: vgrad(constrain(y)),
            state.position,
            state.energy_grad,
            jax.random.fold_in(key, 2),
        )
        lam = gather(lam)
        lam_max = jnp.max(jnp.where(jnp.isfinite(lam), lam, -jnp.inf))
        h = _ensemble.ula_step_size(lam_max, h_mala)
        noise0 = constrain(jax.random.normal(jax.random.fold_in(key, 3), (n, d), dtype))
        kernel = ula_b
    n_rec = cfg.n_steps // cfg.thin if cfg.thin else 0

    def samp(carry, xs_t):
        state, acc, bad, noise = carry
        (t,), draws = xs_t
        new, info, noise = kernel(draws, state, fn, h, temperature, noise)
        tick(run_id, n_warm + t, cfg.progress_every)
        moved = info.acceptance_rate  # row 1: times the local step's ratio to h (n_stuck)
        if cfg.method == "mala" and cfg.kappa is not None:
            ratio = _kernels.local_step(1.0, state.energy_grad, temperature, 1.0, cfg.kappa)
            moved = moved * ratio[:, 0]
        acc = acc + jnp.stack([info.acceptance_rate, moved])
        return (new, acc, bad | info.is_diverged, noise), None

    def samp_steps(carry, ts):
        if ts.shape[0] == 0:
            return carry
        return scan_blocked(samp, carry, (ts,), draw(k_samp), *block)

    acc0 = jnp.zeros((2, n), dtype)
    if n_rec:
        steps = jnp.arange(n_rec * cfg.thin).reshape(n_rec, cfg.thin)

        def record(carry, ts):
            carry = samp_steps(carry, ts)
            pos = carry[0].position
            e = carry[0].energy if cfg.method == "mala" else jax.vmap(fn)(pos)
            return carry, (pos, e)

        carry = (state, acc0, bad, noise0)
        carry, (traj_y, e_trace) = jax.lax.scan(record, carry, steps)
        rest = jnp.arange(n_rec * cfg.thin, cfg.n_steps)
        state, acc, bad, _ = samp_steps(carry, rest)
        trajectory = _ensemble.from_whitened(factor, traj_y)
    else:
        state, acc, bad, _ = samp_steps((state, acc0, bad, noise0), jnp.arange(cfg.n_steps))
        trajectory = e_trace = None
    acceptance, mobility = acc / cfg.n_steps
    if cfg.method == "mala":
        real = gather(mobility)  # acceptance x local step / h: a chain in a neck is stuck
        n_stuck = jnp.sum(real < _ensemble.STUCK_RATIO * jnp.mean(real)).astype(jnp.int32)
    else:
        n_stuck = adapt.n_stuck
    energies = state.energy if cfg.method == "mala" else jax.vmap(fn)(state.position)
    return {
        "positions": _ensemble.from_whitened(factor, state.position),
        "energies": energies,
        "acceptance": acceptance if cfg.method == "mala" else None,
        "diverged": bad,
        "step_size": h,
        "factor": factor,
        "n_stuck": n_stuck,
        "n_restarted": adapt.n_restarted,
        "n_warmup": n_used,
        "trajectory": trajectory,
        "energy_trace": e_trace,
    }


@functools.partial(jax.jit, static_argnums=(0, 4))
def _run(energy_fn, key, x0, temperature, cfg):
    return program(energy_fn, key, x0, temperature, cfg)


def run(
    energy_fn,
    key: Array,
    x0,
    *,
    method: str = "mala",
    n_warmup: int = 1000,
    n_steps: int = 1000,
    thin: int = 0,
    temperature: float = 1.0,
    dense: bool | None = None,
    restart_stuck: bool = True,
    early_stop: bool = False,
    n_extend: int = 0,
) -> dict:
    """Warm-up over the ensemble then sampling, from starting states ``x0 (n_chains, d)``.

    Returns a dict of arrays: ``positions (n, d)``, ``energies (n,)``, ``acceptance (n,)`` (MALA,
    sampling phase), ``diverged (n,)``, ``step_size``, ``factor`` (``L``), ``n_stuck``,
    ``n_restarted``, ``n_warmup`` (warm-up steps run: with ``early_stop`` the schedule ends at
    the first slow window where the ensemble converged, `_ensemble.converged`, and ``n_extend``
    more slow windows (`_ensemble.windows`) let it go on past ``n_warmup`` while it has not),
    ``trajectory`` / ``energy_trace``
    (every ``thin`` steps, or None).

    Example:
        >>> out = run(lambda x: 0.5 * x @ x, jax.random.key(0), jnp.zeros((64, 2)),
        ...           n_warmup=100, n_steps=100)
        >>> out["positions"].shape
        (64, 2)
    """
    x0 = jnp.asarray(x0, jnp.result_type(float))
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (n_chains, d), got {x0.shape}")
    d = x0.shape[1]
    if dense is None:
        dense = d <= _ensemble.DENSE_MAX_D
    if method not in ("mala", "ula"):
        raise ValueError(f"method must be 'ula' or 'mala', got {method!r}")
    cfg = EnsembleConfig(
        method,
        int(n_warmup),
        int(n_steps),
        int(thin),
        bool(dense),
        restart_stuck,
        early_stop=bool(early_stop),
        n_extend=int(n_extend),
    )
    return _run(energy_fn, key, x0, jnp.asarray(temperature, x0.dtype), cfg)
