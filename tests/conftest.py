"""Shared fixtures: fixed keys and seeded generators; CPU only."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The command line turns on a persistent compilation cache in ~/.cache; tests stay hermetic.
os.environ.setdefault("GROUNDSTATE_COMPILATION_CACHE", "off")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def key():
    """A fixed PRNG key."""
    return jax.random.key(0)


@pytest.fixture
def rng():
    """A seeded NumPy generator."""
    return np.random.default_rng(20261125)
