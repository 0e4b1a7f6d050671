"""`langevin.sample(..., checkpoint=DIR)` killed with SIGKILL, run again: the uninterrupted states.

The job logs each checkpoint it saves; the test reads those lines through a pipe and kills the
run right after the k-th (k drawn from a fixed generator per case), then runs the same command
again and compares every output bit for bit with the same call run uninterrupted. (A run with a
checkpoint is cut in chunks; on a map with noise annealing the cut program's steps differ from
the uncut program's in their last bits, which chains then amplify: the reference is the same
call, not a call without ``checkpoint``.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoint_job.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAVED = re.compile(r"^langevin\.checkpoint: saved step (\d+) of (\d+)")

pytestmark = pytest.mark.slow  # three runs of a compiled program per case in fresh interpreters


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env.pop("PYTHONWARNINGS", None)
    return env


def _run(out, checkpoint, method):
    done = subprocess.run(
        [sys.executable, JOB, str(out), str(checkpoint), method],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def _load(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize(("method", "seed"), [("ula", 1), ("mala", 2)])
def test_sigkill_then_resume_gives_the_uninterrupted_states(tmp_path, method, seed):
    ref = tmp_path / "ref.npz"
    _run(ref, tmp_path / "ck-ref", method)  # the same call, uninterrupted
    assert not (tmp_path / "ck-ref").exists()

    ck = tmp_path / "ck"
    out = tmp_path / "out.npz"
    kill_after = int(np.random.default_rng(seed).integers(1, 4))  # a checkpoint seen 1-3 times
    proc = subprocess.Popen(
        [sys.executable, JOB, str(out), str(ck), method],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    seen = []
    for line in proc.stderr:
        m = SAVED.match(line)
        if m:
            seen.append(int(m.group(1)))
            if len(seen) == kill_after:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before its kill: {seen}"
    assert not out.exists() and ck.is_dir()

    log = _run(out, ck, method)
    resumed = re.search(r"langevin\.checkpoint: resumed at step (\d+)", log)
    assert resumed is not None, log[-2000:]
    assert int(resumed.group(1)) >= seen[-1]  # from the last checkpoint seen (or a later one)
    assert not ck.exists()  # the run created the folder and removed it once finished
    got, want = _load(out), _load(ref)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
