"""Posteriors with known truth, built here (no downloads), for the adaptation tests and bench.

Each builder returns a `Posterior`: a jax energy ``E(x) = -log p(x)`` on ``(d,)`` and the true
means and standard deviations of every coordinate, exact or computed to far better than the
Monte Carlo error of the tests (how is said on each builder):

- `banana`: the twisted Gaussian of Haario et al. (1999), analytic moments.
- `gaussian`: a rotated Gaussian, d = 100, condition number 1e4, exact.
- `funnel`: Neal's funnel (2003), d = 10, exact marginals (v ~ N(0, 3^2)).
- `eight_schools`: Rubin (1981) in centred and non-centred form; moments by a fine 2-D
  quadrature over (mu, log tau) with the school effects integrated analytically.
- `brownian`: posteriordb / inference gym ``brownian_motion_unknown_scales`` (30 steps, the
  middle 10 unobserved, two unknown scales in log space, d = 32) on data generated here;
  moments by a 2-D quadrature over the log scales with the path integrated analytically.
- `logistic`: a logistic regression (d = 25, n = 500) on data generated here; moments by
  importance sampling from the Laplace approximation (multivariate t, 2^16 draws).

All references are computed once per process (``functools.cache``) in float64 NumPy.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Posterior(NamedTuple):
    """A target with its truth: ``energy (d,) -> ()`` and exact means / sds per coordinate."""

    name: str
    energy: object
    d: int
    mean: np.ndarray
    sd: np.ndarray
    how: str


def errors(samples, post: Posterior) -> tuple[float, float]:
    """Max over coordinates of |mean error| / sd and |sd error| / sd of ``samples (n, d)``."""
    x = np.asarray(samples, dtype=np.float64)
    e_mean = np.max(np.abs(x.mean(axis=0) - post.mean) / post.sd)
    e_sd = np.max(np.abs(x.std(axis=0, ddof=1) - post.sd) / post.sd)
    return float(e_mean), float(e_sd)


# ----------------------------------------------------------------------------------- banana
BANANA_B = 0.03  # Haario et al. (1999): b = 0.03 is their "moderately twisted" Gaussian
BANANA_S1 = 10.0  # sd of the first coordinate


@functools.cache
def banana() -> Posterior:
    """``x1 ~ N(0, 10^2)``, ``x2 = z + b (x1^2 - 100)``, ``z ~ N(0, 1)``.

    Moments: ``E x2 = b (E x1^2 - 100) = 0``; ``Var x2 = 1 + b^2 Var(x1^2) = 1 + 2 b^2 10^4``.
    """
    b, s1 = BANANA_B, BANANA_S1

    def energy(x):
        return 0.5 * (x[0] / s1) ** 2 + 0.5 * (x[1] - b * (x[0] ** 2 - s1**2)) ** 2

    sd = np.array([s1, np.sqrt(1.0 + 2.0 * b**2 * s1**4)])
    return Posterior("banana", energy, 2, np.zeros(2), sd, "analytic")


# ------------------------------------------------------------------------------- gaussian
@functools.cache
def gaussian(d: int = 100, condition: float = 1e4, seed: int = 3) -> Posterior:
    """``N(mu, Q diag(v) Q^T)`` with variances ``v`` log-spaced over ``condition`` and a random
    rotation ``Q`` (QR of a Gaussian matrix) and mean ``mu ~ N(0, I)``; exact moments."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    q = q * np.sign(np.diag(r))
    v = np.logspace(-0.5 * np.log10(condition), 0.5 * np.log10(condition), d)
    cov = (q * v) @ q.T
    prec = (q / v) @ q.T
    mu = rng.normal(size=d)
    prec_j, mu_j = jnp.asarray(prec, jnp.float32), jnp.asarray(mu, jnp.float32)

    def energy(x):
        y = x - mu_j
        return 0.5 * y @ (prec_j @ y)

    return Posterior(
        f"gaussian{d}", energy, d, mu, np.sqrt(np.diag(cov)), f"exact (cond {condition:g})"
    )


# --------------------------------------------------------------------------------- funnel
@functools.cache
def funnel(d: int = 10) -> Posterior:
    """Neal's funnel: ``v ~ N(0, 3^2)``, ``x_i | v ~ N(0, e^v)``; ``sd(x_i) = e^{9/4}``."""

    def energy(x):
        v, rest = x[0], x[1:]
        return v**2 / 18.0 + 0.5 * jnp.sum(rest**2) * jnp.exp(-v) + 0.5 * (d - 1) * v

    sd = np.full(d, np.exp(9.0 / 4.0))
    sd[0] = 3.0
    return Posterior(f"funnel{d}", energy, d, np.zeros(d), sd, "exact")


