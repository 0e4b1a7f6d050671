"""`langevin.sample`: annealing on maps, temperature, constraints, objective, determinism, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energy
import langevin
from langevin import _progress, _runner


def quad(x):
    return 0.5 * x @ x


def weight_of_upper_mode(positions):
    return float(np.mean(np.asarray(positions).sum(axis=1) > 0))


@pytest.fixture(scope="module")
def uniform_init():
    """4000 chains uniform on [-8, 8]^2, as in Song & Ermon's toy."""
    return jax.random.uniform(jax.random.key(42), (4000, 2), minval=-8.0, maxval=8.0)


def test_song_ermon_annealed_defaults_recover_the_weights(song_ermon_map, uniform_init):
    res = langevin.sample(
        song_ermon_map, jax.random.key(1), n_chains=4000, init=uniform_init, progress=False
    )
    assert res.schedule.startswith("noise annealing")
    # 4000 chains: standard error sqrt(0.8 * 0.2 / 4000) = 0.006; the contract asks for 0.03.
    assert abs(weight_of_upper_mode(res.positions) - 0.8) < 0.03
    assert res.n_diverged == 0
    upper = np.asarray(res.positions)[np.asarray(res.positions).sum(1) > 0]
    np.testing.assert_allclose(upper.mean(axis=0), [5.0, 5.0], atol=0.1)


def test_song_ermon_fixed_temperature_ula_does_not(song_ermon_map, uniform_init):
    # Without annealing each chain falls into the basin it starts in: about half go each way.
    res = langevin.sample(
        song_ermon_map,
        jax.random.key(1),
        n_chains=4000,
        init=uniform_init,
        schedule=None,
        progress=False,
    )
    assert abs(weight_of_upper_mode(res.positions) - 0.8) > 0.2


def test_default_init_is_uniform_in_the_map_bounds(song_ermon_map):
    res = langevin.sample(song_ermon_map, jax.random.key(2), n_chains=4000, progress=False)
    assert abs(weight_of_upper_mode(res.positions) - 0.8) < 0.03
    p = np.asarray(res.positions)
    assert np.all(p >= np.asarray(song_ermon_map.lo)) and np.all(p <= np.asarray(song_ermon_map.hi))


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_unit_gaussian_map_at_temperature_t_has_std_sqrt_t(gauss_map, temperature, key):
    n = 4000
    res = langevin.sample(gauss_map, key, n_chains=n, temperature=temperature, progress=False)
    std = np.asarray(res.positions).std(axis=0)
    se = np.sqrt(temperature) / np.sqrt(2 * n)  # standard error of a std from n chains
    np.testing.assert_allclose(std, np.sqrt(temperature), atol=4 * se)


def test_unit_gaussian_function_defaults(key):
    # A plain function: no tempering, step and preconditioner adapted over the ensemble; ULA's
    # step bounds its variance inflation to 1 / (1 - 0.05) (sd +2.6%, docs/langevin.md).
    n = 4000
    res = langevin.sample(quad, key, n_chains=n, init=jnp.zeros(2), progress=False)
    assert res.schedule.startswith("ensemble adaptation")
    std = np.asarray(res.positions).std(axis=0)
    np.testing.assert_allclose(std, 1.0, atol=4 / np.sqrt(2 * n) + 0.026)


def test_mala_defaults_adapt_the_step_and_record_diagnostics(gauss_map, key):
    res = langevin.sample(gauss_map, key, n_chains=1000, method="mala", thin=10, progress=False)
    acc = float(np.mean(np.asarray(res.acceptance)))
    assert 0.4 < acc < 0.8  # adapted towards 0.574
    assert res.n_warmup == 200
    np.testing.assert_allclose(np.asarray(res.positions).std(axis=0), 1.0, atol=0.1)
    # Trajectory every 10 steps of the 1000 sampling steps, its energy trace, R-hat and ESS.
    assert res.trajectory.shape == (100, 1000, 2)
    assert res.energy_trace.shape == (100, 1000)
    np.testing.assert_allclose(res.trajectory[-1], res.positions)
    np.testing.assert_allclose(res.energy_trace[-1], res.energies, rtol=1e-6)
    assert res.rhat.shape == (2,) and np.all(res.rhat < 1.05)
    assert res.ess.shape == (2,) and np.all(res.ess > 1000)
    assert res.energy_rhat < 1.05


