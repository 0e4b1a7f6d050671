"""`langevin.sweep`: a batch of settings in one program equals separate runs; ranking; shield."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import langevin


def quad(x):
    return 0.5 * x @ x


def objective(x):
    return 0.5 * jnp.sum((x - jnp.array([2.0, -1.0])) ** 2)


SETTINGS = {"weight": [0.0, 1.0, 3.0], "temperature": [0.5, 0.2, 0.0]}


@pytest.fixture(scope="module")
def swept():
    return langevin.sweep(
        quad,
        jax.random.key(3),
        SETTINGS,
        n_chains=64,
        n_best=5,
        objective=objective,
        init=jnp.zeros(2),
        n_steps=200,
        progress=False,
    )


def test_sweep_equals_separate_runs(swept):
    for b, (w, t) in enumerate(zip(SETTINGS["weight"], SETTINGS["temperature"], strict=True)):
        # both at their defaults: "auto" (T > 0: ensemble adaptation; T = 0: annealed descent)
        res = langevin.sample(
            quad,
            swept.keys[b],
            n_chains=64,
            n_steps=200,
            init=jnp.zeros(2),
            objective=objective,
            weight=w,
            temperature=t,
            progress=False,
        )
        order = np.argsort(np.asarray(res.total_energies), kind="stable")[:5]
        np.testing.assert_allclose(
            swept.positions[b], np.asarray(res.positions)[order], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            swept.total_energies[b], np.asarray(res.total_energies)[order], rtol=1e-5, atol=1e-6
        )


def test_sweep_does_not_temper_plain_functions():
    """A plain function at T > 0 with schedule="auto" takes sample's ensemble path in a sweep
    too (no tempering): setting b equals `sample` with key b, and a tempered run differs."""
    kw = dict(n_chains=64, init=jnp.zeros(2), n_steps=30, n_warmup=40, progress=False)
    sw = langevin.sweep(quad, jax.random.key(5), {"temperature": [0.5, 2.0]}, n_best=64, **kw)
    for b, t in enumerate([0.5, 2.0]):
        res = langevin.sample(quad, sw.keys[b], temperature=t, **kw)
        assert res.schedule.startswith("ensemble adaptation") and res.n_anneal == 0
        order = np.argsort(np.asarray(res.total_energies), kind="stable")
        np.testing.assert_array_equal(sw.positions[b], np.asarray(res.positions)[order])
        tempered = langevin.sample(
            quad, sw.keys[b], temperature=t, schedule=langevin.geometric(10 * t, t, 500), **kw
        )
        assert not np.allclose(np.sort(sw.energies[b]), np.sort(tempered.energies))


def test_sweep_ranks_by_total_energy(swept):
    assert swept.positions.shape == (3, 5, 2)
    assert np.all(np.diff(swept.total_energies, axis=1) >= 0)
    assert np.all(swept.valid)
    # At T = 0 with lam = 3 every chain ends at the optimum lam c / (1 + lam).
    np.testing.assert_allclose(swept.positions[2], np.tile([1.5, -0.75], (5, 1)), atol=1e-3)
    np.testing.assert_allclose(swept.settings["weight"], SETTINGS["weight"])


def test_sweep_over_fixed_values():
    fixed = np.array([[np.nan, 0.5], [np.nan, -0.5]])
    res = langevin.sweep(
        quad,
        jax.random.key(0),
        {"fixed": fixed},
        n_chains=32,
        n_best=4,
        init=jnp.zeros(2),
        n_steps=50,
        temperature=0.0,
        progress=False,
    )
    np.testing.assert_array_equal(
        res.positions[:, :, 1], np.array([[0.5] * 4, [-0.5] * 4], np.float32)
    )
    np.testing.assert_allclose(res.positions[:, :, 0], 0.0, atol=1e-3)


@dataclasses.dataclass
class Decision:
    allow: np.ndarray


def test_shield_filters_designs():
    # A shield that blocks the half-plane x0 > 0: allowed designs rank first, blocked ones last.
    def shield(positions):
        return Decision(allow=np.asarray(positions)[:, 0] <= 0.0)

    res = langevin.sweep(
        quad,
        jax.random.key(1),
        {"temperature": [1.0]},
        n_chains=200,
        n_best=10,
        shield=shield,
        init=jnp.zeros(2),
        n_steps=50,
        progress=False,
    )
    assert 0 < res.n_allowed[0] < 200
    assert np.all(res.valid[0]) and np.all(res.positions[0, :, 0] <= 0.0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "non-empty"),
        ({"speed": [1.0]}, "unknown"),
        ({"weight": [1.0, 2.0], "temperature": [1.0]}, "same number"),
        ({"fixed": [1.0, 2.0]}, "dimension"),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        langevin.sweep(quad, jax.random.key(0), settings, n_chains=8, init=jnp.zeros(2))


def test_bad_n_best():
    with pytest.raises(ValueError, match="n_best"):
        langevin.sweep(
            quad, jax.random.key(0), {"weight": [1.0]}, n_chains=8, n_best=9, init=jnp.zeros(2)
        )
