"""Ingest: the crawler against the raw read of the same bytes, same run, one process.

A lake of HDF5 float32 files (two variables, chunks of 65536 values) is written to a temporary
folder (the full size adds HDF5 gzip, NetCDF 4 and CSV lakes). Engines, interleaved, files warm in the page cache:

- ``ingest.count (1 worker)``: the crawler (detection, units, masks, bounds, counting);
- ``ceiling: read + crawler's fill``: a bare loop reading the same datasets in the crawler's
  block size and filling with the crawler's own binning kernel (``ingest._work._Filler``):
  nothing but the read and the count, so ``ingest.count / ceiling <= 1`` by construction;
- peers of the fill: ``read + boost-histogram fill`` and ``read + np.histogramdd``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from . import _common as C

SUITE = "ingest"
BOUNDS = [(-4.0, 4.0), (-4.0, 4.0)]
BINS = (64, 64)
ROWS_PER_FILE = 1_000_000  # 8 MB of float32 pairs per HDF5 file
SIZES = {
    "smoke": {"formats": ["hdf5"], "mb": 4, "repeats": 2},
    "quick": {"formats": ["hdf5"], "mb": 24, "repeats": 5},
    "full": {"formats": ["hdf5", "hdf5-gzip", "netcdf4", "csv"], "mb": 120, "repeats": 5},
}


def make_lake(root: str, fmt: str, size_mb: float, seed: int = 0) -> tuple[int, int]:
    """Write about ``size_mb`` MB of files of format ``fmt``; returns (bytes, rows)."""
    import h5py

    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    total = rows = i = 0
    per_file = min(ROWS_PER_FILE, int(size_mb * 1e6 / 8) + 1)
    while total < size_mb * 1e6:
        a = rng.normal(size=per_file).astype(np.float32)
        b = (0.6 * a + 0.8 * rng.normal(size=per_file)).astype(np.float32)
        path = os.path.join(root, f"f{i:04d}")
        chunk = (min(65536, per_file),)
        if fmt in ("hdf5", "hdf5-gzip"):
            path += ".h5"
            comp = "gzip" if fmt == "hdf5-gzip" else None
            with h5py.File(path, "w") as f:
                for name, v in (("a", a), ("b", b)):
                    ds = f.create_dataset(name, data=v, chunks=chunk, compression=comp)
                    ds.attrs["units"] = "m"
        elif fmt == "netcdf4":
            import netCDF4

            path += ".nc"
            with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
                ds.createDimension("t", per_file)
                for name, v in (("a", a), ("b", b)):
                    var = ds.createVariable(name, "f4", ("t",), chunksizes=chunk)
                    var.units = "m"
                    var[:] = v
        else:
            path += ".csv"
            n = per_file // 4
            a, b = a[:n], b[:n]
            np.savetxt(
                path,
                np.column_stack([a, b]),
                fmt="%.6f",
                delimiter=",",
                header="a [m],b [m]",
                comments="",
            )
        total += os.path.getsize(path)
        rows += len(a)
        i += 1
    return total, rows


def _blocks(path: str, fmt: str):
    """The file's two columns in the crawler's block size (HDF5, NetCDF 4 read by h5py: the
    same bytes) or whole (CSV)."""
    if fmt == "csv":
        from ingest import _readers

        pd = _readers._pandas()
        if pd:
            v = pd.read_csv(path, dtype=np.float64, engine="c").to_numpy()
        else:
            v = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
        yield v[:, 0], v[:, 1]
        return
    import h5py

    from ingest import _readers

    with h5py.File(path, "r") as f:
        da, db = f["a"], f["b"]
        step = _readers.BLOCK_BYTES // 16
        for s in range(0, da.shape[0], step):
            yield da[s : s + step], db[s : s + step]


def _edges():
    import ingest

    return ingest._crawl._edges(BOUNDS, BINS)


def _hist(edges):
    import boost_histogram as bh

    return bh.Histogram(
        *[bh.axis.Variable(e, underflow=False, overflow=False) for e in edges],
        storage=bh.storage.Int64(),
    )


def ceiling(files, fmt, edges):
    """Read + the crawler's own fill; returns the counts."""
    from ingest import _work

    h = _hist(edges)
    filler = _work._Filler(h, edges)
    for path in files:
        for a, b in _blocks(path, fmt):
            filler.fill([a, b], np.ones(len(a), bool), True)
        filler.flush()
    return h.view()


def boost_fill(files, fmt, edges):
    h = _hist(edges)
    for path in files:
        for a, b in _blocks(path, fmt):
            h.fill(a, b)
    return h.view()


def numpy_fill(files, fmt, edges):
    counts = np.zeros([len(e) - 1 for e in edges], np.int64)
    for path in files:
        for a, b in _blocks(path, fmt):
            counts += np.histogramdd((a, b), bins=edges)[0].astype(np.int64)
    return counts


def run(size: str, backend: str, repeats: int | None = None) -> dict:
    import ingest

    cfg = SIZES[size]
    rows, ratios = [], []
    tmp = tempfile.mkdtemp(prefix="groundstate-bench-ingest-")
    try:
        for fmt in cfg["formats"]:
            root = os.path.join(tmp, fmt)
            nbytes, nrows = make_lake(root, fmt, cfg["mb"])
            files = sorted(os.path.join(root, f) for f in os.listdir(root))
            edges = _edges()
            case = {"format": fmt, "MB": round(nbytes / 1e6, 1), "files": len(files)}

            def crawl(root=root):
                c = ingest.count(
                    root, ["a:m", "b:m"], bins=BINS, bounds=BOUNDS, workers=1, progress=False
                )
                if c.report.rows_used == 0 or c.report.files_skipped:
                    raise RuntimeError(f"the bench lake {root} was not read: {c.report}")
                return c

            engines = {
                "ingest.count (1 worker)": crawl,
                "ingest.count (1 worker) (A/A)": crawl,
                "ceiling: read + crawler's fill": lambda f=files, m=fmt, e=edges: ceiling(f, m, e),
            }
            if C.optional("boost_histogram"):
                engines["read + boost-histogram fill"] = lambda f=files, m=fmt, e=edges: boost_fill(
                    f, m, e
                )
            engines["read + np.histogramdd"] = lambda f=files, m=fmt, e=edges: numpy_fill(f, m, e)
            # The same counts from every engine, or the comparison means nothing.
            ref = np.asarray(ceiling(files, fmt, edges))
            if not np.array_equal(ref, numpy_fill(files, fmt, edges)):
                raise RuntimeError(
                    "ingest bench: the ceiling's counts differ from np.histogramdd's"
                )
            if not np.array_equal(ref, np.asarray(crawl().counts)):
                raise RuntimeError(
                    f"ingest bench: the crawler's counts differ from the ceiling's ({fmt})"
                )
            timings = C.measure(engines, repeats or cfg["repeats"])
            new = C.rows_of(SUITE, case, timings, nbytes, "bytes")
            for row in new:
                row["rows"] = nrows
            rows += new
            for a, b in (
                ("ingest.count (1 worker)", "ingest.count (1 worker) (A/A)"),
                ("ingest.count (1 worker)", "ceiling: read + crawler's fill"),
                ("ceiling: read + crawler's fill", "read + boost-histogram fill"),
                ("ceiling: read + crawler's fill", "read + np.histogramdd"),
            ):
                if r := C.ratio(SUITE, case, timings, a, b):
                    ratios.append(r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"rows": rows, "ratios": ratios}


def print_result(res: dict) -> None:
    C.print_table(
        "ingest: crawl vs raw read (M bytes/s = MB/s)", res["rows"], res["ratios"], ["format", "MB"]
    )
