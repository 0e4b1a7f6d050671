"""The noise pyramid: coarse level grids, accuracy against a direct float64 convolution, laziness,
one compiled program per shape."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

import energy
from energy import _grid, _pyramid


def _direct_level(m, sigma, points):
    """-log of the map's density convolved with the level's Gaussian at ``points``, directly.

    Float64, non-separable: a sum over every node of the grid for every point (small grids only),
    the Gaussian normalised over the lattice of nodes like the map's pyramid (zero outside).
    """
    nodes = np.stack(np.meshgrid(*m.grid, indexing="ij"), axis=-1).reshape(-1, m.ndim)
    p = np.exp(-np.asarray(m.values, np.float64).reshape(-1))
    span = np.array([hi - lo for lo, hi in m.bounds])
    width = sigma * span  # physical
    spacing = span / (np.array(m.shape) - 1)
    z = (points[:, None, :] - nodes[None, :, :]) / width
    kern = np.exp(-0.5 * np.sum(z * z, axis=-1))
    kern /= np.prod(np.sqrt(2 * np.pi) * width / spacing)
    return -np.log(kern @ p)


def _today(m, sigma, points):
    """Today's (full-resolution) level: the exact level at the nodes, interpolated linearly."""
    nodes = np.stack(np.meshgrid(*m.grid, indexing="ij"), axis=-1).reshape(-1, m.ndim)
    at_nodes = _direct_level(m, sigma, nodes).reshape(m.shape)
    return RegularGridInterpolator(m.grid, at_nodes)(points)


def _inside(rng, m, n):
    lo, hi = np.array(m.bounds).T
    return lo + (hi - lo) * rng.uniform(size=(n, m.ndim))


@pytest.fixture(scope="module")
def gauss2d():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50_000, 2)) * [1.0, 0.5]
    return energy.EnergyMap.from_samples(x, bins=(40, 36))


@pytest.fixture(scope="module")
def mix3d():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(-1.5, 0.6, (30_000, 3)), rng.normal(1.5, 0.6, (10_000, 3))])
    return energy.EnergyMap.from_samples(x, bins=16)


def test_default_levels_hold_at_most_5x_the_base_nodes_in_4d():
    for n in (48, 64, 96):
        shape = (n,) * 4
        levels = energy._map._noise_levels(None, shape)
        shapes = _pyramid.level_shapes(shape, levels)
        held = sum(int(np.prod(s)) for s in shapes)
        assert held <= 5 * n**4, (n, held / n**4)
        for s, lv in zip(shapes, levels, strict=True):
            # never finer than the base, and at least NODES_PER_SIGMA nodes per sigma per axis
            assert all(k <= n for k in s)
            assert all(k == n or (k - 1) * lv >= _pyramid.NODES_PER_SIGMA for k in s)
    # Today's pyramid held 10 full copies; the coarsest level of a 64^4 map is 8^4 nodes.
    assert _pyramid.level_shape((64,) * 4, 0.5) == (8,) * 4


def test_built_levels_have_their_coarse_shapes(mix3d):
    tables = mix3d.pyramid
    assert len(tables) == len(mix3d.noise_levels) == len(mix3d.level_shapes)
    for t, s in zip(tables, mix3d.level_shapes, strict=True):
        assert t.shape == s and t.dtype == mix3d.dtype
    assert mix3d.level_shapes[0] == (8, 8, 8) and mix3d.level_shapes[-1] == mix3d.shape


