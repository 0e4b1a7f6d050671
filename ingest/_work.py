"""The per-file work of a crawl, run in worker processes: read, decode, convert, count.

Module-level functions with picklable arguments and results, so that any
``concurrent.futures.Executor`` (a process pool, a dask ``client.get_executor()``) can run them.
Plain NumPy, h5py and boost-histogram: no JAX here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zlib

import numpy as np

from ._compiled import optional_kernel
from ._readers import SkipFile, detect, open_tables
from ._units import UnitError, conversion, is_time_reference

__all__ = ["FileResult", "FileTask", "fingerprint", "process_file", "DROP_REASONS"]

# Why a row is dropped, in report order.
# A non-finite value (+-inf: an overflow, a division by zero in a logger) is missing too, but
# counted apart so that the report shows it.
DROP_REASONS = (
    "missing value",
    "non-finite value",
    "out of physical range",
    "outside bounds",
    "junk line",
)
_HASH_BYTES = 1 << 16  # head and tail hashed into the fingerprint: 64 KiB each


@dataclasses.dataclass(frozen=True)
class FileTask:
    """What a worker needs for one file: the variables and, when counting, the bin edges."""

    path: str
    specs: tuple
    edges: tuple | None  # one array of n_i + 1 edges per variable; None: a bounds pass


@dataclasses.dataclass
class FileResult:
    """A worker's answer for one file: counts (sparse) or extremes, and its report lines."""

    path: str
    fingerprint: tuple
    size: int
    skipped: str | None = None
    rows_used: int = 0
    dropped: dict = dataclasses.field(default_factory=dict)
    units: dict = dataclasses.field(default_factory=dict)  # variable -> unit in the file
    index: np.ndarray | None = None  # flat bin indices with non-zero counts
    counts: np.ndarray | None = None  # their counts (int64)
    lo: np.ndarray | None = None  # bounds pass: per-variable minimum of the used rows
    hi: np.ndarray | None = None


def fingerprint(path: str) -> tuple:
    """``(size, mtime_ns, blake2b of the first and last 64 KiB)`` of a file.

    Size and modification time catch ordinary changes; the content hash catches a file
    rewritten within the clock's resolution or copied with its times preserved.
    """
    st = os.stat(path)
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(_HASH_BYTES))
        if st.st_size > _HASH_BYTES:
            f.seek(max(_HASH_BYTES, st.st_size - _HASH_BYTES))
            h.update(f.read(_HASH_BYTES))
    return (int(st.st_size), int(st.st_mtime_ns), h.hexdigest())


def _conversions(spec_list, columns):
    """``(a, b)`` per variable from each column's unit to the asked unit; SkipFile when bad."""
    out, units = [], {}
    for spec, col in zip(spec_list, columns, strict=True):
        unit = col.unit
        if not unit:
            unit = dict(spec.source_units).get(col.leaf.lower())
        units[spec.name] = unit
        if spec.unit is None:
            if is_time_reference(unit):
                # Raw offsets from one file's epoch mean nothing next to another file's.
                raise SkipFile(
                    f"bad units: {col.leaf!r} is a time since a reference date ({unit!r}); "
                    "ask for a time unit (e.g. --var NAME:s, seconds since 1970-01-01 UTC) "
                    "to count all files on one epoch"
                )
            out.append((1.0, 0.0))
            continue
        if not unit:
            raise SkipFile(
                f"bad units: {col.leaf!r} states no unit (asked for {spec.unit!r}); "
                "name it in the file or in a profile's source_units"
            )
        try:
            out.append(conversion(unit, spec.unit))
        except UnitError as err:
            raise SkipFile(f"bad units: {col.leaf!r}: {err}") from err
    return out, units


def _histogram(edges):
    import boost_histogram as bh

    # Variable axes on exactly the edges energy.bin_edges gives (bins centred on map nodes);
    # no flow bins: rows outside are counted as dropped before filling.
    axes = [bh.axis.Variable(np.asarray(e), underflow=False, overflow=False) for e in edges]
    return bh.Histogram(*axes, storage=bh.storage.Int64())


def _limits(specs, edges):
    """Per variable ``(lo, hi, hi_closed)``: a row is used when every ``lo <= x < hi`` (or
    ``<= hi`` when closed), combining the profile's range ``[r0, r1]`` and the bin edges
    ``[e0, eN)``; float64 scalars so float32 data compare in float64."""
    out = []
    for i, spec in enumerate(specs):
        lo, hi, closed = np.float64(-np.inf), np.float64(np.inf), True
        if spec.range is not None:
            lo, hi = np.float64(spec.range[0]), np.float64(spec.range[1])
        if edges is not None:
            e0, en = np.float64(edges[i][0]), np.float64(edges[i][-1])
            lo = max(lo, e0)
            if en <= hi:
                hi, closed = en, False
        out.append((lo, hi, closed))
    return out


