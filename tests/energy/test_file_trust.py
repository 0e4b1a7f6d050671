"""Map and shield files: every field that decides is under the checksum (issue 9, cases 2 and 3).

Each test rewrites a saved file with ONE field changed, as a user editing the JSON by hand (or a
broken copy) would, and checks that loading refuses it with an error naming the file and field.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import energy
from energy import Shield, _io


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A 2-D map and a shield calibrated on it, both saved."""
    d = tmp_path_factory.mktemp("trust")
    rng = np.random.default_rng(0)
    m = energy.EnergyMap.from_samples(
        rng.normal(size=(20_000, 2)),
        bins=16,
        bounds=[(-5, 5), (-5, 5)],
        names=["wind_speed", "power"],
        units=["m/s", "kW"],
    )
    sh = Shield.calibrate(m, rng.normal(size=(200, 2)), alpha=0.05)
    m.save(d / "map.npz")
    sh.save(d / "shield.npz")
    return d, m, sh


def _rewrite(src, out, mutate, reseal=False):
    """Copy a saved file with ``mutate(arrays, meta)`` applied (checksums kept, or made again)."""
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")))
    mutate(arrays, meta)
    if reseal:
        meta["checksum"] = _io.field_checksums(meta, arrays)
    with open(out, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
    return out


def _set(*keys, value):
    def mutate(arrays, meta):
        obj = meta
        for k in keys[:-1]:
            obj = obj[k]
        obj[keys[-1]] = value

    return mutate


def _scale_array(name, factor):
    def mutate(arrays, meta):
        arrays[name] = (arrays[name] * factor).astype(arrays[name].dtype)

    return mutate


# (what is edited, the edit, the field the error must name)
MAP_EDITS = [
    ("bounds", _set("bounds", value=[[-50.0, 50.0], [-5.0, 5.0]]), "bounds"),
    ("method", _set("method", value="cubic"), "method"),
    ("noise_levels", _set("noise_levels", value=[0.9, 0.5, 0.1]), "noise_levels"),
    ("names", _set("names", value=["power", "wind_speed"]), "names"),
    ("units", _set("units", value=["km/h", "kW"]), "units"),
    ("n_samples", _set("n_samples", value=7), "n_samples"),
    ("provenance", _set("provenance", "smoothing_cells", value=[0.0, 0.0]), "provenance"),
    ("energies", _scale_array("energies", 0.5), "energies"),
]


@pytest.mark.parametrize(("what", "mutate", "field"), MAP_EDITS, ids=[e[0] for e in MAP_EDITS])
def test_edited_map_field_is_refused_case3(saved, tmp_path, what, mutate, field):
    d, _, _ = saved
    bad = _rewrite(d / "map.npz", tmp_path / f"edited_{what}.npz", mutate)
    with pytest.raises(energy.MapFileError, match="checksum") as err:
        energy.load(bad)
    msg = str(err.value)
    assert str(bad) in msg and field in msg


SHIELD_EDITS = [
    ("threshold", _set("shield", "threshold", value=1e6), "shield.threshold"),
    ("alpha", _set("shield", "alpha", value=0.5), "shield.alpha"),
    ("rank", _set("shield", "rank", value=1), "shield.rank"),
    ("shield_bounds", _set("shield", "bounds", value=[[-1e9, 1e9], [-1e9, 1e9]]), "shield.bounds"),
    ("map_bounds", _set("bounds", value=[[-50.0, 50.0], [-5.0, 5.0]]), "bounds"),
    ("method", _set("method", value="cubic"), "method"),
    ("scores", _scale_array("shield_scores", 10.0), "shield_scores"),
    ("energies", _scale_array("energies", 0.1), "energies"),
]


@pytest.mark.parametrize(
    ("what", "mutate", "field"), SHIELD_EDITS, ids=[e[0] for e in SHIELD_EDITS]
)
def test_edited_shield_field_is_refused_case2(saved, tmp_path, what, mutate, field):
    d, _, _ = saved
    bad = _rewrite(d / "shield.npz", tmp_path / f"edited_{what}.npz", mutate)
    with pytest.raises(energy.MapFileError, match="checksum") as err:
        Shield.load(bad)
    msg = str(err.value)
    assert str(bad) in msg and field in msg


def test_removed_or_added_field_is_refused(saved, tmp_path):
    d, _, _ = saved

    def drop_bounds(arrays, meta):
        del meta["shield"]["bounds"]

    bad = _rewrite(d / "shield.npz", tmp_path / "dropped.npz", drop_bounds)
    with pytest.raises(energy.MapFileError, match=r"dropped\.npz.*shield\.bounds"):
        Shield.load(bad)

    def add_field(arrays, meta):
        meta["shield"]["tolerance"] = 1e9

    bad = _rewrite(d / "shield.npz", tmp_path / "added.npz", add_field)
    with pytest.raises(energy.MapFileError, match=r"added\.npz.*shield"):
        Shield.load(bad)


def test_threshold_is_derived_again_on_load_case2(saved, tmp_path):
    """Even with the checksums made again, a threshold not given by the scores is refused."""
    d, _, sh = saved
    bad = _rewrite(
        d / "shield.npz", tmp_path / "resealed.npz", _set("shield", "threshold", value=1e6), True
    )
    with pytest.raises(energy.MapFileError, match=r"resealed\.npz.*threshold 1000000\.0"):
        Shield.load(bad)
    bad = _rewrite(
        d / "shield.npz", tmp_path / "alpha.npz", _set("shield", "alpha", value=0.5), True
    )
    with pytest.raises(energy.MapFileError, match=r"alpha\.npz.*rank"):
        Shield.load(bad)
    # The true file loads, and decides as the shield that was saved.
    back = Shield.load(d / "shield.npz")
    assert float(back.threshold) == float(sh.threshold)


def test_impossible_state_stays_blocked_after_editing_the_threshold_case2(saved, tmp_path):
    """The scenario of the issue: threshold edited to 1e6 used to allow every state."""
    d, m, sh = saved
    impossible = np.array([[4.5, -4.5]])
    assert not bool(sh.allow(impossible)[0])
    bad = _rewrite(d / "shield.npz", tmp_path / "t.npz", _set("shield", "threshold", value=1e6))
    with pytest.raises(energy.MapFileError, match="shield.threshold"):
        Shield.load(bad)


def test_save_refuses_a_threshold_its_scores_do_not_give(saved, tmp_path):
    _, m, sh = saved
    odd = Shield(m, threshold=1e6, scores=sh.scores, alpha=0.05)
    with pytest.raises(ValueError, match="not the one its scores give"):
        odd.save(tmp_path / "odd.npz")
    assert not (tmp_path / "odd.npz").exists()
    # Without alpha the threshold is an explicit one: it saves, loads and keeps its p-values.
    Shield(m, threshold=4.0, scores=sh.scores).save(tmp_path / "explicit.npz")
    back = Shield.load(tmp_path / "explicit.npz")
    assert float(back.threshold) == 4.0 and back.n_calibration == sh.n_calibration


def test_format_version_1_is_refused(saved, tmp_path):
    """Version 1 covered only the energies: it is refused with a reason, not trusted."""
    d, _, _ = saved

    def to_v1(arrays, meta):
        meta["version"] = 1
        meta["checksum"] = _io.checksum(arrays["energies"])

    for name, load in (("map.npz", energy.load), ("shield.npz", Shield.load)):
        bad = _rewrite(d / name, tmp_path / f"v1_{name}", to_v1)
        with pytest.raises(energy.MapFileError, match=r"v1_.*version 1 is refused"):
            load(bad)


def test_checksums_cover_every_field_and_array(saved):
    d, _, _ = saved
    with np.load(d / "shield.npz", allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        arrays = sorted(k for k in f.files if k != "meta")
    keys = set(meta["checksum"])
    for k, v in meta.items():
        if k == "checksum":
            continue
        assert f"field.{k}" in keys
        if isinstance(v, dict):
            assert {f"field.{k}.{s}" for s in v} <= keys
    assert {f"array.{a}" for a in arrays} <= keys


# ---------------------------------------------------------------- version 1 upgrade (issue 10)
def _to_v1(arrays, meta):
    """What a version 1 file held: the same fields, one checksum over the energies only."""
    meta["version"] = 1
    meta["checksum"] = _io.checksum(arrays["energies"])


def test_load_names_the_one_call_that_upgrades_a_v1_map(saved, tmp_path):
    d, _, _ = saved
    v1 = _rewrite(d / "map.npz", tmp_path / "old.npz", _to_v1)
    with pytest.raises(energy.MapFileError) as err:
        energy.load(v1)
    msg = str(err.value)
    assert msg.startswith(str(v1)) and "version 1 is refused" in msg
    assert f"energy.upgrade({str(v1)!r}, NEW_PATH)" in msg


def test_upgrade_writes_v2_and_leaves_the_original(saved, tmp_path):
    import hashlib

    d, m, _ = saved
    v1 = _rewrite(d / "map.npz", tmp_path / "old.npz", _to_v1)
    before = hashlib.sha256(v1.read_bytes()).hexdigest()
    out = energy.upgrade(v1, tmp_path / "new.npz")
    assert hashlib.sha256(v1.read_bytes()).hexdigest() == before  # untouched
    with pytest.raises(energy.MapFileError, match="version 1 is refused"):
        energy.load(v1)  # still refused: the upgrade is explicit, once
    m2 = energy.load(out)
    assert np.array_equal(np.asarray(m2.values), np.asarray(m.values))
    assert m2.bounds == m.bounds and m2.names == m.names and m2.units == m.units
    up = m2.provenance["upgraded_from"]
    assert up["version"] == 1 and up["file"].endswith("old.npz")
    assert up["energies_checksum"] == _io.checksum(np.asarray(m.values))
    # The new file is version 2 with every field under its checksum: an edit is now caught.
    edited = _rewrite(out, tmp_path / "edited.npz", _set("bounds", value=[[-50.0, 50.0], [-5, 5]]))
    with pytest.raises(energy.MapFileError, match="checksum mismatch in metadata field bounds"):
        energy.load(edited)


def test_upgrade_refuses_what_it_should(saved, tmp_path):
    d, _, _ = saved
    v1 = _rewrite(d / "map.npz", tmp_path / "old.npz", _to_v1)

    # Energies changed after saving: the version 1 checksum catches it.
    def tamper(arrays, meta):
        _to_v1(arrays, meta)
        arrays["energies"] = arrays["energies"] * np.float32(0.5)

    bad = _rewrite(d / "map.npz", tmp_path / "tampered.npz", tamper)
    with pytest.raises(
        energy.MapFileError, match=r"tampered\.npz: checksum mismatch in array energies"
    ):
        energy.upgrade(bad, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
    # Never overwrites, not even a file it made.
    (tmp_path / "taken.npz").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="taken.npz"):
        energy.upgrade(v1, tmp_path / "taken.npz")
    assert (tmp_path / "taken.npz").read_bytes() == b"mine"
    # A version 2 file needs none; a v1 shield is not a map.
    with pytest.raises(energy.MapFileError, match="version 2 needs no upgrade"):
        energy.upgrade(d / "map.npz", tmp_path / "y.npz")
    shield_v1 = _rewrite(d / "shield.npz", tmp_path / "old_shield.npz", _to_v1)
    with pytest.raises(energy.MapFileError, match=r"old_shield\.npz: format is"):
        energy.upgrade(shield_v1, tmp_path / "z.npz")

    # A v1 map whose contents are broken is refused like load refuses it.
    def with_nan(arrays, meta):
        e = arrays["energies"].copy()
        e[0, 0] = np.nan
        arrays["energies"] = e
        _to_v1(arrays, meta)

    nan = _rewrite(d / "map.npz", tmp_path / "nan.npz", with_nan)
    with pytest.raises(energy.MapFileError, match=r"nan\.npz: 1 energies are NaN"):
        energy.upgrade(nan, tmp_path / "w.npz")
