"""What makes the whole command fast stays correct: no unit registry for a file in the asked
unit, the pool's fork server started before the checks (and stopped when they fail), parts
written without an fsync each (a part that is not whole is counted again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ingest_helpers import make_lake

import ingest
from ingest import _work

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARS = ["x:m", "y:s"]
BOUNDS = [(-3.0, 3.0), (-2.0, 2.0)]


def _h5(path, x, y, x_unit):
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=x).attrs["units"] = x_unit
        f.create_dataset("y", data=y).attrs["units"] = "s"


def test_a_file_in_the_asked_unit_is_counted_without_pint(tmp_path, monkeypatch):
    rng = np.random.default_rng(21)
    x, y = rng.normal(size=(2, 300))
    _h5(tmp_path / "a.h5", x, y, "m")
    _h5(tmp_path / "b.h5", x * 100.0, y, "cm")
    ref = ingest.count(tmp_path / "a.h5", VARS, bins=8, bounds=BOUNDS, workers=1, progress=False)
    both = ingest.count(tmp_path, VARS, bins=8, bounds=BOUNDS, workers=1, progress=False)
    assert both.report.rows_used == 2 * ref.report.rows_used > 0

    def no_pint(source, target):
        raise RuntimeError(f"conversion({source!r}, {target!r}) called")

    monkeypatch.setattr(_work, "conversion", no_pint)
    c = ingest.count(tmp_path, VARS, bins=8, bounds=BOUNDS, workers=1, progress=False)
    # a.h5 states exactly the asked units: counted, no conversion asked for; b.h5 (cm) needs
    # one, and gets the stand-in's error.
    assert c.report.files_read == [str(tmp_path / "a.h5")]
    assert c.report.files_skipped == [
        (str(tmp_path / "b.h5"), "corrupt: conversion('cm', 'm') called")
    ]
    np.testing.assert_array_equal(c.counts, ref.counts)


_SCRIPT = """
import json, os, sys, time
from multiprocessing import forkserver
import ingest
from ingest import _crawl

lake, one = sys.argv[1], sys.argv[2]
server = forkserver._forkserver
seen = []

def alive(pid):
    if pid is None:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:  # reaped already (SIGCHLD ignored here): ask the kernel
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True

real_plan = _crawl._plan
def plan(*args, **kwargs):
    seen.append(alive(server._forkserver_pid))
    return real_plan(*args, **kwargs)
_crawl._plan = plan

def gone():
    for _ in range(100):
        if not alive(server._forkserver_pid):
            return True
        time.sleep(0.05)
    return False

out = {}
try:
    ingest.count(lake, ["x:no_such_unit"], bins=8, workers=2, progress=False)
except ValueError:
    out["failed_check"] = {"started_before_plan": seen[-1], "stopped": gone()}
ingest.count(one, ["x:m", "y:s"], bins=8, bounds=[(-3, 3), (-2, 2)], workers=2, progress=False)
out["one_file"] = {"started_before_plan": seen[-1], "stopped": gone()}
c = ingest.count(lake, ["x:m", "y:s"], bins=8, bounds=[(-3, 3), (-2, 2)], workers=2,
                 progress=False)
out["pool"] = {"started_before_plan": seen[-1], "counts": c.counts.tolist()}
print(json.dumps(out))
"""


def test_fork_server_starts_before_the_checks_and_stops_when_unused(tmp_path):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=4, rows=60, seed=22)
    one = tmp_path / "one"
    make_lake(one, n_files=1, rows=60, seed=23)
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), str(lake), str(one)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    # Its imports run while the arguments are checked; a failed check leaves nothing running.
    assert out["failed_check"] == {"started_before_plan": True, "stopped": True}
    # One file reads in the calling process: the server started for nothing is stopped.
    assert out["one_file"] == {"started_before_plan": True, "stopped": True}
    assert out["pool"]["started_before_plan"] is True
    ref = ingest.count(lake, VARS, bins=8, bounds=BOUNDS, workers=1, progress=False)
    np.testing.assert_array_equal(np.array(out["pool"]["counts"]), ref.counts)


def test_parts_cut_short_or_damaged_are_counted_again(tmp_path):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=6, rows=80, seed=24)
    fresh = ingest.count(lake, VARS, bins=8, bounds=BOUNDS, workers=1, progress=False)
    state = tmp_path / "st"
    ingest.count(lake, VARS, bins=8, bounds=BOUNDS, workers=1, progress=False, state=state)
    parts = sorted((state / "parts").iterdir())
    assert len(parts) == 6
    # What an OS crash may leave of parts written without fsync: empty, cut short, or a part
    # whose counts are not the ones its checksum was made of.
    parts[0].write_bytes(b"")
    data = parts[1].read_bytes()
    parts[1].write_bytes(data[: len(data) // 2])
    with np.load(parts[2]) as z:
        arrays = {k: z[k] for k in z.files}
    assert arrays["counts"].size
    arrays["counts"] = arrays["counts"] + 1
    with open(parts[2], "wb") as f:
        np.savez(f, **arrays)
    c = ingest.count(lake, VARS, bins=8, bounds=BOUNDS, workers=1, progress=False, state=state)
    assert c.report.files_resumed == 3
    np.testing.assert_array_equal(c.counts, fresh.counts)
    assert c.report.rows_used == fresh.report.rows_used


def test_known_units_are_what_pint_reads():
    """Every unit checked without pint (``KNOWN_UNITS``) is one pint reads as itself."""
    from ingest import _units

    for unit in sorted(_units.KNOWN_UNITS):
        assert _units.conversion(unit, unit) == (1.0, 0.0), unit
    _units.check_unit("m")
    with pytest.raises(_units.UnitError, match="no_such_unit"):
        _units.check_unit("no_such_unit")


def test_edges_and_node_cap_are_energys():
    """The crawl's own bin edges and node cap equal energy's, bit for bit."""
    import energy
    from energy import _grid
    from ingest import _crawl

    assert _crawl.NODE_CAP == _grid.MAX_DEFAULT_NODES
    cases = [
        ([(-4.0, 4.0)] * 3, (64, 64, 64)),
        ([(0.0, 25.0), (-100.0, 2100.0)], (7, 301)),
        ([(1e-9, 3e-9), (-1e12, 1e12)], (2, 1000)),
        ([(-0.1, 0.7)], (33,)),
    ]
    for bounds, shape in cases:
        ours = _crawl._edges(bounds, shape)
        ref = energy.bin_edges(bounds, shape)
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref, strict=True):
            assert a.dtype == np.float64 and np.array_equal(a, b)


_NO_JAX = """
import sys
import ingest
c = ingest.count(sys.argv[1], ["x:m", "y:s"], bins=8, bounds=[(-3, 3), (-2, 2)], workers=1,
                 progress=False)
print(c.report.rows_used, sorted(m for m in ("jax", "flax", "pint", "energy") if m in sys.modules))
"""


def test_a_crawl_in_the_asked_units_imports_neither_jax_nor_pint(tmp_path):
    """Checking the arguments and counting a lake in the asked units needs NumPy only: no jax
    (the map build imports it), no pint registry."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, 200))
    _h5(tmp_path / "a.h5", x, y, "m")
    out = subprocess.run(
        [sys.executable, "-c", _NO_JAX, str(tmp_path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows, mods = out.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(rows) > 0 and mods == "[]"
