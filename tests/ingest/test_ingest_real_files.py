"""The crawler reads what the file holds (issue 9, cases 7-14).

Files are made in the tests with the structure of real files other projects ship: netCDF-C's
``nc_test4/ref_tst_dims.nc`` (a 4.5e9-long dimension without a variable),
``nc_test4/ref_hdf5_compat1.nc`` (variables created but never written), netCDF4-python's default
fill handling, HDF5 datasets that need a filter plugin (patched from a deflate dataset).
"""

from __future__ import annotations

import h5py
import netCDF4
import numpy as np
import pytest

import ingest
from ingest import detect, resolve_vars
from ingest._readers import SkipFile, open_tables
from ingest._work import FileTask, process_file


def read(path, names):
    """Decoded columns of every table in a file (identity unit conversion)."""
    specs = resolve_vars(names)
    out = [[] for _ in names]
    junk = 0
    with open_tables(str(path), detect(str(path)), specs) as tables:
        for table in tables:
            for cols, j in table.blocks([(1.0, 0.0)] * len(names)):
                junk += j
                for i, c in enumerate(cols):
                    out[i].append(np.asarray(c, dtype=np.float64))
    return [np.concatenate(c) if c else np.empty(0) for c in out], junk


def skipped(path, names, edges=None) -> str | None:
    return process_file(FileTask(str(path), tuple(resolve_vars(names)), edges)).skipped


# ------------------------------------------------------------------------------ 7: netCDF-4 dims
def test_netcdf4_dimension_without_variable_is_not_a_variable(tmp_path):
    # ref_tst_dims.nc: one dimension "lat" and no variable. netCDF-C stores it as an empty
    # dimension scale whose NAME says so; reading it gave 4.5e9 zeros before.
    path = tmp_path / "dims.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("lat", 4_500_000_000)
    with h5py.File(path) as f:  # the structure of netCDF-C's file
        assert f["lat"].attrs["NAME"].startswith(b"This is a netCDF dimension but not")
    why = skipped(path, ["lat"])
    assert why == "lat: /lat is a netCDF dimension without values (not a variable)"


def test_netcdf4_dimension_is_not_replaced_by_a_variable_of_another_case(tmp_path):
    # netCDF-C's ncdump/ref_nc_test_netcdf4_4_0.nc: dimension "D1" beside variable "d1".
    path = tmp_path / "d1.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("D1", 1)
        ds.createVariable("d1", "f8", ("D1",))[:] = [5.0]
    assert skipped(path, ["D1"]) == "D1: /D1 is a netCDF dimension without values (not a variable)"
    (d1,), _ = read(path, ["d1"])
    np.testing.assert_array_equal(d1, [5.0])


def test_netcdf4_non_coordinate_variable_is_found_by_its_name(tmp_path):
    # A 2-d "lat(y, x)" beside a dimension "lat": netCDF-C stores it as _nc4_non_coord_lat.
    path = tmp_path / "curvilinear.nc"
    lat = np.linspace(40.0, 50.0, 12).reshape(3, 4)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("lat", 5)
        ds.createDimension("y", 3)
        ds.createDimension("x", 4)
        ds.createVariable("lat", "f8", ("y", "x"))[:] = lat
        ds.createVariable("t", "f8", ("y", "x"))[:] = lat * 2
    with h5py.File(path) as f:
        assert "_nc4_non_coord_lat" in f
    (got, t), _ = read(path, ["lat", "t"])
    np.testing.assert_array_equal(got, lat.ravel())
    np.testing.assert_array_equal(t, 2 * lat.ravel())


# ----------------------------------------------------------------------------- 8: name matching
def test_exact_name_first_then_unique_case_insensitive(tmp_path):
    path = tmp_path / "cases.h5"
    with h5py.File(path, "w") as f:
        f["Power"] = np.full(4, 1.0)
        f["POWER"] = np.full(4, 2.0)
        f["Speed"] = np.full(4, 3.0)
    (p,), _ = read(path, ["POWER"])
    assert p[0] == 2.0
    (p,), _ = read(path, ["Power"])
    assert p[0] == 1.0
    (s,), _ = read(path, ["speed"])  # one case-insensitive match: taken
    assert s[0] == 3.0
    with pytest.raises(
        SkipFile, match="ambiguous: power matches variables '(Power|POWER)' and '(Power|POWER)'"
    ):
        read(path, ["power"])
    csv = tmp_path / "cases.csv"
    csv.write_text("Power,POWER,speed\n1,2,3\n")
    with pytest.raises(SkipFile, match="'Power' and 'POWER'"):
        read(csv, ["power"])
    (p,), _ = read(csv, ["POWER"])
    assert p[0] == 2.0


def test_cf_attribute_names_are_case_sensitive(tmp_path):
    path = tmp_path / "attrs.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("t", data=np.array([1.0, 50.0, 500.0]))
        ds.attrs["VALID_RANGE"] = np.array([0.0, 100.0])  # not CF's valid_range
        ds.attrs["Scale_Factor"] = 10.0  # not CF's scale_factor
        ds = f.create_dataset("u", data=np.array([1.0, 50.0, 500.0]))
        ds.attrs["valid_range"] = np.array([0.0, 100.0])
    (t, u), _ = read(path, ["t", "u"])
    np.testing.assert_array_equal(t, [1.0, 50.0, 500.0])
    np.testing.assert_array_equal(u, [1.0, 50.0, np.nan])


