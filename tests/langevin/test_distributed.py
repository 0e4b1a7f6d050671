"""Many hosts on one machine: CPU processes joined by ``jax.distributed`` (gloo collectives).

`langevin._distributed.launch_local` starts the processes with the coordinator's address in
their environment, as SLURM or Kubernetes would; each runs ``distributed_job.py``.
"""

from __future__ import annotations

import os
import sys
import time

import jax
import numpy as np
import pytest

from langevin import _distributed

JOB = os.path.join(os.path.dirname(__file__), "distributed_job.py")


def run_job(kind: str, out, n_processes: int, cpu_devices: int):
    res = _distributed.launch_local(
        [sys.executable, JOB, str(out), kind], n_processes, cpu_devices=cpu_devices, timeout=900
    )
    with np.load(out) as f:
        return {k: f[k] for k in f.files}, res


def test_two_processes_form_one_mesh_and_match_one_process(tmp_path):
    two, res = run_job("sharded_draws", tmp_path / "two.npz", n_processes=2, cpu_devices=2)
    np.testing.assert_array_equal(two["topology"], [0, 2, 2, 4])
    # Each process owns half of the rows (its two devices' shards).
    assert "owns rows from [0, 4]" in res[0].stdout and "owns rows from [8, 12]" in res[1].stdout
    one, _ = run_job("sharded_draws", tmp_path / "one.npz", n_processes=1, cpu_devices=4)
    np.testing.assert_array_equal(one["topology"], [0, 1, 4, 4])
    # Same key -> the same draws, whichever host holds which chains (bit for bit).
    np.testing.assert_array_equal(two["y"], one["y"])
    # And the same as the program unsharded on this process's one device.
    host = np.arange(48, dtype=np.float32).reshape(16, 3)
    want = np.asarray(
        jax.jit(lambda k, x: x + jax.random.normal(k, x.shape, x.dtype))(jax.random.key(3), host)
    )
    np.testing.assert_array_equal(two["y"], want)
    np.testing.assert_allclose(two["total"], want.sum(), rtol=1e-6)


@pytest.fixture(scope="module")
def one_process_calls(tmp_path_factory):
    """`langevin_calls` in one process of 4 CPU devices: what every multi-process job must equal."""
    out = tmp_path_factory.mktemp("one") / "one.npz"
    one, _ = run_job("langevin_calls", out, n_processes=1, cpu_devices=4)
    np.testing.assert_array_equal(one["topology"], [0, 1, 4, 4])
    return one


# 2 processes x 2 devices and 4 processes x 1 device: the same 4-device mesh, split over hosts.
# Each job compiles a run and a sweep in every process: ~1-2 min on 2 loaded cores (4 processes:
# ~2-3 min), hence slow (CI still runs both).
@pytest.mark.slow
@pytest.mark.parametrize("n_processes", [2, 4])
def test_sample_and_sweep_over_processes_equal_one_process(
    tmp_path, one_process_calls, n_processes
):
    """Every process makes the same calls; chains spread over all processes' devices."""
    many, res = run_job(
        "langevin_calls",
        tmp_path / "many.npz",
        n_processes=n_processes,
        cpu_devices=4 // n_processes,
    )
    np.testing.assert_array_equal(many["topology"], [0, n_processes, 4 // n_processes, 4])
    for i in range(1, n_processes):
        assert f"process {i}: Topology(process_id={i}, num_processes={n_processes}" in res[i].stdout
    one = one_process_calls
    for name in ("positions", "energies", "diverged", "trajectory"):
        np.testing.assert_array_equal(many[name], one[name], err_msg=name)
    assert many["positions"].shape == (30, 2) and many["trajectory"].shape == (3, 30, 2)
    for name in ("sweep_positions", "sweep_total", "sweep_valid"):
        np.testing.assert_array_equal(many[name], one[name], err_msg=name)


def test_a_failed_process_stops_the_job_with_its_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os, sys, time\n"
        "if os.environ['JAX_PROCESS_ID'] == '1':\n"
        "    sys.exit('process one gives up')\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(RuntimeError, match="process 1 exited with 1") as err:
        _distributed.launch_local([sys.executable, str(bad)], 2, timeout=60)
    assert "process one gives up" in str(err.value)


def test_a_job_past_its_timeout_is_stopped_and_says_so(tmp_path):
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(60)\n")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="2 processes timed out after 1 s"):
        _distributed.launch_local([sys.executable, str(slow)], 2, timeout=1)
    assert time.monotonic() - t0 < 30  # both killed, not waited for


def test_initialize_without_a_cluster_says_what_to_set(monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JAX_PROCESS_ID", "two")
    with pytest.raises(ValueError, match="JAX_PROCESS_ID='two' is not an integer"):
        _distributed.initialize()
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    with pytest.raises(ValueError, match="process_id 3 is not below num_processes 2"):
        _distributed.initialize(num_processes=2)


def test_topology_of_one_process():
    topo = _distributed.topology()
    assert topo.process_id == 0 and topo.num_processes == 1
    assert topo.global_devices == topo.local_devices == len(jax.devices())
    x = jax.numpy.arange(4.0)
    np.testing.assert_array_equal(_distributed.gather(x), np.arange(4.0))
