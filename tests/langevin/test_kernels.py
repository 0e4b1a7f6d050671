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


# ---------------------------------------------------------------- the public kernels on their own
# Many independent chains, each run by the public kernel (vmap over chains, scan over steps): the
# final states are independent draws, so Monte Carlo standard errors are those of iid samples.
# Every z-test below uses the bound Phi^-1(1 - 0.001 / N_TESTS) (Bonferroni over the z-tests of
# this section: the family fails by chance with probability < 0.001).
N_TESTS = 9  # 5 (MALA mean/cov) + 2 (fixed axis) + 2 (reflection)
Z_MAX = float(__import__("scipy.stats").stats.norm.ppf(1 - 0.001 / N_TESTS))  # 3.49


def run_chains(alg, x0, key, n_steps):
    """Final states of ``len(x0)`` chains after ``n_steps`` steps of ``alg`` (vmapped)."""
    states = jax.vmap(alg.init)(x0)

    def body(s, k):
        s, info = jax.vmap(alg.step)(jax.random.split(k, x0.shape[0]), s)
        return s, (info.is_accepted.mean(), info.is_diverged.any())

    states, (acc, div) = jax.lax.scan(body, states, jax.random.split(key, n_steps))
    return states, np.asarray(acc), np.asarray(div)


def z_of_mean(draws, truth):
    """``(mean - truth) / (sd / sqrt(n))`` of iid draws, per column."""
    n = draws.shape[0]
    return (draws.mean(axis=0) - truth) / (draws.std(axis=0, ddof=1) / np.sqrt(n))


CORR_COV = np.array([[1.0, 0.8], [0.8, 1.0]])
CORR_MU = np.array([1.0, -2.0])


def corr_energy(x):
    r = x - CORR_MU
    return 0.5 * r @ jnp.asarray(np.linalg.inv(CORR_COV)) @ r


@pytest.mark.slow
def test_public_mala_stationary_mean_and_covariance_z_tests():
    n = 4000
    alg = langevin.mala(corr_energy, step_size=0.5)
    states, acc, div = run_chains(alg, jnp.zeros((n, 2)), jax.random.key(11), 400)
    x = np.asarray(states.position, np.float64)
    assert 0.25 < acc[-100:].mean() < 0.95 and not div.any()  # a sane step, not a test of it
    z = list(z_of_mean(x, CORR_MU))
    # Covariance entries: each is the mean of the products r_i r_j (r = x - true mean), so its
    # MCSE is the sd of those products over sqrt(n).
    r = x - CORR_MU
    for i, j in ((0, 0), (1, 1), (0, 1)):
        z.append(z_of_mean((r[:, i] * r[:, j])[:, None], CORR_COV[i, j])[0])
    assert np.all(np.abs(z) < Z_MAX), z


def test_public_ula_has_the_known_o_h_stationary_variance():
    # ULA on N(0, s^2): x' = (1 - h/s^2) x + sqrt(2h) z, stationary variance s^2 / (1 - h/(2 s^2)).
    s, h, n = 1.5, 0.9, 20000
    alg = langevin.ula(lambda x: 0.5 * jnp.sum(x**2) / s**2, step_size=h)
    states, _, div = run_chains(alg, jnp.zeros((n, 1)), jax.random.key(12), 150)
    var = float(np.var(np.asarray(states.position, np.float64)))
    expected = s**2 / (1 - h / (2 * s**2))  # 2.25 / 0.8 = 2.8125
    se = expected * np.sqrt(2.0 / n)  # sd of a sample variance of n Gaussian draws: 1% here
    assert abs(var - expected) < Z_MAX * se
    assert abs(var - s**2) > 10 * se  # the exact s^2 is rejected: the test sees the O(h) bias
    assert not div.any()


