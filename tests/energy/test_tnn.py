"""energy.tnn surrogates of maps: accuracy, gradients, pyramid, uncertainty, pytree, checkpoints."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energy
import energy.tnn as tnn

BOUNDS_2D = [(-4.0, 4.0), (-4.0, 4.0)]
MU_4D = np.array([[-1.5, 0.0, 0.5, 0.0], [1.5, 1.0, -0.5, 0.5]])
SD_4D = np.array([0.6, 0.5, 0.7, 0.5])


def _mix2(rng, n):
    """Two Gaussian blobs (weights 0.6 / 0.4) in 2-D."""
    first = rng.random(n) < 0.6
    a = rng.normal([-1.0, 0.0], [0.4, 0.5], size=(n, 2))
    b = rng.normal([1.5, 1.0], [0.3, 0.3], size=(n, 2))
    return np.where(first[:, None], a, b)


def _mix4(rng, n):
    """Two Gaussian blobs (weights 0.6 / 0.4) in 4-D."""
    k = (rng.random(n) < 0.4).astype(int)
    return MU_4D[k] + rng.normal(size=(n, 4)) * SD_4D


@pytest.fixture(scope="module")
def map2d():
    rng = np.random.default_rng(11)
    return energy.EnergyMap.from_samples(
        _mix2(rng, 50_000), bins=40, bounds=BOUNDS_2D, names=["p", "T"], units=["bar", "K"]
    )


@pytest.fixture(scope="module")
def sur2d(map2d):
    # Small budget for CI: 3 members, 1500 steps (about 10-15 s on 2 shared cores).
    return tnn.fit(map2d, jax.random.key(0), members=3, steps=1500, n_points=16384, progress=False)


@pytest.fixture(scope="module")
def map4d():
    rng = np.random.default_rng(12)
    return energy.EnergyMap.from_samples(_mix4(rng, 200_000), bins=14, bounds=[(-4.0, 4.0)] * 4)


@pytest.fixture(scope="module")
def sur4d(map4d):
    return tnn.fit(
        map4d,
        jax.random.key(1),
        members=3,
        steps=1200,
        n_points=16384,
        pyramid=False,
        progress=False,
    )


def _far_from_data(m, rng, data_energies, n=1000):
    """Points in the box where the map's density is below e^-3 of its 1 % least likely data."""
    lo, hi = np.asarray(m.lo), np.asarray(m.hi)
    x = rng.uniform(lo, hi, size=(40 * n, m.ndim))
    far = x[np.asarray(m(x)) > np.quantile(data_energies, 0.99) + 3.0]
    assert len(far) >= n // 2
    return far[:n]


# ------------------------------------------------------------------------------------ accuracy
@pytest.mark.parametrize("case", ["2d", "4d"])
def test_correlation_with_the_map_where_the_data_is(request, case):
    m = request.getfixturevalue(f"map{case}")
    s = request.getfixturevalue(f"sur{case}")
    rng = np.random.default_rng(21)
    x = _mix2(rng, 3000) if case == "2d" else _mix4(rng, 3000)
    e_map, e_sur = np.asarray(m(x)), np.asarray(s(x))
    assert np.corrcoef(e_map, e_sur)[0, 1] >= 0.99
    # Not just correlated: the same energies (RMS error a small part of their spread).
    assert np.sqrt(np.mean((e_map - e_sur) ** 2)) < 0.2 * np.std(e_map)


@pytest.mark.parametrize("case", ["2d", "4d"])
def test_gradients_close_to_the_map(request, case):
    m = request.getfixturevalue(f"map{case}")
    s = request.getfixturevalue(f"sur{case}")
    rng = np.random.default_rng(22)
    x = jnp.asarray(_mix2(rng, 500) if case == "2d" else _mix4(rng, 500), jnp.float32)
    g_map = np.asarray(jax.vmap(jax.grad(m.energy))(x))
    g_sur = np.asarray(jax.vmap(jax.grad(s.energy))(x))
    cos = np.sum(g_map * g_sur, 1) / np.linalg.norm(g_map, axis=1) / np.linalg.norm(g_sur, axis=1)
    rel = np.linalg.norm(g_map - g_sur, axis=1) / np.linalg.norm(g_map, axis=1)
    # The map's gradient is piecewise constant (multilinear cells of a histogram), the
    # surrogate's smooth: close in direction everywhere, within ~1/3 in size typically.
    assert np.median(cos) > 0.95
    assert np.median(rel) < 0.35


