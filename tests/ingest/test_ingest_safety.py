"""Issue 9, the crawler's files and limits: outputs never inside the lake, state folders that
are not ours never deleted, one run per output (a lock), parts tied to their configuration,
the node cap and argument checks before any work, Ctrl-C, scripts without a main guard."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from ingest_helpers import make_lake, write_csv

import energy
import ingest
from ingest._state import MARKER, BusyError, CrawlLock, CrawlState, StateError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARS = ["x:m", "y:s"]
BOUNDS = [(-3.0, 3.0), (-2.0, 2.0)]
LONG = "a_rather_long_folder_name_so_that_progress_lines_fill_a_small_pipe"


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env.pop("PYTHONWARNINGS", None)
    return env


def _cli(lake, out, *extra):
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
        *extra,
        "-o",
        str(out),
    ]


def _start(argv):
    """A crawl whose stderr is a 4 KiB pipe: it blocks on its progress lines until read."""
    return subprocess.Popen(
        argv, env=_env(), cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, pipesize=4096
    )


def _read_progress(proc, n: int) -> list[str]:
    """Read stderr byte by byte (nothing buffered ahead) until ``n`` ``[k/n] PATH`` lines."""
    fd = proc.stderr.fileno()
    seen, buf = [], b""
    while len(seen) < n:
        c = os.read(fd, 1)
        assert c, "the crawl ended early: " + buf.decode()
        buf += c
        if c == b"\n":
            line, buf = buf.decode(), b""
            if re.match(r"^\[\d+/\d+\] ", line):
                seen.append(line)
    return seen


def _deep_lake(tmp_path, n_files=30, rows=60, seed=3):
    lake = tmp_path / LONG / LONG / "lake"
    make_lake(lake, n_files=n_files, rows=rows, seed=seed)
    return lake


def _tree(folder) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, folder)] = f.read()
    return out


# ------------------------------------------------------------------------ case 4: where it writes
def test_output_inside_the_lake_or_equal_to_an_input_is_refused_before_work(tmp_path):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=3, rows=50, seed=1)
    an_input = next(lake.rglob("*.h5"))
    link = tmp_path / "link"
    link.symlink_to(lake)  # the lake under another name: compared as real paths
    before = _tree(tmp_path)
    cases = [
        (lake, lake / "m.npz", "inside the lake being crawled"),
        (lake, lake / "d0" / "m.npz", "inside the lake being crawled"),
        (lake, link / "m.npz", "inside the lake being crawled"),
        ([an_input, lake / "d1"], an_input, "is one of the inputs"),
        (str(lake / "d*"), lake / "d2" / "x.npz", "inside the lake being crawled"),
    ]
    for roots, out, needle in cases:
        with pytest.raises(ValueError, match=needle):
            ingest.ingest(roots, VARS, output=out, bins=8, workers=1, progress=False)
    assert _tree(tmp_path) == before  # nothing written, nothing changed
    assert sorted(os.listdir(tmp_path)) == ["lake", "link"]
    with pytest.raises(ValueError, match="state folder .* inside the lake"):
        ingest.count(lake, VARS, bins=8, workers=1, progress=False, state=lake / "st")
    assert not (lake / "st").exists() and not (lake / "st.lock").exists()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"output": "missing/m.npz"}, "does not exist"),
        ({"output": "."}, "is a folder"),
        ({"smoothing": float("nan")}, "smoothing must be finite"),
        ({"smoothing": -1.0}, "smoothing must be finite"),
        ({"smoothing": [1.0, 1.0, 1.0]}, "one width or one per variable"),
        ({"workers": 0}, "workers"),
        ({"bins": [4096, 4097]}, "over the cap"),
    ],
)
def test_arguments_and_output_folder_are_checked_before_work(tmp_path, monkeypatch, kwargs, needle):
    lake = tmp_path / "lake"
    lake.mkdir()
    write_csv(lake / "a.csv", ["x [m]", "y [s]"], ["0.5,0.5"])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    kw = {"output": "m.npz", "bins": 8, "workers": 1, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=needle):
        ingest.ingest(lake, VARS, **kw)
    assert os.listdir(work) == []


def test_output_folder_not_writable_is_a_clear_error(tmp_path):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=1, rows=50, seed=2)
    # /proc takes no new file, even from root (chmod does not stop root).
    with pytest.raises(OSError, match="cannot write in /proc"):
        ingest.ingest(lake, VARS, output="/proc/m.npz", bins=8, workers=1, progress=False)


def test_node_cap_shrinks_one_int_and_refuses_per_axis_bins(tmp_path):
    rows = [",".join(str(v) for v in np.arange(5) * 0.1 + k) for k in range(4)]
    write_csv(tmp_path / "a.csv", [f"v{i}" for i in range(5)], rows)
    names = [f"v{i}" for i in range(5)]
    c = ingest.count(tmp_path, names, bins=64, workers=1, progress=False)
    # 64**5 > 2**24: shrunk as from_samples does, floor(2**(24/5)) = 27
    assert c.counts.shape == (27,) * 5 and c.report.rows_used == 4
    assert any("shrunk to 27 per axis" in n for n in c.report.notes)
    assert "note: bins: 64 per axis" in str(c.report)
    with pytest.raises(ValueError, match="over the cap of 16777216"):
        ingest.count(tmp_path, names, bins=[64] * 5, workers=1, progress=False)


# ------------------------------------------------------------- case 5: folders that are not ours
def test_a_state_folder_that_is_not_ours_is_refused_and_kept(tmp_path):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=2, rows=50, seed=4)
    out = tmp_path / "m.npz"
    mine = tmp_path / "m.npz.ingest-state"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "config.json").write_text("{}")  # looks like a state, is not ours: no marker
    with pytest.raises(StateError, match=r"m\.npz\.ingest-state exists and was not made by"):
        ingest.ingest(lake, VARS, output=out, bins=8, workers=1, progress=False)
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert sorted(os.listdir(mine)) == ["config.json", "thesis.tex"]
    assert not out.exists() and not (tmp_path / "m.npz.ingest-state.lock").exists()
    user = tmp_path / "user"
    user.mkdir()
    (user / "keep.txt").write_text("mine")
    with pytest.raises(StateError, match="user exists and was not made by"):
        ingest.count(lake, VARS, bins=8, workers=1, progress=False, state=user)
    assert os.listdir(user) == ["keep.txt"]
    # A lock file name taken by a file of the user: refused, kept.
    (tmp_path / "m.npz.ingest-state").rename(tmp_path / "elsewhere")
    (tmp_path / "m.npz.ingest-state.lock").write_text("my notes")
    with pytest.raises(StateError, match="is not a lock file of groundstate"):
        ingest.ingest(lake, VARS, output=out, bins=8, workers=1, progress=False)
    assert (tmp_path / "m.npz.ingest-state.lock").read_text() == "my notes"


def test_removal_deletes_only_what_ingest_wrote(tmp_path):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=3, rows=50, seed=5)
    state = tmp_path / "st"
    ingest.count(lake, VARS, bins=8, bounds=BOUNDS, workers=1, progress=False, state=state)
    assert (state / MARKER).is_file() and len(os.listdir(state / "parts")) == 3
    (state / "parts" / "notes.txt").write_text("dropped here by the user")
    assert CrawlState.remove_folder(str(state)) is False
    assert (state / "parts" / "notes.txt").read_text() == "dropped here by the user"
    assert sorted(os.listdir(state)) == [MARKER, "parts"]  # ours gone but the marker
    (state / "parts" / "notes.txt").unlink()
    assert CrawlState.remove_folder(str(state)) is True and not state.exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "parts").mkdir()
    assert CrawlState.remove_folder(str(other)) is False and (other / "parts").is_dir()


# ---------------------------------------------------- case 6: one run per output, parts checked
def test_a_held_lock_refuses_a_second_run_at_once(tmp_path):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=2, rows=50, seed=6)
    out = tmp_path / "m.npz"
    with CrawlLock(str(out) + ".ingest-state.lock", str(out)):
        t0 = time.perf_counter()
        with pytest.raises(BusyError, match=rf"another ingest \(pid {os.getpid()} .* is writing"):
            ingest.ingest(lake, VARS, output=out, bins=8, workers=1, progress=False)
        assert time.perf_counter() - t0 < 5
        assert not out.exists() and not (tmp_path / "m.npz.ingest-state").exists()
    m, _ = ingest.ingest(lake, VARS, output=out, bins=8, workers=1, progress=False)
    assert out.exists() and sorted(os.listdir(tmp_path)) == ["lake", "m.npz"]


def test_parts_counted_under_another_configuration_are_recounted(tmp_path):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=4, rows=50, seed=7)
    fresh32 = ingest.count(lake, VARS, bins=32, workers=1, progress=False)
    state = tmp_path / "st"
    ingest.count(lake, VARS, bins=16, workers=1, progress=False, state=state)
    # Resumed under --bins 32: no part of --bins 16 is kept.
    c = ingest.count(lake, VARS, bins=32, workers=1, progress=False, state=state)
    np.testing.assert_array_equal(c.counts, fresh32.counts)
    assert c.report.files_resumed == 0
    assert any("4 files recounted" in n for n in c.report.notes)
    again = ingest.count(lake, VARS, bins=32, workers=1, progress=False, state=state)
    assert again.report.files_resumed == 4 and again.report.notes == []
    np.testing.assert_array_equal(again.counts, fresh32.counts)
    # The old race: a second run rewrote config.json under the first one's parts. Each part
    # carries what it was counted under, so the --bins 16 parts are refused all the same.
    state16 = tmp_path / "st16"
    ingest.count(lake, VARS, bins=16, workers=1, progress=False, state=state16)
    (state16 / "config.json").write_bytes((state / "config.json").read_bytes())
    (state16 / "bounds.json").write_bytes((state / "bounds.json").read_bytes())
    mixed = ingest.count(lake, VARS, bins=32, workers=1, progress=False, state=state16)
    np.testing.assert_array_equal(mixed.counts, fresh32.counts)
    assert mixed.report.files_resumed == 0


def test_two_commands_at_once_on_one_output(tmp_path):
    lake = _deep_lake(tmp_path)
    out = tmp_path / "m.npz"
    first = _start(_cli(lake, out, "--bins", "16", "--workers", "1"))
    try:
        _read_progress(first, 1)  # running, and blocked on its stderr pipe
        t0 = time.perf_counter()
        second = subprocess.run(
            _cli(lake, out, "--bins", "32", "--workers", "1"),
            env=_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        took = time.perf_counter() - t0
        assert second.returncode == 1, second.stderr
        assert f"another ingest (pid {first.pid} " in second.stderr
        assert f"is writing {out}" in second.stderr
        assert took < 60  # at once: start-up only, no crawl (the machine may be loaded)
        rest, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0
    ref, _ = ingest.ingest(lake, VARS, bins=16, workers=1, progress=False)
    got = energy.load(out)
    np.testing.assert_array_equal(np.asarray(got.values), np.asarray(ref.values))
    assert sorted(os.listdir(tmp_path)) == [LONG, "m.npz"]  # no state, no lock left


# ------------------------------------------------------------------------- case 16: Ctrl-C
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_within_two_seconds_and_loses_nothing(tmp_path, workers):
    lake = _deep_lake(tmp_path, n_files=30, rows=60, seed=8)
    out = tmp_path / "m.npz"
    proc = _start(_cli(lake, out, "--bins", "16", "--workers", workers))
    try:
        _read_progress(proc, 1)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        took = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err
    assert "Traceback" not in err and "Warning" not in err
    assert took < 2.0, f"{took:.2f} s from SIGINT to exit"
    state = tmp_path / "m.npz.ingest-state"
    assert not out.exists() and state.is_dir()
    assert not (tmp_path / "m.npz.ingest-state.lock").exists()
    again = subprocess.run(
        _cli(lake, out, "--bins", "16", "--workers", workers),
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "from an earlier run" in again.stdout
    ref, _ = ingest.ingest(lake, VARS, bins=16, workers=1, progress=False)
    got = energy.load(out)
    np.testing.assert_array_equal(np.asarray(got.values), np.asarray(ref.values))
    assert got.n_samples == ref.n_samples and not state.exists()


# ------------------------------------------------------ case 18: a script without a main guard
def test_a_script_without_main_guard_crawls_with_a_pool(tmp_path):
    lake = tmp_path / "lake"
    make_lake(lake, n_files=4, rows=50, seed=9)
    ran = tmp_path / "ran.txt"
    script = tmp_path / "crawl.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json
            import ingest

            with open({str(ran)!r}, "a") as f:  # top-level code: must run once, not per worker
                f.write("ran\\n")
            c = ingest.count({str(lake)!r}, ["x:m", "y:s"], bins=8, bounds={BOUNDS!r},
                             workers=2, progress=False)
            print(json.dumps(c.counts.tolist()))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        env=_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    ref = ingest.count(lake, VARS, bins=8, bounds=BOUNDS, workers=1, progress=False)
    np.testing.assert_array_equal(np.array(json.loads(done.stdout)), ref.counts)
    assert ran.read_text() == "ran\n"


# ------------------------------------------------------------------ case 15: memory of a crawl
_RSS = """
import resource, sys
import ingest
root = sys.argv[1]
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
ingest.count(root, ["a", "b"], bins=8, bounds=[(-4, 4)] * 2, workers=1, progress=False)
before = rss()
c = ingest.count(root, list("abcd"), bins=64, bounds=[(-4, 4)] * 4, workers=1, progress=False)
print((rss() - before) / c.counts.nbytes)
"""


def test_crawl_memory_stays_near_two_grids(tmp_path):
    import h5py

    rng = np.random.default_rng(0)
    for i in range(3):
        with h5py.File(tmp_path / f"f{i}.h5", "w") as f:
            for v in "abcd":
                f[v] = rng.normal(size=5000)
    done = subprocess.run(
        [sys.executable, "-c", _RSS, str(tmp_path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    # 64^4 = 2^24 nodes, 128 MiB of int64 counts: the total plus one file's grid (was ~2.9x).
    assert float(done.stdout) < 2.4
