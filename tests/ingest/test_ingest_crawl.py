"""The crawl: counts against a NumPy oracle, executors, discovery, skips, resume of changed files."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile

import h5py
import numpy as np
import pytest
from ingest_helpers import make_lake, write_csv

import energy
import ingest

VARS = ["x:m", "y:s"]
BOUNDS = [(-2.0, 2.0), (-1.5, 1.5)]  # narrow enough that some rows fall outside
BINS = (12, 10)


def oracle(rows: np.ndarray, bounds=BOUNDS, bins=BINS) -> np.ndarray:
    """np.histogramdd of the finite rows inside the edges of energy.bin_edges."""
    edges = energy.bin_edges(bounds, bins)
    rows = rows[np.all(np.isfinite(rows), axis=1)]
    inside = np.ones(len(rows), dtype=bool)
    for i, e in enumerate(edges):
        inside &= (rows[:, i] >= e[0]) & (rows[:, i] < e[-1])
    h, _ = np.histogramdd(rows[inside], bins=edges)
    return h.astype(np.int64), int((~inside).sum())


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    truth = make_lake(root, n_files=9, rows=200, seed=7)
    return root, truth


@pytest.fixture(scope="module")
def inline_counts(lake):
    root, _ = lake
    return ingest.count(root, VARS, bins=BINS, bounds=BOUNDS, workers=1, progress=False)


def test_counts_equal_numpy_oracle_with_units_and_drops(lake, inline_counts):
    root, truth = lake
    c = inline_counts
    want, n_out = oracle(truth)
    np.testing.assert_array_equal(c.counts, want)
    r = c.report
    assert len(r.files_read) == 9 and r.files_skipped == []
    assert r.rows_used == want.sum()
    assert r.rows_dropped["junk line"] == 3 * 40  # 3 CSV files, every fifth of 200 lines
    assert r.rows_dropped["missing value"] == int(np.isnan(truth).any(axis=1).sum())
    assert r.rows_dropped["outside bounds"] == n_out
    assert r.rows_total == 9 * 200
    assert c.units == ["m", "s"] and c.names == ["x", "y"]
    assert r.units == {"x": ["cm", "m", "mm"], "y": ["ms", "s"]}
    assert "files read: 9" in str(r) and "junk line: 120" in str(r)


def test_process_pool_equals_inline(lake, inline_counts):
    root, _ = lake
    c = ingest.count(root, VARS, bins=BINS, bounds=BOUNDS, workers=2, progress=False)
    np.testing.assert_array_equal(c.counts, inline_counts.counts)
    assert c.report == inline_counts.report


def test_dask_local_cluster_executor_equals_inline(lake, inline_counts):
    import distributed  # in the dev extra

    root, _ = lake
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        c = ingest.count(
            root, VARS, bins=BINS, bounds=BOUNDS, executor=client.get_executor(), progress=False
        )
    np.testing.assert_array_equal(c.counts, inline_counts.counts)
    assert c.report == inline_counts.report


def test_bounds_from_a_pass_over_the_data(lake):
    root, truth = lake
    c = ingest.count(root, VARS, bins=BINS, workers=1, progress=False)
    finite = truth[np.all(np.isfinite(truth), axis=1)]
    np.testing.assert_allclose(np.array(c.bounds)[:, 0], finite.min(axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.array(c.bounds)[:, 1], finite.max(axis=0), rtol=1e-12)
    # Bins are centred on the extreme nodes: nothing falls outside.
    assert "outside bounds" not in c.report.rows_dropped
    assert c.counts.sum() == len(finite)


def test_profile_range_drops_glitches_and_bad_units_skip(tmp_path):
    rows = ["5.0,20.0", "6.0,-273.2", "7.0,21.0", "8.0,-273.2"]
    write_csv(tmp_path / "a.csv", ["Ws_avg [m/s]", "Ot_avg [degC]"], rows)
    write_csv(tmp_path / "b.csv", ["ws [kg]", "ot [degC]"], ["1,2"])  # kg is no speed
    write_csv(tmp_path / "c.csv", ["ws", "ot [K]"], ["1,293.15"])  # no unit for ws
    c = ingest.count(
        tmp_path, ["ws", "temperature:K"], profile="wind", bins=4, workers=1, progress=False
    )
    assert c.report.rows_used == 2
    assert c.report.rows_dropped == {"out of physical range": 2}
    assert c.bounds[1] == pytest.approx((293.15, 294.15))
    skipped = dict(c.report.files_skipped)
    assert "cannot convert 'kg' to 'm/s'" in skipped[str(tmp_path / "b.csv")]
    assert "states no unit" in skipped[str(tmp_path / "c.csv")]
    assert c.profile == "wind"


def test_discovery_symlinks_hidden_and_corrupt(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    write_csv(outside / "o.csv", ["x [m]", "y [s]"], ["0.1,0.1"])
    write_csv(root / "sub" / "a.csv", ["x [m]", "y [s]"], ["0.5,0.5", "0.6,0.6"])
    (root / "sub" / "loop").symlink_to(root)  # a loop back to the root
    (root / "twice.csv").symlink_to(root / "sub" / "a.csv")  # the same file again
    (root / "escape").symlink_to(outside)  # out of the roots
    (root / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    (root / ".hidden.csv").write_text("x [m],y [s]\n9,9\n")
    (root / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xff" * 64)
    (root / "notes.txt").write_text("nothing to see\n")
    c = ingest.count(root, VARS, bins=BINS, bounds=BOUNDS, workers=1, progress=False)
    assert c.report.rows_used == 2
    assert len(c.report.files_read) == 1
    skipped = dict(c.report.files_skipped)
    assert skipped[str(root / "escape")] == "symbolic link out of the roots"
    assert skipped[str(root / "dangling.csv")] == "broken symbolic link"
    assert skipped[str(root / "broken.h5")].startswith("corrupt")
    assert skipped[str(root / "notes.txt")].startswith("no matching variables")
    assert len(skipped) == 4


def test_empty_lake_and_missing_root_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ingest.EmptyCrawlError, match="no rows counted"):
        ingest.count(tmp_path / "empty", VARS, workers=1, progress=False)
    write_csv(tmp_path / "other.csv", ["a", "b"], ["1,2"])
    with pytest.raises(ingest.EmptyCrawlError) as err:
        ingest.count(tmp_path / "other.csv", VARS, workers=1, progress=False)
    assert err.value.report.files_skipped[0][1].startswith("no matching variables")
    with pytest.raises(ValueError, match="does not exist"):
        ingest.count(tmp_path / "nope", VARS, workers=1, progress=False)
    with pytest.raises(ValueError, match="bins"):
        ingest.count(tmp_path, VARS, bins=1, workers=1, progress=False)
    with pytest.raises(ValueError, match="lo < hi"):
        ingest.count(tmp_path, VARS, bounds=[(1, 0), (0, 1)], workers=1, progress=False)


def _count_as_nobody(root, queue):
    """In a child process: drop to the 'nobody' user, then crawl (files it may not read)."""
    ingest.conversion("m", "m")  # load pint's definitions while they are still readable
    import boost_histogram  # noqa: F401 - imported before the files become unreadable

    os.setgid(65534)
    os.setuid(65534)
    c = ingest.count(root, VARS, bins=BINS, bounds=BOUNDS, workers=1, progress=False)
    queue.put((c.report.rows_used, c.report.files_skipped))


def test_file_without_permission_is_skipped():
    # As root a chmod 000 file is still readable: crawl as 'nobody' in a child process then.
    root = tempfile.mkdtemp(prefix="ingest-perm-")
    try:
        os.chmod(root, 0o755)
        write_csv(os.path.join(root, "ok.csv"), ["x [m]", "y [s]"], ["0.5,0.5"])
        locked = os.path.join(root, "locked.h5")
        with h5py.File(locked, "w") as f:
            f["x"] = np.zeros(3)
            f["y"] = np.zeros(3)
        os.chmod(os.path.join(root, "ok.csv"), 0o644)
        os.chmod(locked, 0o000)
        if os.geteuid() == 0:
            ctx = multiprocessing.get_context("forkserver")
            queue = ctx.Queue()
            proc = ctx.Process(target=_count_as_nobody, args=(root, queue))
            proc.start()
            rows, skipped = queue.get(timeout=120)
            proc.join(timeout=60)
            assert proc.exitcode == 0
        else:
            c = ingest.count(root, VARS, bins=BINS, bounds=BOUNDS, workers=1, progress=False)
            rows, skipped = c.report.rows_used, c.report.files_skipped
        assert rows == 1
        assert [tuple(s) for s in skipped] == [(locked, "permission denied")]
    finally:
        shutil.rmtree(root)


def test_state_recounts_changed_files_without_double_counting(tmp_path):
    lake_dir = tmp_path / "lake"
    truth = make_lake(lake_dir, n_files=3, rows=100, seed=3)
    state = tmp_path / "state"
    kw = dict(bins=BINS, bounds=BOUNDS, workers=1, progress=False, state=state)
    first = ingest.count(lake_dir, VARS, **kw)
    np.testing.assert_array_equal(first.counts, oracle(truth)[0])
    # Rewrite one file with other data: its old counts must go, its new counts come in.
    h5 = next(lake_dir.rglob("*.h5"))
    new = np.column_stack([np.full(50, 0.1), np.full(50, 0.2)])
    with h5py.File(h5, "w") as f:
        f.create_dataset("x", data=new[:, 0]).attrs["units"] = "m"
        f.create_dataset("y", data=new[:, 1]).attrs["units"] = "s"
    again = ingest.count(lake_dir, VARS, **kw)
    assert again.report.files_resumed == 2
    with h5py.File(h5) as f:
        assert f["x"].shape == (50,)
    old_h5 = truth[:100]  # make_lake writes file 0 (HDF5) first
    expected = first.counts - oracle(old_h5)[0] + oracle(new)[0]
    np.testing.assert_array_equal(again.counts, expected)
