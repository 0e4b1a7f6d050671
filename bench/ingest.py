"""Ingest: the crawler against the raw read of the same bytes, same run, one process.

A lake of HDF5 float32 files (two variables, chunks of 65536 values) is written to a temporary
folder (the full size adds HDF5 gzip, NetCDF 4 and CSV lakes). Engines, interleaved, files warm in the page cache:

- ``ingest.count (1 worker)``: the crawler (detection, units, masks, bounds, counting);
- ``ceiling: read + crawler's fill``: a bare loop reading the same datasets in the crawler's
  block size and filling with the crawler's own binning kernel (``ingest._work._Counter``):
  nothing but the read and the count, so ``ingest.count / ceiling <= 1`` by construction;
- peers of the fill: ``read + boost-histogram fill`` and ``read + np.histogramdd``.

The whole command (``command_case``): ``groundstate ingest`` as a user runs it, in a subprocess
(start-up, discovery, pool, crawl, map build, write), over 12 HDF5 files of 3 float32 variables
in chunks of 1M values, ``--bounds`` given, ``--workers 2``; against the ceiling of a bare
one-process loop in this process (h5py reads of whole chunks + a boost-histogram fill on the
same grid, imports already paid). Interleaved with them: the same command over 12 files of
1000 rows (its fixed cost: everything but the bytes) and the command again (A/A); with
``BENCH_INGEST_BASELINE`` set to another checkout (``git archive main | tar -x -C DIR``), the
command run with that checkout's code as ``... [baseline]``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
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

    shape = tuple(len(e) - 1 for e in edges)
    total = np.zeros(int(np.prod(shape)), dtype=np.int64)
    for path in files:
        counter = _work._Counter(edges)  # the crawler's per-file counts (compiled when it can)
        for a, b in _blocks(path, fmt):
            counter.fill([a, b], np.ones(len(a), bool), True)
        index, counts = counter.sparse()
        total[index] += counts
    return total.reshape(shape)


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


# ----------------------------------------------------------------------------- whole command
CMD_VARS = ("a", "b", "c")
CMD_BOUNDS = [(-4.0, 4.0)] * 3
CMD_BINS = 64  # the command's default
CMD_CHUNK = 1_000_000  # values per HDF5 chunk
CMD_FILES = 12
CMD_WORKERS = 2
CMD_SIZES = {
    "smoke": {"mb": 3, "repeats": 1},
    "quick": {"mb": 60, "repeats": 3},
    "full": {"mb": 600, "repeats": 5},
}
COMMAND = "groundstate ingest (whole command, 2 workers)"
FIXED = "groundstate ingest, 12 files of 1000 rows (fixed cost)"
CEILING = "ceiling: 1 process, h5py read + boost-histogram fill"
BASELINE = COMMAND + " [baseline]"


def make_command_lake(root: str, size_mb: float, n_files: int = CMD_FILES, seed: int = 1):
    """``n_files`` HDF5 files of three float32 variables ``a, b, c`` (unit m, correlated
    normals, chunks of 1M values, no filter), about ``size_mb`` MB in all; (bytes, rows)."""
    import h5py

    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    rows = max(1, int(size_mb * 1e6 / (4 * len(CMD_VARS) * n_files)))
    total = 0
    for i in range(n_files):
        x = rng.normal(size=rows).astype(np.float32)
        cols = [x]
        for _ in CMD_VARS[1:]:
            cols.append((0.6 * cols[-1] + 0.8 * rng.normal(size=rows)).astype(np.float32))
        path = os.path.join(root, f"run{i:03d}.h5")
        with h5py.File(path, "w") as f:
            for name, v in zip(CMD_VARS, cols, strict=True):
                ds = f.create_dataset(name, data=v, chunks=(min(CMD_CHUNK, rows),))
                ds.attrs["units"] = "m"
        total += os.path.getsize(path)
    return total, rows * n_files


def command_argv(lake: str, output: str, workers: int = CMD_WORKERS) -> list[str]:
    """The command line a user types (``groundstate ingest ...``), as this interpreter runs it."""
    bounds = ",".join(f"{lo:g}:{hi:g}" for lo, hi in CMD_BOUNDS)
    argv = [sys.executable, "-m", "groundstate.cli", "ingest", lake]
    for v in CMD_VARS:
        argv += ["--var", f"{v}:m"]
    return argv + [f"--bounds={bounds}", "--workers", str(workers), "-o", output]


def run_command(lake: str, output: str, workers: int = CMD_WORKERS, root=None) -> int:
    """Run the command once (the output is removed after); returns its rows used. ``root``: the
    checkout whose code runs (default this one)."""
    root = str(root or C.ROOT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run(
        command_argv(lake, output, workers), env=env, capture_output=True, text=True, cwd=root
    )
    try:
        if p.returncode != 0:
            raise RuntimeError(f"groundstate ingest failed ({p.returncode}): {p.stderr[-2000:]}")
        m = re.search(r"^rows used: (\d+)$", p.stdout, flags=re.M)
        skipped = re.search(r"^files skipped: (\d+)$", p.stdout, flags=re.M)
        if not m or not skipped or int(skipped.group(1)):
            raise RuntimeError(f"groundstate ingest did not read the whole lake:\n{p.stdout}")
        return int(m.group(1))
    finally:
        if os.path.exists(output):
            os.unlink(output)


def bare_read_fill(files) -> np.ndarray:
    """The ceiling: one process reads every file's variables chunk by chunk with h5py and fills
    a boost-histogram on the map's grid (the bins ``energy.bin_edges`` centres on the nodes)."""
    import boost_histogram as bh
    import h5py

    from energy import bin_edges

    edges = bin_edges(CMD_BOUNDS, (CMD_BINS,) * len(CMD_VARS))
    h = bh.Histogram(
        *[bh.axis.Variable(np.asarray(e), underflow=False, overflow=False) for e in edges],
        storage=bh.storage.Int64(),
    )
    for path in files:
        with h5py.File(path, "r") as f:
            ds = [f[v] for v in CMD_VARS]
            n = ds[0].shape[0]
            for s in range(0, n, CMD_CHUNK):
                h.fill(*(d[s : s + CMD_CHUNK] for d in ds))
    return h.view()


