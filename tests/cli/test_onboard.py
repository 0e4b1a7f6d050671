"""Onboarding: the split, resuming, --force, --objective, refusals, and the shipped data."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import groundstate
from groundstate import _onboard, cli
from groundstate._cmd_demo import data_path

sys.path.insert(0, str(Path(__file__).parent))
from test_capsule import SMALL, write_lake  # noqa: E402

OBJECTIVE = '''
import jax.numpy as jnp

def high_b(x):
    """Prefer a large second variable."""
    return -x[1] / 10.0
'''


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted onboarding from the command line, with a user objective."""
    root = tmp_path_factory.mktemp("onboard")
    lake = write_lake(root / "lake")
    (root / "mods").mkdir()
    (root / "mods" / "my_objective.py").write_text(OBJECTIVE)
    sys.path.insert(0, str(root / "mods"))
    try:
        args = ["onboard", str(lake), "--var", "a", "--var", "b", "--bins", "16"]
        args += ["--alpha", "0.05", "--chains", "16", "--workers", "1", "--no-plots"]
        args += ["--objective", "my_objective:high_b", "-o", str(root / "ref.capsule")]
        assert cli.main(args) == 0
    finally:
        sys.path.remove(str(root / "mods"))
    return root, lake


def test_objective_is_recorded_and_drives_the_table(reference):
    root, _ = reference
    c = groundstate.load(root / "ref.capsule")
    assert c.meta["discovery"]["objective"] == "my_objective:high_b"
    assert c.meta["discovery"]["goal"] == "objective"
    rows = (root / "ref.capsule" / "discovery.csv").read_text().splitlines()
    assert rows[0] == "a,b,energy,allowed,chains_allowed"
    found = [r.split(",") for r in rows[1:] if r.split(",")[1]]
    assert found and all(r[3] == "true" for r in found)
    x = np.array([[float(r[0]), float(r[1])] for r in found])
    assert np.asarray(c.shield(x).allow).all()


def test_existing_output_needs_force_and_a_capsule(reference, tmp_path, capsys):
    root, lake = reference
    args = ["onboard", str(lake), "--var", "a", "--var", "b", "-o"]
    assert cli.main([*args, str(root / "ref.capsule")]) == 1
    assert "exists" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    assert cli.main([*args, str(mine), "--force"]) == 1
    assert "not a capsule" in capsys.readouterr().err
    assert (mine / "keep.txt").read_text() == "precious"
    # A folder where the work folder would go, not made by groundstate: refused, untouched.
    (tmp_path / "x.capsule.onboard").mkdir()
    (tmp_path / "x.capsule.onboard" / "data.bin").write_bytes(b"1")
    assert cli.main([*args, str(tmp_path / "x.capsule")]) == 1
    assert "not an onboarding work folder" in capsys.readouterr().err
    assert (tmp_path / "x.capsule.onboard" / "data.bin").exists()


class _Stop(KeyboardInterrupt):
    pass


def test_interrupted_onboarding_resumes_to_the_same_capsule(reference, tmp_path):
    import shutil

    root, lake = reference
    out = tmp_path / "ab.capsule"
    shutil.copytree(root / "ref.capsule", out)  # a valid capsule, replaced with force

    def stop_after_ingest(line: str):
        if line.startswith("1/4"):
            raise _Stop

    kw = dict(output=out, force=True, plots=False, **SMALL)
    with pytest.raises(_Stop):
        groundstate.onboard(lake, ["a", "b"], say=stop_after_ingest, **kw)
    work = tmp_path / "ab.capsule.onboard"
    assert (work / "map.npz").exists() and (work / "split.json").exists()
    groundstate.verify(out)  # the old capsule is untouched meanwhile
    lines: list[str] = []
    c = groundstate.onboard(lake, ["a", "b"], say=lines.append, **kw)
    assert any(ln.startswith("resuming") for ln in lines)
    assert not work.exists()
    ref = groundstate.load(root / "ref.capsule")
    np.testing.assert_array_equal(np.asarray(c.map.values), np.asarray(ref.map.values))
    np.testing.assert_array_equal(np.asarray(c.shield.scores), np.asarray(ref.shield.scores))
    assert c.meta["discovery"]["objective"] is None  # the new capsule replaced the old one