def test_pyramid_levels_learnt(map2d, sur2d):
    np.testing.assert_allclose(np.asarray(sur2d.noise_levels), np.asarray(map2d.noise_levels))
    np.testing.assert_allclose(np.asarray(sur2d.scale), np.asarray(map2d.scale))
    x = _mix2(np.random.default_rng(23), 2000)
    levels = np.asarray(map2d.noise_levels)
    for sigma in levels[[len(levels) // 2, -1]]:
        a, b = np.asarray(map2d.energy_at(x, sigma)), np.asarray(sur2d.energy_at(x, sigma))
        assert np.corrcoef(a, b)[0, 1] >= 0.98, sigma
    # sigma = 0 is the map itself; energy() is energy_at(., 0).
    np.testing.assert_array_equal(np.asarray(sur2d.energy_at(x, 0.0)), np.asarray(sur2d(x)))


# --------------------------------------------------------------------------------- uncertainty
@pytest.mark.parametrize("case", ["2d", "4d"])
def test_uncertainty_larger_far_from_the_data(request, case):
    m = request.getfixturevalue(f"map{case}")
    s = request.getfixturevalue(f"sur{case}")
    rng = np.random.default_rng(24)
    near = _mix2(rng, 2000) if case == "2d" else _mix4(rng, 2000)
    far = _far_from_data(m, rng, np.asarray(m(near)))
    u_near = float(np.mean(s.uncertainty(near)))
    u_far = float(np.mean(s.uncertainty(far)))
    # With UNIFORM_FRACTION = 5 % uniform points a probe measured far/near 4-7x (25 %: 1.3-2.3).
    assert u_far > 3.0 * u_near, (u_far, u_near)
    outside = np.asarray(m.hi) + 0.5 * np.asarray(m.scale) * rng.uniform(0.2, 1.0, (200, m.ndim))
    assert float(np.mean(s.uncertainty(outside))) > 3.0 * u_near


@pytest.mark.slow
def test_uniform_fraction_sets_the_far_near_ratio(map2d):
    """More uniform points tie the members together far away: the ratio drops (the trap)."""
    rng = np.random.default_rng(25)
    near = _mix2(rng, 2000)
    far = _far_from_data(map2d, rng, np.asarray(map2d(near)))
    ratios = {}
    for frac in (0.05, 0.5):
        s = tnn.fit(
            map2d,
            jax.random.key(5),
            members=3,
            width=32,
            steps=500,
            n_points=4096,
            pyramid=False,
            uniform_fraction=frac,
            progress=False,
        )
        ratios[frac] = float(np.mean(s.uncertainty(far)) / np.mean(s.uncertainty(near)))
    assert ratios[0.05] > 1.5 * ratios[0.5], ratios


def test_single_member_has_zero_uncertainty(map2d):
    s = tnn.fit(
        map2d,
        jax.random.key(3),
        members=1,
        width=8,
        depth=1,
        steps=100,
        n_points=512,
        pyramid=False,
        progress=False,
    )
    np.testing.assert_array_equal(np.asarray(s.uncertainty(np.zeros((3, 2)))), np.zeros(3))


# ------------------------------------------------------------------------ barrier, pytree, jit
def test_barrier_outside_the_bounds(sur2d):
    edge = jnp.array([4.0, 0.0])
    out1, out2 = jnp.array([4.5, 0.0]), jnp.array([5.5, 0.0])
    assert float(sur2d(out2)) > float(sur2d(out1)) > float(sur2d(edge)) - 1.0
    g = jax.grad(sur2d.energy)(out2)
    assert float(g[0]) > 0  # energy rises outward: the drift -g points back in


def test_pytree_under_jit_vmap_grad(sur2d):
    traces = []

    @jax.jit
    def f(s, x):
        traces.append(1)
        return s(x)

    x = jnp.asarray(_mix2(np.random.default_rng(26), 12).reshape(3, 4, 2), jnp.float32)
    out = f(sur2d, x)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(np.asarray(out), np.asarray(sur2d(x)), rtol=1e-5, atol=1e-5)
    moved = jax.tree.map(lambda a: a, sur2d)  # same structure, new object: no recompilation
    f(moved, x + 0.1)
    assert len(traces) == 1
    v = jax.vmap(lambda z: sur2d.energy(z))(x.reshape(-1, 2))
    np.testing.assert_allclose(np.asarray(v), np.asarray(out).reshape(-1), rtol=1e-5, atol=1e-5)
    g = jax.grad(lambda z: jnp.sum(sur2d(z)))(x)
    assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))
    assert sur2d.ndim == 2 and sur2d.names == ("p", "T") and sur2d.units == ("bar", "K")
    assert sur2d.bounds == ((-4.0, 4.0), (-4.0, 4.0))


def test_wrong_state_shape_is_a_clear_error(sur2d):
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\).*got shape \(5, 3\)"):
        sur2d(np.zeros((5, 3)))


# ----------------------------------------------------------------------------- determinism
def test_training_is_deterministic_for_a_key(map2d):
    kw = dict(members=2, width=8, depth=1, steps=200, n_points=1024, progress=False)
    a = tnn.fit(map2d, jax.random.key(7), **kw)
    b = tnn.fit(map2d, jax.random.key(7), **kw)
    c = tnn.fit(map2d, jax.random.key(8), **kw)
    for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))
    assert a.provenance["loss_log"] == b.provenance["loss_log"]
    assert not np.array_equal(np.asarray(a(np.zeros(2))), np.asarray(c(np.zeros(2))))


