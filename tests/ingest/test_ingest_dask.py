"""Ingest on a cluster: a dask.distributed cluster of worker processes gives a local run's counts.

The documented path for a crawl past one machine is ``client.get_executor()`` (docs/scale.md):
each file is read on a worker process and its partial counts come back to the caller, who adds
them. Integer counts added in any order are exact, so the cluster's counts, report and map must
equal those of a local run bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from ingest_helpers import make_lake

import ingest

VARS = ["x:m", "y:s"]
BOUNDS = [(-2.0, 2.0), (-1.5, 1.5)]  # narrow enough that some rows fall outside
BINS = (12, 10)

# Worker processes start and import the readers (h5py, netCDF4, pint): ~20-40 s on 2 loaded cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    make_lake(root, n_files=8, rows=150, seed=11)
    return root


@pytest.fixture(scope="module")
def client():
    import distributed  # in the dev extra (no skip: CI always has it)

    # Two worker processes of one thread each: files really travel to other interpreters and
    # their results come back pickled, as on a cluster of machines.
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        c.wait_for_workers(2, timeout=120)
        yield c


def test_worker_processes_are_other_interpreters(client):
    import os

    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids


def test_cluster_counts_equal_a_local_run(lake, client):
    local = ingest.count(lake, VARS, bins=BINS, bounds=BOUNDS, workers=1, progress=False)
    remote = ingest.count(
        lake, VARS, bins=BINS, bounds=BOUNDS, executor=client.get_executor(), progress=False
    )
    np.testing.assert_array_equal(remote.counts, local.counts)
    assert remote.counts.dtype == np.int64 and remote.counts.sum() == local.report.rows_used
    assert remote.report == local.report
    assert len(remote.report.files_read) == 8 and remote.report.rows_dropped  # every reason seen


def test_cluster_ingest_writes_the_same_map(lake, client, tmp_path):
    """The whole ``ingest`` call (bounds from a first pass over the data, then the counts)."""
    m_local, r_local = ingest.ingest(
        lake, VARS, bins=BINS, output=tmp_path / "local.npz", workers=1, progress=False
    )
    m_dask, r_dask = ingest.ingest(
        lake,
        VARS,
        bins=BINS,
        output=tmp_path / "dask.npz",
        executor=client.get_executor(),
        progress=False,
    )
    assert r_dask == r_local
    assert m_dask.bounds == m_local.bounds
    np.testing.assert_array_equal(np.asarray(m_dask.values), np.asarray(m_local.values))
    # The crawl state beside the output is gone once the map is written.
    assert not (tmp_path / "dask.npz.ingest-state").exists()