def test_split_by_file_without_time(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    for i in range(16):
        (lake / f"f{i:02d}.csv").write_text("a,b\n" + "".join(f"{i},{j}\n" for j in range(5)))
    work = tmp_path / "work"
    work.mkdir()
    split = _onboard._split([str(lake)], work, [], print)
    assert split["by"] == "file" and split["files"] == 16
    names = {k: sorted(Path(p).name for p in v) for k, v in split["roots"].items()}
    assert names["cal"] == ["f06.csv", "f14.csv"] and names["test"] == ["f07.csv", "f15.csv"]
    assert len(names["train"]) == 12
    assert json.loads((work / "split.json").read_text()) == split


def test_split_by_time_interleaves_blocks(tmp_path):
    lake = write_lake(tmp_path / "lake", n=4000)
    work = tmp_path / "work"
    work.mkdir()
    split = _onboard._split([str(lake)], work, [], print)
    assert split["by"] == "time"
    rows = split["time_files"][0]["rows"]
    assert sum(rows.values()) == 4000
    assert 0.7 < rows["train"] / 4000 < 0.8 and abs(rows["cal"] - rows["test"]) < 100
    # Every part keeps the header line; the rows of each part are disjoint.
    parts = {}
    for k in ("train", "cal", "test"):
        (f,) = (work / "split" / k).iterdir()
        lines = f.read_text().splitlines()
        assert lines[0] == "time,a,b"
        parts[k] = set(lines[1:])
    assert not (parts["cal"] & parts["test"]) and not (parts["train"] & parts["cal"])


def test_no_time_and_one_file_cannot_hold_out(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "only.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(ValueError, match="cannot hold out"):
        groundstate.onboard(lake, ["a", "b"], output=tmp_path / "x", **SMALL)


def test_clopper_pearson_matches_known_values():
    lo, hi = _onboard.clopper_pearson(0, 100)
    assert lo == 0.0 and hi == pytest.approx(0.03621669, rel=1e-6)
    lo, hi = _onboard.clopper_pearson(5, 100)
    assert lo == pytest.approx(0.01643188, rel=1e-5)
    assert hi == pytest.approx(0.11283491, rel=1e-6)  # R: binom.test(5, 100)$conf.int


@pytest.mark.slow
def test_shipped_la_haute_borne_onboards(tmp_path):
    """Acceptance: the shipped extract; held-out pass rate, impossible states, discovery."""
    lake = tmp_path / "lake"
    lake.mkdir()
    with zipfile.ZipFile(data_path()) as z:
        z.extractall(lake)
    out = tmp_path / "wind.capsule"
    args = ["onboard", str(lake), "--var", "wind_speed:m/s", "--var", "power:kW"]
    args += ["--profile", "wind", "--alpha", "0.01", "--licence", "etalab-2.0", "-o", str(out)]
    assert cli.main(args) == 0
    assert cli.main(["capsule", "verify", str(out)]) == 0
    c = groundstate.load(out)
    sh = c.meta["shield"]
    lo, hi = sh["held_out_block_rate_interval_95"]
    assert lo <= 0.01  # held-out normal states pass at 1 - alpha within the interval
    assert c.meta["provenance"]["held_out"]["by"] == "time"
    assert sh["known_bad"] and all(b["blocked"] for b in sh["known_bad"])
    rows = [r for r in (out / "discovery.csv").read_text().splitlines()[1:] if r.split(",")[1]]
    x = np.array([[float(v) for v in r.split(",")[:2]] for r in rows])
    assert len(x) >= 5 and np.asarray(c.shield(x).allow).all()
    # The envelope's highest power rises with the wind speed (the power curve).
    assert np.all(np.diff(x[:, 1]) > 0)
