"""The chain runner: many Langevin chains in one compiled program (batched steps + ``lax.scan``).

A run has up to four phases, inside one ``jax.jit``:

1. adaptation before annealing (targets without a grid spacing and no ``step_size``): MALA steps
   whose per-chain step follows dual averaging towards acceptance 0.574; the step is then the
   median over chains (times `ULA_FRACTION` for ULA, whose bias grows with the step);
2. annealing (the schedule): noise levels of a pyramid, or temperatures;
3. adaptation after annealing (MALA on a gridded target): the same dual averaging, starting from
   the grid step;
4. sampling: ``n_steps`` steps on the target at the final temperature, optionally recorded every
   ``thin`` steps.

Performance: one batched normal draw of shape ``(n_chains, d)`` per step (no key split per
chain), made for a block of up to 32 steps at once (`scan_blocked`); a gradient-only ULA loop
(energies only where asked) whose divergence check reads the gradient, not the moved state; one
compilation per configuration (an `EnergyMap` is passed as arrays, so a new map of the same
shape reuses the program).

Compile time: the phases share ONE compiled step (`scan_blocked` over all the steps of a run,
the phase's level, step size and temperature per step, host-side flags resolved when constant
and a ``lax.cond`` otherwise), and blocks of equal length (no tail loop): one loop nest in the
program instead of one or two per phase (XLA compile about halved on a 2-D map; only ``thin``
adds a second copy, for the recorded steps; on targets without a grid, the adaptation before
annealing and MALA's temperature annealing keep loops of their own, as a per-step flag or
temperature costs a cheap target's later steps 20-50%).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import _diagnostics, _diagnostics_nested, _kernels, _plain, _target
from ._schedules import NoiseAnnealing, TemperatureSchedule, geometric, linear

__all__ = ["SampleResult", "sample"]

Array = jax.Array

# Default length of the sampling phase (after annealing): the annealing phase already leaves the
# chains near equilibrium; 1000 steps of ~0.7 grid cell each relax them within the finest level.
DEFAULT_N_STEPS = 1000
# Grid rule for the default step on a gridded target: h = 0.25 * min_j (spacing_j / scale_j)^2 in
# relative units, i.e. each step moves a chain by sqrt(2h) ≈ 0.7 grid cell: small against any
# feature the grid can hold, so the ULA bias (variance factor 1 / (1 - h / 2 w^2) on a mode of
# width w cells) stays below 1% for modes wider than ~3.5 cells.
GRID_STEP_FACTOR = 0.25
# Adaptation: dual averaging (Hoffman & Gelman 2014, §3.2) towards MALA's optimal acceptance 0.574
# (Roberts & Rosenthal 1998); 200 warm-up steps.
WARMUP_STEPS = 200
TARGET_ACCEPTANCE = 0.574
DA_GAMMA, DA_T0, DA_KAPPA = 0.05, 10.0, 0.75
# Without a grid, ULA uses 1/50 of the adapted MALA step: on a Gaussian of width w the MALA step
# is ~w^2, so ULA's stationary variance is inflated by ~1 / (1 - 0.01), 1% (0.5% on the std).
ULA_FRACTION = 0.02
# At T = 0 ULA is gradient descent: a quarter of the MALA step keeps it stable on curvature up to
# ~8 / h_mala, with no sampling bias to worry about.
ULA_FRACTION_COLD = 0.25
# First guess of the step when nothing is known (relative units).
DEFAULT_H0 = 0.1
# Temperature annealing for targets without a noise pyramid: geometric from 10 T down to T over
# 500 steps (cosine from 1 to 0 when T = 0).
TEMPERATURE_ANNEAL_STEPS = 500
TEMPERATURE_ANNEAL_FACTOR = 10.0
# Progress bar: one host callback every PROGRESS_EVERY steps.
PROGRESS_EVERY = 100


# Random draws: the normals (and MALA's uniforms) of up to DRAW_BLOCK_STEPS steps are drawn at
# once, one vmapped draw of shape (K, n_chains, ...), and the steps then scan over them. On CPU
# a draw made inside each step of the loop cost two to three times the rest of a ULA step
# (measured at d = 2 and 4 with 4k-32k chains); drawn in blocks it costs about as much as the
# map gradient. A step's draw is still a function of (key, step) alone (bit-identical to a draw
# made inside the step), so the draws do not depend on the blocking. A block holds at most
# DRAW_BLOCK_ELEMENTS numbers (2 MB in float32). MALA gains from blocks only from d = 3 on
# (measured 1.2-1.6x at d = 4 but 0.85-0.9x at d = 2): below that it draws inside each step.
DRAW_BLOCK_STEPS = 32
DRAW_BLOCK_ELEMENTS = 1 << 19
MALA_DRAW_BLOCK_MIN_D = 3


def block_length(length: int, per_step: int, max_steps: int = 0) -> tuple[int, int]:
    """Steps per block of draws and the padding steps that make ``length`` a whole number of blocks.

    The longest block allowed is ``min(max_steps or DRAW_BLOCK_STEPS, DRAW_BLOCK_ELEMENTS //
    per_step, length)``; among the lengths from half of it up, the one with the least estimated
    cost ``(length + padding) * (1 + 4 / k)`` (longer blocks draw faster: 25-step blocks were
    measured ~8% slower than 32-step ones on a ULA run) is taken, so that every block runs the
    same compiled body (no separate tail loop: one copy of the step in the program).
    """
    k_max = min(max_steps or DRAW_BLOCK_STEPS, DRAW_BLOCK_ELEMENTS // max(per_step, 1), length)
    k_max = max(1, k_max)
    best = None
    for k in range(k_max, (k_max + 1) // 2 - 1, -1):
        pad = -length % k
        cost = (length + pad) * (1.0 + 4.0 / k)
        if best is None or cost < best[2]:
            best = (k, pad, cost)
    return best[:2]


def scan_blocked(
    step: Callable, carry, xs: tuple, draw: Callable, per_step: int, max_steps: int = 0
):
    """``lax.scan`` of ``step`` over ``xs`` with the per-step random draws made in blocks.

    All blocks have the same length (`block_length`); when the steps do not fill the last one,
    the padding steps leave the carry unchanged (a select on the carry), so the program holds
    one copy of ``step`` whatever the length.

    Args:
        step: ``(carry, (xs_t, draws_t)) -> (carry, None)``.
        carry: the loop state.
        xs: a tuple of per-step arrays (or None) with the global step indices first.
        draw: ``steps (K,) -> draws`` with a leading axis K.
        per_step: how many numbers one step draws (sets the block length).
        max_steps: the longest block (0: `DRAW_BLOCK_STEPS`; 1: a draw inside each step).

    Returns:
        The final carry.
    """
    length = xs[0].shape[0]
    k, pad = block_length(length, per_step, max_steps)
    n_blocks = (length + pad) // k

    def extend(a):
        if a is None or not pad:
            return a
        return jnp.concatenate([a, jnp.broadcast_to(a[-1:], (pad,) + a.shape[1:])])

    xs = jax.tree_util.tree_map(extend, xs)
    active = None if not pad else jnp.arange(length + pad) < length
    if pad:
        inner = step

        def step(c, xs_t):  # noqa: F811 (a padding step keeps the carry)
            (xs_s, on), draws = xs_t
            new, _ = inner(c, (xs_s, draws))
            return jax.tree_util.tree_map(lambda a, b: jnp.where(on, a, b), new, c), None

        xs = (xs, active)

    def block(c, xs_b):
        ts = xs_b[0][0] if pad else xs_b[0]
        c, _ = jax.lax.scan(step, c, (xs_b, draw(ts)))
        return c, None

    blocks = jax.tree_util.tree_map(lambda a: a.reshape((n_blocks, k) + a.shape[1:]), xs)
    carry, _ = jax.lax.scan(block, carry, blocks)
    return carry


@dataclasses.dataclass(frozen=True)
class SampleResult:
    """What `sample` returns (arrays are JAX arrays; chains on the first axis).

    Attributes:
        positions: final states, ``(n_chains, d)``.
        energies: the target's energy ``E`` at the final states, ``(n_chains,)``.
        total_energies: ``E + weight * objective`` (equal to ``energies`` without objective).
        objective: the objective at the final states, or None.
        acceptance: MALA's mean acceptance probability per chain over the sampling phase
            (None for ULA).
        diverged: chains that met a non-finite gradient, move or energy (their non-finite
            coordinates keep their last finite values; flagged, never silently NaN),
            ``(n_chains,)`` bool.
        step_size: the sampling step ``h`` (relative units when the target has ``scale``).
        trajectory: ``(n_steps // thin, n_chains, d)`` states every ``thin`` steps, or None.
        energy_trace: ``(n_steps // thin, n_chains)`` total energies, or None.
        n_steps, n_anneal, n_warmup: steps of the sampling, annealing and adaptation phases.
        method: ``"ula"`` or ``"mala"``; schedule: what annealing ran (a description).
        n_stuck: chains stuck at low acceptance (MALA: mean acceptance over the sampling phase
            below 0.1x the ensemble's; ULA: over the last warm-up window), or None where not
            measured (annealed runs). Not dropped: see docs/langevin.md for what to do.
        n_restarted: chains that warm-up restarted at a healthy chain's position (stragglers).
        n_superchains: superchains of the default start (chain i in superchain i // M), or None.
        preconditioner: the adapted factor ``L`` (``M = L L^T``; ``(d, d)`` or ``(d,)``), or None.
        wall_time: seconds the run took (compilation included), or None.
    """

    positions: Array
    energies: Array
    total_energies: Array
    objective: Array | None
    acceptance: Array | None
    diverged: Array
    step_size: Array
    trajectory: Array | None
    energy_trace: Array | None
    n_steps: int
    n_anneal: int
    n_warmup: int
    method: str
    schedule: str
    n_stuck: int | None = None
    n_restarted: int = 0
    n_superchains: int | None = None
    preconditioner: Array | None = None
    wall_time: float | None = None

    def nested_rhat(self) -> np.ndarray:
        """Nested R-hat of the final states per coordinate (Margossian et al. 2022), ``(d,)``.

        Needs the default start (superchains); a converged ensemble stays below
        `nested_rhat_threshold` (probability 0.99; about ``1 + 1 / (2 M)``), one whose chains
        still remember their start exceeds it.
        """
        if self.n_superchains is None:
            raise ValueError(
                "nested_rhat needs chains started in superchains: the default start of a plain "
                "function with at least 16 chains (init=None, schedule='auto')"
            )
        k = self.n_superchains
        m = self.positions.shape[0] // k
        x = np.asarray(self.positions)[: k * m]
        return _diagnostics_nested.nested_rhat(x[None], k)

    @property
    def nested_rhat_threshold(self) -> float:
        """The value `nested_rhat` stays below for a converged ensemble (alpha 0.01, all axes)."""
        if self.n_superchains is None:
            raise ValueError("nested_rhat_threshold needs chains started in superchains")
        k = self.n_superchains
        return _diagnostics_nested.nested_rhat_threshold(
            k, self.positions.shape[0] // k, self.positions.shape[1]
        )

    @property
    def ess_per_second(self) -> float:
        """Smallest ESS over coordinates of the recorded trajectory per second of `wall_time`."""
        self._need_trace("ess_per_second")
        if self.wall_time is None:
            raise ValueError("ess_per_second needs wall_time")
        return _diagnostics_nested.ess_per_second(self.ess, self.wall_time)

    @property
    def n_diverged(self) -> int:
        """How many chains were flagged as diverged."""
        return int(np.sum(np.asarray(self.diverged)))

    def _need_trace(self, what: str):
        if self.trajectory is None:
            raise ValueError(f"{what} needs a trajectory: call sample(..., thin=k)")
        if self.trajectory.shape[0] < 4:
            raise ValueError(
                f"{what} needs at least 4 recorded draws, got {self.trajectory.shape[0]}"
            )

    @property
    def rhat(self) -> np.ndarray:
        """Split R-hat per coordinate over the recorded trajectory, ``(d,)``."""
        self._need_trace("rhat")
        return _diagnostics.rhat(self.trajectory)

    @property
    def ess(self) -> np.ndarray:
        """Effective sample size per coordinate over the recorded trajectory, ``(d,)``."""
        self._need_trace("ess")
        return _diagnostics.ess(self.trajectory)

    @property
    def energy_rhat(self) -> float:
        """Split R-hat of the energy trace."""
        self._need_trace("energy_rhat")
        return float(_diagnostics.rhat(self.energy_trace[:, :, None])[0])


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


# ------------------------------------------------------------------------------- progress bar
_BARS: dict[int, Any] = {}
_RUN_IDS = itertools.count(1)


def _progress_update(run_id, step) -> None:
    """Host side of the progress callback: move the bar of run ``run_id`` to ``step``."""
    bar = _BARS.get(int(np.asarray(run_id).reshape(-1)[0]))
    if bar is not None:
        s = int(np.max(np.asarray(step)))
        if s > bar.n:
            bar.update(s - bar.n)


def _progress_default() -> bool:
    """A bar only on an interactive terminal and never under CI."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


# ------------------------------------------------------------------------------- the program
def _reflect(x: Array, lo: Array, hi: Array) -> Array:
    """Fold ``x`` into ``[lo, hi]`` by mirror reflections (axes with infinite bounds untouched)."""
    w = hi - lo
    finite = jnp.isfinite(w)
    w_safe = jnp.where(finite, w, 1.0)
    lo_safe = jnp.where(finite, lo, 0.0)
    y = jnp.mod(x - lo_safe, 2.0 * w_safe)
    y = w_safe - jnp.abs(y - w_safe)
    return jnp.where(finite, lo_safe + y, x)


def _program(p: dict, cfg: Config) -> dict:
    """The whole run for one setting (vmapped over settings by `langevin.sweep`)."""
    target = _target.join(p["target"], cfg.target)
    objective = None if cfg.objective is None else _target.from_key(cfg.objective)
    weight = p["weight"]
    dtype = p["m"].dtype
    n, d = cfg.n, cfg.d
    m, free, fixed, lo, hi = p["m"], p["free"], p["fixed"], p["lo"], p["hi"]
    temp = p["temperature"]
    key = p["key"]

    def total(x, lvl):
        e = target(x) if lvl is None else target.energy_at(x, lvl)
        return e + weight * objective(x) if objective is not None else e

    grad_b = jax.vmap(jax.grad(total), in_axes=(0, None))
    vg_b = jax.vmap(jax.value_and_grad(total), in_axes=(0, None))

    def constrain(x):
        if cfg.sharding is None:
            return x
        return jax.lax.with_sharding_constraint(x, cfg.sharding)

    def tick(t):
        if cfg.progress_every:
            jax.lax.cond(
                (t + 1) % cfg.progress_every == 0,
                lambda: jax.debug.callback(_progress_update, p["run_id"], t + 1),
                lambda: None,
            )

    def settle(xn, x, g):
        """Pin fixed axes, reflect into the box, keep the old state where the move is not finite.

        A chain whose gradient ``g`` is not finite (on a free axis) keeps its whole state; any
        other non-finite coordinate of ``xn`` (an overflow) keeps its old value. Both flag the
        chain. (Deciding per chain from ``g``, which is already in memory, rather than from
        ``xn`` keeps XLA from computing the move twice: measured 1.3x on a whole ULA step.)
        """
        ok = _kernels.row_all(jnp.isfinite(g) | ~free)
        xn = jnp.where(free, xn, fixed)
        if cfg.reflect:
            xn = _reflect(xn, lo, hi)
        fin = jnp.isfinite(xn)
        return constrain(jnp.where(ok[:, None] & fin, xn, x)), ok & _kernels.row_all(fin)

    def inbox(x):
        if not cfg.reflect:
            return jnp.ones(x.shape[:-1], bool)
        return _kernels.row_all((x >= lo) & (x <= hi))

    # ---- init
    k_init = jax.random.fold_in(key, 0)
    if cfg.init_kind == "given":
        x = p["x0"].astype(dtype)
    elif cfg.init_kind == "uniform":
        x = p["init_lo"] + (p["init_hi"] - p["init_lo"]) * jax.random.uniform(k_init, (n, d), dtype)
    else:
        x = p["init_lo"] + p["init_hi"] * jax.random.normal(k_init, (n, d), dtype)
    x = constrain(jnp.where(free, x, fixed))
    bad = jnp.zeros((n,), bool)

    # ---- random draws, made for a block of steps at once (see `scan_blocked`)
    def constrain_block(a):
        """Shard a block of per-step draws (steps, chains, ...) along its chain axis."""
        if cfg.sharding is None:
            return a
        spec = PartitionSpec(None, "chains", *([None] * (a.ndim - 2)))
        return jax.lax.with_sharding_constraint(a, NamedSharding(cfg.sharding.mesh, spec))

    def ula_draw(phase_key):
        def draw(ts):
            z = jax.vmap(
                lambda t: jax.random.normal(jax.random.fold_in(phase_key, t), (n, d), dtype)
            )
            return constrain_block(z(ts))

        return draw

    mala_block = (n * (d + 1), 0 if d >= MALA_DRAW_BLOCK_MIN_D else 1)

    def mala_draw(phase_key):
        def one(t):
            kz, ku = jax.random.split(jax.random.fold_in(phase_key, t))
            return jax.random.normal(kz, (n, d), dtype), jax.random.uniform(ku, (n,), dtype)

        def draw(ts):
            z, u = jax.vmap(one)(ts)
            return constrain_block(z), constrain_block(u)

        return draw

    # ---- kernels over a phase: xs = (global step, level, step size, temperature)
    def ula_phase(x, bad, phase_key, xs):
        def body(carry, xs_t):
            x, bad = carry
            (t, lvl, h, tt, noisy), z = xs_t
            if noisy is None:  # one energy for the whole scan (lvl None: the target)
                g = grad_b(x, lvl)
            else:  # annealing and sampling in one scan: the level's energy or the target
                g = jax.lax.cond(noisy, lambda: grad_b(x, lvl), lambda: grad_b(x, None))
            x, ok = settle(_kernels.drift_move(x, g, z, h, tt, m), x, g)
            tick(t)
            return (x, bad | ~ok), None

        return scan_blocked(body, (x, bad), xs, ula_draw(phase_key), n * d)

    def mala_move(x, e, g, lvl, h, tt, z, u, vg=None):
        xp = jnp.where(free, _kernels.drift_move(x, g, z, h, tt, m), fixed)
        ep, gp = vg_b(xp, lvl) if vg is None else vg(xp)
        log_a = _kernels.mh_log_ratio(x, e, g, xp, ep, gp, h, tt, m)
        log_a = jnp.where(inbox(xp), log_a, -jnp.inf)
        accept = jnp.log(u) < log_a
        x = constrain(jnp.where(accept[:, None], xp, x))
        e = jnp.where(accept, ep, e)
        g = jnp.where(accept[:, None], gp, g)
        return x, e, g, jnp.exp(log_a)

    def mala_all(x, bad, acc, n_free, n_pre, n_an, start, h_init):
        """Every MALA phase before the recorded steps in ONE scan (one compiled step).

        Steps in order: adaptation before annealing (``n_pre``), annealing, adaptation after
        annealing (``n_post``; a run has at most one adaptation), sampling (``n_free``). Per-step
        inputs: level, step size, temperature, and host-side flags (NumPy, so a flag constant
        over the run is resolved when tracing): ``noisy`` (the level's energy, else the target),
        ``refresh`` (the energy changed: recompute ``E, ∇E`` at the current states), ``adapt``
        (per-chain dual-averaging step), ``end`` (last adaptation step: the step becomes the
        median over chains), ``own`` (use the adapted / given step, not the level's) and
        ``count`` (add to the acceptance). Returns ``x, e, g, bad, acc, h``.
        """
        n_post = cfg.n_post
        total_n = n_pre + n_an + n_post + n_free
        noise = cfg.anneal == "noise"
        seg = np.repeat(np.arange(4), [n_pre, n_an, n_post, n_free])  # phase of each step
        idx = np.arange(total_n)
        adapt = (seg == 0) | (seg == 2)
        start_adapt = np.where(seg == 0, 0, n_pre + n_an)
        it = np.where(adapt, idx - start_adapt, 0)
        end = adapt & ((idx == n_pre - 1) | (idx == n_pre + n_an + n_post - 1))
        noisy = (seg == 1) & noise
        refresh = np.zeros(total_n, bool)
        if noise:
            refresh[n_pre + np.arange(0, n_an, cfg.anneal_row)] = True
            if n_pre + n_an < total_n:
                refresh[n_pre + n_an] = True
        own = ~adapt & ~noisy
        count = seg == 3
        first_noisy = bool(total_n and noisy[0])
        refresh[:1] = False  # the energies at step 0 are computed before the scan

        t_adapt = jnp.where(temp > 0, temp, 1.0)
        zeros_f = lambda k: jnp.zeros((k,), dtype)  # noqa: E731
        full_f = lambda k, v: jnp.broadcast_to(v, (k,)).astype(dtype)  # noqa: E731
        lvl = h_lvl = None
        if noise:
            lvl = jnp.concatenate([zeros_f(n_pre), p["anneal_sigma"], zeros_f(n_post + n_free)])
            h_lvl = jnp.concatenate([zeros_f(n_pre), p["anneal_h"], zeros_f(n_post + n_free)])
        temp_anneal = bool(n_an) and cfg.anneal == "temperature"  # (run apart by the caller)
        t_anneal = p["anneal_t"] if temp_anneal else full_f(n_an, temp)
        tt = None  # the temperature: per step only under temperature annealing
        if temp_anneal:
            tt = jnp.concatenate(
                [full_f(n_pre, t_adapt), t_anneal, full_f(n_post, t_adapt), full_f(n_free, temp)]
            )

        def const(flags):
            """True / False when a flag is the same at every step, else None (per step)."""
            return True if flags.all() else (False if not flags.any() else None)

        c = {
            name: const(a)
            for name, a in dict(
                noisy=noisy, refresh=refresh, adapt=adapt, end=end, own=own, count=count
            ).items()
        }

        def pick(name, flag, on, off):
            if c[name] is None:
                return jax.lax.cond(flag, on, off)
            return on() if c[name] else off()

        h0 = p["h0"]
        mu = jnp.log(10.0 * h0)

        def body(carry, xs_t):
            x, e, g, bad, acc, log_h, log_h_bar, hbar, h_cur = carry
            (t, lvl_t, h_t, tt_t, it_t, *fl), (z, u) = xs_t
            f = dict(zip(("noisy", "refresh", "adapt", "end", "own", "count"), fl, strict=True))

            def vg(y):
                return pick("noisy", f["noisy"], lambda: vg_b(y, lvl_t), lambda: vg_b(y, None))

            if c["refresh"] is not False:
                e, g = pick("refresh", f["refresh"], lambda: vg(x), lambda: (e, g))
            if tt_t is None:  # adaptation runs at T (at 1 when T = 0), the rest at T
                tt_t = (
                    temp if c["adapt"] is False else pick_value("adapt", f["adapt"], t_adapt, temp)
                )
            h_own = h_cur if c["end"] is not False else h_init  # no adaptation: the given step
            h = h_own if h_t is None else pick_value("own", f["own"], h_own, h_t)

            def plain():
                x2, e2, g2, a = mala_move(x, e, g, None, h, tt_t, z, u, vg=vg)
                return x2, e2, g2, a, log_h, log_h_bar, hbar

            def adapting():  # dual averaging of a per-chain step (Hoffman & Gelman 2014)
                x2, e2, g2, a = mala_move(x, e, g, None, jnp.exp(log_h)[:, None], tt_t, z, u, vg=vg)
                i1 = (it_t + 1).astype(dtype)
                eta = 1.0 / (i1 + DA_T0)
                hbar_n = (1.0 - eta) * hbar + eta * (TARGET_ACCEPTANCE - a)
                log_h_n = mu - jnp.sqrt(i1) / DA_GAMMA * hbar_n
                wgt = i1**-DA_KAPPA
                log_h_bar_n = wgt * log_h_n + (1.0 - wgt) * log_h_bar
                return x2, e2, g2, a, log_h_n, log_h_bar_n, hbar_n

            # a `cond` (not a select): the steps outside adaptation keep a scalar step and skip
            # the dual-averaging arithmetic (measured 2x on a cheap target with a select)
            x, e, g, a, log_h, log_h_bar, hbar = pick("adapt", f["adapt"], adapting, plain)
            if c["end"] is not False:
                h_cur = pick(
                    "end",
                    f["end"],
                    lambda: jnp.median(jnp.exp(log_h_bar[: cfg.n_real])).astype(dtype),
                    lambda: h_cur,
                )
            if c["count"] is not False:
                acc = acc + pick_value("count", f["count"], a, jnp.zeros_like(a))
            tick(t)
            return (x, e, g, bad, acc, log_h, log_h_bar, hbar, h_cur), None

        def pick_value(name, flag, on, off):
            if c[name] is None:
                return jnp.where(flag, on, off)
            return on if c[name] else off

        e, g = vg_b(x, p["anneal_sigma"][0] if first_noisy else None)
        zeros = jnp.zeros((n,), dtype)
        log_h0 = zeros + jnp.log(h0)
        carry = (x, e, g, bad, acc, log_h0, log_h0, zeros, jnp.asarray(h_init, dtype))
        if total_n == 0:
            return x, e, g, bad, acc, carry[-1]
        dyn = lambda name, a: jnp.asarray(a) if c[name] is None else None  # noqa: E731
        xs = (
            start + jnp.arange(total_n),
            lvl,
            h_lvl,
            tt,
            jnp.asarray(it, jnp.int32),
            dyn("noisy", noisy),
            dyn("refresh", refresh),
            dyn("adapt", adapt),
            dyn("end", end),
            dyn("own", own),
            dyn("count", count),
        )
        x, e, g, bad, acc, _, _, _, h = scan_blocked(
            body, carry, xs, mala_draw(k_steps), *mala_block
        )
        return x, e, g, bad, acc, h

    def adapt_phase(x, h0, phase_key, start, length):
        """Dual averaging of a per-chain step towards TARGET_ACCEPTANCE; returns the median."""
        t_adapt = jnp.where(temp > 0, temp, 1.0)
        mu = jnp.log(10.0 * h0)
        e, g = vg_b(x, None)

        def body(carry, xs_i):
            x, e, g, log_h, log_h_bar, hbar = carry
            (i,), (z, u) = xs_i
            h = jnp.exp(log_h)[:, None]
            x, e, g, a = mala_move(x, e, g, None, h, t_adapt, z, u)
            it = (i + 1).astype(dtype)
            eta = 1.0 / (it + DA_T0)
            hbar = (1.0 - eta) * hbar + eta * (TARGET_ACCEPTANCE - a)
            log_h = mu - jnp.sqrt(it) / DA_GAMMA * hbar
            wgt = it**-DA_KAPPA
            log_h_bar = wgt * log_h + (1.0 - wgt) * log_h_bar
            tick(start + i)
            return (x, e, g, log_h, log_h_bar, hbar), None

        zeros = jnp.zeros((n,), dtype)
        init = (x, e, g, zeros + jnp.log(h0), zeros + jnp.log(h0), zeros)
        xs = (jnp.arange(length),)
        x, _, _, _, log_h_bar, _ = scan_blocked(body, init, xs, mala_draw(phase_key), *mala_block)
        return x, jnp.median(jnp.exp(log_h_bar[: cfg.n_real])).astype(dtype)

    offset = 0
    h = p["h"]
    n_keep = cfg.n_steps // cfg.thin if cfg.thin else 0
    n_free = cfg.n_steps - n_keep * cfg.thin
    acc = jnp.zeros((n,), dtype)
    k_steps = jax.random.fold_in(key, 2)  # one key for every step (draws by global step index)

    if cfg.method == "ula":
        if cfg.n_pre:
            x, h_mala = adapt_phase(x, p["h0"], jax.random.fold_in(key, 1), offset, cfg.n_pre)
            # no noise at T = 0: no bias to bound, only stability
            h = h_mala * jnp.where(temp > 0, ULA_FRACTION, ULA_FRACTION_COLD)
            offset += cfg.n_pre
        # Annealing and the untraced sampling steps run in ONE scan (one compiled step): per-step
        # step size, temperature and level; under noise annealing a per-step flag picks the
        # level's energy or the target (a `cond`: only one of the two runs).
        steps = offset + jnp.arange(cfg.n_anneal + n_free)
        h_all = jnp.broadcast_to(h, steps.shape)
        t_all = jnp.broadcast_to(temp, steps.shape)
        lvl = noisy = None
        if cfg.anneal == "noise":
            lvl = jnp.concatenate([p["anneal_sigma"], jnp.zeros((n_free,), dtype)])
            h_all = jnp.concatenate([p["anneal_h"], h_all[cfg.n_anneal :]])
            if n_free:
                noisy = np.arange(cfg.n_anneal + n_free) < cfg.n_anneal
        elif cfg.anneal == "temperature":
            t_all = jnp.concatenate([p["anneal_t"], t_all[cfg.n_anneal :]])
        if steps.shape[0]:
            x, bad = ula_phase(x, bad, k_steps, (steps, lvl, h_all, t_all, noisy))
        offset += cfg.n_anneal + n_free

        def run(carry, start, length):
            x, bad, acc = carry
            xs = (
                start + jnp.arange(length),
                None,
                jnp.broadcast_to(h, (length,)),
                jnp.broadcast_to(temp, (length,)),
                None,
            )
            x, bad = ula_phase(x, bad, k_steps, xs)
            return x, bad, acc

        carry = (x, bad, acc)
    else:
        n_pre = cfg.n_pre
        if n_pre:
            # Adaptation before annealing (targets without a grid: plain functions, cheap per
            # step) runs in a loop of its own: inside the common scan it costs every later step
            # a `cond` (measured +20-50% there). Adaptation after annealing (maps) stays inside.
            x, h = adapt_phase(x, p["h0"], jax.random.fold_in(key, 1), 0, n_pre)
            offset, n_pre = n_pre, 0
        n_an = cfg.n_anneal
        if cfg.anneal == "temperature":
            # Temperature annealing (plain functions) in a loop of its own too: a temperature
            # read per step costs MALA's later steps ~1.5x on a cheap target.
            xs = (offset + jnp.arange(n_an), p["anneal_t"])
            e, g = vg_b(x, None)

            def anneal_body(c, xs_t):
                x, e, g = c
                (t, tt), (z, u) = xs_t
                x, e, g, _ = mala_move(x, e, g, None, h, tt, z, u)
                tick(t)
                return (x, e, g), None

            x, _, _ = scan_blocked(anneal_body, (x, e, g), xs, mala_draw(k_steps), *mala_block)
            offset, n_an = offset + n_an, 0
        x, e, g, bad, acc, h = mala_all(x, bad, acc, n_free, n_pre, n_an, offset, h)
        offset += n_pre + n_an + cfg.n_post + n_free

        def run(carry, start, length):
            def body(c, xs_t):
                x, e, g, bad, acc = c
                (t,), (z, u) = xs_t
                x, e, g, a = mala_move(x, e, g, None, h, temp, z, u)
                tick(t)
                return (x, e, g, bad, acc + a), None

            xs = (start + jnp.arange(length),)
            return scan_blocked(body, carry, xs, mala_draw(k_steps), *mala_block)

        carry = (x, e, g, bad, acc)

    traj = etrace = None
    if n_keep:

        def block(c, j):
            c = run(c, offset + n_free + j * cfg.thin, cfg.thin)
            xj = c[0]
            return c, (xj, jax.vmap(total, in_axes=(0, None))(xj, None))

        carry, (traj, etrace) = jax.lax.scan(block, carry, jnp.arange(n_keep))
    x, bad, acc = carry[0], carry[-2], carry[-1]

    e_map = jax.vmap(target)(x)
    e_obj = jax.vmap(objective)(x) if objective is not None else None
    e_tot = e_map + weight * e_obj if objective is not None else e_map
    bad = bad | ~jnp.isfinite(e_tot)
    return {
        "positions": x,
        "energies": e_map,
        "total": e_tot,
        "objective": e_obj,
        "acceptance": acc / cfg.n_steps if cfg.method == "mala" else None,
        "diverged": bad,
        "step_size": jnp.asarray(h, dtype),
        "trajectory": traj,
        "energy_trace": etrace,
    }


_compiled = jax.jit(_program, static_argnames=("cfg",))


@functools.partial(jax.jit, static_argnums=1)
def _init_energies(arrays, static, x):
    """Energies of the initial states (checked for finiteness before a run)."""
    return jax.vmap(_target.join(arrays, static))(x)


# ------------------------------------------------------------------------------- preparation
@dataclasses.dataclass
class Prepared:
    """A run ready to go: dynamic arrays ``p``, static `Config`, and host-side facts."""

    p: dict
    cfg: Config
    info: _target.TargetInfo
    schedule: str
    n_warmup: int
    n_superchains: int | None = None


def _float_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _fixed_vector(fixed, info: _target.TargetInfo) -> np.ndarray:
    """``fixed`` (dict axis/name -> value, or a (d,) vector with NaN = free) as a (d,) vector."""
    d = info.d
    out = np.full(d, np.nan)
    if fixed is None:
        return out
    if isinstance(fixed, dict):
        for k, v in fixed.items():
            if isinstance(k, str):
                if info.names is None or k not in info.names:
                    raise ValueError(f"fixed: unknown variable {k!r} (target names: {info.names})")
                j = info.names.index(k)
            elif isinstance(k, (int, np.integer)) and -d <= k < d:
                j = int(k) % d
            else:
                raise ValueError(f"fixed: axis {k!r} out of range for d = {d}")
            v = float(v)
            if not math.isfinite(v):
                raise ValueError(f"fixed: value of {k!r} must be finite, got {v}")
            out[j] = v
        return out
    arr = np.asarray(fixed, dtype=np.float64)
    if arr.shape != (d,):
        raise ValueError(
            f"fixed must be a dict or a vector of shape ({d},) (NaN = free), got {arr.shape}"
        )
    if np.any(np.isinf(arr)):
        raise ValueError(f"fixed values must be finite (NaN marks a free axis), got {arr}")
    return arr


def _bounds(bounds, info: _target.TargetInfo) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Box for reflection: "auto" = the target's lo/hi, None = no box, or explicit pairs."""
    if isinstance(bounds, str):
        if bounds != "auto":
            raise ValueError(f"bounds must be 'auto', None or [(lo, hi), ...], got {bounds!r}")
        return info.lo, info.hi
    if bounds is None:
        return None, None
    b = np.asarray(bounds, dtype=np.float64)
    if b.shape != (info.d, 2):
        raise ValueError(f"bounds must have shape ({info.d}, 2) as [(lo, hi), ...], got {b.shape}")
    if not np.all(b[:, 0] < b[:, 1]) or np.any(np.isnan(b)):
        raise ValueError(f"bounds need lo < hi on every axis, got {b.tolist()}")
    return b[:, 0].copy(), b[:, 1].copy()


def _devices(devices, n_chains: int):
    """The devices to shard over: all by default (one device: no sharding)."""
    if devices is None:
        devices = jax.devices()
    devices = list(devices)
    if len(devices) == 0:
        raise ValueError("devices must not be empty")
    return devices


def prepare(
    target,
    key,
    n_chains,
    n_steps,
    init,
    method,
    step_size,
    temperature,
    schedule,
    bounds="auto",
    fixed=None,
    objective=None,
    weight=1.0,
    thin=None,
    n_warmup=None,
    progress=None,
    devices=None,
    sharded=True,
) -> Prepared:
    """Check every argument and build the program's inputs (shared by `sample` and `sweep`)."""
    dtype = _float_dtype()
    n_chains = _check_count(n_chains, "n_chains", 1)
    n_steps = DEFAULT_N_STEPS if n_steps is None else _check_count(n_steps, "n_steps", 1)
    if method not in ("ula", "mala"):
        raise ValueError(f"method must be 'ula' or 'mala', got {method!r}")
    try:
        temperature = float(temperature)
    except (TypeError, ValueError) as err:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}") from err
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")
    if thin is not None:
        thin = _check_count(thin, "thin", 1)
        if thin > n_steps:
            raise ValueError(f"thin = {thin} is larger than n_steps = {n_steps}")
    if not (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        try:
            key = jnp.asarray(key)
        except TypeError as err:
            raise ValueError(f"key must be a JAX PRNG key, got {type(key).__name__}") from err
        if key.shape != (2,) or key.dtype != jnp.uint32:
            raise ValueError(f"key must be a JAX PRNG key (jax.random.key(seed)), got {key!r}")

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
        if not callable(objective):
            raise TypeError(f"objective must be a callable (d,) -> scalar, got {type(objective)}")
        try:
            _target.check_scalar_output(objective, d, dtype)
        except ValueError as err:
            raise ValueError(str(err).replace("target", "objective")) from err
    try:
        weight = float(weight)
    except (TypeError, ValueError) as err:
        raise ValueError(f"weight must be a number, got {weight!r}") from err
    if not math.isfinite(weight):
        raise ValueError(f"weight must be finite, got {weight}")

    lo, hi = _bounds(bounds, info)
    reflect = lo is not None
    fixed_v = _fixed_vector(fixed, info)
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
    warm = WARMUP_STEPS if n_warmup is None else _check_count(n_warmup, "n_warmup", 1)
    if step_size is not None:
        h = float(step_size)
        if not (math.isfinite(h) and h > 0):
            raise ValueError(f"step_size must be finite and > 0, got {step_size}")
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
        devs = _devices(devices, n_chains)
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
        progress = _progress_default()
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
        progress_every=PROGRESS_EVERY if progress else 0,
        target=target_static,
        objective=None if objective is None else _target.callable_key(objective),
        sharding=sharding,
    )
    return Prepared(p, cfg, info, description, n_pre + n_post, n_super)


def total_steps(cfg: Config) -> int:
    """Steps of all phases of a run."""
    return cfg.n_pre + cfg.n_anneal + cfg.n_post + cfg.n_steps


def run_with_progress(fn: Callable, prep: Prepared, *args):
    """Call ``fn(*args)`` with a tqdm bar fed by the program's host callbacks (if enabled)."""
    if not prep.cfg.progress_every:
        return fn(*args)
    from tqdm.auto import tqdm

    run_id = next(_RUN_IDS)
    prep.p["run_id"] = jnp.int32(run_id)
    bar = tqdm(total=total_steps(prep.cfg), desc="langevin", unit="step", leave=False)
    _BARS[run_id] = bar
    try:
        out = fn(*args)
        jax.block_until_ready(out)
        return out
    finally:
        jax.effects_barrier()
        bar.close()
        _BARS.pop(run_id, None)


def sample(
    target,
    key,
    n_chains,
    n_steps=None,
    init=None,
    method="ula",
    step_size=None,
    temperature=1.0,
    schedule="auto",
    *,
    bounds="auto",
    fixed=None,
    objective=None,
    weight=1.0,
    thin=None,
    n_warmup=None,
    progress=None,
    devices=None,
) -> SampleResult:
    """Run ``n_chains`` Langevin chains on ``target`` and return their final states.

    Samples ``p(x) ∝ exp(-E_total(x) / T)`` with ``E_total = E + weight * objective``, using the
    preconditioned move ``x' = x - h M ∇E + sqrt(2 h T M) z`` with ``M = diag(scale^2)`` (the
    target's ``scale``, its box size, or 1), exactly (``mala``) or up to O(h) (``ula``).

    Args:
        target: an `energy.EnergyMap`, a surrogate, or any jax function ``(d,) -> scalar``.
            Optional attributes are used when present: ``ndim``, ``lo``/``hi``, ``scale``,
            ``spacing``, ``noise_levels`` + ``energy_at(x, sigma)``.
        key: a JAX key (``jax.random.key(seed)``); the same key gives the same result.
        n_chains: number of chains.
        n_steps: steps of the sampling phase after annealing (None: 1000).
        init: ``(n_chains, d)`` or ``(d,)`` starting states, or ``(K, d)`` with K dividing
            n_chains: K superchains (chain i starts at ``init[i // (n_chains / K)]``; what
            ``res.nested_rhat()`` needs; give K over-dispersed points); None: uniform in the
            target's box (or ``bounds``), else ``N(0, scale^2)`` (superchains for a plain
            function with ``ndim``).
        method: ``"ula"`` (unadjusted, gradient only) or ``"mala"`` (Metropolis-adjusted).
        step_size: ``h`` in relative units (physical when the target has no scale/box);
            None: ``0.25 (spacing/scale)^2`` on a grid, else adapted by MALA warm-up.
        temperature: ``T >= 0`` (0: gradient descent, i.e. optimisation).
        schedule: ``"auto"``: the noise pyramid when the target has one (maps); on a plain
            function (no pyramid, grid or box; T > 0; no ``step_size``) no tempering but a
            warm-up adapted over the ensemble (step size and a dense or diagonal
            preconditioner, `docs/langevin.md`), then untempered sampling; other targets
            (T = 0, a box) a geometric temperature schedule from 10 T to T. None:
            fixed-temperature chains; or `NoiseAnnealing` / a temperature schedule
            (`geometric`, `linear`, `cosine`).
        bounds: ``"auto"`` (the target's ``lo``/``hi``: chains reflect at the faces), None
            (no box), or ``[(lo, hi), ...]``.
        fixed: variables held fixed: ``{axis or name: value}`` or a ``(d,)`` vector with NaN
            for free axes; the others are sampled conditionally on them.
        objective: a function ``(d,) -> scalar`` added to the energy with ``weight``.
        weight: ``lambda`` in ``E + lambda * objective``.
        thin: record the state and total energy every ``thin`` sampling steps (diagnostics).
        n_warmup: adaptation steps where a step size is adapted (default 200; 1000 on the
            ensemble path of a plain function).
        progress: a progress bar (None: on a terminal, never under ``CI``).
        devices: devices to shard the chains over (None: all of ``jax.devices()``); results do
            not depend on the number of devices.

    Returns:
        A `SampleResult` (positions, energies, acceptance, diverged, trajectory, ...).

    Example:
        >>> import jax, jax.numpy as jnp, langevin
        >>> res = langevin.sample(lambda x: 0.5 * x @ x, jax.random.key(0), n_chains=256,
        ...                       init=jnp.zeros(2), progress=False)
        >>> res.positions.shape
        (256, 2)

    References:
        Song & Ermon (2019), Generative Modeling by Estimating Gradients of the Data
        Distribution, Algorithm 1 (annealed Langevin dynamics).
    """
    plain = _plain.applies(target, schedule, step_size, temperature, bounds)
    prep = prepare(
        target,
        key,
        n_chains,
        n_steps,
        init,
        method,
        step_size,
        temperature,
        None if plain else schedule,
        bounds=bounds,
        fixed=fixed,
        objective=objective,
        weight=weight,
        thin=thin,
        n_warmup=n_warmup,
        progress=progress,
        devices=devices,
    )
    if plain:
        return _plain_result(_plain.run(prep, n_warmup), prep)
    out = run_with_progress(lambda: _compiled(prep.p, prep.cfg), prep)
    return _result(out, prep, slice(0, prep.cfg.n_real))


def _plain_result(r: _plain.PlainRun, prep: Prepared) -> SampleResult:
    """Wrap the ensemble path's output (padded chains trimmed)."""
    n = prep.cfg.n_real
    out = r.out

    def cut(a, axis=0):
        if a is None:
            return None
        return a[:n] if axis == 0 else a[:, :n]

    energy_trace = out["energy_trace"]
    return SampleResult(
        positions=cut(out["positions"]),
        energies=cut(out["energies"]),
        total_energies=cut(out["total"]),
        objective=cut(out["objective"]),
        acceptance=cut(out["acceptance"]),
        diverged=cut(out["diverged"]),
        step_size=out["step_size"],
        trajectory=cut(out["trajectory"], 1),
        energy_trace=cut(energy_trace, 1),
        n_steps=prep.cfg.n_steps,
        n_anneal=0,
        n_warmup=r.n_warmup,
        method=prep.cfg.method,
        schedule=r.schedule,
        n_stuck=int(out["n_stuck"]),
        n_restarted=int(out["n_restarted"]),
        n_superchains=r.n_superchains,
        preconditioner=out["factor"],
        wall_time=r.wall_time,
    )


def _result(out: dict, prep: Prepared, rows) -> SampleResult:
    """Trim padded chains and wrap the program's output."""
    n_real = prep.cfg.n_real

    def cut(a, axis=0):
        if a is None:
            return None
        return a[:n_real] if axis == 0 else a[:, :n_real]

    return SampleResult(
        positions=cut(out["positions"]),
        energies=cut(out["energies"]),
        total_energies=cut(out["total"]),
        objective=cut(out["objective"]),
        acceptance=cut(out["acceptance"]),
        diverged=cut(out["diverged"]),
        step_size=out["step_size"],
        trajectory=cut(out["trajectory"], 1),
        energy_trace=cut(out["energy_trace"], 1),
        n_steps=prep.cfg.n_steps,
        n_anneal=prep.cfg.n_anneal,
        n_warmup=prep.n_warmup,
        method=prep.cfg.method,
        schedule=prep.schedule,
        n_superchains=prep.n_superchains,
    )