# -------------------------------------------------------------------------- eight schools
SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def _schools_quadrature(centred: bool) -> tuple[np.ndarray, np.ndarray]:
    """Means / sds of (mu, log tau, theta or eta) by quadrature on a 1201 x 2401 grid.

    ``p(mu, s) ∝ N(mu | 0, 5^2) HalfCauchy(e^s | 5) e^s prod_j N(y_j | mu, sigma_j^2 + e^{2s})``;
    given ``(mu, tau)`` each ``theta_j`` is ``N(m_j, v_j)`` with ``v_j = (1/sigma_j^2 +
    1/tau^2)^-1``, ``m_j = v_j (y_j / sigma_j^2 + mu / tau^2)`` (and ``eta_j = (theta_j - mu) /
    tau``), so its moments follow by the laws of total expectation and variance. Density below
    ``s = -20`` is below ``e^-20`` of the peak; the grid step (0.05 in mu, 0.01 in s) makes the
    trapezoid error negligible against 1e-4 sd.
    """
    y, sig = SCHOOLS_Y, SCHOOLS_SIGMA
    mu = np.linspace(-30.0, 40.0, 1401)[:, None]
    s = np.linspace(-20.0, 6.0, 2601)[None, :]
    tau2 = np.exp(2.0 * s)
    logp = -(mu**2) / 50.0 - np.log1p(tau2 / 25.0) + s
    for yj, sj in zip(y, sig, strict=True):
        var = sj**2 + tau2
        logp = logp - 0.5 * np.log(var) - 0.5 * (yj - mu) ** 2 / var
    w = np.exp(logp - logp.max())
    w /= w.sum()

    def moments(a, b=None):
        """Mean and variance of a quantity with conditional mean a and variance b."""
        m = np.sum(w * a)
        v = np.sum(w * (a - m) ** 2) + (0.0 if b is None else np.sum(w * b))
        return m, v

    out = [moments(mu + 0 * s), moments(s + 0 * mu)]
    for yj, sj in zip(y, sig, strict=True):
        vj = 1.0 / (1.0 / sj**2 + 1.0 / tau2)
        mj = vj * (yj / sj**2 + mu / tau2)
        if centred:
            out.append(moments(mj, vj + 0 * mu))
        else:
            tau = np.sqrt(tau2)
            out.append(moments((mj - mu) / tau, vj / tau2 + 0 * mu))
    m, v = np.array(out).T
    return m, np.sqrt(v)


@functools.cache
def eight_schools(centred: bool = True) -> Posterior:
    """Eight schools, coordinates ``(mu, log tau, theta_1..8)`` (centred) or ``eta_1..8``.

    ``mu ~ N(0, 5^2)``, ``tau ~ HalfCauchy(5)``, ``theta_j ~ N(mu, tau^2)`` (non-centred:
    ``theta_j = mu + tau eta_j``, ``eta_j ~ N(0, 1)``), ``y_j ~ N(theta_j, sigma_j^2)``.
    """
    y, sig = jnp.asarray(SCHOOLS_Y, jnp.float32), jnp.asarray(SCHOOLS_SIGMA, jnp.float32)

    def prior(mu, s):
        return mu**2 / 50.0 + jnp.log1p(jnp.exp(2.0 * s) / 25.0) - s

    if centred:

        def energy(x):
            mu, s, th = x[0], x[1], x[2:]
            e = prior(mu, s) + 0.5 * jnp.sum((th - mu) ** 2) * jnp.exp(-2.0 * s) + 8.0 * s
            return e + 0.5 * jnp.sum(((y - th) / sig) ** 2)
    else:

        def energy(x):
            mu, s, eta = x[0], x[1], x[2:]
            th = mu + jnp.exp(s) * eta
            return prior(mu, s) + 0.5 * jnp.sum(eta**2) + 0.5 * jnp.sum(((y - th) / sig) ** 2)

    m, sd = _schools_quadrature(centred)
    name = "eight_schools_" + ("centred" if centred else "noncentred")
    return Posterior(name, energy, 10, m, sd, "2-D quadrature over (mu, log tau)")