def test_temperature_schedules_run(key):
    for sch in [
        langevin.geometric(5.0, 1.0, 50),
        langevin.linear(5.0, 1.0, 50),
        langevin.cosine(5.0, 1.0, 50),
    ]:
        res = langevin.sample(
            quad,
            key,
            n_chains=64,
            n_steps=50,
            init=jnp.zeros(2),
            schedule=sch,
            step_size=0.05,
            progress=False,
        )
        assert res.n_anneal == 50 and np.all(np.isfinite(np.asarray(res.positions)))


def test_cooling_to_zero_finds_the_minimum(key):
    e = lambda x: jnp.sum((x - 1.5) ** 2) + 0.5 * jnp.sin(5 * x[0]) ** 2  # noqa: E731
    res = langevin.sample(
        e, key, n_chains=32, n_steps=200, init=jnp.zeros(2), temperature=0.0, progress=False
    )
    np.testing.assert_allclose(np.asarray(res.positions)[:, 1], 1.5, atol=1e-3)


def test_bounds_keep_chains_inside(key):
    box = [(-0.5, 0.2), (1.0, 3.0)]
    for method in ("ula", "mala"):
        res = langevin.sample(
            quad,
            key,
            n_chains=500,
            n_steps=200,
            init=jnp.array([0.0, 2.0]),
            bounds=box,
            step_size=0.5,
            schedule=None,
            method=method,
            progress=False,
        )
        p = np.asarray(res.positions)
        assert np.all(p[:, 0] >= -0.5) and np.all(p[:, 0] <= 0.2)
        assert np.all(p[:, 1] >= 1.0) and np.all(p[:, 1] <= 3.0)
        assert p[:, 1].min() < 1.1  # they do reach the face nearest the mode


def test_fixed_variables_stay_fixed_and_the_rest_is_conditional(key):
    # Correlated Gaussian (rho = 0.8): x1 | x0 = a ~ N(rho a, 1 - rho^2).
    rho, a, n = 0.8, 1.5, 4000
    prec = jnp.asarray(np.linalg.inv([[1.0, rho], [rho, 1.0]]))
    res = langevin.sample(
        lambda x: 0.5 * x @ prec @ x,
        key,
        n_chains=n,
        init=jnp.zeros(2),
        fixed={0: a},
        method="mala",
        progress=False,
    )
    p = np.asarray(res.positions)
    assert np.all(p[:, 0] == np.float32(a))
    assert abs(p[:, 1].mean() - rho * a) < 4 * np.sqrt((1 - rho**2) / n)
    assert abs(p[:, 1].var() - (1 - rho**2)) < 4 * (1 - rho**2) * np.sqrt(2 / n)


def test_fixed_by_name_on_a_map(gauss_map, key):
    res = langevin.sample(gauss_map, key, n_chains=200, fixed={"x1": -1.0}, progress=False)
    assert np.all(np.asarray(res.positions)[:, 1] == -1.0)


def test_objective_with_weight_shifts_the_optimum(key):
    # E = |x|^2/2, f = |x - c|^2/2: E + lam f is minimal at lam c / (1 + lam).
    c, lam = jnp.array([2.0, -1.0]), 3.0
    res = langevin.sample(
        quad,
        key,
        n_chains=16,
        n_steps=300,
        init=jnp.zeros(2),
        objective=lambda x: 0.5 * jnp.sum((x - c) ** 2),
        weight=lam,
        temperature=0.0,
        progress=False,
    )
    np.testing.assert_allclose(res.positions, np.tile(lam * c / (1 + lam), (16, 1)), atol=1e-4)
    np.testing.assert_allclose(res.total_energies, res.energies + lam * res.objective, rtol=1e-6)


def test_same_key_same_result_and_no_recompilation(song_ermon_map):
    kw = dict(n_chains=256, n_steps=100, progress=False)
    a = langevin.sample(song_ermon_map, jax.random.key(7), **kw)
    size = _runner.compiled._cache_size()
    b = langevin.sample(song_ermon_map, jax.random.key(7), **kw)
    c = langevin.sample(song_ermon_map, jax.random.key(8), **kw)
    # A different map of the same shape is a new argument, not a new program.
    other = energy.EnergyMap.from_samples(np.random.default_rng(1).normal(size=(5000, 2)))
    langevin.sample(other, jax.random.key(7), **kw)
    assert _runner.compiled._cache_size() == size
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.energies, b.energies)
    assert not np.array_equal(np.asarray(a.positions), np.asarray(c.positions))


