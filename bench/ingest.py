"""Benchmark of the ingest crawler against the raw-read ceiling of the same files, same run.

A lake is generated in a temporary folder, one sub-lake per format (HDF5 float32, HDF5 gzip,
NetCDF 4, CSV), each ``--size-mb`` MB. For each format it times:

- ceiling: a bare loop over the files, h5py read of each dataset in the crawler's block size
  plus a boost-histogram fill on the same axes (no detection, CF decoding, units, masks,
  manifest or processes) -- for CSV, one ``pandas.read_csv`` of the whole file (``np.loadtxt``
  without pandas) plus the same fill;
- 1 worker: ``ingest.count(..., workers=1)``, which reads in this process (no pool), after one
  untimed crawl that loads everything a crawl loads once per process (compiled kernels);
- N >= 2 workers, apart: the pool start-up (a fresh pool until each worker has read one small
  file: fork server, imports, kernels), the steady-state crawl on that warm pool
  (``ingest.count(..., executor=pool)``: per-file throughput, what scaling compares), and the
  cold crawl a user of ``workers=N`` gets (start-up included).

Bounds are given: one pass. Files are read warm (from the page cache) by all, after one untimed
warm-up read. The machine is shared and noisy (its load average is recorded with each format):
compare ratios within one run, not numbers across runs.

Usage:
    python bench/ingest.py                 # ~2 min on 2 shared cores (default 40 MB/format)
    python bench/ingest.py --formats csv --size-mb 20
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
from ingest import _readers, _work  # noqa: E402

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


def crawl(root: str, workers: int | None = None, executor=None, cpu: list | None = None) -> float:
    """Seconds of one ``ingest.count`` of the lake (bounds given: one pass); the CPU seconds of
    this process appended to ``cpu`` (all of the work when ``workers=1``)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    c = ingest.count(
        root,
        ["a:m", "b:m"],
        bins=BINS,
        bounds=BOUNDS,
        workers=workers,
        executor=executor,
        progress=False,
    )
    dt = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    assert c.report.rows_used > 0 and not c.report.files_skipped
    return dt


def _warm_task(task) -> tuple[int, float]:
    """Read one file in a pool worker (imports and kernels loaded), then hold the worker a
    moment so that the other warm-up tasks go to other workers: ``(pid, time it was ready)``."""
    res = _work.process_file(task)
    assert res.skipped is None, res.skipped
    ready = time.monotonic()  # CLOCK_MONOTONIC: one clock for all processes of the machine
    time.sleep(0.2)
    return os.getpid(), ready


