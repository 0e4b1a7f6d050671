"""The ula / mala kernels on their own and inside `sample`: drift, stationary laws, exactness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import langevin


def quad(x):
    return 0.5 * x @ x


@pytest.mark.parametrize("kernel", [langevin.ula, langevin.mala])
def test_temperature_zero_is_the_drift(kernel):
    # T = 0: x' = x - h grad E(x) = (1 - h) x for E = |x|^2 / 2, whatever the key.
    alg = kernel(quad, step_size=0.1, temperature=0.0)
    state = alg.init(jnp.array([3.0, -2.0]))
    step = jax.jit(alg.step)
    for i in range(10):
        state, info = step(jax.random.key(i), state)
        assert bool(info.is_accepted)
    np.testing.assert_allclose(state.position, 0.9**10 * np.array([3.0, -2.0]), rtol=1e-5)
    np.testing.assert_allclose(state.energy, quad(state.position), rtol=1e-6)


def test_runner_temperature_zero_is_the_drift(key):
    res = langevin.sample(
        quad,
        key,
        n_chains=4,
        n_steps=25,
        init=jnp.array([1.0, 2.0]),
        temperature=0.0,
        schedule=None,
        step_size=0.2,
        progress=False,
    )
    np.testing.assert_allclose(
        res.positions, np.tile(0.8**25 * np.array([1.0, 2.0]), (4, 1)), rtol=1e-5
    )


def test_mala_at_zero_temperature_never_climbs(key):
    # A step too large for descent (h = 2.5 overshoots |x|^2/2): MALA at T = 0 rejects it.
    alg = langevin.mala(quad, step_size=2.5, temperature=0.0)
    state, info = alg.step(key, alg.init(jnp.array([1.0, 0.0])))
    assert not bool(info.is_accepted)
    np.testing.assert_array_equal(state.position, [1.0, 0.0])


def test_preconditioner_zero_freezes_an_axis(key):
    alg = langevin.ula(quad, step_size=0.1, preconditioner=jnp.array([1.0, 0.0]))
    state = alg.init(jnp.array([1.0, 2.0]))
    for i in range(5):
        state, _ = alg.step(jax.random.key(i), state)
    assert float(state.position[1]) == 2.0


def test_ula_matches_the_euler_chain_stationary_variance(key):
    # ULA on N(0, s^2) with step h has stationary variance s^2 / (1 - h / (2 s^2)), not s^2.
    s, h, n = 1.5, 1.0, 8000
    res = langevin.sample(
        lambda x: 0.5 * jnp.sum(x**2) / s**2,
        key,
        n_chains=n,
        n_steps=300,
        init=jnp.zeros(1),
        step_size=h,
        schedule=None,
        progress=False,
    )
    var = float(np.var(np.asarray(res.positions)))
    expected = s**2 / (1 - h / (2 * s**2))  # 2.25 / 0.777 = 2.893 (vs 2.25 exact)
    se = expected * np.sqrt(2.0 / n)  # standard error of a variance from n independent chains
    assert abs(var - expected) < 4 * se
    assert abs(var - s**2) > 10 * se


def test_mala_is_exact_where_ula_is_biased(key):
    n = 8000
    res = langevin.sample(
        quad,
        key,
        n_chains=n,
        n_steps=300,
        init=jnp.zeros(1),
        method="mala",
        step_size=1.0,
        schedule=None,
        progress=False,
    )
    var = float(np.var(np.asarray(res.positions)))
    assert abs(var - 1.0) < 4 * np.sqrt(2.0 / n)
    acc = np.asarray(res.acceptance)
    assert acc.shape == (n,) and 0.3 < acc.mean() < 1.0


def test_mala_monte_carlo_standard_error_on_a_correlated_gaussian(key):
    # blackjax MonteCarloStandardErrorTest: |mean - true| / MCSE < 5 with MCSE = std / sqrt(ESS).
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    mu = np.array([1.0, -2.0])
    prec = jnp.asarray(np.linalg.inv(cov))

    def e(x):
        r = x - mu
        return 0.5 * r @ prec @ r

    res = langevin.sample(
        e,
        key,
        n_chains=16,
        n_steps=4000,
        init=jnp.zeros(2),
        method="mala",
        thin=2,
        schedule=None,
        progress=False,
    )
    draws = np.asarray(res.trajectory)  # (2000, 16, 2)
    ess = langevin.ess(draws)
    assert np.all(ess > 500)
    mean = draws.reshape(-1, 2).mean(axis=0)
    std = draws.reshape(-1, 2).std(axis=0)
    z = np.abs(mean - mu) / (std / np.sqrt(ess))
    assert np.all(z < 5), z
    np.testing.assert_allclose(np.cov(draws.reshape(-1, 2).T), cov, atol=0.1)
    assert np.all(res.rhat < 1.05)