def test_no_trajectory_unless_asked(gauss_map, key):
    plain = langevin.sample(gauss_map, key, n_chains=8, n_steps=50, progress=False)
    assert plain.trajectory is None and plain.energy_trace is None and plain.acceptance is None
    with pytest.raises(ValueError, match="thin"):
        _ = plain.rhat


def test_non_finite_energies_are_flagged_not_returned(key):
    # E = -2 x0 + sqrt(3 - x0): the drift pushes chains past x0 = 3 where E is NaN.
    e = lambda x: -2.0 * x[0] + jnp.sqrt(3.0 - x[0]) + 0.5 * x[1] ** 2  # noqa: E731
    res = langevin.sample(
        e,
        key,
        n_chains=64,
        n_steps=200,
        init=jnp.zeros(2),
        step_size=0.05,
        schedule=None,
        progress=False,
    )
    assert res.n_diverged == 64
    assert np.all(np.isfinite(np.asarray(res.positions)))
    good = langevin.sample(
        quad,
        key,
        n_chains=64,
        n_steps=20,
        init=jnp.zeros(2),
        step_size=0.05,
        schedule=None,
        progress=False,
    )
    assert good.n_diverged == 0


def test_progress_bar_does_not_change_results(key, capsys):
    kw = dict(n_chains=32, n_steps=300, init=jnp.zeros(2), step_size=0.1, schedule=None)
    a = langevin.sample(quad, key, progress=True, **kw)
    b = langevin.sample(quad, key, progress=False, **kw)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert "langevin" in capsys.readouterr().err


def test_progress_is_off_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert _progress.progress_default() is False


BAD_INPUTS = [
    (dict(n_chains=0), "n_chains"),
    (dict(method="hmc"), "method"),
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(init=np.array([[0.0, np.nan]] * 4)), "NaN"),
    (dict(init=np.zeros((3, 2))), "init must have shape"),
    (dict(init=np.zeros(3)), "d = 3"),
    (dict(schedule="fast"), "schedule"),
    (dict(step_size=-0.1), "step_size"),
    (dict(thin=5000), "thin"),
    (dict(fixed={"nope": 1.0}), "unknown variable"),
    (dict(fixed={5: 1.0}), "axis"),
    (dict(bounds=[(0.0, 1.0)]), "bounds"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_INPUTS)
def test_bad_input_raises_a_clear_error(gauss_map, key, kwargs, message):
    kw = dict(n_chains=4, progress=False)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=message):
        langevin.sample(gauss_map, key, **kw)


def test_bad_targets(key):
    with pytest.raises(ValueError, match="pass init"):
        langevin.sample(quad, key, n_chains=4)
    with pytest.raises(ValueError, match="scalar"):
        langevin.sample(lambda x: x**2, key, n_chains=4, init=jnp.zeros(2))
    with pytest.raises(TypeError, match="callable"):
        langevin.sample(np.zeros(3), key, n_chains=4, init=jnp.zeros(2))
    with pytest.raises(ValueError, match="not finite at init"):
        langevin.sample(lambda x: jnp.log(x[0]), key, n_chains=4, init=-jnp.ones(2))
    with pytest.raises(ValueError, match="NoiseAnnealing"):
        langevin.sample(
            quad, key, n_chains=4, init=jnp.zeros(2), schedule=langevin.NoiseAnnealing()
        )


class Double:
    """A test double for the target protocol: a Gaussian with box, scale, spacing, noise levels."""

    ndim = 2
    lo = np.array([-4.0, -4.0])
    hi = np.array([4.0, 4.0])
    scale = hi - lo
    spacing = np.array([0.1, 0.1])
    noise_levels = np.array([0.3, 0.1, 0.03])

    def __call__(self, x):
        return 0.5 * jnp.sum(x**2, axis=-1)

    def energy_at(self, x, sigma):
        # exp(-E) convolved with N(0, (sigma * scale)^2): variance 1 + (sigma * 8)^2 per axis.
        v = 1.0 + (sigma * 8.0) ** 2
        return 0.5 * jnp.sum(x**2, axis=-1) / v


def test_duck_typed_target_protocol(key):
    res = langevin.sample(Double(), key, n_chains=2000, progress=False)
    assert res.schedule.startswith("noise annealing: 3 levels")
    p = np.asarray(res.positions)
    assert np.all(np.abs(p) <= 4.0)
    np.testing.assert_allclose(p.std(axis=0), 1.0, atol=0.07)
