"""The checkpoint folder of long runs (`langevin._checkpoint`): atomic steps, verified loads.

The resume of a killed `langevin.sample` is tested in test_checkpoint_resume.py; here the store:
round trip, refusals, damage, and that only what it wrote is ever removed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from langevin._checkpoint import MARKER, Checkpoint, CheckpointError

CONFIG = {"n_chains": 8, "method": "ula", "key": [0, 7], "schedule": {"kind": "noise", "n": 3}}


def state(shift=0.0):
    return {
        "positions": (np.arange(24, dtype=np.float32).reshape(8, 3) + shift),
        "key": np.array([0, 7], np.uint32),
        "diverged": np.array([True, False] * 4),
    }


def test_round_trip_is_bit_exact_and_keeps_the_two_newest(tmp_path):
    ck = Checkpoint(tmp_path / "ck", CONFIG)
    assert ck.load(state()) is None  # nothing saved yet: a fresh start
    for pos in (100, 200, 300):
        ck.save(pos, state(shift=pos))
    steps = sorted(p.name for p in ck.root.iterdir() if p.is_dir())
    assert steps == ["step-000000000200", "step-000000000300"]
    pos, arrays = Checkpoint(tmp_path / "ck", CONFIG).load(state())
    assert pos == 300
    for k, v in state(shift=300).items():
        np.testing.assert_array_equal(arrays[k], v)
        assert arrays[k].dtype == v.dtype


def test_another_configuration_is_refused_and_left_alone(tmp_path):
    ck = Checkpoint(tmp_path / "ck", CONFIG)
    ck.save(10, state())
    before = sorted(p.name for p in ck.root.iterdir())
    other = dict(CONFIG, n_chains=16, schedule={"kind": "noise", "n": 4})
    with pytest.raises(CheckpointError, match="different run configuration") as err:
        Checkpoint(tmp_path / "ck", other)
    assert "n_chains: 16 here, 8 stored" in str(err.value)
    assert "schedule.n: 4 here, 3 stored" in str(err.value)
    assert sorted(p.name for p in ck.root.iterdir()) == before


def test_a_folder_of_other_files_is_refused_untouched(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not empty and holds no groundstate-checkpoint"):
        Checkpoint(tmp_path / "mine", CONFIG)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is not a folder"):
        Checkpoint(tmp_path / "file", CONFIG)


def test_a_damaged_newest_step_falls_back_to_the_one_before(tmp_path):
    ck = Checkpoint(tmp_path / "ck", CONFIG)
    ck.save(1, state(1.0))
    ck.save(2, state(2.0))
    rec = ck.root / "step-000000000002.json"
    meta = json.loads(rec.read_text())
    meta["arrays"]["positions"]["sha256"] = "0" * 64  # the arrays no longer hash to it
    rec.write_text(json.dumps(meta))
    pos, arrays = ck.load(state())
    assert pos == 1
    np.testing.assert_array_equal(arrays["positions"], state(1.0)["positions"])
    # Both damaged: a clear error, not a silent fresh start.
    rec1 = ck.root / "step-000000000001.json"
    rec1.write_text(rec1.read_text().replace('"position": 1', '"position": 5'))
    with pytest.raises(CheckpointError, match="no usable step: step-000000000002: checksum"):
        ck.load(state())


def test_arrays_of_another_shape_are_not_used(tmp_path):
    ck = Checkpoint(tmp_path / "ck", CONFIG)
    ck.save(1, state())
    like = dict(state(), positions=np.zeros((4, 3), np.float32))
    with pytest.raises(CheckpointError, match=r"arrays do not match this run \(positions.shape"):
        ck.load(like)


def test_an_unfinished_save_is_ignored_and_cleaned(tmp_path):
    ck = Checkpoint(tmp_path / "ck", CONFIG)
    ck.save(1, state(1.0))
    ck.save(2, state(2.0))
    (ck.root / "step-000000000002.json").unlink()  # killed before the record was written
    (ck.root / "step-000000000003.orbax-checkpoint-tmp-1234").mkdir()  # killed inside orbax
    ck2 = Checkpoint(tmp_path / "ck", CONFIG)
    assert sorted(p.name for p in ck2.root.iterdir()) == [
        MARKER,
        "step-000000000001",
        "step-000000000001.json",
    ]
    assert ck2.load(state())[0] == 1


def test_remove_deletes_only_what_it_wrote(tmp_path):
    ck = Checkpoint(tmp_path / "new" / "ck", CONFIG)
    ck.save(1, state())
    ck.remove()
    assert not (tmp_path / "new" / "ck").exists() and (tmp_path / "new").is_dir()
    # A folder the user made (empty then) stays, and so does a file put there since.
    (tmp_path / "theirs").mkdir()
    ck = Checkpoint(tmp_path / "theirs", CONFIG)
    ck.save(1, state())
    (tmp_path / "theirs" / "later.txt").write_text("x")
    ck.remove()
    assert [p.name for p in (tmp_path / "theirs").iterdir()] == ["later.txt"]
