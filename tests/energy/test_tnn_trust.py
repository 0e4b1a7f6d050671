"""energy.tnn: normalisation as leaves (issue 11) and save(DIR) that deletes only its own (case 5)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energy
import energy.tnn as tnn
from energy import _shield as shield_module


def _tiny(seed, spread):
    """A small samples surrogate (2 members, width 8): seconds to fit."""
    x = np.random.default_rng(seed).normal(size=(300, 2)) * spread
    return tnn.fit_samples(
        x,
        jax.random.key(seed),
        members=2,
        width=8,
        depth=1,
        steps=40,
        eval_every=40,
        progress=False,
    )


@pytest.fixture(scope="module")
def pair():
    """Two surrogates of one architecture with different data, normalisation and provenance."""
    return _tiny(0, 1.0), _tiny(1, 3.0)


def test_normalisation_is_leaves_not_static(pair):
    a, b = pair
    assert float(a.c_mean) != float(b.c_mean) and float(a.c_std) != float(b.c_std)
    leaves = jax.tree.leaves(a)
    for name in ("c_floor", "c_mean", "c_std"):
        assert any(v is getattr(a, name) for v in leaves), name
    assert jax.tree.structure(a._bare()) == jax.tree.structure(b._bare())


def test_refit_reuses_the_compiled_program(pair):
    a, b = pair
    x = jnp.zeros((5, 2))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def energies(s, x):
        return s.energy(x), s.uncertainty(x)

    ea, _ = energies(a._bare(), x)
    eb, _ = energies(b._bare(), x)  # a second trace would raise AssertionError
    np.testing.assert_allclose(np.asarray(ea), np.asarray(a.energy(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(eb), np.asarray(b.energy(x)), rtol=1e-5, atol=1e-5)
    # The shield over a surrogate: one compiled decision for both.
    Shield = energy.Shield
    Shield(a, threshold=5.0, tolerance=1.0)(x)
    before = shield_module._decide_jit._cache_size()
    Shield(b, threshold=6.0, tolerance=2.0)(x)
    assert shield_module._decide_jit._cache_size() == before


def test_surrogate_from_a_jit_keeps_its_own_provenance(pair):
    a, b = pair
    same = jax.jit(lambda s: s)
    assert same(a).provenance == a.provenance and same(b).provenance == b.provenance
    assert a.provenance != b.provenance


def test_save_load_keeps_normalisation(pair, tmp_path):
    a, _ = pair
    a.save(tmp_path / "s")
    back = tnn.load(tmp_path / "s")
    for name in ("c_floor", "c_mean", "c_std"):
        assert float(getattr(back, name)) == float(getattr(a, name))
    x = np.random.default_rng(5).normal(size=(20, 2))
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(a(x)))


# ------------------------------------------------------------------ case 5: only what it made
def test_save_into_a_users_folder_is_refused_and_touches_nothing_case5(pair, tmp_path):
    a, _ = pair
    folder = tmp_path / "results"
    (folder / "state").mkdir(parents=True)
    (folder / "state" / "my_run.txt").write_text("precious")
    (folder / "notes.md").write_text("mine")
    with pytest.raises(tnn.CheckpointError, match=r"results: not empty and not a groundstate"):
        a.save(folder)
    assert (folder / "state" / "my_run.txt").read_text() == "precious"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.md", "state"]


def test_save_into_a_file_path_is_refused_case5(pair, tmp_path):
    a, _ = pair
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(tnn.CheckpointError, match="a_file: exists and is not a directory"):
        a.save(f)
    assert f.read_text() == "x"


def test_save_replaces_only_its_own_checkpoint_case5(pair, tmp_path):
    a, b = pair
    empty = tmp_path / "empty"
    empty.mkdir()
    a.save(empty)  # an empty folder is adopted: it gets the marker
    assert (empty / ".groundstate-tnn").is_file()
    (empty / "README.txt").write_text("kept")
    b.save(empty)  # ours: replaced
    x = np.zeros((1, 2))
    np.testing.assert_array_equal(np.asarray(tnn.load(empty)(x)), np.asarray(b(x)))
    assert (empty / "README.txt").read_text() == "kept"
    # A checkpoint without the marker (an older save, a copy by hand) is not replaced.
    (empty / ".groundstate-tnn").unlink()
    with pytest.raises(tnn.CheckpointError, match="not a groundstate surrogate directory"):
        a.save(empty)
    np.testing.assert_array_equal(np.asarray(tnn.load(empty)(x)), np.asarray(b(x)))
