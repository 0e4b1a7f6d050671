"""MALA with a position-dependent step (`_kernels.local_step`, ``mala_move(..., kappa)``).

The step at ``x`` is ``h (1 + 1 / kappa) / (1 + r(x) / kappa)``, ``r`` the squared gradient per
free axis (1 at a typical point); the reverse move uses the step at the proposal, and the
Metropolis ratio carries both steps and the ratio of the two Gaussians' normalisers. Exactness is checked by z-tests on a 2-D funnel whose
moments are known, started from exact draws: an exact kernel keeps them exact, each chain's
final state an independent draw; a ratio without the normalisers fails these tests.
"""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from langevin import _kernels

Z_MAX = float(scipy.stats.norm.ppf(1 - 0.001 / 8))  # 8 z-tests in this file, family-wise 1e-3


def test_local_step_is_h_where_the_gradient_is_typical_and_shrinks_as_w_squared():
    # x ~ N(0, T M) on E = sum x^2 / (2 M): r = |g|^2_M / (T d) has mean 1 (chi^2_4 / 4).
    n, t, kappa, h = 4000, 0.7, 3.0, 0.2
    m = jnp.array([0.5, 2.0, 4.0, 1.0])
    x = jax.random.normal(jax.random.key(0), (n, 4)) * jnp.sqrt(t * m)
    g = x / m
    hl = np.asarray(_kernels.local_step(h, g, t, m, kappa))
    assert hl.shape == (n, 1)
    r = (h * (1 + 1 / kappa) / hl[:, 0] - 1.0) * kappa  # invert the formula
    assert abs(r.mean() - 1.0) < 4 * np.sqrt(0.5 / n)
    assert np.max(hl) <= h * (1 + 1 / kappa) * (1 + 1e-6)
    # ten times narrower in every direction: r 100x, the step ~ h (1 + kappa) / (100 r)
    hn = np.asarray(_kernels.local_step(h, g * 10.0, t, m, kappa))[:, 0]
    expected = h * (1 + 1 / kappa) / (1 + 100 * r / kappa)
    np.testing.assert_allclose(hn, expected, rtol=1e-4)


def test_local_step_skips_frozen_axes_and_keeps_h_at_zero_temperature_or_non_finite():
    g = jnp.array([[2.0, 1e6], [jnp.inf, 0.0]])
    m = jnp.array([1.0, 0.0])  # axis 1 frozen: its gradient does not count; r = 4 for chain 0
    hl = np.asarray(_kernels.local_step(0.5, g, 1.0, m, 1.0))[:, 0]
    np.testing.assert_allclose(hl, [0.5 * 2.0 / 5.0, 0.5], rtol=1e-6)
    hl0 = np.asarray(_kernels.local_step(0.5, g, 0.0, m, 1.0))[:, 0]
    np.testing.assert_allclose(hl0, [0.5, 0.5])


def funnel2(x, s=1.0):
    """v ~ N(0, s^2), y | v ~ N(0, e^v): E v = E y = 0, E v^2 = s^2, E y^2 = e^(s^2 / 2)."""
    v, y = x[..., 0], x[..., 1]
    return 0.5 * v**2 / s**2 + 0.5 * y**2 * jnp.exp(-v) + 0.5 * v


def _run(x, n_steps, h, kappa, key, s=1.0):
    vg = jax.vmap(jax.value_and_grad(lambda x: funnel2(x, s)))
    n = x.shape[0]

    @jax.jit
    def go(x, key):
        e, g = vg(x)

        def body(c, k):
            x, e, g = c
            kz, ku = jax.random.split(k)
            z = jax.random.normal(kz, x.shape)
            u = jax.random.uniform(ku, (n,))
            s, info = _kernels.mala_move(x, e, g, z, u, h, 1.0, 1.0, vg, None, kappa)
            hl = h if kappa is None else _kernels.local_step(h, g, 1.0, 1.0, kappa)
            return tuple(s), (info.is_accepted.mean(), hl)

        return jax.lax.scan(body, (x, e, g), jax.random.split(key, n_steps))

    (x, _, _), (acc, steps) = go(x, key)
    return np.asarray(x, np.float64), np.asarray(acc), np.asarray(steps)


def test_mala_with_a_local_step_keeps_a_funnel_exact():
    n = 20000
    kv, ky = jax.random.split(jax.random.key(1))
    v = jax.random.normal(kv, (n,))
    y = jax.random.normal(ky, (n,)) * jnp.exp(0.5 * v)
    x, acc, steps = _run(jnp.stack([v, y], 1), 200, 1.5, 0.5, jax.random.key(2))
    assert 0.3 < acc.mean() < 0.95  # it moves
    # the step really depends on the position (over 5x across the chains; 11x measured), so the
    # normalisers' ratio matters
    assert np.quantile(steps[-1], 0.95) / np.quantile(steps[-1], 0.05) > 5.0
    n = x.shape[0]
    z = []
    for col, truth in ((0, 0.0), (1, 0.0)):
        z.append((x[:, col].mean() - truth) / (x[:, col].std(ddof=1) / np.sqrt(n)))
    for col, truth in ((0, 1.0), (1, np.exp(0.5))):
        sq = x[:, col] ** 2
        z.append((sq.mean() - truth) / (sq.std(ddof=1) / np.sqrt(n)))
    # E[y^2 e^-v] = 1 (the conditional variance)
    w = x[:, 1] ** 2 * np.exp(-x[:, 0])
    z.append((w.mean() - 1.0) / (w.std(ddof=1) / np.sqrt(n)))
    assert np.all(np.abs(z) < Z_MAX), z


def test_mala_with_a_local_step_fills_a_funnel_neck_that_a_global_step_barely_enters():
    # v ~ N(0, 3^2): P(v < -4.5) = 6.7%, where y's width is e^-2.25 = 0.1. Chains start from
    # exact draws with v clipped at -2 (the neck empty); after 300 steps at h = 1 (made for the
    # bulk) measured: global step 0.011 of the chains below -4.5, local step (kappa = 3, the
    # sampling default of plain functions) 0.037 (standard errors 0.002 and 0.003).
    n = 4000
    kv, ky = jax.random.split(jax.random.key(3))
    v = jnp.maximum(3.0 * jax.random.normal(kv, (n,)), -2.0)
    y = jax.random.normal(ky, (n,)) * jnp.exp(0.5 * v)
    x0 = jnp.stack([v, y], 1)
    x_loc, _, _ = _run(x0, 300, 1.0, 3.0, jax.random.key(4), s=3.0)
    x_glob, _, _ = _run(x0, 300, 1.0, None, jax.random.key(4), s=3.0)
    tail_loc, tail_glob = np.mean(x_loc[:, 0] < -4.5), np.mean(x_glob[:, 0] < -4.5)
    assert tail_glob < 0.02 and tail_loc > 2.5 * tail_glob, (tail_loc, tail_glob)