@pytest.mark.parametrize("kernel", [langevin.ula, langevin.mala])
def test_public_kernels_hold_fixed_axes_and_sample_the_conditional(kernel):
    # x1 fixed at 0.5: x0 | x1 ~ N(mu0 + 0.8 (0.5 - mu1), 1 - 0.8^2) = N(3.0, 0.36).
    n = 4000
    c = langevin.constraints(2, fixed=[np.nan, 0.5])
    h = 0.2 if kernel is langevin.mala else 0.005  # ULA: variance bias h / (2 * 0.36) < 0.7%
    alg = kernel(corr_energy, step_size=h, constraints=c)
    x0 = jnp.zeros((n, 2)).at[:, 1].set(0.5)
    states, _, div = run_chains(alg, x0, jax.random.key(13), 600)
    x = np.asarray(states.position, np.float64)
    assert np.all(x[:, 1] == np.float32(0.5)) and not div.any()
    if kernel is langevin.mala:  # exact: z-tests of the conditional mean and variance
        z_mean = z_of_mean(x[:, :1], 3.0)[0]
        r2 = (x[:, 0] - 3.0) ** 2
        z_var = z_of_mean(r2[:, None], 0.36)[0]
        assert abs(z_mean) < Z_MAX and abs(z_var) < Z_MAX, (z_mean, z_var)
    else:
        assert abs(x[:, 0].mean() - 3.0) < Z_MAX * 0.6 / np.sqrt(n)


def test_reflect_folds_into_the_box():
    lo, hi = jnp.array([0.0, -jnp.inf]), jnp.array([1.0, jnp.inf])
    x = jnp.array([[1.3, 5.0], [-0.2, -7.0], [2.4, 0.0], [0.5, 1.0]])
    out = langevin.reflect(x, lo, hi)
    np.testing.assert_allclose(out[:, 0], [0.7, 0.2, 0.4, 0.5], atol=1e-6)
    np.testing.assert_array_equal(out[:, 1], x[:, 1])  # an open axis is left alone


@pytest.mark.parametrize("kernel", [langevin.ula, langevin.mala])
def test_public_kernels_stay_in_the_box_and_sample_it_uniformly(kernel):
    # A flat energy in the box [0, 1] x [-1, 2]: the stationary law is uniform there.
    n = 4000
    c = langevin.constraints(2, bounds=[(0.0, 1.0), (-1.0, 2.0)])
    alg = kernel(lambda x: 0.0 * jnp.sum(x), step_size=0.05, constraints=c)
    states, _, _ = run_chains(alg, jnp.full((n, 2), 0.5), jax.random.key(14), 400)
    x = np.asarray(states.position, np.float64)
    assert np.all((x[:, 0] >= 0) & (x[:, 0] <= 1) & (x[:, 1] >= -1) & (x[:, 1] <= 2))
    z = z_of_mean(x, np.array([0.5, 0.5]))
    assert np.all(np.abs(z) < Z_MAX), z


def test_public_kernels_flag_divergence_and_keep_the_state():
    # sqrt(x0) has a non-finite energy and gradient for x0 < 0; at T = 0 a step of h = 1 from
    # x0 = 0.01 (gradient 5) lands at -4.99.
    def f(x):
        return jnp.sqrt(x[0]) + 0.5 * x[1] ** 2

    x0 = jnp.array([0.01, 1.0])
    # MALA rejects the non-finite proposal and says why.
    mala = langevin.mala(f, step_size=1.0, temperature=0.0)
    s, info = mala.step(jax.random.key(0), mala.init(x0))
    assert bool(info.is_diverged) and not bool(info.is_accepted)
    np.testing.assert_array_equal(s.position, x0)
    # ULA moves there (the move itself is finite), then the next step meets the non-finite
    # gradient: it keeps the state and flags it.
    ula = langevin.ula(f, step_size=1.0, temperature=0.0)
    s1, info1 = ula.step(jax.random.key(0), ula.init(x0))
    assert not bool(info1.is_diverged) and not np.isfinite(float(s1.energy))
    s2, info2 = ula.step(jax.random.key(1), s1)
    assert bool(info2.is_diverged)
    np.testing.assert_array_equal(s2.position, s1.position)
