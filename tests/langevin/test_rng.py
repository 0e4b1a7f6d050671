"""The chains' random numbers (`langevin._draw_blocks`): Threefry-2x32 on (step, index) counters,
unrolled so XLA fuses it; deterministic per key, independent of blocking and padding, and
standard normal / uniform to Monte Carlo precision."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry_2x32
from scipy import stats

from langevin import _draw_blocks as D


def test_the_hash_is_jax_threefry():
    rng = np.random.default_rng(0)
    k = jnp.asarray(rng.integers(0, 2**32, 2, dtype=np.uint32))
    x = jnp.asarray(rng.integers(0, 2**32, 64, dtype=np.uint32))
    ref = threefry_2x32(k, x)
    y0, y1 = D.threefry2x32(k[0], k[1], x[:32], x[32:])
    assert np.array_equal(np.concatenate([y0, y1]), ref)


def test_a_steps_draws_depend_on_key_and_step_only():
    key = jax.random.key(3)
    draw = D.normal_draw(key, (5, 3), jnp.float32)
    ts = jnp.arange(10, 18)
    block = np.asarray(draw(ts))
    for j in (0, 3, 7):  # the same step drawn alone, or in another block, gives the same numbers
        assert np.array_equal(block[j], np.asarray(draw(ts[j : j + 1]))[0])
    assert np.array_equal(
        block, np.asarray(D.normal_draw(jax.random.key(3), (5, 3), "float32")(ts))
    )
    assert not np.array_equal(
        block, np.asarray(D.normal_draw(jax.random.key(4), (5, 3), "float32")(ts))
    )
    assert not np.array_equal(block[0], block[1])


def test_padding_chains_leave_the_first_chains_draws_unchanged():
    key = jax.random.key(1)
    ts = jnp.arange(4)
    z7, u7 = D.normal_uniform_draw(key, 7, 3, jnp.float32)(ts)
    z8, u8 = D.normal_uniform_draw(key, 8, 3, jnp.float32)(ts)
    assert z7.shape == (4, 7 * 3)  # each step's normals flat: chain c's axis j at c * d + j
    assert np.array_equal(z7, z8[:, : 7 * 3]) and np.array_equal(u7, u8[:, :7])
    n7 = D.normal_draw(key, (7, 3), jnp.float32)(ts)
    assert np.array_equal(n7, D.normal_draw(key, (8, 3), jnp.float32)(ts)[:, :7])


@pytest.mark.parametrize("shape", [(4096, 2), (999, 3)])
def test_normals_and_uniforms_have_their_laws(shape):
    """Mean, variance, kurtosis and a KS test on 32 steps (~260k numbers): z-scores of the
    moments < 4.5 (Bonferroni over 3 moments x 2 shapes at 1e-5), KS p > 1e-4."""
    n, d = shape
    z, u = D.normal_uniform_draw(jax.random.key(7), n, d, jnp.float32)(jnp.arange(32))
    z = np.asarray(z, np.float64).ravel()
    u = np.asarray(u, np.float64).ravel()
    m = z.size
    assert abs(z.mean()) * np.sqrt(m) < 4.5
    assert abs(z.var() - 1.0) / np.sqrt(2.0 / m) < 4.5
    assert abs(stats.kurtosis(z)) / np.sqrt(24.0 / m) < 4.5
    assert stats.kstest(z, "norm").pvalue > 1e-4
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    # consecutive steps and neighbouring numbers are uncorrelated (|r| < 4.5 / sqrt(m))
    zz = z.reshape(32, -1)
    assert abs(np.corrcoef(zz[:-1].ravel(), zz[1:].ravel())[0, 1]) < 4.5 / np.sqrt(zz[1:].size)
    assert abs(np.corrcoef(z[:-1:2], z[1::2])[0, 1]) < 4.5 / np.sqrt(m / 2)
