"""Convergence diagnostics across chains: R-hat and effective sample size (host, NumPy).

Both take draws shaped ``(n_draws, n_chains, ...)`` (a thinned trajectory of `langevin.sample`)
and return one value per trailing coordinate. The defaults are the rank-normalised split R-hat
and the bulk ESS of Vehtari et al. (2021), what Stan, ArviZ and ``posterior`` report; the classic
split R-hat (BDA3) and split ESS of the raw draws remain as ``method="split"`` / ``"mean"``. Each
agrees with ArviZ's estimator of the same name to rounding (tests/langevin/test_arviz.py).
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


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalise each coordinate over all its draws: ``Phi^-1((r - 3/8) / (S + 1/4))``.

    ``r`` is the rank among the ``S`` draws (ties get their average rank); 3/8 is Blom's (1958)
    offset, as in Vehtari et al. (2021) eq. 14.
    """
    from scipy import stats

    n, m, k = x.shape
    flat = x.reshape(n * m, k)
    r = stats.rankdata(flat, method="average", axis=0)
    return stats.norm.ppf((r - 0.375) / (n * m + 0.25)).reshape(n, m, k)


def _fold(x: np.ndarray) -> np.ndarray:
    """``|x - median|`` per coordinate (the tails: Vehtari et al. 2021, §4.2)."""
    k = x.shape[2]
    return np.abs(x - np.median(x.reshape(-1, k), axis=0))


def _rhat_of_split(s: np.ndarray) -> np.ndarray:
    """``sqrt(((n - 1)/n W + B/n) / W)`` of chains already split, per coordinate."""
    n = s.shape[0]
    w = s.var(axis=0, ddof=1).mean(axis=0)
    b_over_n = s.mean(axis=0).var(axis=0, ddof=1) if s.shape[1] > 1 else np.zeros_like(w)
    var_plus = (n - 1) / n * w + b_over_n
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(var_plus / w)
    return np.where(w > 0, r, np.where(b_over_n > 0, np.inf, 1.0))


def rhat(samples: ArrayLike, method: str = "rank") -> np.ndarray:
    """R-hat across chains split in halves: ~1 when chains agree, > 1.01 flags trouble.

    ``R = sqrt(((n - 1)/n W + B/n) / W)`` over chains split in halves, with ``W`` the mean
    within-chain variance and ``B / n`` the variance of the chain means. ``method="rank"`` (the
    default; Vehtari et al. 2021) computes it on rank-normalised draws and on rank-normalised
    folded draws ``|x - median|`` and returns the larger: it sees chains that differ in scale or
    sit in heavy tails, where the classic ``method="split"`` (BDA3 §11.4) on the raw draws can
    read ~1.

    Args:
        samples: ``(n_draws, n_chains, ...)``.
        method: ``"rank"`` or ``"split"``.

    Returns:
        R-hat for each trailing coordinate, shape ``samples.shape[2:]``.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(500, 8, 2))
        >>> bool(np.all(np.abs(rhat(x) - 1) < 0.01))
        True
    """
    if method not in ("rank", "split"):
        raise ValueError(f"rhat method must be 'rank' or 'split', got {method!r}")
    x = _draws(samples, "rhat")
    shape = np.shape(samples)[2:]
    s = _split(x)
    if method == "split":
        return _rhat_of_split(s).reshape(shape)
    bulk = _rhat_of_split(_z_scale(s))
    tail = _rhat_of_split(_z_scale(_fold(s)))
    return np.maximum(bulk, tail).reshape(shape)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance along axis 0 of ``(n, m, k)`` draws, by FFT (biased estimator)."""
    n = x.shape[0]
    y = x - x.mean(axis=0)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(y, n=size, axis=0)
    ac = np.fft.irfft(f * np.conj(f), n=size, axis=0)[:n]
    return ac / n


def _ess_of(x: np.ndarray) -> np.ndarray:
    """Stan's ESS of ``(n, m, k)`` draws as they are (no split, no rank), per coordinate."""
    n, m, k = x.shape
    acov = _autocov(x)  # (n, m, k)
    mean_var = acov[0].mean(axis=0) * n / (n - 1)  # W
    var_plus = mean_var * (n - 1) / n
    if m > 1:
        var_plus = var_plus + x.mean(axis=0).var(axis=0, ddof=1)
    out = np.empty(k)
    for j in range(k):
        if np.ptp(x[:, :, j]) < np.finfo(np.float64).resolution:
            out[j] = float(n * m)  # constant draws: nothing to correlate
            continue
        rho = 1.0 - (mean_var[j] - acov[:, :, j].mean(axis=1)) / var_plus[j]
        rho[0] = 1.0
        # Geyer's initial positive sequence over pairs (rho_2t + rho_2t+1), as Stan writes it:
        # stop at the first negative pair (not kept), then keep the last even term once.
        kept = np.zeros(n)
        kept[:2] = rho[:2]
        t = 1
        even, odd = rho[0], rho[1]
        while t < n - 3 and even + odd > 0.0:
            even, odd = rho[t + 1], rho[t + 2]
            if even + odd >= 0.0:
                kept[t + 1], kept[t + 2] = even, odd
            t += 2
        max_t = t - 2
        if even > 0.0:
            kept[max_t + 1] = even
        # Geyer's initial monotone sequence.
        t = 1
        while t <= max_t - 2:
            if kept[t + 1] + kept[t + 2] > kept[t - 1] + kept[t]:
                kept[t + 1] = kept[t + 2] = (kept[t - 1] + kept[t]) / 2.0
            t += 2
        tau = -1.0 + 2.0 * kept[: max_t + 1].sum() + kept[max_t + 1 : max_t + 2].sum()
        # At most N M log10(N M) (antithetic chains can push tau towards 0).
        tau = max(tau, 1.0 / np.log10(n * m))
        out[j] = n * m / tau
    return out


def ess(samples: ArrayLike, method: str = "bulk") -> np.ndarray:
    """Effective sample size over all chains split in halves (Stan's estimator).

    ``ESS = N M / tau`` with ``tau = -1 + 2 sum_t rho_t`` summed in pairs up to the first
    negative pair (Geyer's initial positive sequence, made monotone), ``rho_t = 1 - (W - mean
    autocov_t) / var_plus``. ``method="bulk"`` (the default; Vehtari et al. 2021) estimates it on
    rank-normalised split draws, ``"mean"`` on the split draws themselves (the ESS of the mean,
    which needs a finite variance).

    Args:
        samples: ``(n_draws, n_chains, ...)``.
        method: ``"bulk"`` or ``"mean"``.

    Returns:
        ESS for each trailing coordinate, shape ``samples.shape[2:]`` (at most ``N M log10(N M)``).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(400, 4, 1))
        >>> bool(1000 < ess(x)[0] < 2400)
        True
    """
    if method not in ("bulk", "mean"):
        raise ValueError(f"ess method must be 'bulk' or 'mean', got {method!r}")
    x = _draws(samples, "ess")
    shape = np.shape(samples)[2:]
    s = _split(x)
    if method == "bulk":
        s = _z_scale(s)
    return _ess_of(s).reshape(shape)
