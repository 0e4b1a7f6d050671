"""Sweep rows streamed to a table (`langevin._table.TableWriter`): CSV always, Parquet with pyarrow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from langevin._table import TableWriter


def chunk(b, k, d, shift=0.0):
    rng = np.random.default_rng(int(shift))
    settings = {
        "weight": np.linspace(0, 1, b) + shift,
        "temperature": np.full(b, 0.5),
        "fixed": np.where(np.arange(d) == 0, 1.5, np.nan)[None].repeat(b, 0),
    }
    res = {
        "positions": rng.normal(size=(b, k, d)),
        "energies": rng.normal(size=(b, k)),
        "total_energies": rng.normal(size=(b, k)),
        "objective": rng.normal(size=(b, k)),
        "valid": rng.random((b, k)) < 0.7,
    }
    return settings, res


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rows_of_every_chunk_round_trip_exactly(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")  # Parquet is optional: CSV needs nothing
    path = tmp_path / f"sweep{suffix}"
    w = TableWriter(path, ["speed", "power"])
    chunks = [chunk(3, 2, 2, 0.0), chunk(2, 2, 2, 10.0)]
    first = 0
    for settings, res in chunks:
        w.write(first, settings, res)
        first += len(settings["weight"])
        assert w.partial.exists() and not path.exists()  # rows land as chunks finish
    assert w.close() == path and not w.partial.exists()
    df = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    assert list(df.columns) == [
        "setting", "weight", "temperature", "fixed_speed", "fixed_power", "rank",
        "x_speed", "x_power", "energy", "total_energy", "objective", "valid",
    ]  # fmt: skip
    assert len(df) == 10 and df["setting"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    pos = np.concatenate([r["positions"].reshape(-1, 2) for _, r in chunks])
    np.testing.assert_array_equal(df[["x_speed", "x_power"]].to_numpy(), pos)  # exact floats
    valid = np.concatenate([r["valid"].reshape(-1) for _, r in chunks])
    np.testing.assert_array_equal(df["valid"].to_numpy().astype(bool), valid)
    assert df["fixed_speed"].eq(1.5).all() and df["fixed_power"].isna().all()


def test_an_existing_file_is_never_overwritten(tmp_path):
    path = tmp_path / "sweep.csv"
    path.write_text("mine\n")
    with pytest.raises(FileExistsError, match="sweep.csv exists; it is not overwritten"):
        TableWriter(path, ["a"])
    assert path.read_text() == "mine\n"


def test_an_interrupted_sweep_keeps_its_finished_rows(tmp_path):
    path = tmp_path / "sweep.csv"
    w = TableWriter(path, ["a"])
    w.write(0, *chunk(2, 3, 1))
    assert w.close(complete=False) == w.partial
    assert not path.exists() and len(pd.read_csv(w.partial)) == 6
