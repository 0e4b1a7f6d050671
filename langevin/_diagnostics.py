"""Convergence diagnostics across chains: split R-hat and effective sample size (host, NumPy).

Both take draws shaped ``(n_draws, n_chains, ...)`` (a thinned trajectory of `langevin.sample`)
and return one value per trailing coordinate.
"""

from __future__ import annotations

import numpy as np
from jax.typing import ArrayLike

__all__ = ["ess", "rhat"]


def _draws(samples: ArrayLike, what: str) -> np.ndarray:
    """Draws as float64 ``(n_draws, n_chains, k)`` with at least 4 draws and 1 chain."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"{what}: samples must have shape (n_draws, n_chains, ...), got {x.shape}")
    if x.shape[0] < 4:
        raise ValueError(f"{what} needs at least 4 draws per chain, got {x.shape[0]}")
    return x.reshape(x.shape[0], x.shape[1], -1)


def _split(x: np.ndarray) -> np.ndarray:
    """Split every chain in two halves (dropping the middle draw when odd)."""
    half = x.shape[0] // 2
    return np.concatenate([x[:half], x[-half:]], axis=1)


def rhat(samples: ArrayLike) -> np.ndarray:
    """Split R-hat (Gelman et al., BDA3 §11.4): ~1 when chains agree, > 1.01 flags trouble.

    ``R = sqrt(((n - 1)/n W + B/n) / W)`` over chains split in halves, with ``W`` the mean
    within-chain variance and ``B / n`` the variance of the chain means.

    Args:
        samples: ``(n_draws, n_chains, ...)``.

    Returns:
        R-hat for each trailing coordinate, shape ``samples.shape[2:]``.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(500, 8, 2))
        >>> bool(np.all(np.abs(rhat(x) - 1) < 0.01))
        True
    """
    x = _draws(samples, "rhat")
    shape = np.shape(samples)[2:]
    s = _split(x)
    n = s.shape[0]
    means = s.mean(axis=0)
    w = s.var(axis=0, ddof=1).mean(axis=0)
    b_over_n = means.var(axis=0, ddof=1) if s.shape[1] > 1 else np.zeros_like(w)
    var_plus = (n - 1) / n * w + b_over_n
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(var_plus / w)
    r = np.where(w > 0, r, np.where(b_over_n > 0, np.inf, 1.0))
    return r.reshape(shape)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance along axis 0 of ``(n, m, k)`` draws, by FFT (biased estimator)."""
    n = x.shape[0]
    y = x - x.mean(axis=0)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(y, n=size, axis=0)
    ac = np.fft.irfft(f * np.conj(f), n=size, axis=0)[:n]
    return ac / n


def ess(samples: ArrayLike) -> np.ndarray:
    """Effective sample size over all chains (Stan / BDA3, Geyer's initial monotone sequence).

    ``ESS = N M / tau`` with ``tau = -1 + 2 sum_k P_k``, ``P_k = rho_2k + rho_2k+1`` truncated at
    the first negative pair and made monotone, and ``rho_t = 1 - (W - mean autocov_t) / var_plus``.

    Args:
        samples: ``(n_draws, n_chains, ...)``.

    Returns:
        ESS for each trailing coordinate, shape ``samples.shape[2:]`` (at most ``N M log10(N M)``).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(400, 4, 1))
        >>> bool(1000 < ess(x)[0] < 2400)
        True
    """
    x = _draws(samples, "ess")
    shape = np.shape(samples)[2:]
    n, m, k = x.shape
    acov = _autocov(x)  # (n, m, k)
    chain_var = acov[0] * n / (n - 1)
    w = chain_var.mean(axis=0)
    var_plus = w * (n - 1) / n
    if m > 1:
        var_plus = var_plus + x.mean(axis=0).var(axis=0, ddof=1)
    out = np.empty(k)
    for j in range(k):
        if var_plus[j] <= 0:
            out[j] = float(n * m)
            continue
        rho = 1.0 - (w[j] - acov[:, :, j].mean(axis=1)) / var_plus[j]
        rho[0] = 1.0
        pairs = rho[: (n // 2) * 2].reshape(-1, 2).sum(axis=1)
        stop = np.argmax(pairs < 0) if np.any(pairs < 0) else pairs.size
        p = np.minimum.accumulate(pairs[:stop]) if stop > 0 else pairs[:1]
        tau = max(-1.0 + 2.0 * p.sum(), 1.0 / np.log10(n * m))
        out[j] = n * m / tau
    return out.reshape(shape)