# ---------------------------------------------------------------------------- 9: default fills
DEFAULTS = {
    "i2": -32767,
    "i4": -2147483647,
    "i8": -9223372036854775806,
    "u2": 65535,
    "u4": 4294967295,
    "f4": 9.969209968386869e36,
    "f8": 9.969209968386869e36,
    "i1": -127,
    "u1": 255,
}


@pytest.mark.parametrize("fmt", ["NETCDF3_64BIT_DATA", "NETCDF4"])
def test_netcdf_default_fill_values_mask_like_netcdf4_python(tmp_path, fmt):
    path = tmp_path / "fills.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("t", 4)
        for code, fill in DEFAULTS.items():
            v = ds.createVariable(f"v_{code}", code, ("t",))
            v.set_auto_mask(False)
            v[:] = np.array([fill, 1, 2, 3]).astype(code)
        # byte without fill mode (netCDF-4 only) and _Unsigned shorts: not masked
        v = ds.createVariable("s_unsigned", "i2", ("t",))
        v._Unsigned = "true"
        v.set_auto_maskandscale(False)
        v[:] = np.array([-32767, 1, 2, 3], dtype="i2")
        if fmt == "NETCDF4":
            v = ds.createVariable("b_nofill", "i1", ("t",), fill_value=False)
            v.set_auto_mask(False)
            v[:] = np.array([-127, 1, 2, 3], dtype="i1")
    names = [n for n in netCDF4.Dataset(path).variables]
    got, _ = read(path, names)
    with netCDF4.Dataset(path) as ds:  # the oracle: netCDF4-python's own masking
        for name, values in zip(names, got, strict=True):
            want = ds[name][:]
            mask = np.ma.getmaskarray(want)
            np.testing.assert_array_equal(np.isnan(values), mask, err_msg=name)
            np.testing.assert_array_equal(values[~mask], want.data[~mask], err_msg=name)
    by_name = dict(zip(names, got, strict=True))
    assert np.isnan(by_name["v_f4"][0]) and np.isnan(by_name["v_i1"][0])
    assert by_name["s_unsigned"][0] == 32769.0  # netCDF4-python: no default fill with _Unsigned
    if fmt == "NETCDF4":
        assert by_name["b_nofill"][0] == -127.0  # bytes without fill mode: no default fill


