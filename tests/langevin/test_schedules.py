"""Schedules: temperature tables and noise-level tables (Song & Ermon's alpha_i)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import langevin

SCHEDULES = [
    (langevin.geometric, lambda s: 8.0 * (0.5 / 8.0) ** s),
    (langevin.linear, lambda s: 8.0 + (0.5 - 8.0) * s),
    (langevin.cosine, lambda s: 0.5 + (8.0 - 0.5) * 0.5 * (1 + np.cos(np.pi * s))),
]


@pytest.mark.parametrize(("make", "rule"), SCHEDULES)
def test_temperature_schedules_follow_their_rule(make, rule):
    sch = make(8.0, 0.5, 11)
    s = np.arange(11) / 10
    np.testing.assert_allclose(sch.table(), rule(s), rtol=1e-6)
    assert float(sch(0)) == pytest.approx(8.0) and float(sch(10)) == pytest.approx(0.5)
    assert float(sch(50)) == pytest.approx(0.5)  # clipped past the end
    # A plain callable of the step, also under jit with a traced step.
    assert float(jax.jit(sch)(jnp.int32(5))) == pytest.approx(rule(0.5), rel=1e-6)
    assert hash(sch) == hash(make(8.0, 0.5, 11))  # hashable: no recompilation


def test_constant_schedule():
    np.testing.assert_allclose(langevin.constant(0.3, 4).table(), 0.3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("geometric", 1.0, 0.0, 10), "geometric"),
        (("linear", -1.0, 0.0, 10), "start"),
        (("linear", 1.0, 0.0, 0), "n_steps"),
        (("spiral", 1.0, 0.0, 10), "kind"),
    ],
)
def test_bad_temperature_schedules(args, message):
    with pytest.raises(ValueError, match=message):
        langevin.TemperatureSchedule(*args)


def test_noise_annealing_steps_follow_song_ermon():
    sch = langevin.NoiseAnnealing(levels=(1.0, 0.5, 0.1), eps=2e-3, steps_per_level=3)
    sigma, h = sch.tables()
    np.testing.assert_allclose(sigma, np.repeat([1.0, 0.5, 0.1], 3))
    # alpha_i = eps * sigma_i^2 / sigma_L^2
    np.testing.assert_allclose(h, np.repeat(2e-3 * np.array([1.0, 0.5, 0.1]) ** 2 / 0.01, 3))
    assert sch.n_steps == 9
    default = langevin.NoiseAnnealing(levels=(0.2, 0.05))
    np.testing.assert_allclose(default.tables()[1][-1], 0.1 * 0.05**2)
    assert default.with_levels((1.0,)) is default
    assert langevin.NoiseAnnealing().with_levels(np.array([0.3, 0.1])).levels == (0.3, 0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(levels=(0.1, 0.5)), "decreasing"),
        (dict(levels=(0.5, -0.1)), "> 0"),
        (dict(levels=()), "non-empty"),
        (dict(eps=0.0), "eps"),
        (dict(steps_per_level=0), "steps_per_level"),
    ],
)
def test_bad_noise_annealing(kwargs, message):
    with pytest.raises(ValueError, match=message):
        langevin.NoiseAnnealing(**kwargs)


def test_noise_annealing_without_levels_has_no_length():
    with pytest.raises(ValueError, match="levels"):
        _ = langevin.NoiseAnnealing().n_steps
