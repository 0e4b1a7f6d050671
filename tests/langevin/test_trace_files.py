"""Recorded draws streamed to .npy files (`langevin._trace.TraceFiles`)."""

from __future__ import annotations

import numpy as np
import pytest

from langevin._trace import TraceFiles


def test_chunks_written_at_their_offsets_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    traj = rng.normal(size=(10, 7, 3)).astype(np.float32)
    et = rng.normal(size=(10, 7)).astype(np.float32)
    t = TraceFiles(tmp_path / "tr", 10, 7, 3, np.float32)
    for first in (4, 0, 8):  # any order: each chunk lands at its own draws
        q = 4 if first < 8 else 2
        t.write(first, traj[first : first + q], et[first : first + q])
    t.close()
    a, b = TraceFiles(tmp_path / "tr", 10, 7, 3, np.float32, resume=True).arrays()
    np.testing.assert_array_equal(a, traj)
    np.testing.assert_array_equal(b, et)
    assert np.load(tmp_path / "tr" / "trajectory.npy").shape == (10, 7, 3)  # plain .npy


def test_a_resumed_run_writes_on_and_keeps_earlier_draws(tmp_path):
    t = TraceFiles(tmp_path / "tr", 4, 2, 1, np.float32)
    t.write(0, np.ones((2, 2, 1)), np.ones((2, 2)))
    t.close()  # killed here, then resumed
    t = TraceFiles(tmp_path / "tr", 4, 2, 1, np.float32, resume=True)
    t.write(2, np.full((2, 2, 1), 2.0), np.full((2, 2), 2.0))
    t.close()
    np.testing.assert_array_equal(t.arrays()[0][:, 0, 0], [1, 1, 2, 2])


def test_other_folders_are_refused_untouched(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty and is not a langevin trace"):
        TraceFiles(tmp_path / "mine", 4, 2, 1, np.float32)
    TraceFiles(tmp_path / "tr", 4, 2, 1, np.float32).close()
    with pytest.raises(FileExistsError, match="holds the trace of another run"):
        TraceFiles(tmp_path / "tr", 4, 2, 1, np.float32)  # a new run: never over an old trace
    with pytest.raises(FileExistsError, match="another run"):
        TraceFiles(tmp_path / "tr", 5, 2, 1, np.float32, resume=True)
    with pytest.raises(ValueError, match="does not fit"):
        TraceFiles(tmp_path / "t2", 4, 2, 1, np.float32).write(
            3, np.zeros((2, 2, 1)), np.zeros((2, 2))
        )


def test_trace_files_are_refused_under_several_processes(tmp_path, monkeypatch):
    """Every process would write the same files: refused before anything runs or is written."""
    import jax

    import energy
    import langevin

    g = np.linspace(-1, 1, 8)
    m = energy.EnergyMap.from_grid(np.add.outer(g**2, g**2), [(-1, 1), (-1, 1)])
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(ValueError, match="not supported under jax.distributed"):
        langevin.sample(
            m,
            jax.random.key(0),
            n_chains=4,
            n_steps=10,
            thin=2,
            trace=tmp_path / "tr",
            schedule=None,
            progress=False,
        )
    assert not (tmp_path / "tr").exists()
