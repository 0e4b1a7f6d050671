"""``groundstate ingest`` killed with SIGKILL mid-way, run again: the map of an uninterrupted run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
from ingest_helpers import make_lake

import energy

N_FILES = 60  # enough files that a kill after the fifth lands mid-way
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cmd(lake, out):
    return [
        sys.executable,
        "-m",
        "groundstate.cli",
        "ingest",
        str(lake),
        "--var",
        "x:m",
        "--var",
        "y:s",
        "--bins",
        "16",
        "--workers",
        "1",
        "-o",
        str(out),
    ]


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env.pop("PYTHONWARNINGS", None)
    return env


def _progress(text: str) -> list[tuple[int, int, str]]:
    return [
        (int(m.group(1)), int(m.group(2)), m.group(3))
        for m in re.finditer(r"^\[(\d+)/(\d+)\] (.+)$", text, flags=re.M)
    ]


def test_sigkill_then_resume_gives_the_uninterrupted_map(tmp_path):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=N_FILES, rows=400, seed=11)
    full = tmp_path / "full.npz"
    done = subprocess.run(
        _cmd(lake, full), env=_env(), capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    lines_full = _progress(done.stderr)
    assert [k for k, _, _ in lines_full] == list(range(1, N_FILES + 1))

    out = tmp_path / "resumed.npz"
    state = tmp_path / "resumed.npz.ingest-state"
    # A 4 KiB stderr pipe read byte by byte: the crawl blocks on its progress lines until they
    # are read (60 lines of ~100 bytes), so the kill after the fifth lands mid-crawl, whatever
    # the load of the machine; no sleep.
    proc = subprocess.Popen(
        _cmd(lake, out),
        env=_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
        pipesize=4096,
    )
    fd = proc.stderr.fileno()
    seen, buf = [], b""
    while len(seen) < 5:
        c = os.read(fd, 1)
        assert c, "the crawl ended before five files: " + buf.decode()
        buf += c
        if c == b"\n":
            line, buf = buf.decode(), b""
            if re.match(r"^\[\d+/\d+\] ", line):
                seen.append(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and state.is_dir()
    lock = tmp_path / "resumed.npz.ingest-state.lock"
    assert lock.exists()  # left by the kill; its flock died with the process
    first = _progress("".join(seen))

    again = subprocess.run(
        _cmd(lake, out), env=_env(), capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert again.returncode == 0, again.stderr
    second = _progress(again.stderr)
    # k counts the files of the killed run; those are not listed again.
    assert second[-1][:2] == (N_FILES, N_FILES)
    assert second[0][0] == N_FILES - len(second) + 1 >= 6
    paths = [p for _, _, p in first] + [p for _, _, p in second]
    assert len(set(paths)) == len(paths)
    assert not state.exists() and not lock.exists()  # the left lock file was taken over

    a, b = energy.load(full), energy.load(out)
    np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values))
    assert a.n_samples == b.n_samples
    for key in ("rows_used", "rows_dropped", "files_read", "files_skipped"):
        assert a.provenance[key] == b.provenance[key], key
    # The report printed at the end is the same too (but for the line saying what was resumed).
    tail_a = done.stdout[done.stdout.index("files read") :].splitlines()
    tail_b = again.stdout[again.stdout.index("files read") :].splitlines()
    assert [re.sub(r", \d+ from an earlier run", "", s) for s in tail_b[1:]] == [
        s.replace(str(full), str(out)) for s in tail_a[1:]
    ]