# ------------------------------------------------------------------------------- brownian
BROWNIAN_T = 30
BROWNIAN_MISSING = slice(10, 20)  # the middle ten steps are not observed (inference gym)


def _brownian_data(seed: int = 7) -> np.ndarray:
    """A path with innovation scale 0.1 and observation scale 0.15 (NaN where unobserved)."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(0.1 * rng.normal(size=BROWNIAN_T))
    y = x + 0.15 * rng.normal(size=BROWNIAN_T)
    y[BROWNIAN_MISSING] = np.nan
    return y


def _brownian_quadrature(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means / sds of ``(log a, log b, x_1..30)`` by quadrature over ``(log a, log b)``.

    Given the scales the path is Gaussian: prior ``x ~ N(0, a^2 K)``, ``K_ts = min(t, s) + 1``;
    ``y_obs ~ N(0, a^2 K_oo + b^2 I)`` gives the marginal of the scales and
    ``x | y ~ N(C H^T y / b^2, C)``, ``C = (K^-1 / a^2 + H^T H / b^2)^-1``. A coarse grid finds the
    mass, then a 161 x 161 grid over the box where the log density is within 40 of its top.
    """
    obs = np.flatnonzero(np.isfinite(y))
    t = np.arange(BROWNIAN_T)
    k = np.minimum(t[:, None], t[None, :]) + 1.0
    k_inv = np.linalg.inv(k)
    yo = y[obs]
    hth = np.zeros(BROWNIAN_T)
    hth[obs] = 1.0
    hty = np.zeros(BROWNIAN_T)
    hty[obs] = yo

    def log_marginal(la, lb):
        a2, b2 = np.exp(2 * la)[:, None, None], np.exp(2 * lb)[:, None, None]
        cov = a2 * k[np.ix_(obs, obs)] + b2 * np.eye(obs.size)
        sign, logdet = np.linalg.slogdet(cov)
        quad = np.einsum("i,nij,j->n", yo, np.linalg.inv(cov), yo)
        prior = -(la**2) / 8.0 - lb**2 / 8.0  # log a, log b ~ N(0, 2^2)
        return prior - 0.5 * logdet - 0.5 * quad

    g = np.linspace(-8.0, 4.0, 121)
    la, lb = (a.ravel() for a in np.meshgrid(g, g, indexing="ij"))
    lp = log_marginal(la, lb)
    keep = lp > lp.max() - 40.0
    lo_a, hi_a = la[keep].min() - 0.2, la[keep].max() + 0.2
    lo_b, hi_b = lb[keep].min() - 0.2, lb[keep].max() + 0.2
    ga, gb = np.linspace(lo_a, hi_a, 161), np.linspace(lo_b, hi_b, 161)
    la, lb = (a.ravel() for a in np.meshgrid(ga, gb, indexing="ij"))
    lp = log_marginal(la, lb)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    prec = (
        k_inv[None] / np.exp(2 * la)[:, None, None]
        + np.diag(hth)[None] / np.exp(2 * lb)[:, None, None]
    )
    c = np.linalg.inv(prec)
    cm = np.einsum("nij,j->ni", c, hty) / np.exp(2 * lb)[:, None]
    cv = np.diagonal(c, axis1=1, axis2=2)
    m_x = w @ cm
    v_x = w @ ((cm - m_x) ** 2 + cv)
    m_a, m_b = w @ la, w @ lb
    v_a, v_b = w @ (la - m_a) ** 2, w @ (lb - m_b) ** 2
    mean = np.concatenate([[m_a, m_b], m_x])
    sd = np.sqrt(np.concatenate([[v_a, v_b], v_x]))
    return mean, sd


@functools.cache
def brownian() -> Posterior:
    """Brownian motion with unknown innovation and observation scales, ``(log a, log b, x)``.

    ``log a, log b ~ N(0, 2^2)`` (LogNormal(0, 2) scales), ``x_0 ~ N(0, a^2)``,
    ``x_t ~ N(x_{t-1}, a^2)``, ``y_t ~ N(x_t, b^2)`` observed except at t = 10..19.
    """
    y = _brownian_data()
    obs = np.isfinite(y)
    y_j = jnp.asarray(np.where(obs, y, 0.0), jnp.float32)
    obs_j = jnp.asarray(obs, jnp.float32)
    n_obs = float(obs.sum())

    def energy(z):
        la, lb, x = z[0], z[1], z[2:]
        steps = jnp.concatenate([x[:1], x[1:] - x[:-1]])
        e = la**2 / 8.0 + lb**2 / 8.0
        e = e + 0.5 * jnp.sum(steps**2) * jnp.exp(-2.0 * la) + BROWNIAN_T * la
        return e + 0.5 * jnp.sum(obs_j * (y_j - x) ** 2) * jnp.exp(-2.0 * lb) + n_obs * lb

    mean, sd = _brownian_quadrature(y)
    return Posterior("brownian", energy, 2 + BROWNIAN_T, mean, sd, "2-D quadrature")


