"""Helpers for the ingest tests: small files written by the real libraries (netCDF4, h5py, csv).

A plain module (not conftest.py): several test folders have a conftest, and `from conftest
import ...` would pick whichever was imported first.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

N_ROWS = 500  # rows per generated file: enough for every code path, cheap to write


def raw_columns(seed: int, n: int = N_ROWS) -> dict[str, np.ndarray]:
    """Raw (packed) values of three variables with fills and out-of-range values sprinkled in."""
    rng = np.random.default_rng(seed)
    # temperature: int16 packed as degC = raw * 0.01 + 20; fill -32768; valid_range [-5000, 5000]
    t = rng.integers(-6000, 6000, n).astype(np.int16)
    t[rng.random(n) < 0.05] = -32768
    # power: float32 kW with missing_value -999
    p = rng.normal(500.0, 200.0, n).astype(np.float32)
    p[rng.random(n) < 0.05] = -999.0
    # speed: unsigned bytes stored as int8 (_Unsigned = "true"), 0.1 m/s per count, fill 255
    s = rng.integers(0, 256, n).astype(np.uint8)
    s[rng.random(n) < 0.05] = 255
    return {"temperature": t, "power": p, "speed": s.view(np.int8)}


ATTRS = {
    "temperature": {
        "units": "degree_Celsius",
        "scale_factor": np.float64(0.01),
        "add_offset": np.float64(20.0),
        "_FillValue": np.int16(-32768),
        "valid_range": np.array([-5000, 5000], dtype=np.int16),
    },
    "power": {"units": "kW", "missing_value": np.float32(-999.0)},
    "speed": {
        "units": "m s-1",
        "scale_factor": np.float32(0.1),
        "_FillValue": np.int8(-1),
        "_Unsigned": "true",
    },
}


def expected_decoded(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The CF rules written out by hand for the generated columns (float64, NaN = missing)."""
    t = cols["temperature"].astype(np.float64)
    t_ok = (cols["temperature"] != -32768) & (np.abs(cols["temperature"]) <= 5000)
    p = cols["power"].astype(np.float64)
    s_raw = cols["speed"].view(np.uint8)
    return {
        "temperature": np.where(t_ok, t * 0.01 + 20.0, np.nan),
        "power": np.where(cols["power"] != -999.0, p, np.nan),
        "speed": np.where(s_raw != 255, s_raw * np.float64(np.float32(0.1)), np.nan),
    }


def write_netcdf(path, cols, fmt: str) -> None:
    """Write the columns with netCDF4 (raw values, attributes as given) in format ``fmt``."""
    import netCDF4

    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", None)
        ds.title = "ingest test"
        for name, arr in cols.items():
            attrs = dict(ATTRS[name])
            fill = attrs.pop("_FillValue", None)
            v = ds.createVariable(name, arr.dtype, ("time",), fill_value=fill)
            v.set_auto_maskandscale(False)
            for k, val in attrs.items():
                v.setncattr(k, val)
            v[: len(arr)] = arr
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "seconds since 2020-01-01"
        t[: len(arr)] = np.arange(len(arr), dtype=np.float64) * 600.0


def write_hdf5(path, groups: dict[str, dict[str, np.ndarray]], compression=None) -> None:
    """Write one group per entry (``""`` is the root) with chunked datasets and CF attributes."""
    with h5py.File(path, "w") as f:
        for group, cols in groups.items():
            g = f.require_group(group) if group else f
            for name, arr in cols.items():
                ds = g.create_dataset(name, data=arr, chunks=(64,), compression=compression)
                for k, val in ATTRS[name].items():
                    ds.attrs[k] = val


def write_csv(path, header: list[str], rows, delimiter=",", preamble="") -> None:
    """Write a text table: optional preamble lines, the header, then rows as given (strings)."""
    with open(path, "w", newline="") as f:
        f.write(preamble)
        f.write(delimiter.join(header) + "\n")
        for row in rows:
            f.write(delimiter.join(str(v) for v in row) if not isinstance(row, str) else row)
            f.write("\n")


def make_lake(root, n_files: int, rows: int = 200, seed: int = 0) -> np.ndarray:
    """A lake of HDF5, NetCDF 4 and CSV files of (x [m], y [s]); returns all rows (n, 2).

    Files rotate through the three formats; every fifth CSV row is junk and some values are
    missing, so the counts exercise every drop reason.
    """
    import netCDF4

    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    kept = []
    for i in range(n_files):
        x = rng.normal(0.0, 1.0, rows)
        y = 0.5 * x + rng.normal(0.0, 0.5, rows)
        x[rng.random(rows) < 0.02] = np.nan
        sub = os.path.join(root, f"d{i % 3}")
        os.makedirs(sub, exist_ok=True)
        kind = i % 3
        if kind == 0:
            with h5py.File(os.path.join(sub, f"f{i:03d}.h5"), "w") as f:
                f.create_dataset("x", data=x, chunks=(50,)).attrs["units"] = "m"
                f.create_dataset("y", data=y * 1000.0, chunks=(50,)).attrs["units"] = "ms"
        elif kind == 1:
            with netCDF4.Dataset(os.path.join(sub, f"f{i:03d}.nc"), "w") as ds:
                ds.createDimension("t", rows)
                vx = ds.createVariable("X", "f8", ("t",))
                vx.units = "cm"
                vx[:] = x * 100.0
                vy = ds.createVariable("y", "f8", ("t",))
                vy.units = "s"
                vy[:] = y
        else:
            # Values in mm (the truth stays in metres); empty x cells are missing values.
            lines = [
                f"{float(a) * 1000.0!r},{float(b)!r}" if np.isfinite(a) else f",{float(b)!r}"
                for a, b in zip(x, y, strict=True)
            ]
            bad = np.zeros(rows, dtype=bool)
            bad[::5] = True  # every fifth line is junk
            lines = ["sensor reset" if k else line for k, line in zip(bad, lines, strict=True)]
            write_csv(os.path.join(sub, f"f{i:03d}.csv"), ["x [mm]", "y (s)"], lines)
            kept.append(np.column_stack([x[~bad], y[~bad]]))
            continue
        kept.append(np.column_stack([x, y]))
    return np.concatenate(kept)
