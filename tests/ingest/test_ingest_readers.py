"""Readers on files written by the real libraries, decoded values checked against xarray."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import xarray as xr
from ingest_helpers import ATTRS, expected_decoded, raw_columns, write_csv, write_hdf5, write_netcdf

from ingest import detect, resolve_vars
from ingest._readers import SkipFile, open_tables

NAMES = ["temperature", "power", "speed"]


def read_all(path, names=NAMES, profile=None):
    """Decoded columns of every table in a file, concatenated (identity unit conversion)."""
    specs = resolve_vars(names, profile)
    out = [[] for _ in names]
    junk = 0
    with open_tables(str(path), detect(str(path)), specs) as tables:
        for table in tables:
            for cols, j in table.blocks([(1.0, 0.0)] * len(names)):
                junk += j
                for i, c in enumerate(cols):
                    out[i].append(c)
    return [np.concatenate(c) if c else np.empty(0) for c in out], junk


def xarray_oracle(path, engine) -> dict[str, np.ndarray]:
    """xarray's decode_cf values, plus the valid_range mask (xarray leaves that to the user)."""
    with xr.open_dataset(path, engine=engine, decode_times=False) as ds:
        dec = {n: ds[n].values.astype(np.float64) for n in NAMES}
    with xr.open_dataset(path, engine=engine, decode_cf=False) as ds:
        raw_t = ds["temperature"].values
    vr = ATTRS["temperature"]["valid_range"]
    dec["temperature"][(raw_t < vr[0]) | (raw_t > vr[1])] = np.nan
    return dec