def command_case(
    size_mb: float, repeats: int, tmp: str, smoke: bool = False, extras: bool = True
) -> tuple[list, list]:
    """Rows and ratios of the whole command against the ceiling over a lake of ``size_mb``.
    ``extras``: also the A/A run and the fixed cost (12 tiny files); ``--quick`` leaves them to
    the full run, since every start of the command costs its fixed time whatever the lake."""
    lake, small = os.path.join(tmp, "cmd-lake"), os.path.join(tmp, "cmd-small")
    nbytes, nrows = make_command_lake(lake, size_mb)
    extras = extras and not smoke
    if extras:
        make_command_lake(small, 1000 * 4 * len(CMD_VARS) * CMD_FILES / 1e6, seed=2)
    files = sorted(os.path.join(lake, f) for f in os.listdir(lake))
    out = os.path.join(tmp, "cmd-out")
    os.makedirs(out)
    case = {"format": "hdf5 x3 (command)", "MB": round(nbytes / 1e6, 1), "files": len(files)}
    # The same rows counted by both, or the comparison means nothing.
    want = int(np.asarray(bare_read_fill(files)).sum())
    if run_command(lake, os.path.join(out, "check.npz")) != want:
        raise RuntimeError("ingest bench: the command's rows used differ from the ceiling's")
    engines = {COMMAND: lambda: run_command(lake, os.path.join(out, "a.npz"))}
    if extras:  # the smoke size only checks that the command runs and counts every row
        engines[COMMAND + " (A/A)"] = lambda: run_command(lake, os.path.join(out, "b.npz"))
        engines[FIXED] = lambda: run_command(small, os.path.join(out, "c.npz"))
    base = os.environ.get("BENCH_INGEST_BASELINE")
    if base and not smoke:
        if not os.path.isfile(os.path.join(base, "groundstate", "cli.py")):
            raise FileNotFoundError(f"BENCH_INGEST_BASELINE={base!r}: no groundstate/cli.py there")
        engines[BASELINE] = lambda: run_command(lake, os.path.join(out, "d.npz"), root=base)
        case["baseline"] = base
    engines[CEILING] = lambda: bare_read_fill(files)
    timings = C.measure(engines, repeats)
    rows = C.rows_of(SUITE, case, timings, nbytes, "bytes")
    for row in rows:
        row["rows"] = nrows
    ratios = [
        r
        for a, b in (
            (COMMAND, COMMAND + " (A/A)"),
            (COMMAND, CEILING),
            (COMMAND, FIXED),
            (COMMAND, BASELINE),
            (BASELINE, CEILING),
        )
        if (r := C.ratio(SUITE, case, timings, a, b))
    ]
    return rows, ratios


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
        cmd = CMD_SIZES[size]
        new_rows, new_ratios = command_case(
            cmd["mb"], repeats or cmd["repeats"], tmp, smoke=size == "smoke", extras=size == "full"
        )
        rows += new_rows
        ratios += new_ratios
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"rows": rows, "ratios": ratios}


def print_result(res: dict) -> None:
    C.print_table(
        "ingest: crawl vs raw read (M bytes/s = MB/s)", res["rows"], res["ratios"], ["format", "MB"]
    )
    C.say(
        "  (command / ceiling: the whole command's speed as a fraction of the bare read + fill; "
        "command / fixed cost: the share of the command's time that does not depend on the bytes)"
    )
