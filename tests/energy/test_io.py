"""The .npz format: round trips, atomic writes, and every bad file named in the issue."""

from __future__ import annotations

import json
import os
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

import energy
from energy import _io


@pytest.fixture(scope="module")
def saved_map(tmp_path_factory):
    rng = np.random.default_rng(7)
    x = np.stack([rng.normal(50, 0.05, 20_000), rng.normal(300, 20, 20_000)], 1)
    m = energy.EnergyMap.from_samples(
        x, bins=(24, 20), names=["frequency", "power"], units=["Hz", "MW"]
    )
    path = tmp_path_factory.mktemp("maps") / "grid.npz"
    m.save(path)
    return m, path


def test_round_trip_is_bit_exact(saved_map):
    m, path = saved_map
    m2 = energy.load(path)
    assert np.array_equal(np.asarray(m.values), np.asarray(m2.values))
    assert m2.names == m.names and m2.units == m.units and m2.bounds == m.bounds
    assert m2.n_samples == m.n_samples == 20_000
    assert m2.provenance["source"] == "samples"
    assert m2.provenance["build_time"] == m.provenance["build_time"]
    x = jnp.asarray([[50.0, 300.0], [50.1, 250.0], [49.0, 0.0]], jnp.float32)
    assert np.array_equal(np.asarray(m(x)), np.asarray(m2(x)))
    assert np.array_equal(np.asarray(m.energy_at(x, 0.1)), np.asarray(m2.energy_at(x, 0.1)))


def test_plain_numpy_can_read_it(saved_map):
    _, path = saved_map
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["energies", "meta"]
        meta = json.loads(str(f["meta"]))
    assert meta["format"] == "groundstate.energy_map" and meta["version"] == 2
    assert meta["names"] == ["frequency", "power"] and meta["units"] == ["Hz", "MW"]
    assert meta["checksum"]["array.energies"].startswith("sha256:")
    assert meta["checksum"]["field.bounds"].startswith("sha256:")
    for key in ("sources", "total_counts", "smoothing_cells", "build_time"):
        assert key in meta["provenance"] or key == "sources"


def test_cubic_round_trip(tmp_path, rng):
    m = energy.EnergyMap.from_grid(rng.normal(size=(5, 6)), [(0, 1), (0, 2)], method="cubic")
    m.save(tmp_path / "c.npz")
    m2 = energy.load(tmp_path / "c.npz")
    assert m2.method == "cubic"
    x = jnp.asarray(rng.uniform(0, 1, (20, 2)), jnp.float32)
    assert np.array_equal(np.asarray(m(x)), np.asarray(m2(x)))


def test_save_is_atomic(tmp_path, saved_map, monkeypatch):
    m, _ = saved_map
    path = tmp_path / "map.npz"
    m.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        m.smoothed(0.1).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["map.npz"]  # no temp file left behind