def start_pool(root: str, workers: int):
    """A crawl's own process pool, started until every worker has read a file.

    Returns ``(pool, seconds)``: from creating the pool to the last worker being ready.
    """
    path = min((os.path.join(root, f) for f in os.listdir(root)), key=os.path.getsize)
    # Built here: the edges come from energy, which imports JAX (workers should not).
    specs = tuple(ingest.resolve_vars(["a:m", "b:m"]))
    task = _work.FileTask(path, specs, ingest._crawl._edges(BOUNDS, BINS))
    t0 = time.monotonic()
    pool = ingest._crawl._pool(workers)
    ready: dict[int, float] = {}
    for _ in range(10):
        for pid, t in pool.map(_warm_task, [task] * workers):
            ready[pid] = min(t, ready.get(pid, t))
        if len(ready) >= workers:
            break
    return pool, max(ready.values()) - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=float, default=40.0, help="MB per format (default 40)")
    p.add_argument("--formats", default="hdf5,hdf5-gzip,netcdf4,csv")
    p.add_argument("--workers", default="1,2", help="worker counts to time (default 1,2)")
    p.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="ceilings, pools and cold crawls timed per case (steady crawls: 3x); the best is kept",
    )
    p.add_argument(
        "--out", default=os.path.join(os.path.dirname(__file__), "results", "ingest.json")
    )
    args = p.parse_args(argv)
    # Imported here, not at the top: pool workers re-import this module (forkserver), and
    # should not pay for JAX. Loaded before the first timing, which would include it.
    import energy  # noqa: F401

    workers = sorted({int(w) for w in args.workers.split(",")})
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
            rec["load_avg_1min"] = os.getloadavg()[0]
            for w in workers:
                if w == 1:
                    crawl(root, 1)  # untimed: loads what a process loads once (kernels)
                    # Short crawls on a noisy machine: as many samples as the pooled ones.
                    cpu: list[float] = []
                    t = min(crawl(root, 1, cpu=cpu) for _ in range(3 * args.repeat))
                    _rates(rec, "1w", t, nbytes, nrows, t_ceil)
                    # Per core, whatever the load: bytes per CPU-second of the one process.
                    rec["crawl_1w_cpu_s"] = min(cpu)
                    rec["crawl_1w_MB_per_cpu_s"] = nbytes / min(cpu) / 1e6
                    continue
                starts, steady = [], []
                for _ in range(args.repeat):
                    pool, t_start = start_pool(root, w)
                    try:
                        starts.append(t_start)
                        steady += [crawl(root, executor=pool) for _ in range(3)]
                    finally:
                        pool.shutdown(wait=True)
                # The first start includes the fork server's own (imports once per crawl);
                # later pools of the same process fork from the running server.
                rec[f"pool_{w}w_startup_s"] = starts[0]
                if len(starts) > 1:
                    rec[f"pool_{w}w_restart_s"] = min(starts[1:])
                _rates(rec, f"{w}w", min(steady), nbytes, nrows, t_ceil)
                cold = min(crawl(root, w) for _ in range(args.repeat))
                _rates(rec, f"{w}w_cold", cold, nbytes, nrows, t_ceil)
                if 1 in workers:
                    rec[f"scaling_{w}w_vs_1w"] = rec["crawl_1w_s"] / rec[f"crawl_{w}w_s"]
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
        # numba kernels (CSV parse, histogram fill) in use, else pandas and boost's fill
        "kernels": {
            "csv_parse": bool(_readers._simple_kernel()),
            "fill": bool(_work._binner()),
        },
        "results": rows_out,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")
    return 0


def _rates(rec, key, t, nbytes, nrows, t_ceil):
    rec[f"crawl_{key}_s"] = t
    rec[f"crawl_{key}_MBps"] = nbytes / t / 1e6
    rec[f"crawl_{key}_Mrows_per_s"] = nrows / t / 1e6
    rec[f"crawl_{key}_vs_ceiling"] = t_ceil / t


def _header(workers) -> str:
    cols = ["format", "MB", "load", "ceiling MB/s"]
    for w in workers:
        if w == 1:
            cols += ["1w MB/s", "1w MB/cpu-s", "1w/ceiling"]
        else:
            cols += [f"{w}w MB/s", f"{w}w/1w", f"{w}w cold", f"{w}w start s"]
    return " | ".join(f"{c:>12}" for c in cols)


def _row(rec, workers) -> str:
    vals = [
        rec["format"],
        f"{rec['bytes'] / 1e6:.0f}",
        f"{rec['load_avg_1min']:.1f}",
        f"{rec['ceiling_MBps']:.0f}",
    ]
    for w in workers:
        if w == 1:
            vals += [
                f"{rec['crawl_1w_MBps']:.0f}",
                f"{rec['crawl_1w_MB_per_cpu_s']:.0f}",
                f"{rec['crawl_1w_vs_ceiling']:.0%}",
            ]
        else:
            scaling = rec.get(f"scaling_{w}w_vs_1w")
            vals += [
                f"{rec[f'crawl_{w}w_MBps']:.0f}",
                "-" if scaling is None else f"{scaling:.2f}x",
                f"{rec[f'crawl_{w}w_cold_MBps']:.0f}",
                f"{rec[f'pool_{w}w_startup_s']:.2f}",
            ]
    return " | ".join(f"{v:>12}" for v in vals)


if __name__ == "__main__":
    sys.exit(main())