@pytest.mark.parametrize("fixture", ["gauss2d", "mix3d"])
def test_levels_match_the_full_resolution_level_within_0_02_nats(fixture, request):
    """Against a direct float64 convolution, where the density is above 1e-6 of its peak."""
    m = request.getfixturevalue(fixture)
    rng = np.random.default_rng(5)
    pts = _inside(rng, m, 400 if m.ndim == 2 else 150)
    for k, sigma in enumerate(np.asarray(m.noise_levels, np.float64)):
        if m.level_shapes[k] == m.shape and k % 3:
            continue  # full-resolution levels are today's: check a few only
        exact = _direct_level(m, sigma, pts)
        today = _today(m, sigma, pts)
        got = np.asarray(m.energy_at(jnp.asarray(pts, jnp.float32), sigma), np.float64)
        dense = exact < exact.min() + np.log(1e6)
        assert dense.sum() > 50
        err = np.abs(got - today)[dense].max()
        if fixture == "gauss2d":
            assert err < 0.02, (k, sigma, m.level_shapes[k], err)
        else:
            # Two modes: where they meet, the full-resolution level errs between its own nodes
            # too (see the next test); against the exact convolution the coarse level is
            # within 0.02 nats of the full-resolution level's error.
            mine_err = np.abs(got - exact)[dense].max()
            today_err = np.abs(today - exact)[dense].max()
            assert mine_err < today_err + 0.02, (k, sigma, mine_err, today_err)


