"""Adaptation over the ensemble: one step size and one preconditioner learnt from all chains.

Thousands of chains started together are, at every step, a sample of the current distribution:
their positions estimate the target's covariance and their mean acceptance is an almost
noiseless function of the step. This module turns that into a pure ``init`` / ``update`` pair
(optax / blackjax style) over `EnsembleAdaptState`, driven by per-step tables from `windows`:

- Step size: ``log h += STEP_GAIN (mean acceptance over chains - 0.574)`` every step (a
  Robbins-Monro recursion whose noise is that of a mean over chains, so a constant gain
  converges; Roberts & Rosenthal 1998 for MALA's optimal acceptance 0.574). The step used
  afterwards is ``exp`` of the mean ``log h`` over the terminal window.
- Preconditioner ``M = L L^T`` (the chains move in whitened coordinates ``y = L^-1 x``): the
  covariance of the positions of ALL chains over the second half of each slow window, dense when
  ``d <= DENSE_MAX_D`` and diagonal above; estimated in the current whitened coordinates and
  shrunk there towards its diagonal by ``lambda = d / (d + n_chains)`` (`estimate_factor`).
  Slow windows double (Stan's windowed adaptation: a 15% initial buffer for the
  step alone, windows of 5%, 10%, 20%, ... of the warm-up, a 10% terminal buffer).
- Stuck chains: a chain whose mean acceptance over a window is below ``STUCK_RATIO`` times the
  ensemble's mean is stuck (e.g. in the neck of a funnel with a step made for the bulk). At the
  end of a slow window they are counted; the stuck ones whose energy is also far above the
  ensemble's (`straggler_mask`: chains that never reached the bulk) are restarted at the
  position of a random healthy chain: this is warm-up, so it only changes where the sampling
  phase starts. (Restarting every stuck chain was measured to bias a banana's arms: sd error
  0.17 against 0.10.)

Early end (``early_stop``, the default of a plain function): the warm-up is over when, in
``EARLY_STOP_WINDOWS`` consecutive slow windows after the first, the ensemble has stopped
changing within its sampling noise (`converged`): the whitened covariance of the window's
positions is the identity (the preconditioner did not need to move) and their mean is the
previous window's, both within ``EARLY_STOP_Z`` times what ``n`` independent points would give. The runner then jumps to the
terminal buffer (the step is still averaged over it), so ``n_warmup`` is a cap and the static
schedule of `windows` is kept (for jit); a target the ensemble is still exploring (a banana's
arms filling, stragglers coming down) runs the whole schedule, and `windows` ``(n, n_extend)``
adds slow windows before the terminal buffer for it to go on in (the plain-function default:
5 more of 400 steps after Stan's 1000, `langevin._plain.PLAIN_EXTEND`).

ULA (``method="ula"``) samples with the adapted preconditioner by the Leimkuhler-Matthews
scheme, ``y' = y - h grad E(y) + sqrt(2 h T) (z_n + z_{n+1}) / 2`` (`lm_noise`: the noise of
a step is the mean of its own normal and the previous step's, carried in the state):
unadjusted, one gradient and one normal per step like the Euler-Maruyama move, but its
stationary distribution is exact on a Gaussian for any stable step (Euler-Maruyama's variance
is ``s^2 / (1 - h / (2 s^2))``) and its bias is O(h^2) otherwise (Leimkuhler & Matthews
2013; Leimkuhler, Matthews & Stoltz 2016), Euler-Maruyama's O(h). The step is therefore set
by stability, not by a Gaussian bias budget: ``h = min(ULA_STABILITY / lam, ULA_MAX_STEP)``
(`ula_step_size`), ``lam`` the largest curvature any chain of the ensemble sits at when
sampling starts (`curvature`: the top
eigenvalue of the whitened Hessian by a secant power iteration, ``CURVATURE_ITERS`` gradients
per chain), so that ``h lam <= 1.5`` everywhere the ensemble is (a Gaussian direction of
curvature ``lam`` is stable up to ``h lam = 2``; the margin covers chains wandering a little
past the stiffest place seen). On a logistic regression this is 1.8x MALA's step (bias 0.01
sd over 2000 chains); on a 100-D Gaussian 3.4x (the cap 1); on a banana 0.1x (stiff arms).

References:
    Leimkuhler & Matthews (2013), Rational construction of stochastic numerical methods for
    molecular sampling, AMRX. Leimkuhler, Matthews & Stoltz (2016), The computation of averages
    from equilibrium and nonequilibrium Langevin molecular dynamics, IMA J. Numer. Anal.
    Roberts & Rosenthal (1998), Optimal scaling of discrete approximations to Langevin
    diffusions. Stan Reference Manual, "HMC algorithm parameters: automatic parameter tuning".
    Hoffman, Radul & Sountsov (2021), An adaptive MCMC scheme for setting trajectory lengths in
    Hamiltonian Monte Carlo (ChEES; adaptation over many chains).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _kernels

Array = jax.Array

__all__ = [
    "DENSE_MAX_D",
    "EnsembleAdaptState",
    "Windows",
    "estimate_factor",
    "init",
    "straggler_mask",
    "stuck_mask",
    "to_whitened",
    "from_whitened",
    "converged",
    "curvature",
    "lm_noise",
    "ula_step_size",
    "update",
    "whitened_energy",
    "windows",
]

# MALA's optimal acceptance for targets close to a product of Gaussians (Roberts & Rosenthal).
TARGET_ACCEPTANCE = 0.574
# Gain of the step-size recursion on log h. With the mean over n chains the acceptance noise is
# ~0.5 / sqrt(n), so log h wanders by ~gain * 0.5 / sqrt(n) per step around its fixed point: 0.01
# with 2000 chains, 0.06 with 64. From a step 100x too large (acceptance ~0) it takes
# ln(100) / 0.574 = 8 steps to come back.
STEP_GAIN = 1.0
# First step in whitened units (the initial preconditioner is the identity).
INITIAL_STEP = 0.1
# Dense preconditioner up to this dimension: the covariance of n >= 2000 chains' positions has
# a relative error ~sqrt(d / n) <= 0.25 at d = 128, and a step costs O(d^2) per chain (below the
# gradient of most posteriors there). Above, diagonal.
DENSE_MAX_D = 128
# Window fractions of the warm-up (Stan's 75 / 25 / 50 for 1000 steps, as fractions).
INIT_BUFFER, BASE_WINDOW, TERM_BUFFER = 0.15, 0.05, 0.10
# A chain is stuck when its mean acceptance over a window is below this fraction of the
# ensemble's (0.057 at the target acceptance).
STUCK_RATIO = 0.1
# A stuck chain is restarted in warm-up only if its energy is also above the ensemble's median
# by more than this many robust spreads (IQR / 1.349): a straggler that never reached the bulk
# (e.g. the Brownian model's chains left at the prior's scales), not a chain in a legitimate
# tail (a banana's arms have low acceptance at the bulk's step but typical energies; a funnel's
# neck has LOW energies). For E - E_min ~ Gamma(d/2) the false-restart rate is < 1e-3.
STRAGGLER_SPREADS = 8.0
# Early end of warm-up: the window's whitened covariance C and mean m against the identity and
# the previous window's mean, in units of their noise for n independent Gaussian points:
# n ||C - I||_F^2 / (d (d + 1)) and n ||m - m_prev||^2 / (2 d), both below this. Under
# stationarity each is ~1 (less: a window's positions are more than n points); a drift or a
# preconditioner still changing gives >> 1.
EARLY_STOP_Z = 2.0
# ... in this many consecutive slow windows (the first one, which compares with the identity it
# started from, never counts): with one, a banana's warm-up ended at 400 steps and the sd error
# of 2000 final states was 0.103 (0.071 after 1000 steps); with two the earliest end is 600.
EARLY_STOP_WINDOWS = 2
# ULA's step (Leimkuhler-Matthews, module doc): h lam <= ULA_STABILITY at the stiffest chain
# (2 is the limit of stability on a Gaussian). Measured, 2000 chains from the same warm-up,
# mean / sd errors in true sds (gradients per effective sample, warm-up included): 1000 steps,
# 1 -> 1.5: banana 0.028 / 0.050 (1586) -> 0.014 / 0.028 (1452), logistic 0.050 / 0.048 (5.8)
# -> 0.043 / 0.053 (3.8), Brownian 0.118 / 0.289 (549) -> 0.131 / 0.322 (373; the warm-up
# ended at 0.160 / 0.322); 5000 steps on the banana: 1, 1.5, 2 all stable (<= 0.02 / 0.02).
# 1.5 keeps a 1.33x margin on the curvature of the stiffest chain.
ULA_STABILITY = 1.5
# ... and a chain whose drift ``h |grad E|`` exceeds ULA_DRIFT_CAP times the noise's expected
# length ``sqrt(2 h T d)`` moves by a drift of that length (`cap_drift`). A fixed-step unadjusted
# scheme is unstable where the curvature exceeds ~2 / h (Brownian's neck: ~4300 against ~40 at
# the end of warm-up); measured before the cap, one chain of 2000 grew to 1e24 there (finite, so
# only n_diverged said so) and the mean error was 1e21 sds. A stationary chain on a whitened
# Gaussian has drift / noise ~ sqrt(h / 2) <= 0.71 at h <= 1: the cap binds only in the far tail.
ULA_DRIFT_CAP = 2.0
# ... and at most this (whitened units: the target has unit covariance, and on a Gaussian of
# unit width h = 1 gives independent draws; a flat target has lam ~ 0).
ULA_MAX_STEP = 1.0
# Secant power iteration for the largest curvature: gradients per chain, and the secant length
# in whitened units. On the banana, the Brownian model and the logistic regression the maximum
# over 2000 chains is within 1% of its value at 20 iterations after 10.
CURVATURE_ITERS = 20
CURVATURE_EPS = 1e-2


class Windows(NamedTuple):
    """Per-step flags of the warm-up (host NumPy, one entry per step).

    Attributes:
        collect: add the step's positions to the moment sums (second half of a slow window).
        end: last step of a slow window: re-estimate the preconditioner, check stuck chains.
        average: the step belongs to the terminal buffer, whose mean ``log h`` is the final one.
        start: first step of a window: the per-chain acceptance counters restart.
    """

    collect: np.ndarray
    end: np.ndarray
    average: np.ndarray
    start: np.ndarray


def windows(n_warmup: int, n_extend: int = 0) -> Windows:
    """Stan-like schedule: initial buffer, doubling slow windows, terminal buffer.

    For 500 steps: 75 (step only) + 25 + 50 + 100 + 200 (slow, each re-estimating the
    preconditioner from its second half) + 50 (step only, averaged). Under 20 steps there is no
    slow window (step only, all averaged over the second half).

    ``n_extend`` more slow windows, each as long as the last one, go before the terminal
    buffer (``n_warmup + n_extend * last`` steps in all): the room an early-stopping warm-up
    (`converged`) has to go on while the ensemble is still changing.

    Example:
        >>> w = windows(500)
        >>> np.flatnonzero(w.end).tolist()
        [99, 149, 249, 449]
        >>> np.flatnonzero(windows(500, n_extend=2).end).tolist()
        [99, 149, 249, 449, 649, 849]
    """
    n = int(n_warmup)
    if n_extend:
        base = windows(n)
        ends = np.flatnonzero(base.end)
        if ends.size == 0:
            return base
        stop = int(np.flatnonzero(base.average)[0])
        starts = np.flatnonzero(base.start)
        last = stop - int(starts[starts < stop][-1])  # the last slow window's length
        ext = np.zeros((4, n_extend * last), bool)  # collect, end, average, start
        for a in range(0, n_extend * last, last):
            ext[0, a + last // 2 : a + last] = True
            ext[1, a + last - 1] = True
            ext[3, a] = True
        return Windows(
            *(np.concatenate([f[:stop], e, f[stop:]]) for f, e in zip(base, ext, strict=True))
        )
    collect = np.zeros(n, bool)
    end = np.zeros(n, bool)
    average = np.zeros(n, bool)
    start = np.zeros(n, bool)
    if n < 20:
        average[n // 2 :] = True
        start[0] = True
        return Windows(collect, end, average, start)
    init_buf = max(1, round(INIT_BUFFER * n))
    term_buf = max(1, round(TERM_BUFFER * n))
    base = max(2, round(BASE_WINDOW * n))
    a, stop = init_buf, n - term_buf
    start[0] = True
    w = base
    while a < stop:
        b = a + w
        if b + 2 * w > stop:  # the next window would not fit: this one runs to the buffer
            b = stop
        start[a] = True
        collect[a + (b - a) // 2 : b] = True
        end[b - 1] = True
        a, w = b, 2 * w
    start[stop] = True
    average[stop:] = True
    return Windows(collect, end, average, start)


class EnsembleAdaptState(NamedTuple):
    """State of the adaptation (all arrays; one per run, not per chain except ``acc``).

    Attributes:
        log_step: current ``log h`` (whitened units).
        log_step_sum, n_average: sum and count of ``log h`` over the terminal buffer.
        factor: ``L`` with ``x = L y``: ``(d, d)`` lower triangular (dense) or ``(d,)``.
        s1, s2, weight: sums of positions, of their outer products (or squares) and the count.
        acc, n_acc: per-chain sum of acceptance probabilities over the window, and steps.
        n_stuck: chains found stuck at the last window end.
        n_restarted: chains restarted so far (a stuck chain moved to a healthy one's position).
        prev_mean: mean position (unwhitened) of the last slow window's collected positions.
        n_windows: slow windows finished so far.
        n_still: consecutive slow windows (not counting the first) that found the ensemble
            stationary (`converged`).
        converged: ``n_still >= EARLY_STOP_WINDOWS``: the warm-up may end.
    """

    log_step: Array
    log_step_sum: Array
    n_average: Array
    factor: Array
    s1: Array
    s2: Array
    weight: Array
    acc: Array
    n_acc: Array
    n_stuck: Array
    n_restarted: Array
    prev_mean: Array
    n_windows: Array
    n_still: Array
    converged: Array


def init(
    n_chains: int, d: int, dense: bool, step_size=INITIAL_STEP, dtype=jnp.float32
) -> EnsembleAdaptState:
    """The adaptation's first state: identity preconditioner, step ``step_size``.

    Example:
        >>> s = init(16, 3, dense=True)
        >>> s.factor.shape, float(jnp.exp(s.log_step))
        ((3, 3), 0.1)
    """
    zero = jnp.zeros((), dtype)
    factor = jnp.eye(d, dtype=dtype) if dense else jnp.ones(d, dtype)
    return EnsembleAdaptState(
        log_step=jnp.log(jnp.asarray(step_size, dtype)),
        log_step_sum=zero,
        n_average=zero,
        factor=factor,
        s1=jnp.zeros(d, dtype),
        s2=jnp.zeros((d, d) if dense else d, dtype),
        weight=zero,
        acc=jnp.zeros(n_chains, dtype),
        n_acc=zero,
        n_stuck=jnp.zeros((), jnp.int32),
        n_restarted=jnp.zeros((), jnp.int32),
        prev_mean=jnp.zeros(d, dtype),
        n_windows=jnp.zeros((), jnp.int32),
        n_still=jnp.zeros((), jnp.int32),
        converged=jnp.zeros((), bool),
    )


# ---------------------------------------------------------------------------- coordinates
def from_whitened(factor: Array, y: Array) -> Array:
    """``x = L y`` for positions ``(..., d)`` (a sum of columns for small d, see `row_sum`)."""
    if factor.ndim == 1:
        return y * factor
    d = factor.shape[0]
    if d > _kernels.UNROLL_MAX_D:
        return y @ factor.T
    out = y[..., :1] * factor[:, 0]
    for j in range(1, d):
        out = out + y[..., j : j + 1] * factor[:, j]
    return out


def to_whitened(factor: Array, x: Array) -> Array:
    """``y = L^-1 x`` for positions ``(..., d)``."""
    if factor.ndim == 1:
        return x / factor
    flat = x.reshape(-1, x.shape[-1]).T
    y = jax.scipy.linalg.solve_triangular(factor, flat, lower=True)
    return y.T.reshape(x.shape)


def whitened_energy(energy_fn, factor: Array):
    """``E(L y)``: MALA / ULA with identity preconditioner on it is the preconditioned move
    ``x' = x - h M ∇E + sqrt(2 h T M) z`` with ``M = L L^T`` on ``E``."""
    return lambda y: energy_fn(from_whitened(factor, y))


# ------------------------------------------------------------------------------ estimation
def estimate_factor(s1: Array, s2: Array, weight: Array, n_chains: int, old: Array) -> Array:
    """The new ``L`` from moment sums of WHITENED positions ``y = L_old^-1 x``.

    The covariance ``C_y`` of the whitened positions is shrunk towards its diagonal,
    ``(1 - lam) C_y + lam diag(C_y)`` with ``lam = d / (d + n_chains)`` (the ensemble at one
    step has ~n_chains independent points; the steps of a window add little), so the shrinkage
    pulls towards the previous preconditioner, never towards an axis-aligned guess: on a rotated
    Gaussian with condition 1e4 a shrinkage in ``x`` would inflate the narrowest variances by
    100x. Then ``L = L_old chol(C_y)`` (dense) or ``L = L_old sd(y)`` (diagonal). Falls back to
    ``old`` when the estimate is not finite or a variance is not positive (e.g. one chain that
    never moved).
    """
    d = s1.shape[0]
    w = jnp.maximum(weight, 1.0)
    mean = s1 / w
    if old.ndim == 1:
        var = s2 / w - mean**2
        new = old * jnp.sqrt(jnp.maximum(var, 0.0))
        ok = jnp.all(jnp.isfinite(new) & (var > 0))
        return jnp.where(ok, new, old)
    cov = s2 / w - jnp.outer(mean, mean)
    cov = 0.5 * (cov + cov.T)
    var = jnp.diag(cov)
    lam = d / (d + n_chains)
    shrunk = (1.0 - lam) * cov + lam * jnp.diag(var)
    shrunk = shrunk + 1e-6 * jnp.mean(var) * jnp.eye(d, dtype=cov.dtype)
    new = old @ jnp.linalg.cholesky(shrunk)
    ok = jnp.all(jnp.isfinite(new)) & jnp.all(var > 0)
    return jnp.where(ok, new, old)


def converged(s1: Array, s2: Array, weight: Array, n_chains: int, old: Array, prev_mean: Array):
    """Whether a window's moment sums of WHITENED positions (in the coordinates of ``old``) show
    a stationary ensemble: covariance ``I`` and mean ``prev_mean`` (unwhitened, the previous
    window's) within ``EARLY_STOP_Z`` times the noise of ``n_chains`` independent points.

    Example:
        >>> y = jax.random.normal(jax.random.key(0), (4000, 3))
        >>> s1, s2, w = y.sum(0), y.T @ y, 4000.0
        >>> bool(converged(s1, s2, w, 4000, jnp.eye(3), jnp.zeros(3)))
        True
        >>> bool(converged(s1, s2, w, 4000, jnp.eye(3), jnp.full(3, 0.2)))  # the mean moved
        False
        >>> bool(converged(1.5 * s1, 2.25 * s2, w, 4000, jnp.eye(3), jnp.zeros(3)))  # sd x1.5
        False
    """
    d = s1.shape[0]
    w = jnp.maximum(weight, 1.0)
    mean = s1 / w
    if old.ndim == 1:
        dev_c = jnp.sum((s2 / w - mean**2 - 1.0) ** 2)
        dev_c = dev_c * n_chains / (2 * d)  # variance of a sample variance: 2 / n
    else:
        cov = s2 / w - jnp.outer(mean, mean)
        dev_c = jnp.sum((cov - jnp.eye(d, dtype=cov.dtype)) ** 2) * n_chains / (d * (d + 1))
    dm = mean - to_whitened(old, prev_mean[None, :])[0]
    dev_m = jnp.sum(dm**2) * n_chains / (2 * d)
    ok = (dev_c < EARLY_STOP_Z) & (dev_m < EARLY_STOP_Z)
    return ok & jnp.isfinite(dev_c) & jnp.isfinite(dev_m)


def stuck_mask(state: EnsembleAdaptState) -> Array:
    """Chains whose mean acceptance over the window is below ``STUCK_RATIO`` x the ensemble's."""
    per_chain = state.acc / jnp.maximum(state.n_acc, 1.0)
    return per_chain < STUCK_RATIO * jnp.mean(per_chain)


def straggler_mask(state: EnsembleAdaptState, energies: Array) -> Array:
    """Stuck chains (`stuck_mask`) whose energy is above ``median + STRAGGLER_SPREADS * IQR /
    1.349`` of the ensemble's: the ones warm-up restarts at healthy chains' positions."""
    e = jnp.where(jnp.isfinite(energies), energies, jnp.inf)
    q25, q50, q75 = jnp.nanquantile(
        jnp.where(jnp.isfinite(e), e, jnp.nan), jnp.array([0.25, 0.5, 0.75])
    )
    high = e > q50 + STRAGGLER_SPREADS * (q75 - q25) / 1.349
    return stuck_mask(state) & high


def update(
    state: EnsembleAdaptState,
    positions: Array,
    acceptance: Array,
    collect,
    end,
    average,
    start,
) -> EnsembleAdaptState:
    """One step of adaptation from the ensemble's whitened positions ``y = L^-1 x`` ``(n, d)``
    (the caller's chains live in them) and acceptance probabilities ``(n,)``.

    ``collect``, ``end``, ``average``, ``start`` are this step's entries of `windows` (traced
    booleans or Python bools). The step size moves every step; at ``end`` the preconditioner is
    re-estimated from the collected moments (which then restart), ``n_stuck`` is refreshed and
    ``converged`` says whether the ensemble was stationary (`converged`) over the last
    ``EARLY_STOP_WINDOWS`` windows (the first one never counts).
    The caller moves its chains to the new whitened coordinates when ``factor`` changes and may
    restart the chains of `stuck_mask` (computed before this update resets the counters).

    Example:
        >>> w = windows(100)
        >>> s = init(64, 2, dense=True)
        >>> x = jax.random.normal(jax.random.key(0), (64, 2)) * jnp.array([3.0, 0.5])
        >>> for t in range(100):
        ...     s = update(s, x, jnp.full(64, 0.6), *(f[t] for f in w))
        >>> [round(float(v), 1) for v in jnp.diag(s.factor)]  # about the sds 3 and 0.5
        [2.9, 0.5]
    """
    n = positions.shape[0]
    dtype = state.log_step.dtype
    acceptance = jnp.where(jnp.isfinite(acceptance), acceptance, 0.0).astype(dtype)
    log_step = state.log_step + STEP_GAIN * (jnp.mean(acceptance) - TARGET_ACCEPTANCE)
    log_step_sum = state.log_step_sum + jnp.where(average, log_step, 0.0)
    n_average = state.n_average + jnp.where(average, 1.0, 0.0)
    acc = jnp.where(start, 0.0, state.acc) + acceptance
    n_acc = jnp.where(start, 0.0, state.n_acc) + 1.0

    x = positions.astype(dtype)
    dense = state.factor.ndim == 2

    def add(sums):
        s1, s2, wt = sums
        s2_new = s2 + (x.T @ x if dense else jnp.sum(x * x, axis=0))
        return s1 + jnp.sum(x, axis=0), s2_new, wt + n

    s1, s2, weight = jax.lax.cond(
        jnp.asarray(collect), add, lambda s: s, (state.s1, state.s2, state.weight)
    )
    mid = state._replace(acc=acc, n_acc=n_acc)

    def finish(_):
        factor = estimate_factor(s1, s2, weight, n, state.factor)
        n_stuck = jnp.sum(stuck_mask(mid)).astype(jnp.int32)
        still = converged(s1, s2, weight, n, state.factor, state.prev_mean)
        n_still = jnp.where(still & (state.n_windows > 0), state.n_still + 1, 0)
        mean_x = from_whitened(state.factor, (s1 / jnp.maximum(weight, 1.0))[None, :])[0]
        zeros = (jnp.zeros_like(s1), jnp.zeros_like(s2), jnp.zeros_like(weight))
        return factor, n_stuck, zeros, (mean_x, state.n_windows + 1, n_still)

    def keep(_):
        return (
            state.factor,
            state.n_stuck,
            (s1, s2, weight),
            (
                state.prev_mean,
                state.n_windows,
                state.n_still,
            ),
        )

    factor, n_stuck, (s1, s2, weight), (prev_mean, n_windows, n_still) = jax.lax.cond(
        jnp.asarray(end), finish, keep, None
    )
    return EnsembleAdaptState(
        log_step=log_step,
        log_step_sum=log_step_sum,
        n_average=n_average,
        factor=factor,
        s1=s1,
        s2=s2,
        weight=weight,
        acc=acc,
        n_acc=n_acc,
        n_stuck=n_stuck,
        n_restarted=state.n_restarted,
        prev_mean=prev_mean,
        n_windows=n_windows,
        n_still=n_still,
        converged=n_still >= EARLY_STOP_WINDOWS,
    )


def final_step_size(state: EnsembleAdaptState) -> Array:
    """The adapted MALA step: ``exp`` of the mean ``log h`` over the terminal buffer."""
    mean = state.log_step_sum / jnp.maximum(state.n_average, 1.0)
    return jnp.exp(jnp.where(state.n_average > 0, mean, state.log_step))


def curvature(grad_fn, y: Array, g: Array, key: Array, iters: int = CURVATURE_ITERS) -> Array:
    """Each chain's largest curvature ``|lambda|_max`` of ``E`` at ``y (n, d)`` (gradients ``g``).

    Power iteration on secants: ``v <- (grad E(y + eps v) - g) / eps``, normalised, ``iters``
    times (``grad_fn`` batched; one gradient per chain and iteration; no second derivative, so
    any function ``sample`` takes works). A lower bound of the top eigenvalue's modulus that
    converges to it. Not finite where a gradient is not.

    Example:
        >>> f = jax.vmap(jax.grad(lambda y: 0.5 * (y[0] ** 2 + 9.0 * y[1] ** 2)))
        >>> y = jnp.ones((4, 2))
        >>> [round(float(v), 2) for v in curvature(f, y, f(y), jax.random.key(0))]
        [9.0, 9.0, 9.0, 9.0]
    """
    v = jax.random.normal(key, y.shape, y.dtype)
    v = v / jnp.linalg.norm(v, axis=-1, keepdims=True)

    def body(carry, _):
        v, _ = carry
        hv = (grad_fn(y + CURVATURE_EPS * v) - g) / CURVATURE_EPS
        lam = jnp.linalg.norm(hv, axis=-1)
        return (hv / jnp.where(lam > 0, lam, 1.0)[:, None], lam), None

    (_, lam), _ = jax.lax.scan(body, (v, jnp.zeros(y.shape[0], y.dtype)), None, length=iters)
    return lam


def ula_step_size(lam_max: Array, mala_step: Array) -> Array:
    """ULA's (Leimkuhler-Matthews) step ``min(ULA_STABILITY / lam_max, ULA_MAX_STEP)`` from the
    largest curvature over the chains (`curvature`); MALA's step where ``lam_max`` is not a
    finite number (every chain's gradient failed).

    ``lam_max`` is first rounded up to a power of ``2^(1/16)`` (at most +4.4%): the curvature
    is computed to rounding, which differs with how the chains are sharded over devices, and
    the step must not (``h`` is the same on 1 and 8 devices unless ``lam_max`` falls within
    ~1e-6 of a grid point).

    Example:
        >>> round(float(ula_step_size(jnp.float32(6.0), jnp.float32(0.3))), 4)  # 6 -> 6.17
        0.2432
        >>> float(ula_step_size(jnp.float32(0.0), jnp.float32(0.3)))  # flat: the cap
        1.0
    """
    lam_max = jnp.exp2(jnp.ceil(jnp.log2(lam_max) * 16.0) / 16.0)
    h = jnp.minimum(ULA_STABILITY / lam_max, ULA_MAX_STEP)
    return jnp.where(jnp.isfinite(lam_max) & (lam_max >= 0), h, mala_step)


def cap_drift(g: Array, h, t) -> Array:
    """The gradients ``g`` (n, d) of ULA's move scaled, chain by chain, so that the drift
    ``h |g|`` is at most ``ULA_DRIFT_CAP sqrt(2 h T d)`` (module constants): a chain in a region
    stiffer than its step allows is pushed by a bounded drift rather than flung out (the
    overshoot of an unstable step otherwise grows geometrically). A non-finite gradient stays
    non-finite (the move's divergence guard keeps the chain).

    Example:
        >>> g = jnp.array([[3.0, 4.0], [300.0, 400.0]])
        >>> c = cap_drift(g, 0.5, 1.0)  # the cap on |g|: 2 sqrt(2 * 2 / 0.5) = 5.66
        >>> c[0].tolist(), [round(v, 3) for v in c[1].tolist()]
        ([3.0, 4.0], [3.394, 4.525])
    """
    d = g.shape[-1]
    norm = jnp.sqrt(jnp.sum(g * g, axis=-1, keepdims=True))
    cap = ULA_DRIFT_CAP * jnp.sqrt(2.0 * t * d / h)  # on |g|: h |g| <= CAP sqrt(2 h T d)
    scale = jnp.minimum(1.0, cap / norm)
    return g * jnp.where(jnp.isfinite(norm), scale, 1.0)


def lm_noise(previous: Array, z: Array) -> Array:
    """The Leimkuhler-Matthews noise ``(z_n + z_{n+1}) / 2`` (module doc): with it the ULA move
    ``y - h grad E + sqrt(2 h T) noise`` samples a Gaussian exactly for any stable ``h``.

    Example:
        >>> float(lm_noise(jnp.float32(1.0), jnp.float32(-0.5)))
        0.25
    """
    return 0.5 * (previous + z)