# Filling: boost-histogram's fill finds a bin by binary search over the edges of a Variable
# axis (~20 M rows/s for two axes here, the largest cost of a CSV crawl after parsing), and
# needs the used rows gathered first. When numba is installed a compiled pass reads the rows in
# place (skipping those not kept) and finds the bin from a first guess, the uniform spacing
# ``floor((x - e_0) * n / (e_n - e_0))``, moved down while ``x < e_i`` and up while
# ``x >= e_{i+1}``: the same bin as boost's ``e_i <= x < e_{i+1}`` for every value, in a step
# or two. Counts go in one C-order int64 array per file (see ``_Counter``).
def _compile_binner():
    import numba

    def axis_index(x, keep, edges, stride, flat):
        """``flat[r] += stride * i`` with ``edges[i] <= x[r] < edges[i + 1]``; -1: not counted."""
        n = edges.shape[0] - 1
        e0 = edges[0]
        en = edges[n]
        scale = n / (en - e0)
        for r in range(x.shape[0]):
            if flat[r] < 0:
                continue
            v = np.float64(x[r])
            if not (keep[r] and v >= e0 and v < en):  # kept rows are always inside the edges
                flat[r] = -1
                continue
            i = int((v - e0) * scale)
            if i < 0:
                i = 0
            elif i > n - 1:
                i = n - 1
            while i > 0 and v < edges[i]:
                i -= 1
            while i < n - 1 and v >= edges[i + 1]:
                i += 1
            flat[r] += stride * i
        return 0

    def add_counts(flat, counts):
        for f in flat:
            if f >= 0:
                counts[f] += 1
        return 0

    i64 = numba.int64
    mask = numba.types.Array(numba.boolean, 1, "A", readonly=True)  # writable arrays pass too
    sigs = [
        i64(numba.types.Array(t, 1, "A", readonly=True), mask, numba.float64[::1], i64, i64[::1])
        for t in (numba.float64, numba.float32)
    ]
    index = numba.njit(sigs, cache=True, nogil=True)(axis_index)
    add = numba.njit(i64(i64[::1], i64[::1]), cache=True, nogil=True)(add_counts)
    return index, add


_binner = optional_kernel(_compile_binner)


class _Counter:
    """The counts of one file on the map grid, in at most one grid-sized array per process.

    Blocks go through the compiled pass (see ``_binner``) into a flat C-order int64 array;
    blocks it does not take (no numba, integer columns) go to a boost-histogram on the same
    edges. Each is made when first needed, so a file holds one grid, never a copy of it.
    """

    def __init__(self, edges):
        self.edges = edges
        self.shape = tuple(len(e) - 1 for e in edges)
        self.grid = None  # flat C-order int64 counts (compiled pass)
        self.hist = None  # boost-histogram (the other blocks)
        self.kernels = _binner()
        if self.kernels:
            self.edges64 = [np.ascontiguousarray(e, dtype=np.float64) for e in edges]

    def fill(self, cols, keep, all_kept: bool):
        if not self.kernels or any(
            c.dtype not in (np.float64, np.float32) or c.ndim != 1 for c in cols
        ):
            if self.hist is None:
                self.hist = _histogram(self.edges)
            self.hist.fill(*(cols if all_kept else [c[keep] for c in cols]))
            return
        index, add = self.kernels
        if self.grid is None:
            self.grid = np.zeros(int(np.prod(self.shape)), dtype=np.int64)
        flat = np.zeros(cols[0].shape[0], dtype=np.int64)
        stride = 1
        for c, e, k in zip(cols[::-1], self.edges64[::-1], self.shape[::-1], strict=True):
            index(c, keep, e, stride, flat)
            stride *= k
        add(flat, self.grid)

    def sparse(self) -> tuple[np.ndarray, np.ndarray]:
        """``(flat C-order indices, counts)`` of the non-empty bins, int64; frees the grid."""
        parts = []
        if self.grid is not None:
            nz = np.flatnonzero(self.grid)
            parts.append((nz.astype(np.int64), self.grid[nz]))
            self.grid = None
        if self.hist is not None:
            view = self.hist.view()
            where = np.nonzero(view)  # per-axis indices, in C order: no copy of the grid
            flat = np.ravel_multi_index(where, self.shape).astype(np.int64)
            parts.append((flat, np.asarray(view[where], dtype=np.int64)))
            self.hist = None
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if len(parts) == 1:
            return parts[0]
        index, inverse = np.unique(np.concatenate([p[0] for p in parts]), return_inverse=True)
        counts = np.zeros(index.size, dtype=np.int64)
        np.add.at(counts, inverse, np.concatenate([p[1] for p in parts]))
        return index, counts


