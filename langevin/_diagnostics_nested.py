"""Diagnostics for many short chains: nested R-hat and ESS per second (host, NumPy).

Split R-hat compares each chain's first and second half; with thousands of chains of a few
hundred steps, or only their final states, it flags correct ensembles (a chain's halves are not
yet independent) and cannot see a bias that all chains share. Nested R-hat (Margossian et al.
2022) groups the chains into ``K`` superchains of ``M`` chains that START FROM THE SAME POINT and
asks whether the superchains still disagree, i.e. whether the chains have forgotten where they
started. It works with a single draw per chain (the final states).

Given ``f[n, m, k]`` (draw n of chain m of superchain k):

    B = var_k(mean of superchain k)                                       (ddof 1)
    W = mean_k( var_m(mean of chain m in k) [ddof 1, 0 if M = 1]
                + mean_m var_n(f[., m, k]) [ddof 1, 0 if N = 1] )
    nested R-hat = sqrt(1 + B / W).

Thresholds (`nested_rhat_threshold`): at stationarity with independent chains, each superchain
mean has variance ``sigma^2 / M`` and ``W ≈ sigma^2``, so ``nR^2 - 1 ≈ F(K-1, K(M-1)) / M``;
autocorrelated draws only lower ``B``. The threshold is that F quantile at level ``alpha``
(Bonferroni over the coordinates): a correct ensemble stays below it with probability
``>= 1 - alpha``; one whose superchains still differ by more than ``~2.5 sigma / sqrt(M)``
exceeds it. Example: K = 16, M = 128, 10 coordinates, alpha = 0.01: 1.0098; a
superchain spread of 0.3 sigma (not yet forgotten) gives about 1.05.

References:
    Margossian, Hoffman, Sountsov, Riou-Durand, Vehtari & Gelman (2022), Nested R-hat:
    assessing the convergence of Markov chain Monte Carlo when running many short chains.
    arXiv:2110.13017.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
from jax.typing import ArrayLike

__all__ = ["ess_per_second", "nested_rhat", "nested_rhat_threshold"]


def _grouped(samples: ArrayLike, n_superchains: int) -> tuple[np.ndarray, tuple]:
    """Draws as ``(N, M, K, p)``: chain ``k * M + m`` is chain m of superchain k."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(
            f"nested_rhat: samples must have shape (n_draws, n_chains, ...), got {x.shape}"
        )
    n_draws, n_chains = x.shape[:2]
    k = int(n_superchains)
    if k < 2:
        raise ValueError(f"nested_rhat needs n_superchains >= 2, got {n_superchains}")
    if n_chains % k:
        raise ValueError(
            f"nested_rhat: n_chains = {n_chains} is not a multiple of n_superchains = {k}"
        )
    m = n_chains // k
    if m < 2 and n_draws < 2:
        raise ValueError(
            "nested_rhat needs at least 2 chains per superchain or 2 draws per chain, got "
            f"{m} chain(s) per superchain and {n_draws} draw(s)"
        )
    shape = x.shape[2:]
    return x.reshape(n_draws, k, m, -1).transpose(0, 2, 1, 3), shape


def nested_rhat(samples: ArrayLike, n_superchains: int) -> np.ndarray:
    """Nested R-hat per coordinate (Margossian et al. 2022); ~1 when the chains forgot their start.

    Args:
        samples: ``(n_draws, n_chains, ...)``; ``n_draws`` may be 1 (final states). Chains
            ``k * M .. (k + 1) * M - 1`` form superchain ``k`` and must have started from one
            common point (different points across superchains, over-dispersed).
        n_superchains: ``K >= 2``, dividing ``n_chains``.

    Returns:
        nested R-hat for each trailing coordinate, shape ``samples.shape[2:]``.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(1, 2048, 3))  # exact, independent draws
        >>> bool(np.all(nested_rhat(x, 16) < nested_rhat_threshold(16, 128, 3)))
        True
    """
    f, shape = _grouped(samples, n_superchains)
    n, m, _, _ = f.shape
    chain_mean = f.mean(axis=0)  # (M, K, p)
    super_mean = chain_mean.mean(axis=0)  # (K, p)
    b = super_mean.var(axis=0, ddof=1)
    b_within = chain_mean.var(axis=0, ddof=1) if m > 1 else np.zeros_like(super_mean)
    w_within = f.var(axis=0, ddof=1).mean(axis=0) if n > 1 else np.zeros_like(super_mean)
    w = (b_within + w_within).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(1.0 + b / w)
    r = np.where(w > 0, r, np.where(b > 0, np.inf, 1.0))
    return r.reshape(shape)


def nested_rhat_threshold(
    n_superchains: int, chains_per_superchain: int, n_coords: int = 1, alpha: float = 0.01
) -> float:
    """The value a converged ensemble's nested R-hat stays below with probability ``1 - alpha``.

    ``sqrt(1 + F^-1(1 - alpha / n_coords; K - 1, K (M - 1)) / M)`` (module doc): the F quantile
    of the superchain-mean spread of independent chains, Bonferroni over ``n_coords``.

    Example:
        >>> round(nested_rhat_threshold(16, 128, 10), 4)
        1.0098
    """
    k, m = int(n_superchains), int(chains_per_superchain)
    if k < 2 or m < 1:
        raise ValueError(f"need n_superchains >= 2 and chains_per_superchain >= 1, got {k}, {m}")
    dfd = k * (m - 1) if m > 1 else 10**6
    q = scipy.stats.f.ppf(1.0 - alpha / max(int(n_coords), 1), k - 1, dfd)
    return float(np.sqrt(1.0 + q / m))


def ess_per_second(ess: ArrayLike, seconds: float) -> float:
    """The smallest effective sample size over coordinates divided by the wall time.

    Example:
        >>> ess_per_second([1200.0, 800.0], 4.0)
        200.0
    """
    s = float(seconds)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"seconds must be finite and > 0, got {seconds}")
    return float(np.min(np.asarray(ess, dtype=np.float64)) / s)