def _rewrite(path, out, mutate):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")))
    arrays, meta = mutate(arrays, meta)
    with open(out, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
    return out


def _reseal(a, m):
    """Checksums made again after an edit: the file is consistent, its contents are bad."""
    m["checksum"] = _io.field_checksums(m, a)
    return a, m


def _newer(a, m):
    m["version"] = 3
    return _reseal(a, m)


def _nan(a, m):
    e = a["energies"].copy()
    e[0, 0] = np.nan
    a["energies"] = e
    return _reseal(a, m)


def _shape(a, m):
    m["shape"] = [20, 24]
    return a, m


def _tampered(a, m):
    a["energies"] = a["energies"] + 1.0
    return a, m


def _extra(a, m):
    a["weights"] = np.ones(3)
    return _reseal(a, m)


def _no_meta_format(a, m):
    m["format"] = "something.else"
    return a, m


def _bounds(a, m):
    m["bounds"][0] = [1.0, 1.0]
    return _reseal(a, m)


def _int_energies(a, m):
    a["energies"] = a["energies"].astype(np.int64)
    return _reseal(a, m)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_newer, "version 3 is newer"),
        (_nan, "NaN or inf"),
        (_shape, "shape"),
        (_tampered, "checksum"),
        (_extra, "unknown arrays"),
        (_no_meta_format, "format"),
        (_bounds, "axis 0"),
        (_int_energies, "floating point"),
    ],
)
def test_bad_contents_are_refused_with_the_file_name(saved_map, tmp_path, mutate, match):
    _, path = saved_map
    bad = _rewrite(path, tmp_path / "bad.npz", mutate)
    with pytest.raises(energy.MapFileError, match=match) as err:
        energy.load(bad)
    assert str(bad) in str(err.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        energy.load(path)
    with pytest.raises(energy.MapFileError):
        energy.load(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(energy.MapFileError, match="random.npz"):
        energy.load(path)


def test_truncated_file(saved_map, tmp_path):
    _, path = saved_map
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(energy.MapFileError, match=f"cut{cut}.npz"):
            energy.load(bad)


def test_pickled_array(saved_map, tmp_path):
    _, path = saved_map
    bad = tmp_path / "pickled.npz"
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["energies"] = np.array([{"evil": 1}], dtype=object)
    np.savez(bad, **arrays)
    with pytest.raises(energy.MapFileError, match="pickled"):
        energy.load(bad)


def test_a_plain_npy_and_a_zip_without_meta(saved_map, tmp_path):
    npy = tmp_path / "plain.npy"
    np.save(npy, np.zeros((3, 3)))
    with pytest.raises(energy.MapFileError, match="plain.npy"):
        energy.load(npy)
    z = tmp_path / "nometa.npz"
    np.savez(z, energies=np.zeros((3, 3)))
    with pytest.raises(energy.MapFileError, match="no 'meta'"):
        energy.load(z)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(energy.MapFileError, match="other.zip"):
        energy.load(other)


def test_a_directory(tmp_path):
    with pytest.raises(energy.MapFileError, match="directory"):
        energy.load(tmp_path)


# ---------------------------------------------------------------- the stored pyramid (issue 10)
def _small_map(rng, method="linear"):
    x = rng.normal(size=(5000, 3)) * [1.0, 2.0, 0.5]
    return energy.EnergyMap.from_samples(x, bins=(14, 12, 10), method=method)


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_a_built_pyramid_is_stored_and_loaded_without_a_rebuild(tmp_path, rng, monkeypatch, method):
    from energy import _pyramid

    m = _small_map(rng, method)
    x = jnp.asarray(rng.normal(size=(64, 3)), jnp.float32)
    sig = float(m.noise_levels[4])  # builds the pyramid
    before = np.asarray(m.energy_at(x, sig))
    m.save(tmp_path / "with.npz")
    with np.load(tmp_path / "with.npz", allow_pickle=False) as f:
        assert "pyramid" in f.files
        meta = json.loads(str(f["meta"]))
    assert meta["pyramid_level_shapes"] == [list(s) for s in m.level_shapes]
    assert "array.pyramid" in meta["checksum"] and "field.pyramid_level_shapes" in meta["checksum"]

    calls = []
    real = _pyramid.build
    monkeypatch.setattr(_pyramid, "build", lambda *a, **k: calls.append(1) or real(*a, **k))
    m2 = energy.load(tmp_path / "with.npz")
    assert m2._pyramid is not None  # read, not built
    assert np.array_equal(np.asarray(m2.energy_at(x, sig)), before)
    assert all(np.array_equal(a, b) for a, b in zip(m.pyramid, m2.pyramid, strict=True))
    assert calls == []  # loading and reading levels never built the pyramid


def test_a_map_that_never_built_its_pyramid_is_saved_without_it(tmp_path, rng, monkeypatch):
    from energy import _pyramid

    m = _small_map(rng)
    calls = []
    real = _pyramid.build
    monkeypatch.setattr(_pyramid, "build", lambda *a, **k: calls.append(1) or real(*a, **k))
    m.save(tmp_path / "lazy.npz")
    assert calls == []  # saving did not build it
    with np.load(tmp_path / "lazy.npz", allow_pickle=False) as f:
        assert sorted(f.files) == ["energies", "meta"]
        assert "pyramid_level_shapes" not in json.loads(str(f["meta"]))
    m2 = energy.load(tmp_path / "lazy.npz")
    assert m2._pyramid is None and calls == []
    x = jnp.zeros((4, 3), jnp.float32)
    assert np.array_equal(np.asarray(m2.energy_at(x, 0.1)), np.asarray(m.energy_at(x, 0.1)))
    assert len(calls) == 2  # each map built its own, lazily, when asked


def _resealed(src, out, mutate):
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")))
    mutate(arrays, meta)
    meta["checksum"] = _io.field_checksums(meta, arrays)
    with open(out, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
    return out


def _pyr_cut(arrays, meta):
    arrays["pyramid"] = arrays["pyramid"][:-1]


def _pyr_nan(arrays, meta):
    arrays["pyramid"] = arrays["pyramid"].copy()
    arrays["pyramid"][3] = np.nan


def _pyr_shapes(arrays, meta):
    meta["pyramid_level_shapes"][0] = [99, 2, 2]


def _pyr_orphan(arrays, meta):
    del arrays["pyramid"]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_pyr_cut, "1-D float array of"),
        (_pyr_nan, "pyramid values are NaN"),
        (_pyr_shapes, "do not fit a map"),
        (_pyr_orphan, "without a 'pyramid' array"),
    ],
)
def test_a_bad_stored_pyramid_is_refused_even_with_a_fresh_checksum(tmp_path, rng, mutate, match):
    m = _small_map(rng)
    _ = m.noise_levels  # builds the pyramid
    m.save(tmp_path / "with.npz")
    bad = _resealed(tmp_path / "with.npz", tmp_path / "bad.npz", mutate)
    with pytest.raises(energy.MapFileError, match=rf"bad\.npz: .*{match}"):
        energy.load(bad)


def test_an_edited_stored_pyramid_fails_its_checksum(tmp_path, rng):
    m = _small_map(rng)
    _ = m.noise_levels
    m.save(tmp_path / "with.npz")
    with np.load(tmp_path / "with.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["pyramid"] = arrays["pyramid"] + np.float32(0.5)
    with open(tmp_path / "edited.npz", "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(energy.MapFileError, match="edited.npz: checksum mismatch in array pyramid"):
        energy.load(tmp_path / "edited.npz")