def _count_table(table, specs, convert, edges, counter, res: FileResult, extremes):
    _count_blocks(table, specs, convert, edges, counter, res, extremes)


def _count_blocks(table, specs, convert, edges, filler, res: FileResult, extremes):
    d = len(specs)
    limits = _limits(specs, edges)
    for cols, junk in table.blocks(convert):
        if junk:
            res.dropped["junk line"] = res.dropped.get("junk line", 0) + junk
        n = cols[0].shape[0]
        if n == 0:
            continue
        # One combined test per value (NaN fails every comparison); the reasons of the rows
        # that fail are worked out on those rows only, in the order missing, non-finite,
        # range, bounds. Without edges (the bounds pass) the limits may be infinite: +-inf
        # must fail there too, so that it never moves the automatic bounds.
        keep = None
        for c, (lo, hi, closed) in zip(cols, limits, strict=True):
            with np.errstate(invalid="ignore"):
                if np.isfinite(lo) and np.isfinite(hi):
                    ok = (c >= lo) & ((c <= hi) if closed else (c < hi))
                else:
                    ok = np.isfinite(c)
                    if np.isfinite(lo):
                        ok &= c >= lo
                    if np.isfinite(hi):
                        ok &= (c <= hi) if closed else (c < hi)
            keep = ok if keep is None else (keep & ok)
        n_used = int(np.count_nonzero(keep))
        res.rows_used += n_used
        if n_used < n:
            gone = np.flatnonzero(~keep)  # usually few rows: gathered by index, not by mask
            bad = [c[gone] for c in cols]
            missing = np.zeros(n - n_used, dtype=bool)
            infinite = np.zeros_like(missing)
            for c in bad:
                missing |= np.isnan(c)
                infinite |= np.isinf(c)
            infinite &= ~missing
            out_range = np.zeros_like(missing)
            for c, spec in zip(bad, specs, strict=True):
                if spec.range is not None:
                    out_range |= (c < spec.range[0]) | (c > spec.range[1])
            out_range &= ~(missing | infinite)
            n_missing = int(missing.sum())
            n_inf = int(infinite.sum())
            n_range = int(out_range.sum())
            for reason, k in (
                ("missing value", n_missing),
                ("non-finite value", n_inf),
                ("out of physical range", n_range),
                ("outside bounds", n - n_used - n_missing - n_inf - n_range),
            ):
                if k:
                    res.dropped[reason] = res.dropped.get(reason, 0) + k
        if not n_used:
            continue
        if edges is not None:
            filler.fill(cols, keep, n_used == n)
        else:
            used = cols if n_used == n else [c[keep] for c in cols]
            for i in range(d):
                extremes[0][i] = min(extremes[0][i], float(used[i].min()))
                extremes[1][i] = max(extremes[1][i], float(used[i].max()))


def process_file(task: FileTask) -> FileResult:
    """Read one file and count its rows (or find their extremes when ``task.edges`` is None).

    Never raises for a bad file: unreadable, corrupt, unmatched or badly united files come back
    with ``skipped`` set to the reason, and no counts.
    """
    path = task.path
    try:
        fp = fingerprint(path)
    except PermissionError:
        return FileResult(path, (0, 0, ""), 0, skipped="permission denied")
    except OSError as err:
        return FileResult(path, (0, 0, ""), 0, skipped=f"unreadable: {err.strerror or err}")
    res = FileResult(path, fp, fp[0])
    specs = task.specs
    d = len(specs)
    counter = _Counter(task.edges) if task.edges is not None else None
    extremes = [[np.inf] * d, [-np.inf] * d]
    try:
        kind = detect(path)
        with open_tables(path, kind, specs) as tables:
            for table in tables:
                convert, units = _conversions(specs, table.columns)
                res.units.update({k: v for k, v in units.items() if v})
                _count_table(table, specs, convert, task.edges, counter, res, extremes)
    except SkipFile as err:
        return FileResult(path, fp, fp[0], skipped=err.reason)
    except PermissionError:
        return FileResult(path, fp, fp[0], skipped="permission denied")
    except (OSError, ValueError, KeyError, RuntimeError, EOFError, zlib.error) as err:
        # h5py, gzip and the readers raise these on a file damaged past its header.
        text = str(err).strip().splitlines()
        why = (text[0] if text else type(err).__name__)[:200]
        return FileResult(path, fp, fp[0], skipped=f"corrupt: {why}")
    if counter is not None:
        res.index, res.counts = counter.sparse()
    else:
        res.lo = np.array(extremes[0])
        res.hi = np.array(extremes[1])
    return res
