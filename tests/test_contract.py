"""The public contract of DESIGN.md, exercised as a user would: ``import energy, langevin, ingest``.

Every test here goes through the public API only (the three packages and the ``groundstate``
command), with the names, arguments and defaults exactly as DESIGN.md writes them. Settings are
tiny: most of the module's time is XLA compilation (about 70 s of CPU in all).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import zipfile

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import trapezoid
from scipy.interpolate import RegularGridInterpolator

import energy
import ingest  # noqa: F401  (part of the contract: the three packages import side by side)
import langevin
from groundstate import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOX = [(-8.0, 8.0), (-8.0, 8.0)]

# Bulk evaluations go through one jitted function of (map, x): a map is a pytree argument. (The
# eager m.energy(x) is exercised too, below, on a few shapes.)
_E_jit = jax.jit(lambda target, x: target.energy(x))


def _E(target, x):
    return np.asarray(_E_jit(target, jnp.asarray(x, jnp.float32)))


# --------------------------------------------------------------------------------------------
# shared objects (built once per module)


@pytest.fixture(scope="module")
def gauss_samples():
    """20 000 draws of N((0, 1), diag(1, 0.25)): a single basin."""
    rng = np.random.default_rng(1)
    return rng.normal(size=(20_000, 2)) * [1.0, 0.5] + [0.0, 1.0]


@pytest.fixture(scope="module")
def gauss_map(gauss_samples):
    return energy.EnergyMap.from_samples(
        gauss_samples,
        bins=32,
        bounds=[(-5.0, 5.0), (-2.0, 4.0)],
        names=["a", "b"],
        units=["m", "s"],
    )


@pytest.fixture(scope="module")
def song_ermon():
    """p = 0.2 N((-5,-5), I) + 0.8 N((5,5), I): the Song & Ermon (2019) toy, as samples."""
    rng = np.random.default_rng(2)
    n = 20_000
    right = rng.uniform(size=n) < 0.8
    x = np.where(right[:, None], rng.normal(size=(n, 2)) + 5.0, rng.normal(size=(n, 2)) - 5.0)
    return x, float(right.mean())


# --------------------------------------------------------------------------------------------
# EnergyMap.from_grid


def test_from_grid_nodes_and_scipy_linear():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(5, 7, 4))
    bounds = [(-1.0, 2.0), (0.0, 3.0), (10.0, 11.5)]
    m = energy.EnergyMap.from_grid(values, bounds)
    axes = [np.linspace(lo, hi, n) for (lo, hi), n in zip(bounds, values.shape, strict=True)]
    # node k of axis i sits at lo_i + k (hi_i - lo_i) / (n_i - 1)
    nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    np.testing.assert_allclose(m.energy(nodes), values, atol=1e-5)
    # between nodes: multilinear = scipy RegularGridInterpolator(method="linear")
    x = np.stack([rng.uniform(lo, hi, 500) for lo, hi in bounds], axis=-1)
    ref = RegularGridInterpolator(axes, values, method="linear")(x)
    np.testing.assert_allclose(m.energy(x), ref, atol=1e-5)
    np.testing.assert_allclose(m(x), ref, atol=1e-5)


def test_from_grid_attributes():
    values = np.arange(12.0).reshape(3, 4)
    m = energy.EnergyMap.from_grid(values, [(0, 1), (-2, 2)])
    assert m.ndim == 2 and m.shape == (3, 4) and m.n_samples is None
    assert m.bounds == ((0.0, 1.0), (-2.0, 2.0))
    assert all(isinstance(v, float) for pair in m.bounds for v in pair)
    assert len(m.names) == 2 and len(m.units) == 2
    m2 = energy.EnergyMap.from_grid(
        values, [(0, 1), (-2, 2)], names=["speed", "power"], units=["m/s", "kW"]
    )
    assert tuple(m2.names) == ("speed", "power") and tuple(m2.units) == ("m/s", "kW")


def test_energy_shapes_jit_vmap_grad():
    rng = np.random.default_rng(4)
    values = rng.normal(size=(6, 5))
    m = energy.EnergyMap.from_grid(values, [(0.0, 5.0), (0.0, 4.0)])  # unit spacing
    x = rng.uniform(0.2, 3.8, size=(3, 4, 2))
    assert m.energy(x).shape == (3, 4)
    assert m(x).shape == (3, 4)
    assert m.energy(x[0, 0]).shape == ()
    np.testing.assert_allclose(jax.jit(m.energy)(x), m.energy(x), atol=1e-6)
    vm = jax.jit(jax.vmap(m.energy))(x.reshape(-1, 2))
    np.testing.assert_allclose(vm, m(x).reshape(-1), atol=1e-6)
    # gradient of the bilinear interpolant inside a cell, by hand (eager grad works too, but
    # costs seconds per call here: see the report)
    p = jnp.array([1.25, 2.5])
    g = jax.jit(jax.grad(m.energy))(p)
    t, u = 0.25, 0.5
    v = values
    dx = (1 - u) * (v[2, 2] - v[1, 2]) + u * (v[2, 3] - v[1, 3])
    dy = (1 - t) * (v[1, 3] - v[1, 2]) + t * (v[2, 3] - v[2, 2])
    np.testing.assert_allclose(g, [dx, dy], rtol=1e-4, atol=1e-5)
    gb = jax.jit(jax.vmap(jax.grad(m)))(x.reshape(-1, 2))
    assert gb.shape == (12, 2) and np.all(np.isfinite(gb))


def test_map_is_a_pytree_argument_of_jit():
    rng = np.random.default_rng(5)
    f = jax.jit(lambda mm, y: mm.energy(y) + mm(y))
    m1 = energy.EnergyMap.from_grid(rng.normal(size=(4, 4)), [(0, 1), (0, 1)])
    m2 = energy.EnergyMap.from_grid(rng.normal(size=(4, 4)), [(0, 1), (0, 1)])
    y = rng.uniform(size=(7, 2))
    np.testing.assert_allclose(f(m1, y), 2 * m1(y), atol=1e-5)
    np.testing.assert_allclose(f(m2, y), 2 * m2(y), atol=1e-5)  # a new map, same program
    leaves, treedef = jax.tree_util.tree_flatten(m1)
    assert leaves and all(isinstance(leaf, jax.Array) for leaf in leaves)
    back = jax.tree_util.tree_unflatten(treedef, leaves)
    np.testing.assert_array_equal(back(y), m1(y))


@pytest.mark.parametrize("descending", [False, True])
def test_barrier_outside_bounds(descending):
    # A map that slopes *down* towards its hi edge (descending) must still rise outside it.
    g = np.linspace(0.0, 1.0, 9)
    vals = np.add.outer(g, 0.5 * g) * (-3.0 if descending else 3.0)
    m = energy.EnergyMap.from_grid(vals, [(0.0, 1.0), (0.0, 1.0)])
    centre = np.array([0.5, 0.5])
    grad = jax.jit(jax.grad(m.energy))
    for direction in ([1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, 1]):
        d = np.asarray(direction, float)
        # from the edge (t = 0.5 * |d|_inf^-1) outwards: strictly rising, finite
        t0 = 0.5 / np.abs(d).max()
        ts = t0 + np.array([0.0, 0.01, 0.1, 0.5, 2.0, 10.0])
        e = np.asarray(_E(m, centre + ts[:, None] * d))
        assert np.all(np.isfinite(e)) and np.all(np.diff(e) > 0), (direction, e)
        # the gradient points back in: moving along -grad goes towards the box
        x_out = jnp.asarray(centre + (t0 + 0.3) * d)
        gr = np.asarray(grad(x_out))
        assert np.dot(gr, d) > 0, (direction, gr)


# --------------------------------------------------------------------------------------------
# EnergyMap.from_samples


def _integral(m, n=401):
    axes = [np.linspace(lo, hi, n) for lo, hi in m.bounds]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    p = np.exp(-np.asarray(_E(m, grid), np.float64))
    return trapezoid(trapezoid(p, axes[1], axis=1), axes[0])


def test_from_samples_is_a_density(gauss_samples, gauss_map):
    m = gauss_map
    assert m.n_samples == len(gauss_samples)
    assert m.shape == (32, 32) and m.ndim == 2
    assert m.bounds == ((-5.0, 5.0), (-2.0, 4.0))
    assert tuple(m.names) == ("a", "b") and tuple(m.units) == ("m", "s")
    assert abs(_integral(m) - 1.0) < 5e-3
    # defaults: bins=64, bounds from the data; still a density
    d = energy.EnergyMap.from_samples(gauss_samples)
    assert d.shape == (64, 64) and d.n_samples == len(gauss_samples)
    for (lo, hi), col in zip(d.bounds, gauss_samples.T, strict=True):
        assert lo <= col.min() and hi >= col.max()
    assert abs(_integral(d) - 1.0) < 5e-3
    # the basin is where the data is: E(mode) is near -log of the true peak density
    peak = 1.0 / (2 * np.pi * 1.0 * 0.5)
    assert abs(float(_E(m, jnp.array([0.0, 1.0]))) + np.log(peak)) < 0.15


def test_from_samples_empty_cells_finite_and_rising(gauss_map):
    m = gauss_map
    # beyond |a| ~ 4.2 (p < 1e-4 per cell at 20k samples) the cells are empty
    for sign in (1.0, -1.0):
        a = sign * np.linspace(2.5, 5.0, 26)
        e = np.asarray(_E(m, np.stack([a, np.full_like(a, 1.0)], -1)))
        assert np.all(np.isfinite(e))
        assert np.all(np.diff(e) > 0), e
    corners = np.array([[-5.0, -2.0], [5.0, 4.0], [5.0, -2.0], [-5.0, 4.0]])
    ec = np.asarray(_E(m, corners))
    assert np.all(np.isfinite(ec)) and np.all(ec > float(_E(m, jnp.array([4.5, 1.0]))))


# --------------------------------------------------------------------------------------------
# save / load


def test_save_load_roundtrip(tmp_path, gauss_map):
    path = tmp_path / "map.npz"
    gauss_map.save(path)
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        for k in z.files:
            assert z[k].dtype != object
    m = energy.load(path)
    assert m.shape == gauss_map.shape and m.bounds == gauss_map.bounds
    assert tuple(m.names) == ("a", "b") and tuple(m.units) == ("m", "s")
    assert m.n_samples == gauss_map.n_samples
    x = np.random.default_rng(6).uniform(-6, 6, size=(100, 2))
    np.testing.assert_array_equal(m.energy(x), gauss_map.energy(x))
    m2 = energy.load(str(path))  # a str path too
    np.testing.assert_array_equal(m2(x), gauss_map(x))
    assert [p.name for p in tmp_path.iterdir()] == ["map.npz"]  # atomic: no temporary left


def _rewrite(src, dst, change):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


def _bump_version(a):
    meta = json.loads(str(a["meta"]))
    meta["version"] = 99
    a["meta"] = np.array(json.dumps(meta))


def _tamper(a):
    e = a["energies"].copy()
    e.flat[0] += 1.0
    a["energies"] = e


def _nonfinite(a):
    e = a["energies"].copy()
    e.flat[3] = np.nan
    a["energies"] = e


@pytest.mark.parametrize(
    "make",
    [
        "garbage",
        "truncated",
        "missing",
        "version",
        "tampered",
        "nonfinite",
        "extra",
        "object",
        "no_meta",
    ],
)
def test_load_bad_files_raise_errors_naming_the_file(tmp_path, gauss_map, make):
    good = tmp_path / "good.npz"
    gauss_map.save(good)
    bad = tmp_path / f"bad_{make}.npz"
    if make == "garbage":
        bad.write_bytes(b"not a map at all" * 10)
    elif make == "truncated":
        bad.write_bytes(good.read_bytes()[:300])
    elif make == "version":
        _rewrite(good, bad, _bump_version)
    elif make == "tampered":
        _rewrite(good, bad, _tamper)
    elif make == "nonfinite":
        _rewrite(good, bad, _nonfinite)
    elif make == "extra":
        _rewrite(good, bad, lambda a: a.update(extra=np.arange(3)))
    elif make == "object":
        _rewrite(good, bad, lambda a: a.update(obj=np.array([{"x": 1}], dtype=object)))
    elif make == "no_meta":
        _rewrite(good, bad, lambda a: a.pop("meta"))
    with pytest.raises((ValueError, OSError)) as info:
        energy.load(bad)
    assert str(bad) in str(info.value) or bad.name in str(info.value), str(info.value)
    if make != "missing":
        assert isinstance(info.value, energy.MapFileError)
    assert zipfile.is_zipfile(good)


# --------------------------------------------------------------------------------------------
# Shield


def test_shield_threshold_reasons_and_fail_closed(gauss_map):
    m = gauss_map
    t = float(_E(m, jnp.array([1.0, 1.0])))
    sh = energy.Shield(m, threshold=t)
    x = np.array(
        [
            [0.0, 1.0],  # allowed (the mode)
            [1.0, 1.0],  # E == threshold: inclusive, allowed
            [3.5, 1.0],  # inside, above threshold
            [np.nan, 1.0],
            [0.0, np.inf],
            [-np.inf, 0.0],
            [5.5, 1.0],  # outside the bounds
            [0.0, -2.01],
        ]
    )
    d = sh(x)
    allow, reason, e = np.asarray(d.allow), np.asarray(d.reason), np.asarray(d.energy)
    assert allow.dtype == bool and allow.shape == (8,) and e.shape == (8,) and reason.shape == (8,)
    assert allow.tolist() == [True, True, False, False, False, False, False, False]
    R = energy.Reason
    assert reason.tolist() == [
        R.ALLOWED,
        R.ALLOWED,
        R.ABOVE_THRESHOLD,
        R.NOT_FINITE,
        R.NOT_FINITE,
        R.NOT_FINITE,
        R.OUT_OF_BOUNDS,
        R.OUT_OF_BOUNDS,
    ]
    assert [int(c) for c in R] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(e[:3], _E(m, x[:3]), rtol=1e-6)
    # batched and jitted
    assert sh(np.zeros((3, 4, 2))).allow.shape == (3, 4)
    np.testing.assert_array_equal(jax.jit(lambda y: sh(y).allow)(x), allow)
    # a NaN row does not poison the others
    np.testing.assert_array_equal(np.asarray(sh(x[[3, 0]]).allow), [False, True])


def test_shield_with_a_plain_function_fails_closed():
    f = lambda y: 0.5 * jnp.sum(y**2, axis=-1)  # noqa: E731
    sh = energy.Shield(f, threshold=2.0)
    d = sh(np.array([[0.0, 0.0], [3.0, 0.0], [np.nan, 0.0], [np.inf, np.inf]]))
    assert np.asarray(d.allow).tolist() == [True, False, False, False]
    assert np.asarray(d.reason).tolist()[2:] == [energy.Reason.NOT_FINITE] * 2
    # a function returning NaN/inf is blocked too (fail closed)
    g = lambda y: jnp.where(y[..., 0] > 1.0, jnp.nan, 0.0)  # noqa: E731
    dg = energy.Shield(g, threshold=1.0)(np.array([[0.0, 0.0], [2.0, 0.0]]))
    assert np.asarray(dg.allow).tolist() == [True, False]


def test_shield_calibrate_false_block_rate(gauss_map):
    rng = np.random.default_rng(7)

    def draw(n):
        return rng.normal(size=(n, 2)) * [1.0, 0.5] + [0.0, 1.0]

    held = draw(4000)
    sh = energy.Shield.calibrate(gauss_map, held, alpha=0.05)
    new = draw(40_000)
    blocked = 1.0 - float(np.mean(np.asarray(sh(new).allow)))
    # P(blocked) <= alpha; for one calibration set sd ~ sqrt(a(1-a)/n) = 0.0034 (+ MC 0.001)
    assert 0.05 - 0.015 < blocked < 0.05 + 0.015
    # alpha defaults to 0.01
    sh01 = energy.Shield.calibrate(gauss_map, held)
    blocked01 = 1.0 - float(np.mean(np.asarray(sh01(new).allow)))
    assert blocked01 < 0.01 + 0.008 and blocked01 < blocked
    # too few states for the bound: a clear error
    with pytest.raises(ValueError, match="99"):
        energy.Shield.calibrate(gauss_map, held[:50], alpha=0.01)
    # a plain function works too
    shf = energy.Shield.calibrate(
        lambda y: 0.5 * jnp.sum(y**2, -1), rng.normal(size=(2000, 2)), alpha=0.1
    )
    d = shf(rng.normal(size=(20_000, 2)))
    assert abs(1.0 - float(np.mean(np.asarray(d.allow))) - 0.1) < 0.03


# --------------------------------------------------------------------------------------------
# tnn surrogates (tiny settings: a check of the contract, not of accuracy)

TINY = dict(members=3, width=16, depth=2, steps=200, batch_size=128, progress=False)


@pytest.fixture(scope="module")
def map_surrogate(gauss_map):
    return energy.tnn.fit(gauss_map, jax.random.key(0), n_points=4096, **TINY)


@pytest.fixture(scope="module")
def sample_surrogate(gauss_samples):
    return energy.tnn.fit_samples(
        gauss_samples[:4000], jax.random.key(1), names=["a", "b"], units=["m", "s"], **TINY
    )


# States for surrogates, one shape throughout (an eager call on a new shape compiles): row 0
# holds the data's mode, a state near the empty edge of the map's box, and one far outside it.
SX = np.random.default_rng(8).normal(size=(4, 3, 2)).astype(np.float32)
SX[0] = [[0.0, 1.0], [3.5, 3.5], [6.0, 6.0]]
SX[1, 0] = [4.8, -1.8]


def _check_like_a_map(s, full=True):
    x = SX
    e = np.asarray(s(x))
    assert e.shape == (4, 3) and np.all(np.isfinite(e))
    np.testing.assert_array_equal(s.energy(x), e)
    assert s.uncertainty(x).shape == (4, 3) and np.all(np.asarray(s.uncertainty(x)) >= 0)
    levels = np.asarray(s.noise_levels)
    assert levels.ndim == 1 and len(levels) >= 2 and np.all(np.diff(levels) < 0)
    assert s.energy_at(x, float(levels[0])).shape == (4, 3)
    if not full:
        return
    assert s.energy(x[0, 0]).shape == ()
    np.testing.assert_allclose(jax.jit(s.energy)(x), e, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.vmap(s.energy))(x[0]), e[0], rtol=1e-5, atol=1e-5)
    g = jax.jit(jax.grad(s.energy))(jnp.asarray(x[0, 0]))
    assert g.shape == (2,) and np.all(np.isfinite(g))
    np.testing.assert_allclose(_E(s, x), e, rtol=1e-5, atol=1e-5)  # a pytree argument of jit


def test_tnn_fit_of_a_map(map_surrogate, gauss_map, tmp_path):
    s = map_surrogate
    _check_like_a_map(s)
    np.testing.assert_allclose(s.noise_levels, gauss_map.noise_levels, rtol=1e-6)
    assert tuple(s.names) == ("a", "b") and tuple(s.units) == ("m", "s")
    # it learnt the basin: low at the mode, high near the empty edge
    e = _E(s, SX)
    e_mode, e_edge = e[0, 0], e[0, 1]
    assert e_mode < e_edge - 3.0
    # the ensemble spread is larger far from the data than at the mode
    u = np.asarray(s.uncertainty(SX))
    near, far = u[0, 0], u[1, 0]
    assert far > 2.0 * near, (near, far)
    s.save(tmp_path / "ckpt")
    r = energy.tnn.load(tmp_path / "ckpt")
    np.testing.assert_array_equal(_E(r, SX), _E(s, SX))
    np.testing.assert_array_equal(r.uncertainty(SX), s.uncertainty(SX))
    assert tuple(r.names) == ("a", "b") and tuple(r.units) == ("m", "s")
    np.testing.assert_array_equal(r.noise_levels, s.noise_levels)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "nothing"))):
        energy.tnn.load(tmp_path / "nothing")


def test_tnn_fit_samples(sample_surrogate, tmp_path):
    s = sample_surrogate
    _check_like_a_map(s, full=False)  # jit, vmap and grad: as for the map surrogate
    assert tuple(s.names) == ("a", "b") and tuple(s.units) == ("m", "s")
    e = _E(s, SX)
    e_mode, e_far = e[0, 0], e[0, 1]
    assert e_mode < e_far
    # far from the data the ensemble disagrees more
    u = np.asarray(s.uncertainty(SX))
    u_mode, u_far = u[0, 0], u[0, 2]
    assert u_far > u_mode
    s.save(tmp_path / "dsm")
    r = energy.tnn.load(tmp_path / "dsm")
    np.testing.assert_array_equal(_E(r, SX), _E(s, SX))
    np.testing.assert_array_equal(r.energy_at(SX, 0.5), s.energy_at(SX, 0.5))


# --------------------------------------------------------------------------------------------
# langevin


def _quadratic(x):
    """E of N((1, -1), diag(1, 0.25)) for one state (d,) -> ()."""
    return 0.5 * ((x[0] - 1.0) ** 2 + (x[1] + 1.0) ** 2 / 0.25)


@pytest.mark.parametrize("case", ["defaults", "positional_mala_t2"])
def test_langevin_plain_function(case):
    n = 2000
    temperature = 2.0 if case == "positional_mala_t2" else 1.0
    if case == "defaults":  # ula, schedule="auto" (temperature annealing)
        res = langevin.sample(_quadratic, jax.random.key(3), n_chains=n, init=jnp.zeros(2))
    else:  # the contract's positional order: target, key, n_chains, n_steps, init, method,
        # step_size, temperature, schedule; a schedule object from langevin
        sched = langevin.geometric(5.0 * temperature, temperature, 300)
        res = langevin.sample(
            _quadratic, jax.random.key(3), n, None, jnp.zeros(2), "mala", None, temperature, sched
        )
    p = np.asarray(res.positions)
    assert p.shape == (n, 2) and res.energies.shape == (n,)
    np.testing.assert_allclose(res.energies, jax.vmap(_quadratic)(p), rtol=1e-4, atol=1e-4)
    var = np.array([1.0, 0.25]) * temperature
    # mean: sd sqrt(var / n) <= 0.032; variance: sd var sqrt(2/n) = 3.2 %, plus ULA's ~1 % bias
    assert np.all(np.abs(p.mean(0) - [1.0, -1.0]) < 5 * np.sqrt(var / n)), p.mean(0)
    np.testing.assert_allclose(p.var(0), var, rtol=0.15)


def _right_mode_moments(m):
    """Weight, mean and sd of exp(-E) on x + y > 0, by quadrature on a fine grid."""
    g = np.linspace(-8.0, 8.0, 641)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1)
    p = np.exp(-_E(m, grid).astype(np.float64))
    right = grid.sum(-1) > 0
    pr = np.where(right, p, 0.0)
    mean = np.array([(pr * grid[..., j]).sum() for j in range(2)]) / pr.sum()
    var = np.array([(pr * (grid[..., j] - mean[j]) ** 2).sum() for j in range(2)]) / pr.sum()
    return pr.sum() / p.sum(), mean, np.sqrt(var)


def _assert_moments(x, mean, std):
    n = len(x)
    # 4.5 sd of the Monte Carlo estimates of a mean and of a Gaussian sd
    assert np.all(np.abs(x.mean(0) - mean) < 4.5 * std / np.sqrt(n)), (x.mean(0), mean)
    assert np.all(np.abs(x.std(0) - std) < 4.5 * std / np.sqrt(2 * n)), (x.std(0), std)


def test_langevin_on_a_map_defaults_keep_separated_modes(song_ermon):
    # A small Song & Ermon (2019) toy: with defaults, samples follow exp(-E) and each of two
    # separated modes keeps its weight.
    x, truth = song_ermon
    m = energy.EnergyMap.from_samples(x, bins=48, bounds=BOX)
    n = 2000
    res = langevin.sample(m, jax.random.key(7), n_chains=n)
    p = np.asarray(res.positions)
    assert p.shape == (n, 2) and res.energies.shape == (n,)
    np.testing.assert_allclose(res.energies, _E(m, p), rtol=1e-4, atol=1e-4)
    assert np.all((p >= -8.0) & (p <= 8.0))
    w = float(np.mean(p.sum(1) > 0))
    weight, mean, std = _right_mode_moments(m)
    assert abs(weight - truth) < 0.005  # the map holds the data's weights
    # binomial sd sqrt(.8 .2 / 2000) = 0.009: 4 sd
    assert abs(w - weight) < 0.036, (w, weight)
    _assert_moments(p[p.sum(1) > 0], mean, std)
    # fixed-temperature chains (schedule=None; MALA here) keep the initial split, about 1/2: why
    # annealing is the default
    init = jnp.asarray(np.random.default_rng(12).uniform(-8.0, 8.0, size=(n, 2)))
    fixed = langevin.sample(
        m, jax.random.key(7), n_chains=n, init=init, schedule=None, method="mala"
    )
    pf = np.asarray(fixed.positions)
    np.testing.assert_allclose(fixed.energies, _E(m, pf), rtol=1e-4, atol=1e-4)
    wf = float(np.mean(pf.sum(1) > 0))
    assert abs(wf - 0.5) < 0.06, wf
    # within a basin MALA samples exp(-E)
    _assert_moments(pf[pf.sum(1) > 0], mean, std)


# --------------------------------------------------------------------------------------------
# groundstate ingest


def _make_lake(root, n_csv=3, n_h5=2, rows=150, seed=13, corrupt=True, subdir=""):
    """CSV logs (x in m, y in cm) and HDF5 runs (x in mm, y in m); returns the rows in (m, m)."""
    rng = np.random.default_rng(seed)
    base = root / subdir if subdir else root
    base.mkdir(parents=True, exist_ok=True)
    xs, ys, files = [], [], []
    n_missing = n_junk = 0
    for i in range(n_csv):
        x = rng.normal(1.0, 0.3, rows)
        y = rng.normal(50.0, 10.0, rows)
        lines = ["time,X [m],y [cm]"]
        for k, (a, b) in enumerate(zip(x, y, strict=True)):
            lines.append(f"{k},{a:.17g},{b:.17g}")
        lines.insert(5, f"99,,{y[0]:.17g}")  # a missing value
        lines.insert(9, "this line is junk")  # a junk line
        n_missing += 1
        n_junk += 1
        path = base / f"log_{i:02d}.csv"
        path.write_text("\n".join(lines) + "\n")
        files.append(path)
        xs.append(x)
        ys.append(y / 100.0)
    for i in range(n_h5):
        x = rng.normal(1000.0, 300.0, rows)
        y = rng.normal(0.5, 0.1, rows)
        path = base / f"run_{i:02d}.h5"
        with h5py.File(path, "w") as h:
            g = h.create_group("plant")
            g.create_dataset("x", data=x).attrs["units"] = "mm"
            g.create_dataset("Y", data=y).attrs["units"] = "m"
            h.create_dataset("other", data=np.arange(3))
        files.append(path)
        xs.append(x / 1000.0)
        ys.append(y)
    bad = None
    if corrupt:
        bad = base / "broken.h5"
        bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 200)
        files.append(bad)
    rows_xy = np.stack([np.concatenate(xs), np.concatenate(ys)], axis=-1)
    return files, bad, rows_xy, n_missing, n_junk


def _progress(text):
    return [
        (int(m.group(1)), int(m.group(2)), m.group(3))
        for m in re.finditer(r"^\[(\d+)/(\d+)\] (.+)$", text, flags=re.M)
    ]


INGEST_ARGS = ["--var", "x:m", "--var", "y:m", "--bins", "16", "--bounds", "0:2,0:1"]


def test_ingest_command_progress_report_and_map(tmp_path, capsys):
    lake = tmp_path / "lake"
    files, bad, rows, n_missing, n_junk = _make_lake(lake)
    out = tmp_path / "out.npz"
    code = cli.main(["ingest", str(lake), *INGEST_ARGS, "-o", str(out)])  # default workers
    cap = capsys.readouterr()
    assert code == 0, cap.err
    # not a terminal: one line per finished file on stderr, "[k/n] PATH"
    lines = _progress(cap.err)
    n = len(files)
    assert [k for k, _, _ in lines] == list(range(1, n + 1))
    assert {t for _, t, _ in lines} == {n}
    assert sorted(os.path.realpath(p) for _, _, p in lines) == sorted(
        os.path.realpath(f) for f in files
    )
    # the report: files read, skipped by name with the reason, rows used and dropped per reason
    # bins centred on the nodes: edges from lo - dx/2 to hi + dx/2
    inside = np.all((rows >= [-1 / 15, -1 / 30]) & (rows <= [2 + 1 / 15, 1 + 1 / 30]), axis=1)
    assert "files read: 5" in cap.out, cap.out
    skipped = [line for line in cap.out.splitlines() if bad.name in line]
    assert skipped and "corrupt" in skipped[0], cap.out
    m = energy.load(out)
    assert re.search(rf"rows used: {m.n_samples}\b", cap.out), cap.out
    assert re.search(r"missing value: 3\b", cap.out) and re.search(r"junk line: 3\b", cap.out), (
        cap.out
    )
    assert re.search(r"rows dropped: \d+", cap.out), cap.out
    # the map: the converted rows (mm -> m, cm -> m) counted on the node grid
    assert tuple(m.names) == ("x", "y") and tuple(m.units) == ("m", "m")
    assert m.shape == (16, 16) and m.bounds == ((0.0, 2.0), (0.0, 1.0))
    ref = energy.EnergyMap.from_samples(rows, bins=16, bounds=[(0.0, 2.0), (0.0, 1.0)])
    assert m.n_samples == ref.n_samples and abs(m.n_samples - inside.sum()) <= 2
    grid = np.stack(np.meshgrid(np.linspace(0, 2, 33), np.linspace(0, 1, 33), indexing="ij"), -1)
    np.testing.assert_allclose(_E(m, grid), _E(ref, grid), rtol=1e-5, atol=1e-5)
    assert not (tmp_path / "out.npz.ingest-state").exists()


def test_ingest_command_default_bins_and_bounds(tmp_path, capsys):
    lake = tmp_path / "lake"
    _, _, rows, _, _ = _make_lake(lake, n_csv=2, n_h5=1, rows=100, seed=15, corrupt=False)
    out = tmp_path / "defaults.npz"
    code = cli.main(["ingest", str(lake), "--var", "x:m", "--var", "y:m", "-o", str(out)])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert [k for k, _, _ in _progress(cap.err)] == [1, 2, 3]
    m = energy.load(out)
    assert m.shape == (64, 64) and m.n_samples == len(rows)  # --bins 64; bounds hold every row
    assert re.search(rf"rows used: {len(rows)}\b", cap.out), cap.out
    for (lo, hi), col in zip(m.bounds, rows.T, strict=True):
        # the data's extremes (to float32 rounding of the stored bounds: see the report)
        span = col.max() - col.min()
        assert lo <= col.min() + 1e-6 * span and hi >= col.max() - 1e-6 * span
        assert hi - lo < 2 * span  # from the data, not a default box


def _cmd(lake, out):
    return [
        sys.executable,
        "-m",
        "groundstate.cli",
        "ingest",
        str(lake),
        *INGEST_ARGS,
        "--workers",
        "1",
        "-o",
        str(out),
    ]


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env.pop("PYTHONWARNINGS", None)
    return env


def test_ingest_resumes_after_kill(tmp_path, capsys):
    # Long paths and a 4 KiB stderr pipe: the crawl blocks on its progress lines until they are
    # read, so a SIGKILL after the third line always lands mid-crawl.
    lake = tmp_path / "lake"
    deep = "/".join(["a_rather_long_directory_name_for_the_progress_lines"] * 3)
    files, _, rows, _, _ = _make_lake(
        lake, n_csv=30, n_h5=10, rows=40, seed=14, corrupt=False, subdir=deep
    )
    n = len(files)
    out = tmp_path / "resumed.npz"
    state = tmp_path / "resumed.npz.ingest-state"
    proc = subprocess.Popen(
        _cmd(lake, out),
        env=_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
        pipesize=4096,
    )
    fd = proc.stderr.fileno()
    seen, buf = [], b""
    while len(seen) < 3:
        c = os.read(fd, 1)
        assert c, "the crawl ended before three files: " + buf.decode()
        buf += c
        if c == b"\n":
            line = buf.decode()
            buf = b""
            if re.match(r"^\[\d+/\d+\] ", line):
                seen.append(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and state.exists()
    first = _progress("".join(seen))

    # the same command again: it resumes
    code = cli.main(["ingest", str(lake), *INGEST_ARGS, "--workers", "1", "-o", str(out)])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    second = _progress(cap.err)
    assert second and second[-1][:2] == (n, n)
    done_before = second[0][0] - 1
    assert done_before >= 3 and len(second) == n - done_before
    assert [k for k, _, _ in second] == list(range(done_before + 1, n + 1))
    assert not {p for _, _, p in first} & {p for _, _, p in second}  # not listed again
    assert not state.exists()
    # exactly the map of an uninterrupted run
    full = tmp_path / "full.npz"
    assert cli.main(["ingest", str(lake), *INGEST_ARGS, "--workers", "1", "-o", str(full)]) == 0
    capsys.readouterr()
    a, b = energy.load(full), energy.load(out)
    assert a.n_samples == b.n_samples
    np.testing.assert_array_equal(_E(a, rows), _E(b, rows))
