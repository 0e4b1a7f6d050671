"""EnergyMap: interpolation against scipy, barrier, from_samples, pyramid, pytree behaviour."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from scipy.interpolate import RegularGridInterpolator

import energy

# (d, nodes per axis): every dimension the contract names, irregular node counts.
GRIDS = [
    (1, (17,)),
    (2, (9, 13)),
    (3, (6, 7, 8)),
    (4, (5, 6, 4, 7)),
    (5, (4, 5, 3, 4, 5)),
    (6, (3, 4, 3, 4, 3, 4)),
]


def _random_map(rng, shape, method="linear"):
    d = len(shape)
    values = rng.normal(size=shape)
    lo = rng.uniform(-3.0, 0.0, size=d)
    bounds = [(float(a), float(a + rng.uniform(0.5, 4.0))) for a in lo]
    return values, bounds, energy.EnergyMap.from_grid(values, bounds, method=method)


def _inside(rng, bounds, n):
    return np.stack([rng.uniform(lo, hi, size=n) for lo, hi in bounds], axis=1)


@pytest.mark.parametrize(("d", "shape"), GRIDS)
def test_linear_matches_scipy_values_and_gradients(rng, d, shape):
    values, bounds, m = _random_map(rng, shape)
    axes = [np.linspace(lo, hi, n) for (lo, hi), n in zip(bounds, shape, strict=True)]
    ref = RegularGridInterpolator(axes, values, method="linear")
    x = _inside(rng, bounds, 400)
    np.testing.assert_allclose(np.asarray(m(x)), ref(x), atol=2e-6 * (1 + np.abs(values).max()))
    # Gradient: within a cell the interpolant is multilinear, so a central difference with a step
    # that stays inside the cell is exact up to rounding (float64 reference).
    cells = [
        (np.searchsorted(a, xi, side="right") - 1).clip(0, len(a) - 2)
        for a, xi in zip(axes, x.T, strict=True)
    ]
    grads = np.asarray(jax.vmap(jax.grad(m.energy))(jnp.asarray(x, jnp.float32)))
    for j in range(d):
        a = axes[j]
        left, right = a[cells[j]], a[cells[j] + 1]
        h = 1e-3 * (right - left)
        xp, xm = x.copy(), x.copy()
        xp[:, j] = np.minimum(x[:, j] + h, right)
        xm[:, j] = np.maximum(x[:, j] - h, left)
        fd = (ref(xp) - ref(xm)) / (xp[:, j] - xm[:, j])
        np.testing.assert_allclose(grads[:, j], fd, atol=1e-3 * (1 + np.abs(fd).max()))


@pytest.mark.parametrize(("d", "shape"), GRIDS[:4])
def test_cubic_matches_scipy_spline_and_is_c1(rng, d, shape):
    values, bounds, m = _random_map(rng, shape, method="cubic")
    x = _inside(rng, bounds, 300)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    u = ((x - lo) / (hi - lo) * (np.array(shape) - 1)).T
    ref = ndimage.map_coordinates(values, u, order=3, mode="mirror")
    np.testing.assert_allclose(np.asarray(m(x)), ref, atol=5e-6 * (1 + np.abs(values).max()))
    # C1: the gradient is continuous across a cell face (left and right limits agree).
    face = lo[0] + (hi[0] - lo[0]) / (shape[0] - 1)
    y = x[:5].copy()
    g = jax.vmap(jax.grad(m.energy))
    eps = 1e-4 * (hi[0] - lo[0])
    y[:, 0] = face - eps
    gl = np.asarray(g(jnp.asarray(y, jnp.float32)))
    y[:, 0] = face + eps
    gr = np.asarray(g(jnp.asarray(y, jnp.float32)))
    np.testing.assert_allclose(gl, gr, atol=5e-2 * (1 + np.abs(gl).max()))


def test_linear_gradient_matches_autodiff_of_reference(rng):
    """The custom_jvp gradient equals plain autodiff of a gather-based multilinear interpolant."""
    values, bounds, m = _random_map(rng, (11, 9, 7))
    x = jnp.asarray(_inside(rng, bounds, 256), jnp.float32)
    lo, hi = m.lo, m.hi
    n1 = jnp.asarray(m.shape, jnp.float32) - 1

    def ref(p):
        u = (p - lo) / (hi - lo) * n1
        return jax.scipy.ndimage.map_coordinates(m.values, list(u), order=1, mode="nearest")

    np.testing.assert_allclose(
        np.asarray(jax.vmap(jax.grad(m.energy))(x)),
        np.asarray(jax.vmap(jax.grad(ref))(x)),
        rtol=1e-4,
        atol=1e-4,
    )


def test_barrier_outside_rises_and_points_back(rng):
    _, bounds, m = _random_map(rng, (8, 8))
    (lo0, hi0), (lo1, hi1) = bounds
    mid = 0.5 * (lo1 + hi1)
    far = [hi0 + 1.0, hi0 + 10.0, hi0 + 1e3, hi0 + 1e20, hi0 + 1e30]
    x = jnp.asarray([[f, mid] for f in far], jnp.float32)
    e = np.asarray(m(x))
    assert np.all(np.isfinite(e))
    assert np.all(np.diff(e) > 0)
    g = np.asarray(jax.vmap(jax.grad(m.energy))(x))
    assert np.all(np.isfinite(g))
    assert np.all(g[:, 0] > 0)  # descending the energy moves x back below hi0
    below = jnp.asarray([[lo0 - 2.0, lo1 - 3.0]], jnp.float32)
    gb = np.asarray(jax.vmap(jax.grad(m.energy))(below))
    assert np.all(gb < 0)
    # continuous at the face
    on = jnp.asarray([[hi0, mid]], jnp.float32)
    just = jnp.asarray([[hi0 + 1e-4 * (hi0 - lo0), mid]], jnp.float32)
    assert abs(float(m(on)[0] - m(just)[0])) < 1e-3


def test_batch_shapes_and_bad_shapes(rng):
    _, bounds, m = _random_map(rng, (5, 6, 7))
    x = jnp.asarray(_inside(rng, bounds, 24).reshape(2, 3, 4, 3), jnp.float32)
    assert m(x).shape == (2, 3, 4)
    assert m(x[0, 0, 0]).shape == ()
    assert m.energy(x).dtype == jnp.float32
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        m(jnp.zeros((4, 2)))


@pytest.mark.parametrize(
    ("values", "bounds", "match"),
    [
        (np.zeros((3, 3)), [(0, 1)], "axes"),
        (np.zeros((3, 1)), [(0, 1), (0, 1)], "at least 2 nodes"),
        (np.array([[0.0, np.nan], [0, 0]]), [(0, 1), (0, 1)], "non-finite"),
        (np.zeros((3, 3)), [(0, 1), (1, 1)], "axis 1"),
        (np.zeros((3, 3)), [(0, 1), (0, np.inf)], "axis 1"),
    ],
)
def test_from_grid_rejects_bad_input(values, bounds, match):
    with pytest.raises(ValueError, match=match):
        energy.EnergyMap.from_grid(values, bounds)


def test_metadata_and_properties(rng):
    m = energy.EnergyMap.from_grid(
        rng.normal(size=(4, 5)), [(0, 1), (10, 20)], names=["f", "P"], units=["Hz", "MW"]
    )
    assert m.names == ("f", "P") and m.units == ("Hz", "MW")
    assert m.bounds == ((0.0, 1.0), (10.0, 20.0))
    assert m.ndim == 2 and m.shape == (4, 5) and m.n_samples is None
    np.testing.assert_allclose(np.asarray(m.spacing), [1 / 3, 2.5], rtol=1e-6)
    with pytest.raises(ValueError, match="names"):
        energy.EnergyMap.from_grid(np.zeros((3, 3)), [(0, 1)] * 2, names=["a"])


def test_from_samples_gaussian_energy_differences(rng):
    """E differences of a Gaussian are 0.5 z^2 / v, v = 1 + (binning + smoothing variance) / s^2."""
    s = np.array([1.0, 2.5])
    x = rng.normal(size=(400_000, 2)) * s
    m = energy.EnergyMap.from_samples(x)
    assert m.n_samples == 400_000 and m.shape == (64, 64)
    dx = np.asarray(m.spacing, np.float64)
    inflate = 1 + (dx**2 * (1.0 + 1 / 12)) / s**2  # smoothing of 1 cell + the bin's own width
    z = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    for j in range(2):
        pts = np.zeros((len(z), 2))
        pts[:, j] = z * s[j]
        e = np.asarray(m(pts), np.float64)
        expected = 0.5 * z**2 / inflate[j]
        # Monte Carlo: at 2 sd a cell holds ~600 smoothed counts, ~4% relative error in p.
        np.testing.assert_allclose(e - e[0], expected, atol=0.05)


def test_from_samples_is_a_density(rng):
    x = rng.normal(size=(100_000, 2))
    m = energy.EnergyMap.from_samples(x, bins=40)
    g = [np.linspace(lo, hi, 601) for lo, hi in m.bounds]
    grid = np.stack(np.meshgrid(*g, indexing="ij"), -1)
    p = np.exp(-np.asarray(m(jnp.asarray(grid, jnp.float32)), np.float64))
    total = np.trapezoid(np.trapezoid(p, g[1], axis=1), g[0])
    assert abs(total - 1.0) < 2e-3
    assert abs(float(m.log_z)) < 1e-4
    np.testing.assert_allclose(
        np.asarray(m.log_prob(grid[::50, ::50])), -np.asarray(m(grid[::50, ::50])), atol=1e-4
    )


def test_empty_cells_rise_with_distance_from_data(rng):
    x = rng.normal(size=(20_000, 1)) * 0.3
    m = energy.EnergyMap.from_samples(x, bins=64, bounds=[(-6.0, 6.0)])
    xs = np.linspace(1.5, 6.0, 200)[:, None]
    e = np.asarray(m(xs))
    assert np.all(np.isfinite(e))
    assert np.all(np.diff(e) > 0), "energy must keep rising away from the data (no plateau)"
    g = np.asarray(jax.vmap(jax.grad(m.energy))(jnp.asarray(xs, jnp.float32)))
    assert np.all(g[:, 0] > 0.5)


def test_from_samples_bad_input(rng):
    x = rng.normal(size=(100, 2))
    x[7, 1] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        energy.EnergyMap.from_samples(x)
    with pytest.raises(ValueError, match="inside the bounds"):
        energy.EnergyMap.from_samples(rng.normal(size=(100, 2)), bounds=[(10, 11), (10, 11)])
    with pytest.raises(ValueError, match="bins"):
        energy.EnergyMap.from_samples(rng.normal(size=(100, 2)), bins=1)


def test_from_samples_high_dimension_default_bins_shrink(rng, monkeypatch):
    # The real cap (2**24 nodes) makes 64 bins shrink to 27 at d = 5; a small cap tests the rule.
    assert int(np.floor(energy._grid.MAX_DEFAULT_NODES ** (1 / 5) + 1e-9)) == 27
    monkeypatch.setattr(energy._grid, "MAX_DEFAULT_NODES", 16**3)
    m = energy.EnergyMap.from_samples(rng.normal(size=(2000, 3)), noise_levels=[0.5])
    assert m.shape == (16,) * 3
    assert m.provenance["bins_reduced_from"] == 64


def test_from_counts_uses_bin_edges_and_provenance(rng):
    bounds = [(0.0, 10.0), (-1.0, 1.0)]
    edges = energy.bin_edges(bounds, (21, 11))
    assert edges[0][0] == -0.25 and edges[0][-1] == 10.25
    x = np.stack([rng.uniform(0, 10, 5000), rng.uniform(-1, 1, 5000)], 1)
    counts, _ = np.histogramdd(x, bins=edges)
    m = energy.EnergyMap.from_counts(
        counts, bounds, provenance={"sources": ["a.h5"]}, names=["t", "v"]
    )
    assert m.n_samples == 5000 and m.provenance["sources"] == ["a.h5"]
    ms = energy.EnergyMap.from_samples(x, bins=(21, 11), bounds=bounds)
    np.testing.assert_allclose(np.asarray(m.values), np.asarray(ms.values), atol=1e-5)
    with pytest.raises(ValueError, match="not all zero"):
        energy.EnergyMap.from_counts(np.zeros((4, 4)), bounds)


def test_pyramid_is_the_convolved_density(rng):
    """energy_at(sigma) = -log of the map's density convolved with a Gaussian of sigma * span."""
    x = np.concatenate([rng.normal(-2, 0.3, 30_000), rng.normal(2, 0.3, 10_000)])[:, None]
    m = energy.EnergyMap.from_samples(x, bins=161, bounds=[(-8.0, 8.0)], smoothing=0.5)
    nodes = m.grid[0]
    p = np.exp(-np.asarray(m.values, np.float64))
    # Levels 0 and 3 live on coarse grids, 7 on the map's; at the two-mode ridge of level 6 the
    # coarse grid errs like any grid between its nodes (tests/energy/test_pyramid.py).
    for s in np.asarray(m.noise_levels)[[0, 3, 7]]:
        width = s * 16.0
        kern = np.exp(-0.5 * ((nodes[:, None] - nodes[None, :]) / width) ** 2)
        kern /= np.sqrt(2 * np.pi) * width / 0.1  # dx = 0.1
        conv = kern @ p
        ref = -np.log(conv)
        got = np.asarray(m.energy_at(nodes[:, None], s), np.float64)
        sel = conv > 1e-8
        np.testing.assert_allclose(got[sel], ref[sel], atol=2e-3 * (1 + np.abs(ref[sel]).max()))
    # sigma = 0 is the map itself; levels decrease; coarse levels merge the modes
    np.testing.assert_allclose(
        np.asarray(m.energy_at(nodes[:, None], 0.0)), np.asarray(m.values), atol=1e-6
    )
    lv = np.asarray(m.noise_levels)
    assert np.all(np.diff(lv) < 0) and lv[0] == pytest.approx(0.5)

    def n_minima(e):  # interior local minima within 5 nats of the lowest (sampling noise in
        # the far tails makes shallow dimples 20+ nats up; they are not modes)
        inner = (e[1:-1] < e[:-2]) & (e[1:-1] < e[2:]) & (e[1:-1] < e.min() + 5.0)
        return int(np.sum(inner))

    # the map has the two modes at -2 and 2; the coarsest level (sigma = 8 units, far wider than
    # the 4-unit gap) has one basin: the modes merge, which is what annealing starts from
    assert n_minima(np.asarray(m.values)) == 2
    coarse = np.asarray(m.energy_at(nodes[:, None], lv[0]))
    assert n_minima(coarse) == 1
    assert -2.0 < nodes[np.argmin(coarse)] < 2.0  # the merged basin sits between the modes
    fine = np.asarray(m.energy_at(nodes[:, None], lv[-1]))  # the finest level keeps both
    assert n_minima(fine) == 2
    # mixture weights survive the convolution: compare mass on either side at a middle level
    mid = lv[4]
    q = np.exp(-np.asarray(m.energy_at(nodes[:, None], mid), np.float64))
    left = q[nodes < 0].sum() / q.sum()
    assert abs(left - 0.75) < 0.03


