"""Shared fixtures for the langevin tests: keys, the Song & Ermon toy map, a unit Gaussian map."""

import jax
import numpy as np
import pytest

import energy


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(scope="module")
def song_ermon_map():
    """Map of 0.2 N((-5,-5), I) + 0.8 N((5,5), I) from 20 000 samples (Song & Ermon 2019)."""
    rng = np.random.default_rng(0)
    n = 20_000
    left = rng.random(n) < 0.2
    x = np.where(left[:, None], rng.normal(-5.0, 1.0, (n, 2)), rng.normal(5.0, 1.0, (n, 2)))
    return energy.EnergyMap.from_samples(x)


@pytest.fixture(scope="module")
def gauss_map():
    """E = |x|^2 / 2 on a 121 x 121 grid over [-6, 6]^2 (spacing 0.1)."""
    g = np.linspace(-6.0, 6.0, 121)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    return energy.EnergyMap.from_grid(0.5 * (xx**2 + yy**2), [(-6.0, 6.0), (-6.0, 6.0)])
