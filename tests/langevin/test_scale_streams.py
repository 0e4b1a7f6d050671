"""Streams of long runs: thinned draws to files (`trace=`), sweeps to a table (`output=`, `chunk=`),
and the draws as xarray / ArviZ reads them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import energy
import langevin


@pytest.fixture(scope="module")
def two_mode_map():
    gx, gy = np.linspace(-3, 3, 40), np.linspace(-2, 2, 30)
    x, y = np.meshgrid(gx, gy, indexing="ij")
    p = np.exp(-((x - 1.2) ** 2 + y**2) / 0.5) + 0.5 * np.exp(-((x + 1.3) ** 2 + y**2) / 0.3)
    return energy.EnergyMap.from_grid(
        -np.log(p + 1e-3), [(-3, 3), (-2, 2)], names=["speed", "power"]
    )


def test_thinned_draws_streamed_to_files_equal_the_in_memory_trace(two_mode_map, tmp_path):
    kw = dict(n_chains=24, n_steps=90, thin=6, schedule=None, progress=False)
    mem = langevin.sample(two_mode_map, jax.random.key(2), **kw)
    res = langevin.sample(two_mode_map, jax.random.key(2), trace=tmp_path / "tr", **kw)
    assert isinstance(res.trajectory, np.memmap)  # on disk, not in memory
    np.testing.assert_array_equal(res.trajectory, np.asarray(mem.trajectory))
    np.testing.assert_array_equal(res.energy_trace, np.asarray(mem.energy_trace))
    np.testing.assert_array_equal(np.asarray(res.positions), np.asarray(mem.positions))
    np.testing.assert_array_equal(np.load(tmp_path / "tr" / "trajectory.npy"), mem.trajectory)
    with pytest.raises(FileExistsError, match="holds the trace of another run"):
        langevin.sample(two_mode_map, jax.random.key(2), trace=tmp_path / "tr", **kw)
    with pytest.raises(ValueError, match="needs thin=k"):
        langevin.sample(two_mode_map, jax.random.key(2), n_chains=4, trace=tmp_path / "t2")


def test_result_to_xarray_and_arviz(two_mode_map):
    import arviz_stats

    res = langevin.sample(
        two_mode_map, jax.random.key(3), n_chains=8, n_steps=200, thin=10, progress=False
    )
    ds = res.to_xarray()
    assert list(ds.data_vars) == ["speed", "power", "energy"]
    assert dict(ds.sizes) == {"chain": 8, "draw": 20} and ds.attrs["thin"] == 10
    np.testing.assert_array_equal(ds["power"].values, np.asarray(res.trajectory)[:, :, 1].T)
    tree = res.to_arviz()
    np.testing.assert_allclose(
        [float(arviz_stats.rhat(tree)[n]) for n in ("speed", "power")], res.rhat, rtol=1e-9
    )
    with pytest.raises(ValueError, match="needs a trajectory"):
        langevin.sample(two_mode_map, jax.random.key(3), n_chains=4, progress=False).to_xarray()


def test_sweep_in_chunks_streams_rows_and_equals_one_call(two_mode_map, tmp_path):
    kw = dict(
        n_chains=16,
        n_best=3,
        objective=lambda x: jnp.sum((x - 1.0) ** 2),
        n_steps=40,
        progress=False,
    )
    settings = {"weight": np.linspace(0.0, 2.0, 5)}
    whole = langevin.sweep(two_mode_map, jax.random.key(5), settings, **kw)
    path = tmp_path / "designs.csv"
    cut = langevin.sweep(two_mode_map, jax.random.key(5), settings, output=path, chunk=2, **kw)
    for name in ("positions", "energies", "total_energies", "objective", "valid", "n_allowed"):
        np.testing.assert_array_equal(getattr(cut, name), getattr(whole, name), err_msg=name)
    df = pd.read_csv(path)
    assert len(df) == 5 * 3 and df["setting"].tolist() == [s for s in range(5) for _ in range(3)]
    np.testing.assert_array_equal(
        df[["x_speed", "x_power"]].to_numpy(), whole.positions.reshape(-1, 2).astype(np.float64)
    )
    np.testing.assert_array_equal(df["weight"].to_numpy(), np.repeat(settings["weight"], 3))
    assert not (tmp_path / "designs.csv.partial").exists()
    with pytest.raises(FileExistsError, match="designs.csv exists"):
        langevin.sweep(two_mode_map, jax.random.key(5), settings, output=path, **kw)