def test_plain_hdf5_bytes_have_no_default_fill(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["b"] = np.array([-127, 0], dtype="i1")
        f["f"] = np.array([9.969209968386869e36, 0], dtype="f4")
    (b, fl), _ = read(path, ["b", "f"])
    assert b[0] == -127.0 and np.isnan(fl[0]) and fl[1] == 0.0


def test_hdf5_dataset_never_written_is_no_data(tmp_path):
    # ref_hdf5_compat1.nc: variables defined but never written (no storage allocated).
    path = tmp_path / "unwritten.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("t", 10)
        ds.createVariable("a", "f4", ("t",))
        ds.createVariable("b", "f4", ("t",))[:] = np.arange(10)
    with h5py.File(path) as f:
        assert f["a"].id.get_storage_size() == 0
    why = skipped(path, ["a"])
    assert why.startswith("no data: a (/a) was created but never written")
    (b,), _ = read(path, ["b"])
    np.testing.assert_array_equal(b, np.arange(10))


# ------------------------------------------------------------------------------ 10: infinities
def test_infinities_are_dropped_counted_and_never_move_bounds(tmp_path):
    path = tmp_path / "inf.h5"
    x = np.linspace(0.0, 1.0, 100)
    x[[3, 7]] = np.inf
    x[11] = -np.inf
    x[13] = np.nan
    with h5py.File(path, "w") as f:
        f["x"] = x
    c = ingest.count(str(path), ["x"], bins=8, workers=1, progress=False)
    assert c.bounds == [(0.0, 1.0)]
    assert c.report.rows_dropped == {"non-finite value": 3, "missing value": 1}
    assert c.counts.sum() == 96


# -------------------------------------------------------------------------- 11: automatic bounds
@pytest.mark.parametrize(
    "values",
    [
        np.full(50, 1.7e18),  # ns timestamps, constant
        np.full(50, 9.97e36),
        np.full(50, -3.0),
        1.0 + np.linspace(0.0, 1e-9, 50),  # near-constant
        1.7e18 + np.arange(50) * 256.0,  # a few float64 spacings apart
        np.linspace(-1e37, 1e37, 50),
    ],
    ids=["ns-constant", "huge-constant", "small-constant", "span-1e-9", "ulps", "wide"],
)
def test_automatic_bounds_give_a_valid_map_for_any_finite_data(tmp_path, values):
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f["v"] = values
    m, report = ingest.ingest(str(path), ["v"], bins=16, workers=1, progress=False)
    ((lo, hi),) = [tuple(map(float, b)) for b in np.asarray(m.bounds).reshape(-1, 2)]
    assert lo <= values.min() and values.max() <= hi and lo < hi
    assert report.rows_used == len(values)
    e = np.asarray(m(np.array([[values[0]]])))
    assert np.all(np.isfinite(e))


@pytest.mark.parametrize("values", [[-1e308, 0.0, 1e308], [0.0, 1e150]], ids=["f64", "f32"])
def test_automatic_bounds_beyond_the_map_range_are_a_clear_error(tmp_path, values):
    # hi - lo overflows float64, or the map (float32 under JAX's default) cannot hold them.
    path = tmp_path / "extreme.h5"
    with h5py.File(path, "w") as f:
        f["v"] = np.array(values)
    with pytest.raises(ValueError, match=r"automatic bounds of v: .*extreme\.h5.*--bounds"):
        ingest.count(str(path), ["v"], bins=8, workers=1, progress=False)


# ----------------------------------------------------------------------------------- 13: CSV
def test_csv_stray_quote_loses_only_its_row(tmp_path):
    path = tmp_path / "quote.csv"
    rows = [f"{i},{2 * i}" for i in range(10)]
    rows[4] = '4,"8'  # an unclosed quote: the csv module would join every line after it
    path.write_text("a,b\n" + "\n".join(rows) + "\n")
    (a, b), junk = read(path, ["a", "b"])
    assert junk == 1
    np.testing.assert_array_equal(a, [0, 1, 2, 3, 5, 6, 7, 8, 9])


def test_csv_huge_field_nul_bytes_and_huge_line(tmp_path, monkeypatch):
    from ingest import _readers

    path = tmp_path / "odd.csv"
    big = '"' + "x" * 200_000 + '"'  # over the csv module's field limit (131072)
    path.write_bytes(
        b"a,b,note\n1,2,ok\n3,4," + big.encode() + b"\n5,\x006,nul\n7,8,ok\n" + b"9" * 5000 + b"\n"
    )
    monkeypatch.setattr(_readers, "MAX_LINE_BYTES", 4096)
    monkeypatch.setattr(_readers, "BLOCK_BYTES", 1024)
    (a, b), junk = read(path, ["a", "b"])
    np.testing.assert_array_equal(a, [1, 7])
    assert junk == 3  # the huge field, the NUL and the line longer than MAX_LINE_BYTES
    res = process_file(FileTask(str(path), tuple(resolve_vars(["a", "b"])), None))
    assert res.skipped is None and res.rows_used == 2


def test_csv_huge_header_is_skipped_with_a_reason(tmp_path, monkeypatch):
    from ingest import _readers

    monkeypatch.setattr(_readers, "MAX_LINE_BYTES", 4096)
    path = tmp_path / "header.csv"
    path.write_text("a" * 10_000 + ",b\n1,2\n")
    assert skipped(path, ["b"]).startswith("a header or preamble line longer than")


def test_hdf5_filter_plugin_is_named_not_corrupt(tmp_path):
    # A deflate dataset whose filter id is patched to LZ4's (32004), as a file written with
    # hdf5plugin looks to an HDF5 library without that plugin.
    path = tmp_path / "lz4.h5"
    with h5py.File(path, "w", libver="earliest") as f:
        f.create_dataset("power", data=np.arange(100.0), chunks=(10,), compression="gzip")
    raw = bytearray(path.read_bytes())
    at = raw.find(b"deflate\x00") - 8  # filter pipeline message v1: id, name length, flags...
    assert raw[at : at + 2] == b"\x01\x00"
    raw[at : at + 2] = (32004).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    why = skipped(path, ["power"])
    assert why.startswith("needs the LZ4 filter (HDF5 filter id 32004)")
    assert "corrupt" not in why


# ------------------------------------------------------------------------- 14: unusable variables
def test_unusable_variables_are_named_not_missing(tmp_path):
    path = tmp_path / "kinds.h5"
    with h5py.File(path, "w") as f:
        f["scalar"] = 3.0
        f["cplx"] = np.ones(4, dtype=np.complex64)
        f["text"] = np.array([b"a", b"b"])
        f.create_dataset("empty", shape=(0,), dtype="f8")
    assert skipped(path, ["scalar"]) == "scalar: /scalar is a scalar (one value, no rows)"
    assert skipped(path, ["cplx"]).startswith("cplx: /cplx is complex numbers")
    assert skipped(path, ["text"]) == "text: /text is text (strings), not numbers"
    assert skipped(path, ["empty"]) == "empty: /empty is empty (shape (0,), no values)"
    assert skipped(path, ["nothing"]) == "no matching variables (missing nothing)"
    nc = tmp_path / "kinds.nc"
    with netCDF4.Dataset(nc, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("n", 3)
        ds.createVariable("scalar", "f8", ())[...] = 1.0
        ds.createVariable("name", "S1", ("n",))[:] = np.array([b"a", b"b", b"c"])
    assert skipped(nc, ["scalar"]) == "scalar: scalar is a scalar (one value, no rows)"
    assert skipped(nc, ["name"]) == "name: name is text (strings), not numbers"
