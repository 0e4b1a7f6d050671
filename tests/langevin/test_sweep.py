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
        # sweep's "auto" on a plain function is temperature annealing (sample's "auto" adapts
        # over the ensemble instead, docs/langevin.md): name the schedule for the separate run.
        sch = langevin.geometric(10 * t, t, 500) if t > 0 else langevin.linear(1.0, 0.0, 500)
        res = langevin.sample(
            quad,
            swept.keys[b],
            n_chains=64,
            n_steps=200,
            init=jnp.zeros(2),
            objective=objective,
            weight=w,
            temperature=t,
            schedule=sch,
            progress=False,
        )
        order = np.argsort(np.asarray(res.total_energies), kind="stable")[:5]
        np.testing.assert_allclose(
            swept.positions[b], np.asarray(res.positions)[order], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            swept.total_energies[b], np.asarray(res.total_energies)[order], rtol=1e-5, atol=1e-6
        )


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
