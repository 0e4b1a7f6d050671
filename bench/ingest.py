"""Benchmark of the ingest crawler against the raw-read ceiling of the same files, same run.

A lake is generated in a temporary folder, one sub-lake per format (HDF5 float32, HDF5 gzip,
NetCDF 4, CSV), each ``--size-mb`` MB. For each format it times:

- ceiling: a bare loop over the files, h5py read of each dataset in the crawler's block size
  plus a boost-histogram fill on the same axes (no detection, CF decoding, units, masks,
  manifest or processes) -- for CSV, one ``pandas.read_csv`` of the whole file (``np.loadtxt``
  without pandas) plus the same fill;
- crawler: ``ingest.count`` with 1 and 2 worker processes (bounds given: one pass).

Files are read warm (from the page cache) by both, after one untimed warm-up read. The machine
is shared and noisy: compare ratios within one run, not numbers across runs.

Usage:
    python bench/ingest.py                 # ~3 min on 2 shared cores (default 40 MB/format)
    python bench/ingest.py --size-mb 1000  # a few GB in all
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import boost_histogram as bh
import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ingest  # noqa: E402
from ingest import _readers  # noqa: E402

BOUNDS = [(-4.0, 4.0), (-4.0, 4.0)]
BINS = (64, 64)
ROWS_PER_FILE = 1_000_000  # 8 MB of float32 pairs per binary file


def _data(rng, n):
    a = rng.normal(size=n).astype(np.float32)
    b = (0.6 * a + 0.8 * rng.normal(size=n)).astype(np.float32)
    return a, b


def make_lake(root: str, fmt: str, size_mb: float, seed: int = 0) -> tuple[int, int]:
    """Write ``size_mb`` MB of files of format ``fmt``; returns (bytes, rows)."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    total = rows = 0
    i = 0
    while total < size_mb * 1e6:
        a, b = _data(rng, ROWS_PER_FILE)
        path = os.path.join(root, f"f{i:04d}")
        if fmt in ("hdf5", "hdf5-gzip"):
            path += ".h5"
            comp = "gzip" if fmt == "hdf5-gzip" else None
            with h5py.File(path, "w") as f:
                for name, v in (("a", a), ("b", b)):
                    ds = f.create_dataset(name, data=v, chunks=(65536,), compression=comp)
                    ds.attrs["units"] = "m"
        elif fmt == "netcdf4":
            import netCDF4

            path += ".nc"
            with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
                ds.createDimension("t", ROWS_PER_FILE)
                for name, v in (("a", a), ("b", b)):
                    var = ds.createVariable(name, "f4", ("t",), chunksizes=(65536,))
                    var.units = "m"
                    var[:] = v
        elif fmt == "csv":
            path += ".csv"
            n = ROWS_PER_FILE // 4  # ~ 9 MB of text per file
            np.savetxt(
                path,
                np.column_stack([a[:n], b[:n]]),
                fmt="%.6f",
                delimiter=",",
                header="a [m],b [m]",
                comments="",
            )
            a = a[:n]
        total += os.path.getsize(path)
        rows += len(a)
        i += 1
    return total, rows


def _hist():
    edges = ingest._crawl._edges(BOUNDS, BINS)
    return bh.Histogram(
        *[bh.axis.Variable(e, underflow=False, overflow=False) for e in edges],
        storage=bh.storage.Int64(),
    )


def ceiling(root: str, fmt: str) -> float:
    """Seconds for the bare read + fill of every file, in this process."""
    files = sorted(os.path.join(root, f) for f in os.listdir(root))
    h = _hist()
    t0 = time.perf_counter()
    for path in files:
        if fmt == "csv":
            if _readers._pandas():
                v = _readers._pandas().read_csv(path, dtype=np.float64, engine="c").to_numpy()
            else:
                v = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
            h.fill(v[:, 0], v[:, 1])
            continue
        with h5py.File(path, "r") as f:
            da, db = f["a"], f["b"]
            step = _readers.BLOCK_BYTES // 16
            for s in range(0, da.shape[0], step):
                h.fill(da[s : s + step], db[s : s + step])
    return time.perf_counter() - t0


def crawl(root: str, workers: int) -> float:
    t0 = time.perf_counter()
    c = ingest.count(
        root, ["a:m", "b:m"], bins=BINS, bounds=BOUNDS, workers=workers, progress=False
    )
    dt = time.perf_counter() - t0
    assert c.report.rows_used > 0 and not c.report.files_skipped
    return dt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=float, default=40.0, help="MB per format (default 40)")
    p.add_argument("--formats", default="hdf5,hdf5-gzip,netcdf4,csv")
    p.add_argument("--workers", default="1,2", help="worker counts to time (default 1,2)")
    p.add_argument("--repeat", type=int, default=2, help="timings per case; the best is kept")
    p.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results", "ingest.json")
    )
    args = p.parse_args(argv)
    # Imported here, not at the top: pool workers re-import this module (forkserver), and
    # should not pay for JAX. Loaded before the first timing, which would include it.
    import energy  # noqa: F401

    workers = [int(w) for w in args.workers.split(",")]
    tmp = tempfile.mkdtemp(prefix="ingest-bench-")
    rows_out = []
    try:
        for fmt in args.formats.split(","):
            root = os.path.join(tmp, fmt)
            nbytes, nrows = make_lake(root, fmt, args.size_mb)
            ceiling(root, fmt)  # warm-up: files into the page cache
            t_ceil = min(ceiling(root, fmt) for _ in range(args.repeat))
            rec = {
                "format": fmt,
                "bytes": nbytes,
                "rows": nrows,
                "files": len(os.listdir(root)),
                "ceiling_s": t_ceil,
                "ceiling_MBps": nbytes / t_ceil / 1e6,
                "ceiling_Mrows_per_s": nrows / t_ceil / 1e6,
            }
            for w in workers:
                t = min(crawl(root, w) for _ in range(args.repeat))
                rec[f"crawl_{w}w_s"] = t
                rec[f"crawl_{w}w_MBps"] = nbytes / t / 1e6
                rec[f"crawl_{w}w_Mrows_per_s"] = nrows / t / 1e6
                rec[f"crawl_{w}w_vs_ceiling"] = t_ceil / t
            rows_out.append(rec)
            shutil.rmtree(root)
            print(_row(rec, workers), flush=True) if len(rows_out) > 1 else print(
                _header(workers) + "\n" + _row(rec, workers), flush=True
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "benchmark": "ingest",
        "size_mb_per_format": args.size_mb,
        "bins": list(BINS),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "shared, noisy machine: compare ratios within one run",
        },
        "results": rows_out,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")
    return 0


def _header(workers) -> str:
    cols = ["format", "MB", "Mrows", "ceiling MB/s"]
    for w in workers:
        cols += [f"{w}w MB/s", f"{w}w Mrows/s", f"{w}w/ceiling"]
    return " | ".join(f"{c:>12}" for c in cols)


def _row(rec, workers) -> str:
    vals = [
        rec["format"],
        f"{rec['bytes'] / 1e6:.0f}",
        f"{rec['rows'] / 1e6:.1f}",
        f"{rec['ceiling_MBps']:.0f}",
    ]
    for w in workers:
        vals += [
            f"{rec[f'crawl_{w}w_MBps']:.0f}",
            f"{rec[f'crawl_{w}w_Mrows_per_s']:.1f}",
            f"{rec[f'crawl_{w}w_vs_ceiling']:.0%}",
        ]
    return " | ".join(f"{v:>12}" for v in vals)


if __name__ == "__main__":
    sys.exit(main())
