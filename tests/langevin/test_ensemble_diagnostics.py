"""Nested R-hat for many short chains (`langevin._diagnostics_nested`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from langevin import _diagnostics_nested as dn
from langevin import _kernels


def test_exact_draws_pass_at_the_documented_rate():
    """Independent exact draws (final states of converged chains): the threshold at alpha =
    0.05 is exceeded in ~5% of 400 replicates (binomial sd 1.1%; 5 sd margin)."""
    rng = np.random.default_rng(0)
    k, m = 8, 16
    thr = dn.nested_rhat_threshold(k, m, alpha=0.05)
    r = np.array([dn.nested_rhat(rng.normal(size=(1, k * m)), k)[()] for _ in range(400)])
    assert abs(np.mean(r > thr) - 0.05) < 5 * np.sqrt(0.05 * 0.95 / 400)
    assert np.median(r) < 1 + 1.0 / m  # nR^2 - 1 ~ F / M: about 1 / (2M) above 1


def test_short_chains_that_remember_their_start_fail_long_ones_pass():
    """MALA (h = 0.05) on N(0, 1), 16 superchains of 64 chains started at points ~ N(0, 5^2): after 3
    steps the superchains still differ (large nested R-hat); after 300 they agree."""
    k, m = 16, 64
    fn = lambda x: 0.5 * jnp.sum(x**2)  # noqa: E731
    starts = 5.0 * jax.random.normal(jax.random.key(0), (k, 2))
    x0 = jnp.repeat(starts, m, axis=0)
    states = jax.vmap(_kernels.init, in_axes=(0, None))(x0, fn)
    step = jax.jit(jax.vmap(lambda key, s: _kernels.mala_step(key, s, fn, 0.05)[0], in_axes=(0, 0)))
    out = {}
    for t in range(300):
        states = step(jax.random.split(jax.random.key(t + 1), k * m), states)
        if t + 1 in (3, 300):
            out[t + 1] = dn.nested_rhat(np.asarray(states.position)[None], k)
    thr = dn.nested_rhat_threshold(k, m, n_coords=2)
    assert np.all(out[3] > 1.5)
    assert np.all(out[300] < thr)


def test_within_chain_draws_count():
    """With several draws per chain W includes the within-chain variance: chains that each
    wander over the whole target pass even with one chain per superchain."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 32, 3))
    assert np.all(dn.nested_rhat(x, 32) < dn.nested_rhat_threshold(32, 1, 3))
    assert dn.nested_rhat(x, 8).shape == (3,)


def test_threshold_shrinks_with_more_chains_per_superchain():
    assert dn.nested_rhat_threshold(16, 256) < dn.nested_rhat_threshold(16, 32)
    assert dn.nested_rhat_threshold(16, 64, n_coords=100) > dn.nested_rhat_threshold(16, 64)


@pytest.mark.parametrize(
    "shape, k, match",
    [
        ((10,), 2, "shape"),
        ((1, 10, 2), 3, "not a multiple"),
        ((1, 10, 2), 1, "n_superchains >= 2"),
        ((1, 4, 2), 4, "at least 2 chains"),
    ],
)
def test_bad_input_is_named(shape, k, match):
    with pytest.raises(ValueError, match=match):
        dn.nested_rhat(np.zeros(shape), k)


def test_ess_per_second():
    assert dn.ess_per_second(np.array([300.0, 120.0]), 2.0) == 60.0
    with pytest.raises(ValueError, match="seconds"):
        dn.ess_per_second([1.0], 0.0)