@pytest.mark.parametrize(
    "fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA", "NETCDF4"]
)
def test_netcdf_decoding_matches_xarray(tmp_path, fmt):
    cols = raw_columns(1)
    path = tmp_path / f"f_{fmt}.nc"
    write_netcdf(path, cols, fmt)
    kind = detect(str(path))
    assert kind == ("hdf5" if fmt == "NETCDF4" else "netcdf3")
    got, _ = read_all(path)
    oracle = xarray_oracle(path, "netcdf4")
    truth = expected_decoded(cols)
    for i, name in enumerate(NAMES):
        np.testing.assert_array_equal(np.isnan(got[i]), np.isnan(oracle[name]), err_msg=name)
        ok = ~np.isnan(got[i])
        # xarray decodes packed values in float32 when the packing attributes are float32.
        np.testing.assert_allclose(got[i][ok], oracle[name][ok], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(got[i], truth[name], rtol=1e-12, err_msg=name)
    assert 0 < np.isnan(got[0]).sum() < len(got[0])


def test_hdf5_groups_chunking_and_compression(tmp_path):
    a, b = raw_columns(2), raw_columns(3)
    path = tmp_path / "plant.h5"
    write_hdf5(path, {"site_a": a, "site_b/inner": b}, compression="gzip")
    got, _ = read_all(path)
    ta, tb = expected_decoded(a), expected_decoded(b)
    for i, name in enumerate(NAMES):
        np.testing.assert_allclose(got[i], np.concatenate([ta[name], tb[name]]), rtol=1e-12)


def test_hdf5_byte_string_attributes_and_compound_tables(tmp_path):
    path = tmp_path / "table.h5"
    rec = np.zeros(100, dtype=[("Temperature", "f8"), ("Power", "f4"), ("label", "S4")])
    rec["Temperature"] = np.linspace(0, 1, 100)
    rec["Power"] = np.arange(100)
    with h5py.File(path, "w") as f:
        f.create_dataset("log/table", data=rec, chunks=(16,))
        ds = f.create_dataset("speed", data=np.ones(10))
        ds.attrs["units"] = np.bytes_(b"m s-1")
    got, _ = read_all(path, ["temperature", "power"])
    np.testing.assert_array_equal(got[0], rec["Temperature"])
    np.testing.assert_array_equal(got[1], rec["Power"].astype(np.float64))
    specs = resolve_vars(["speed"])
    with open_tables(str(path), "hdf5", specs) as tables:
        assert tables[0].columns[0].unit == "m s-1"


def test_hdf5_ambiguous_and_misaligned(tmp_path):
    path = tmp_path / "amb.h5"
    with h5py.File(path, "w") as f:
        f["a/temperature"] = np.ones(5)
        f["b/temperature"] = np.ones(5)
        f["c/power"] = np.ones(5)
    with pytest.raises(SkipFile, match="ambiguous: temperature"):
        read_all(path, ["temperature", "power"])
    path = tmp_path / "misaligned.h5"
    with h5py.File(path, "w") as f:
        f["temperature"] = np.ones(5)
        f["power"] = np.ones(6)
    with pytest.raises(SkipFile, match="not aligned"):
        read_all(path, ["temperature", "power"])
    with pytest.raises(SkipFile, match="missing speed"):
        read_all(path, ["temperature", "speed"])


def test_csv_units_junk_missing_and_dialects(tmp_path):
    rows = [
        "1.5,10,a",
        "2.5,,b",  # empty cell: missing
        "garbage line",  # junk
        "NA,30,c",  # NA token: missing
        "4.5,40,d,extra",  # wrong field count: junk
        "5.5,oops,e",  # non-numeric: junk
        "",
        "6.5,60,f",
    ]
    path = tmp_path / "log.csv"
    write_csv(path, ["Temperature [degC]", "power (kW)", "note"], rows, preamble="# logger v2\n")
    (t, p), junk = read_all(path, ["temperature", "power"])
    assert junk == 3
    np.testing.assert_array_equal(t, [1.5, 2.5, np.nan, 6.5])
    np.testing.assert_array_equal(p, [10.0, np.nan, 30.0, 60.0])
    specs = resolve_vars(["temperature", "power"])
    with open_tables(str(path), "text", specs) as (table,):
        assert [c.unit for c in table.columns] == ["degC", "kW"]
    semi = tmp_path / "semi.txt"
    write_csv(semi, ["\ufefftemperature", "power"], ["1;2", "3;4"], delimiter=";")  # BOM
    (t, p), _ = read_all(semi, ["temperature", "power"])
    np.testing.assert_array_equal(p, [2.0, 4.0])
    crlf = tmp_path / "windows.csv"
    crlf.write_bytes(b"temperature (K),power\r\n1,2\r\n,4\r\n5,6\r\n")
    (t, p), _ = read_all(crlf, ["temperature", "power"])
    np.testing.assert_array_equal(t, [1.0, np.nan, 5.0])
    np.testing.assert_array_equal(p, [2.0, 4.0, 6.0])
    ws = tmp_path / "whitespace.log"
    write_csv(ws, ["temperature", "power"], ["1  2", "3\t4"], delimiter=" ")
    (t, p), _ = read_all(ws, ["temperature", "power"])
    np.testing.assert_array_equal(t, [1.0, 3.0])


@pytest.mark.parametrize("engine", ["pandas", "numpy"])
def test_csv_fast_and_exact_paths_agree(tmp_path, rng, monkeypatch, engine):
    # A long clean file read block by block (fast path: pandas when installed, else
    # np.loadtxt) and the same with one junk line per block (exact path, line by line): the
    # numbers must be the same, to the last bit.
    from ingest import _readers

    if engine == "numpy":
        monkeypatch.setattr(_readers, "_PANDAS", False)
    else:
        assert _readers._pandas(), "pandas is a dev dependency (through xarray)"

    x = rng.normal(size=(20_000, 3))
    clean = [",".join(repr(float(v)) for v in r) for r in x]
    dirty = list(clean)
    dirty[::997] = ["BAD LINE"] * len(dirty[::997])
    write_csv(tmp_path / "clean.csv", ["a", "b", "c"], clean)
    write_csv(tmp_path / "dirty.csv", ["a", "b", "c"], dirty)
    old = _readers.BLOCK_BYTES
    _readers.BLOCK_BYTES = 50_000  # many blocks, each ending mid-line
    try:
        (c, _, a), junk = read_all(tmp_path / "clean.csv", ["c", "b", "a"])  # reordered
        (a2, _, c2), junk2 = read_all(tmp_path / "dirty.csv", ["a", "b", "c"])
    finally:
        _readers.BLOCK_BYTES = old
    assert junk == 0 and junk2 == len(dirty[::997])
    np.testing.assert_array_equal(a, x[:, 0])
    keep = np.ones(len(x), dtype=bool)
    keep[::997] = False
    np.testing.assert_array_equal(c2, x[keep, 2])
    np.testing.assert_array_equal(c, x[:, 2])


@pytest.mark.parametrize(
    ("content", "name", "reason"),
    [
        (b"", "empty.csv", "empty file"),
        (b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "trunc.h5", "corrupt"),
        (b"not hdf5 at all", "fake.h5", "corrupt: no HDF5 or NetCDF signature"),
        (b"\x00\x01\x02binary", "blob.dat", "unrecognised binary format"),
    ],
)
def test_detect_and_open_refuse_bad_files(tmp_path, content, name, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SkipFile, match=reason):
        read_all(path)


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_DATA", "NETCDF4"])
def test_truncated_netcdf_is_corrupt(tmp_path, fmt):
    path = tmp_path / "t.nc"
    write_netcdf(path, raw_columns(4), fmt)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(SkipFile, match="corrupt"):
        read_all(path)


def test_gzip_compressed_logs(tmp_path):
    import gzip

    body = "temperature [K],power [W]\n" + "".join(f"{i}.5,{2 * i}\n" for i in range(3000))
    path = tmp_path / "rotated.log.gz"
    with gzip.open(path, "wt") as f:
        f.write(body)
    assert detect(str(path)) == "text-gzip"
    (t, p), junk = read_all(path, ["temperature", "power"])
    assert junk == 0 and len(t) == 3000 and t[-1] == 2999.5 and p[-1] == 5998.0
    data = path.read_bytes()
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(data[: len(data) // 2])
    from ingest._work import FileTask, process_file

    res = process_file(FileTask(str(cut), tuple(resolve_vars(["temperature"])), None))
    assert res.skipped.startswith("corrupt") and res.rows_used == 0


def test_hdf5_user_block_is_recognised(tmp_path):
    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["temperature"] = np.arange(3.0)
    assert detect(str(path)) == "hdf5"


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"])
def test_netcdf3_layouts_match_netcdf4_library(tmp_path, fmt, rng):
    # A lone short record variable (records of 2 bytes, unpadded), interleaved record variables
    # of several shapes and types, and fixed-size variables: every layout the format has.
    import netCDF4

    from ingest._netcdf3 import NC3File

    lone = tmp_path / "lone.nc"
    with netCDF4.Dataset(lone, "w", format=fmt) as ds:
        ds.createDimension("t", None)
        v = ds.createVariable("power", "i2", ("t",))
        v[:7] = np.arange(7, dtype=np.int16) * 3
    (p,), _ = read_all(lone, ["power"])
    np.testing.assert_array_equal(p, np.arange(7) * 3.0)

    mixed = tmp_path / "mixed.nc"
    a = rng.normal(size=(11, 3))
    b = rng.integers(-100, 100, size=(11, 3)).astype(np.int8)
    c = rng.normal(size=5).astype(np.float32)
    with netCDF4.Dataset(mixed, "w", format=fmt) as ds:
        ds.createDimension("t", None)
        ds.createDimension("k", 3)
        ds.createDimension("s", 5)
        ds.createVariable("a", "f8", ("t", "k"))[:] = a
        ds.createVariable("b", "i1", ("t", "k"))[:] = b
        ds.createVariable("c", "f4", ("s",))[:] = c
        ds.createVariable("d", "f4", ("s",))[:] = 2 * c
    (ga, gb), _ = read_all(mixed, ["a", "b"])
    np.testing.assert_array_equal(ga, a.ravel())
    np.testing.assert_array_equal(gb, b.ravel().astype(np.float64))
    (gc, gd), _ = read_all(mixed, ["c", "d"])
    np.testing.assert_array_equal(gc, c.astype(np.float64))
    np.testing.assert_array_equal(gd, 2 * c.astype(np.float64))
    with NC3File(mixed) as nc:
        assert nc.variables["a"].shape == (11, 3) and nc.variables["c"].shape == (5,)
        (part,) = nc.read_rows(["b"], 4, 9)
        np.testing.assert_array_equal(part, b[4:9])