def test_smoothed_matches_pyramid_level(rng):
    m = energy.EnergyMap.from_samples(rng.normal(size=(20_000, 2)), bins=32)
    s = float(m.noise_levels[5])
    ms = m.smoothed(s)
    x = jnp.asarray(rng.normal(size=(100, 2)), jnp.float32)
    np.testing.assert_allclose(np.asarray(ms(x)), np.asarray(m.energy_at(x, s)), atol=1e-4)
    with pytest.raises(ValueError, match="sigma"):
        m.smoothed(-1.0)


def test_energy_at_traced_sigma_and_grad(rng):
    m = energy.EnergyMap.from_samples(rng.normal(size=(20_000, 2)), bins=32)
    f = jax.jit(jax.vmap(jax.grad(lambda x, s: m.energy_at(x, s)), in_axes=(0, None)))
    x = jnp.asarray(rng.normal(size=(10, 2)), jnp.float32)
    for s in np.asarray(m.noise_levels)[::3]:
        assert np.all(np.isfinite(np.asarray(f(x, s))))


def test_pytree_jit_vmap_grad_and_device_put(rng):
    _, bounds, m = _random_map(rng, (6, 7))
    leaves = jax.tree_util.tree_leaves(m)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    x = jnp.asarray(_inside(rng, bounds, 10), jnp.float32)

    @jax.jit
    def f(mm, xx):
        return mm(xx)

    np.testing.assert_allclose(np.asarray(f(m, x)), np.asarray(m(x)), rtol=1e-6)
    m2 = jax.device_put(m, jax.devices()[0])
    assert isinstance(m2, energy.EnergyMap) and m2.names == m.names
    # gradient with respect to the map's own energies (the pytree leaves)
    gm = jax.grad(lambda mm: mm(x).sum())(m)
    assert isinstance(gm, energy.EnergyMap)
    np.testing.assert_allclose(
        float(gm.values.sum()), 10.0, rtol=1e-5
    )  # weights sum to 1 per point
    # vmap over a batch of maps stacked leaf by leaf
    stacked = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), m, m)
    out = jax.vmap(lambda mm: mm(x))(stacked)
    assert out.shape == (2, 10)


@pytest.mark.parametrize("shape", [(6, 7), (5, 6, 4)])  # 3-D: the stencil read as rows
def test_no_recompilation_for_a_new_map_of_the_same_shape(rng, shape):
    _, bounds, m1 = _random_map(rng, shape)
    m2 = energy.EnergyMap.from_grid(rng.normal(size=shape), bounds)
    x = jnp.asarray(_inside(rng, bounds, 10), jnp.float32)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(mm, xx):
        return jax.vmap(jax.value_and_grad(mm.energy))(xx)

    f(m1, x)
    f(m2, x)
    chex.clear_trace_counter()


def test_float64_under_x64(rng):
    values = rng.normal(size=(5, 5))
    with jax.enable_x64(True):
        m = energy.EnergyMap.from_grid(values, [(0, 1), (0, 1)])
        assert m.values.dtype == jnp.float64
        assert m(jnp.array([0.3, 0.4])).dtype == jnp.float64