def test_two_distant_modes_err_like_the_full_resolution_grid():
    """Between modes many sigma apart the level's energy has a sharp ridge: there any grid errs
    by h^2 |E''| / 8 between nodes. The coarse level stays within twice the full-resolution
    level's own error (against the exact convolution) plus 0.02 nats."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 0.3, 30_000), rng.normal(2, 0.3, 10_000)])[:, None]
    m = energy.EnergyMap.from_samples(x, bins=161, bounds=[(-8.0, 8.0)], smoothing=0.5)
    pts = np.linspace(-8, 8, 1601)[:, None]
    for sigma in np.asarray(m.noise_levels, np.float64):
        exact = _direct_level(m, sigma, pts)
        today = _today(m, sigma, pts)
        got = np.asarray(m.energy_at(pts, sigma), np.float64)
        dense = exact < exact.min() + np.log(1e6)
        mine_err = np.abs(got - exact)[dense].max()
        today_err = np.abs(today - exact)[dense].max()
        assert mine_err <= 2 * today_err + 0.02, (sigma, mine_err, today_err)


def test_float32_build_keeps_a_wide_energy_range_finite():
    """Energies spanning thousands of nats: per-line shifts keep every level finite and right
    near the minimum (a global shift in float32 would underflow beyond ~87 nats)."""
    g = np.linspace(-4, 4, 41)
    e = 60.0 * (g[:, None] ** 2 + g[None, :] ** 2)  # up to 1920 nats
    m = energy.EnergyMap.from_grid(e, [(-4, 4), (-4, 4)])
    for t in m.pyramid:
        assert np.all(np.isfinite(np.asarray(t)))
    rng = np.random.default_rng(1)
    pts = rng.normal(scale=0.3, size=(200, 2))
    for k in (0, 4, 8):
        sigma = float(m.noise_levels[k])
        exact = _direct_level(m, sigma, pts)
        got = np.asarray(m.energy_at(pts, sigma), np.float64)
        dense = exact < exact.min() + np.log(1e6)
        np.testing.assert_allclose(got[dense], _today(m, sigma, pts)[dense], atol=0.02)


def test_pyramid_is_lazy_and_survives_jit_vmap_grad():
    rng = np.random.default_rng(2)
    m = energy.EnergyMap.from_samples(rng.normal(size=(5000, 2)), bins=24)
    x = jnp.asarray(rng.normal(size=(7, 2)), jnp.float32)
    m(x)
    jax.jit(lambda mm, xx: mm(xx))(m, x)
    jax.vmap(jax.grad(m.energy))(x)
    assert m._pyramid is None  # evaluating never builds it
    # A traced map whose pyramid was never built builds it inside the trace: same energies.
    fresh = energy.EnergyMap.from_grid(np.asarray(m.values), m.bounds)
    s = 0.1
    traced = jax.jit(lambda mm, xx: mm.energy_at(xx, s))(fresh, x)
    assert fresh._pyramid is None
    direct = m.energy_at(x, s)  # builds on the concrete map
    assert m._pyramid is not None
    np.testing.assert_allclose(np.asarray(traced), np.asarray(direct), rtol=1e-6, atol=1e-6)
    # Built maps are pytrees whose leaves include the levels; grad through a level.
    assert len(jax.tree_util.tree_leaves(m)) == 6  # values, lo, hi, pyramid, levels, log Z
    assert len(jax.tree_util.tree_leaves(fresh)) == 5
    g = jax.jit(jax.vmap(jax.grad(lambda z, mm: mm.energy_at(z, s)), in_axes=(0, None)))(x, m)
    assert np.all(np.isfinite(np.asarray(g)))
    # Reading the levels (what langevin and tnn do first) builds the pyramid.
    _ = fresh.noise_levels
    assert fresh._pyramid is not None


def test_one_compiled_program_per_shape():
    """One program per (grid shape, level shape): new maps of a built shape compile nothing."""
    rng = np.random.default_rng(6)
    shape = (23, 17)
    maps = [energy.EnergyMap.from_grid(rng.normal(size=shape), [(0, 1), (0, 2)]) for _ in range(3)]
    _ = maps[0].pyramid  # compiles each level shape (if no other test built them before)
    before = dict(_pyramid.TRACES)
    for m in maps[1:]:
        _ = m.pyramid
        _ = m.smoothed(0.05)  # the map's own shape: the full-resolution levels' program
    _ = maps[1].smoothed([0.02, 0.1])
    assert _pyramid.TRACES == before
    other = energy.EnergyMap.from_grid(rng.normal(size=(9, 31)), [(0, 1), (0, 2)])
    _ = other.pyramid
    _ = energy.EnergyMap.from_grid(rng.normal(size=(9, 31)), [(0, 1), (0, 2)]).pyramid
    new_shapes = len(set(other.level_shapes))
    assert _pyramid.TRACES["level"] == before["level"] + new_shapes


def test_cubic_levels_are_b_spline_tables():
    rng = np.random.default_rng(7)
    e = rng.normal(size=(12, 9))
    np.testing.assert_allclose(
        np.asarray(_pyramid.cubic_table(jnp.asarray(e, jnp.float32))).reshape(14, 11),
        _grid.cubic_coefficients(e),
        atol=2e-5,
    )
    m = energy.EnergyMap.from_samples(rng.normal(size=(20_000, 2)), bins=32, method="cubic")
    for t, s in zip(m.pyramid, m.level_shapes, strict=True):
        assert t.shape == tuple(k + 2 for k in s)
    pts = rng.normal(size=(100, 2)) * 0.5
    sigma = float(m.noise_levels[2])
    got = np.asarray(m.energy_at(pts, sigma), np.float64)
    np.testing.assert_allclose(got, _today(m, sigma, pts), atol=0.03)


def test_log_integral_on_the_device():
    """log Z of a unit Gaussian's energies over a wide box: (d/2) log(2 pi)."""
    for shape in ((401,), (61, 59), (24, 24, 24)):
        grids = [np.linspace(-7, 7, n) for n in shape]
        r2 = sum(g**2 for g in np.meshgrid(*grids, indexing="ij"))
        e = jnp.asarray(0.5 * r2, jnp.float32)
        got = _pyramid.log_integral(e, np.array([(-7.0, 7.0)] * len(shape)))
        # Interpolating E = x^2 / 2 linearly raises it by h^2 / 12 on average per axis.
        h2 = (14.0 / (min(shape) - 1)) ** 2
        assert abs(got - 0.5 * len(shape) * np.log(2 * np.pi)) < 0.1 * h2 * len(shape) + 1e-5


class _FakeDevice:
    def __init__(self, platform, limit):
        self.platform, self._limit = platform, limit

    def memory_stats(self):
        return None if self._limit is None else {"bytes_limit": self._limit}


def test_default_node_cap_follows_the_device_memory():
    assert _grid.default_node_cap(_FakeDevice("cpu", 10**12)) == 2**24
    assert _grid.default_node_cap(_FakeDevice("gpu", None)) == 2**24
    assert _grid.default_node_cap(_FakeDevice("gpu", 2**30)) == 2**24  # small: never below
    # 80 GB: half of it at 40 bytes a node is 1e9 nodes, capped at MAX_NODES (2**28)
    assert _grid.default_node_cap(_FakeDevice("gpu", 80 * 10**9)) == 2**28
    assert _grid.default_node_cap(_FakeDevice("gpu", 8 * 10**9)) == 2**26
