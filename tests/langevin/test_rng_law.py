"""The law of the chains' normals (`langevin._draw_blocks.normal_from_words`: one Box-Muller
branch per Threefry hash): the transform against a float64 reference, the cosine polynomial on
every float32 input, and 8.4M draws of a run's shape against N(0, 1): moments, 64 equiprobable
bins, the tails out to 5 sigma, and correlations between steps, chains and axes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from langevin import _draw_blocks as D


def _reference(y0, y1):
    """The same Box-Muller branch in float64 on the same float32 uniforms ``u`` (their rounding
    near 1, a spacing of 2^-24, moves ``sqrt(-2 log u)`` by up to ~1e-4 where it is below 1e-3:
    a matter of the float32 uniform, not of the transform)."""
    k = (y0 >> 1).astype(np.float32)
    u = (k * np.float32(2.0**-31) + np.float32(2.0**-32)).astype(np.float64)
    f = ((y1 >> 8) & 0x7FFFFF).astype(np.float64) / 2.0**23
    sign = np.where(y1 >> 31, -1.0, 1.0)
    return sign * np.sqrt(-2.0 * np.log(u)) * np.cos(np.pi / 2.0 * f)


def test_the_cosine_polynomial_on_every_float32_input():
    f = np.arange(1 << 23, dtype=np.float64) / (1 << 23)
    c = np.asarray(D.cos_quarter(jnp.asarray(f, jnp.float32)), np.float64)
    assert np.max(np.abs(c - np.cos(np.pi / 2.0 * f))) < 1.5e-7
    assert c[0] == 1.0 and np.all(c >= 0.0) and np.all(np.diff(c) <= 0.0)


def test_the_transform_matches_a_float64_reference():
    rng = np.random.default_rng(0)
    y0 = rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32)
    y1 = rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32)
    # the extremes: the smallest and largest u, f = 0 and f -> 1, both signs
    y0[:6] = [0, 1, 2**32 - 1, 2**32 - 2, 2**31, 2**31 - 1]
    y1[:6] = [0, 2**31, 2**32 - 1, 2**31 - 1, 255, 2**31 + 256]
    z = np.asarray(D.normal_from_words(jnp.asarray(y0), jnp.asarray(y1), jnp.float32))
    assert z.dtype == np.float32 and np.all(np.isfinite(z))
    ref = _reference(y0.astype(np.uint64), y1.astype(np.uint64))
    assert np.max(np.abs(z - ref) / (1.0 + np.abs(ref))) < 1e-6
    assert abs(z[0] - np.sqrt(64.0 * np.log(2.0))) < 1e-5  # u = 2^-32: the largest |z|
    assert np.max(np.abs(z)) <= 6.67


@functools.cache
def _draws():
    """8.4M normals of one ULA run's shape: 512 steps of (4096 chains, 4 axes)."""
    draw = D.normal_draw(jax.random.key(11), (4096 * 4,), jnp.float32)
    blocks = [np.asarray(draw(jnp.arange(s, s + 128))) for s in range(0, 512, 128)]
    return np.concatenate(blocks).ravel()


@pytest.mark.slow
def test_normals_have_the_standard_normal_law_out_to_5_sigma():
    z = _draws().astype(np.float64)
    m = z.size
    assert np.all(np.isfinite(z))
    # moments: z-scores < 4.5
    assert abs(z.mean()) * np.sqrt(m) < 4.5
    assert abs(z.var() - 1.0) / np.sqrt(2.0 / m) < 4.5
    assert abs(stats.skew(z)) / np.sqrt(6.0 / m) < 4.5
    assert abs(stats.kurtosis(z)) / np.sqrt(24.0 / m) < 4.5
    # 64 equiprobable bins: chi-square p > 1e-4
    edges = stats.norm.ppf(np.linspace(0.0, 1.0, 65)[1:-1])
    counts = np.bincount(np.searchsorted(edges, z), minlength=64)
    assert stats.chisquare(counts).pvalue > 1e-4
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # tails, both sides together and each side: Poisson counts beyond 3, 4, 4.5 and 5 sigma
    for a in (3.0, 4.0, 4.5, 5.0):
        for count, p in (
            (np.sum(np.abs(z) > a), 2 * stats.norm.sf(a)),
            (np.sum(z > a), stats.norm.sf(a)),
            (np.sum(z < -a), stats.norm.sf(a)),
        ):
            lam = m * p
            p_two = 2 * min(stats.poisson.cdf(count, lam), stats.poisson.sf(count - 1, lam))
            assert p_two > 1e-4, (a, count, lam)


def test_normals_are_uncorrelated_across_steps_chains_and_axes():
    z = _draws().astype(np.float64).reshape(512, 4096, 4)
    lim = lambda k: 4.5 / np.sqrt(k)  # noqa: E731

    def r(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    assert abs(r(z[:-1], z[1:])) < lim(z[1:].size)  # consecutive steps, same chain and axis
    assert abs(r(z[:, :-1], z[:, 1:])) < lim(z[:, 1:].size)  # neighbouring chains
    assert abs(r(z[..., :-1], z[..., 1:])) < lim(z[..., 1:].size)  # axes of one chain
    # squares too (a shared radius between numbers would correlate them)
    q = z**2 - 1.0
    assert abs(r(q[:-1], q[1:])) < lim(q[1:].size)
    assert abs(r(q[:, :-1], q[:, 1:])) < lim(q[:, 1:].size)
    assert abs(r(q[..., :-1], q[..., 1:])) < lim(q[..., 1:].size)