# ------------------------------------------------------------------------------- logistic
LOGISTIC_N, LOGISTIC_D = 500, 25


def _logistic_data(seed: int = 11):
    """Features ``N(0, 1)`` (first column 1: intercept), true weights ``N(0, 0.5^2)``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(LOGISTIC_N, LOGISTIC_D))
    x[:, 0] = 1.0
    w = 0.5 * rng.normal(size=LOGISTIC_D)
    y = (rng.random(LOGISTIC_N) < 1.0 / (1.0 + np.exp(-x @ w))).astype(np.float64)
    return x, y


def _logistic_energy_np(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sum softplus(-s_i x_i.w) + |w|^2 / 2`` for weights ``(k, d)`` (prior ``N(0, I)``)."""
    s = 2.0 * y - 1.0
    z = -(w @ x.T) * s
    return np.sum(np.logaddexp(0.0, z), axis=1) + 0.5 * np.sum(w**2, axis=1)


def _logistic_reference(x, y, seed: int = 12, n_draws: int = 1 << 16, nu: float = 10.0):
    """Self-normalised importance sampling from a multivariate t around the Laplace fit.

    Newton's method gives the mode and Hessian; proposals ``t_nu(mode, H^-1)``. With these
    data the effective sample size is ~80% of the 65536 draws, so the reference moments carry a
    Monte Carlo error near 0.005 sd, far below the tests' tolerances.
    """
    s = 2.0 * y - 1.0
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(s * (x @ w)))  # sigma(-s x.w)
        grad = -(x.T @ (s * p)) + w
        hess = (x.T * (p * (1 - p))) @ x + np.eye(x.shape[1])
        dw = np.linalg.solve(hess, grad)
        w -= dw
        if np.max(np.abs(dw)) < 1e-12:
            break
    p = 1.0 / (1.0 + np.exp(s * (x @ w)))
    hess = (x.T * (p * (1 - p))) @ x + np.eye(x.shape[1])
    chol = np.linalg.cholesky(np.linalg.inv(hess))
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    z = rng.normal(size=(n_draws, d))
    g = rng.chisquare(nu, size=(n_draws, 1)) / nu
    draws = w + (z / np.sqrt(g)) @ chol.T
    u = (draws - w) @ np.linalg.inv(chol).T
    log_q = -0.5 * (nu + d) * np.log1p(np.sum(u**2, axis=1) / nu)
    log_p = np.concatenate([-_logistic_energy_np(c, x, y) for c in np.array_split(draws, 32)])
    lw = log_p - log_q
    wt = np.exp(lw - lw.max())
    wt /= wt.sum()
    mean = wt @ draws
    sd = np.sqrt(wt @ (draws - mean) ** 2)
    ess = 1.0 / np.sum(wt**2)
    return mean, sd, ess


@functools.cache
def logistic() -> Posterior:
    """Bayesian logistic regression, ``w ~ N(0, I_25)``, 500 observations generated here."""
    x, y = _logistic_data()
    mean, sd, ess = _logistic_reference(x, y)
    x_j, s_j = jnp.asarray(x, jnp.float32), jnp.asarray(2.0 * y - 1.0, jnp.float32)

    def energy(w):
        return jnp.sum(jax.nn.softplus(-s_j * (x_j @ w))) + 0.5 * jnp.sum(w**2)

    how = f"importance sampling from Laplace-t, ESS {ess:.0f}"
    return Posterior("logistic", energy, LOGISTIC_D, mean, sd, how)


ALL = {
    "banana": banana,
    "gaussian": gaussian,
    "logistic": logistic,
    "brownian": brownian,
    "eight_schools_centred": lambda: eight_schools(True),
    "eight_schools_noncentred": lambda: eight_schools(False),
    "funnel": funnel,
}
