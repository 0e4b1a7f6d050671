"""A checkpointed run over 2 processes (``jax.distributed``, gloo), both killed with SIGKILL after
a save, run again: the states of the same call uninterrupted, bit for bit.

The processes share the checkpoint folder (one machine here; a file system every host sees on a
cluster): every process holds the whole gathered state, process 0 writes, all take part in
orbax's save and restore.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from langevin import _distributed

HERE = os.path.dirname(os.path.abspath(__file__))
JOB = os.path.join(HERE, "_multiprocess_checkpoint.py")
ROOT = os.path.dirname(os.path.dirname(HERE))
SAVED = re.compile(r"^langevin\.checkpoint: saved step (\d+) of (\d+)")
N = 2  # processes, one CPU device each

pytestmark = pytest.mark.slow  # three jobs of 2 processes, each compiling a chunked run


def _env(i: int, port: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, JAX_NUM_CPU_DEVICES="1")
    env.pop("PYTHONWARNINGS", None)
    env.update(
        {
            _distributed.ENV_COORDINATOR: f"127.0.0.1:{port}",
            _distributed.ENV_NUM_PROCESSES: str(N),
            _distributed.ENV_PROCESS_ID: str(i),
        }
    )
    return env


def _complete(out, checkpoint) -> str:
    """Run the job to its end on N processes; process 0's stderr."""
    env = {k: v for k, v in _env(0, 0).items() if not k.startswith("JAX_")}
    res = _distributed.launch_local(
        [sys.executable, JOB, str(out), str(checkpoint)], N, env=env, timeout=600
    )
    return res[0].stderr


def _load(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def test_both_processes_killed_then_resumed_give_the_uninterrupted_states(tmp_path):
    ref = tmp_path / "ref.npz"
    _complete(ref, tmp_path / "ck-ref")  # the same call, uninterrupted
    assert not (tmp_path / "ck-ref").exists()

    ck, out = tmp_path / "ck", tmp_path / "out.npz"
    port = _distributed.free_port()
    argv = [sys.executable, JOB, str(out), str(ck)]
    procs = [
        subprocess.Popen(
            argv,
            env=_env(i, port),
            stderr=subprocess.PIPE if i == 0 else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        for i in range(N)
    ]
    kill_after = int(np.random.default_rng(3).integers(2, 5))  # a save seen 2-4 times
    seen = []
    try:
        for line in procs[0].stderr:
            m = SAVED.match(line)
            if m:
                seen.append(int(m.group(1)))
                if len(seen) == kill_after:
                    break
    finally:
        for p in procs:  # every process of the job, as a preempted cluster would lose them
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(timeout=60)
        procs[0].stderr.close()
    assert len(seen) == kill_after, f"the run ended before its kill: {seen}"
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    assert not out.exists() and ck.is_dir()

    log = _complete(out, ck)
    resumed = re.search(r"langevin\.checkpoint: resumed at step (\d+)", log)
    assert resumed is not None, log[-2000:]
    assert int(resumed.group(1)) >= seen[-1]  # from the last save seen (or a later one)
    assert not ck.exists()  # created by the run, removed once it finished
    got, want = _load(out), _load(ref)
    np.testing.assert_array_equal(got["topology"], [0, N, 1, N])
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
