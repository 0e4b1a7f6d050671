"""R-hat and ESS against cases with known answers."""

import numpy as np
import pytest

import langevin


def ar1(phi, n, m, seed):
    """m independent AR(1) chains x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t, stationary N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, m))
    x[0] = rng.normal(size=m)
    e = rng.normal(size=(n, m)) * np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x[:, :, None]


def test_rhat_is_one_for_agreeing_chains_and_large_otherwise():
    x = ar1(0.5, 1000, 8, seed=0)
    assert abs(langevin.rhat(x)[0] - 1.0) < 0.01
    shifted = x + np.arange(8)[None, :, None]  # chains stuck at different levels
    assert langevin.rhat(shifted)[0] > 1.5
    trend = x + np.linspace(0, 5, 1000)[:, None, None]  # non-stationary within chains
    assert langevin.rhat(trend)[0] > 1.1


def test_ess_of_an_ar1_chain_matches_its_integrated_autocorrelation():
    # tau = (1 + phi) / (1 - phi) = 3 for phi = 0.5: ESS ≈ N M / 3.
    phi, n, m = 0.5, 4000, 4
    ess = langevin.ess(ar1(phi, n, m, seed=1))[0]
    expected = n * m * (1 - phi) / (1 + phi)
    assert abs(ess / expected - 1) < 0.15


def test_ess_of_independent_draws_is_about_their_number():
    x = np.random.default_rng(2).normal(size=(1000, 4, 3))
    ess = langevin.ess(x)
    assert ess.shape == (3,) and np.all(np.abs(ess / 4000 - 1) < 0.15)


def test_diagnostics_reject_too_few_draws():
    with pytest.raises(ValueError, match="at least 4"):
        langevin.rhat(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        langevin.ess(np.zeros(10))