def test_loss_log_and_early_stopping(map2d):
    s = tnn.fit(
        map2d,
        jax.random.key(9),
        members=2,
        width=8,
        depth=1,
        steps=5000,
        n_points=512,
        eval_every=50,
        patience=2,
        learning_rate=0.05,
        pyramid=False,
        progress=False,
    )
    p = s.provenance
    log = np.asarray(p["loss_log"])
    assert log.shape[1] == 3 and np.all(np.diff(log[:, 0]) == 50)
    assert p["stopped_early"] and p["steps_run"] < 5000
    assert p["settings"]["members"] == 2 and p["kind"] == "map"


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"members": 0}, "members must be a positive integer, got 0"),
        ({"steps": 1.5}, "steps must be a positive integer"),
        ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
        ({"uniform_fraction": 1.0}, "uniform_fraction must be in"),
        ({"n_points": 10}, "n_points must be an integer >= 64"),
    ],
)
def test_fit_rejects_bad_settings(map2d, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tnn.fit(map2d, jax.random.key(0), **kwargs)


def test_fit_needs_a_map():
    with pytest.raises(TypeError, match="fit needs an EnergyMap"):
        tnn.fit(np.zeros((4, 4)), jax.random.key(0))


# ----------------------------------------------------------------------------- checkpoints
def test_save_load_exact(sur2d, tmp_path):
    path = tmp_path / "sur"
    sur2d.save(path)
    s2 = tnn.load(path, device=jax.devices("cpu")[0])
    x = _mix2(np.random.default_rng(27), 100)
    np.testing.assert_array_equal(np.asarray(s2(x)), np.asarray(sur2d(x)))
    np.testing.assert_array_equal(np.asarray(s2.uncertainty(x)), np.asarray(sur2d.uncertainty(x)))
    sigma = float(sur2d.noise_levels[3])
    np.testing.assert_array_equal(
        np.asarray(s2.energy_at(x, sigma)), np.asarray(sur2d.energy_at(x, sigma))
    )
    for la, lb in zip(jax.tree.leaves(s2), jax.tree.leaves(sur2d), strict=True):
        np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))
    assert jax.tree.structure(s2) == jax.tree.structure(sur2d)
    assert (s2.names, s2.units, s2.kind, s2.bounds) == (
        sur2d.names,
        sur2d.units,
        sur2d.kind,
        sur2d.bounds,
    )
    assert s2.provenance == sur2d.provenance
    # Saving again over an existing checkpoint replaces it.
    s2.save(path)
    np.testing.assert_array_equal(np.asarray(tnn.load(path)(x)), np.asarray(sur2d(x)))


def test_load_refuses_partial_or_mismatched_checkpoints(tmp_path):
    rng = np.random.default_rng(28)
    s = tnn.fit_samples(
        rng.normal(size=(200, 2)),
        jax.random.key(0),
        members=2,
        width=8,
        depth=1,
        steps=50,
        eval_every=50,
        progress=False,
    )
    good = tmp_path / "good"
    s.save(good)

    with pytest.raises(tnn.CheckpointError, match="no such surrogate checkpoint directory"):
        tnn.load(tmp_path / "nowhere")

    def variant(name, edit):
        d = tmp_path / name
        shutil.copytree(good, d)
        edit(d)
        return d

    def rewrite_meta(change):
        def edit(d):
            meta = json.loads((d / "tnn.json").read_text())
            change(meta)
            (d / "tnn.json").write_text(json.dumps(meta))

        return edit

    cases = [
        (variant("nometa", lambda d: (d / "tnn.json").unlink()), "did not finish"),
        (
            variant("nostate", lambda d: shutil.rmtree(d / "state")),
            r"arrays \(state/\) are missing",
        ),
        (
            variant("version", rewrite_meta(lambda m: m.update(version=99))),
            "format version 99",
        ),
        (
            variant("width", rewrite_meta(lambda m: m["config"].update(width=16))),
            "do not match the metadata",
        ),
        (
            variant("members", rewrite_meta(lambda m: m["config"].update(members=3))),
            "do not match the metadata",
        ),
        (variant("garbled", lambda d: (d / "tnn.json").write_text("{not json")), "unreadable"),
        (variant("noconfig", rewrite_meta(lambda m: m.pop("config"))), "incomplete metadata"),
    ]
    for path, match in cases:
        with pytest.raises(tnn.CheckpointError, match=match) as err:
            tnn.load(path)
        assert str(path.name) in str(err.value)
    assert isinstance(tnn.CheckpointError("x"), ValueError)


def test_usable_inside_the_shield(sur2d):
    rng = np.random.default_rng(29)
    held = _mix2(rng, 2000)
    tol = 3.0 * float(np.quantile(np.asarray(sur2d.uncertainty(held)), 0.99))
    sh = energy.Shield.calibrate(sur2d, held, alpha=0.05, tolerance=tol)
    fresh = _mix2(rng, 2000)
    blocked = 1.0 - float(np.mean(np.asarray(sh(fresh).allow)))
    # Split-conformal: false blocks <= alpha on average; 2000 fresh states, MC sd ~ 0.005.
    assert blocked < 0.05 + 3 * np.sqrt(0.05 * 0.95 / 2000) + 1.0 / 2001
    far = np.array([[3.5, -3.5], [-3.5, 3.5], [3.5, 3.5], [-3.5, -3.5]])
    assert not np.any(np.asarray(sh(far).allow))
