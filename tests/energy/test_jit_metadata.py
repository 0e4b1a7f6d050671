"""Metadata that stays true under jit (issue 11).

A map or shield returned by a jitted function carries ITS OWN n_samples, provenance, alpha and
threshold, not those of the first call with the same shapes; and maps, shields and surrogates
that differ only in metadata (or, for surrogates, in numeric normalisation) still share the
compiled code of their evaluation.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energy
from energy import Shield
from energy import _map as map_module
from energy import _shield as shield_module


@pytest.fixture(scope="module")
def two_maps():
    """Two 2-D maps of the same shape, names and method, with different samples behind them."""
    rng = np.random.default_rng(3)
    a = energy.EnergyMap.from_samples(rng.normal(size=(1000, 2)), bins=12, bounds=[(-9, 9)] * 2)
    b = energy.EnergyMap.from_samples(
        rng.normal(0.5, 1.2, size=(3000, 2)), bins=12, bounds=[(-9, 9)] * 2
    )
    assert a.n_samples == 1000 and b.n_samples == 3000
    return a, b


def test_jitted_function_returns_each_maps_own_metadata(two_maps):
    a, b = two_maps

    @jax.jit
    def shift(m):
        return jax.tree.map(lambda v: v + 0.0, m)

    ra, rb = shift(a), shift(b)
    assert (ra.n_samples, rb.n_samples) == (1000, 3000)
    assert ra.provenance == a.provenance and rb.provenance == b.provenance
    assert ra.provenance != rb.provenance
    np.testing.assert_array_equal(np.asarray(rb.values), np.asarray(b.values))


def test_jitted_function_returns_each_shields_own_metadata(two_maps, tmp_path):
    a, b = two_maps
    rng = np.random.default_rng(4)
    sa = Shield.calibrate(a, rng.normal(size=(200, 2)), alpha=0.05, provenance={"run": "a"})
    sb = Shield.calibrate(
        b, rng.normal(0.5, 1.2, size=(200, 2)), alpha=0.1, provenance={"run": "b"}
    )

    @jax.jit
    def same(sh):
        return sh

    ra, rb = same(sa), same(sb)
    assert float(ra.threshold) == float(sa.threshold)
    assert float(rb.threshold) == float(sb.threshold) != float(sa.threshold)
    assert (ra.alpha, rb.alpha) == (0.05, 0.1)
    assert ra.provenance["run"] == "a" and rb.provenance["run"] == "b"
    assert (ra.energy_fn.n_samples, rb.energy_fn.n_samples) == (1000, 3000)
    # Saved after the jit, the second shield's file tells its own story.
    rb.save(tmp_path / "b.npz")
    back = Shield.load(tmp_path / "b.npz")
    assert back.provenance["run"] == "b" and back.energy_fn.n_samples == 3000
    assert back.alpha == 0.1 and float(back.threshold) == float(sb.threshold)


def test_metadata_does_not_recompile_evaluation(two_maps):
    """Maps (and shields) that differ only in metadata share the compiled evaluation."""
    a, b = two_maps
    x = jnp.zeros((7, 2))
    a.energy(x)
    before = map_module._energy_jit._cache_size()
    b.energy(x)
    a.smoothed(0.05).energy(x)
    assert map_module._energy_jit._cache_size() == before
    sa = Shield(a, threshold=3.0, provenance={"k": 1})
    sb = Shield(b, threshold=4.0, alpha=0.2, provenance={"k": 2})
    sa(x)
    before = shield_module._decide_jit._cache_size()
    sb(x)
    assert shield_module._decide_jit._cache_size() == before


def test_import_energy_loads_neither_flax_nor_optax():
    code = (
        "import sys, energy, ingest\n"
        "heavy = [m for m in ('flax', 'optax', 'orbax', 'energy.tnn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import energy.tnn\n"
        "from energy import tnn\n"
        "assert tnn is energy.tnn and callable(energy.tnn.fit) and 'flax' in sys.modules\n"
        "assert 'tnn' in dir(energy)\n"
    )
    env = {"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr


def test_attribute_access_still_imports_tnn():
    assert energy.tnn.fit is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        energy.nope  # noqa: B018
