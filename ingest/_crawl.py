"""The crawler: find files, fan them out to workers, merge the counts, resume after a crash."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import glob
import math
import multiprocessing
import multiprocessing.context
import os
import signal
import stat
import sys
import threading

import numpy as np

from ._bounds import auto_bounds
from ._profiles import resolve_vars
from ._report import IngestReport
from ._state import BusyError, CrawlLock, CrawlState, StateError
from ._work import DROP_REASONS, FileResult, FileTask, fingerprint, process_file

__all__ = [
    "BusyError",
    "Counts",
    "EmptyCrawlError",
    "StateError",
    "count",
    "discover",
    "ingest",
    "state_path",
]


class EmptyCrawlError(ValueError):
    """A crawl that counted no rows at all; ``report`` says what was skipped and dropped."""

    def __init__(self, message: str, report: IngestReport):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class Counts:
    """A crawl's histogram on the map's node grid, ready for ``EnergyMap.from_counts``.

    Attributes:
        counts: int64 array of shape ``bins``; bin k of axis i is centred on node k.
        bounds: ``[(lo_i, hi_i)]`` node bounds, in the asked units.
        names, units: one per variable (a unit is None when none was asked nor stated).
        report: the :class:`IngestReport`.
        profile: the profile's name, or None.
    """

    counts: np.ndarray
    bounds: list[tuple[float, float]]
    names: list[str]
    units: list[str | None]
    report: IngestReport
    profile: str | None = None

    def provenance(self) -> dict:
        """A JSON-able provenance dict: files, rows per reason, profile, units."""
        prov = {"source": "ingest", "profile": self.profile}
        prov.update(self.report.to_dict())
        return prov


def state_path(output: str | os.PathLike) -> str:
    """Where the resumable state of a crawl writing ``output`` lives (beside it)."""
    return os.fspath(output) + ".ingest-state"


def _lock_path(state: str) -> str:
    """The lock file of a state folder (and of the output it belongs to): beside it."""
    return os.fspath(state) + ".lock"


# ---------------------------------------------------------------------------------- discovery
def _inside(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _root_entries(roots) -> list[str]:
    """The roots as absolute paths, glob patterns expanded; a missing root is an error."""
    if isinstance(roots, str | os.PathLike):
        roots = [roots]
    entries = []
    for root in roots:
        root = os.fspath(root)
        if os.path.lexists(root):
            entries.append(root)
            continue
        hits = sorted(glob.glob(root, recursive=True)) if glob.has_magic(root) else []
        if not hits:
            raise ValueError(f"ingest root {root!r} does not exist")
        entries.extend(hits)
    return [os.path.abspath(e) for e in entries]


def _check_outside_lake(roots, paths: dict[str, str]) -> None:
    """Each path (the output, the state) is neither an input nor inside a crawled folder.

    Compared as resolved real paths, so a symbolic link or ``..`` does not hide it.
    """
    entries = _root_entries(roots)
    for label, path in paths.items():
        real = os.path.realpath(path)
        for entry in entries:
            target = os.path.realpath(entry)
            if real == target:
                raise ValueError(
                    f"{label} {path} is one of the inputs ({entry}): it would be overwritten; "
                    "write it elsewhere"
                )
            if os.path.isdir(target) and _inside(real, [target]):
                raise ValueError(
                    f"{label} {path} is inside the lake being crawled ({entry}); write it "
                    "outside the roots"
                )


def _check_folder_of(path: str, label: str) -> None:
    """The folder that will hold ``path`` exists and is writable; ``path`` is no folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"the folder of {label} {path} does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {label} {path}: the folder {folder} is not writable")


def discover(roots, exclude=()) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """Files under the roots (directories, files or glob patterns), sorted, each listed once.

    Hidden entries (names starting with ``.``) are left out. Symbolic links are followed only
    while they stay inside the roots, and every directory is entered once (so link loops end).

    Args:
        roots: paths or glob patterns (``**`` recursive).
        exclude: paths to leave out (the output and the crawl state).

    Returns:
        ``(files, skipped)``: ``(path, size)`` pairs and ``(path, reason)`` pairs.

    Raises:
        ValueError: a root that does not exist (naming it).
    """
    entries = _root_entries(roots)
    root_dirs = [os.path.realpath(e) for e in entries if os.path.isdir(e)]
    excluded = {os.path.realpath(os.fspath(p)) for p in exclude}
    files: dict[str, tuple[str, int]] = {}
    skipped: list[tuple[str, str]] = []
    visited: set[str] = set()

    def add_file(path: str, real: str):
        if real in excluded or real in files:
            return
        try:
            st = os.stat(real)
        except OSError as err:
            skipped.append((path, f"unreadable: {err.strerror}"))
            return
        if stat.S_ISREG(st.st_mode):
            files[real] = (path, st.st_size)

    def walk(folder: str):
        real = os.path.realpath(folder)
        if real in visited or real in excluded:
            return
        visited.add(real)
        try:
            with os.scandir(folder) as it:
                items = sorted(it, key=lambda e: e.name)
        except PermissionError:
            skipped.append((folder, "permission denied"))
            return
        except OSError as err:
            skipped.append((folder, f"unreadable: {err.strerror}"))
            return
        for item in items:
            if item.name.startswith("."):
                continue
            target = os.path.realpath(item.path)
            if item.is_symlink():
                if not os.path.exists(target):
                    skipped.append((item.path, "broken symbolic link"))
                    continue
                if not _inside(target, root_dirs):
                    skipped.append((item.path, "symbolic link out of the roots"))
                    continue
            if os.path.isdir(target):
                walk(item.path)
            else:
                add_file(item.path, target)

    for entry in entries:
        if os.path.isdir(entry):
            walk(entry)
        else:
            add_file(entry, os.path.realpath(entry))
    out = sorted(files.values())
    return out, sorted(skipped)


# ---------------------------------------------------------------------------------- execution
def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them (see ``_stop_pool``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


_LAUNCH = threading.Lock()


@contextlib.contextmanager
def _without_main():
    """Start processes that do not run the caller's ``__main__`` again.

    A forkserver or spawn child imports the parent's main script before it runs anything; a
    script without ``if __name__ == "__main__":`` would then crawl again in every worker (or
    fail with multiprocessing's bootstrapping error). The workers only run ``process_file``,
    so the main module is left out of what they are told to prepare.
    """
    from multiprocessing import spawn

    real = spawn.get_preparation_data

    def prepare(name):
        data = real(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    with _LAUNCH:
        spawn.get_preparation_data = prepare
        try:
            yield
        finally:
            spawn.get_preparation_data = real


if "forkserver" in multiprocessing.get_all_start_methods():
    _BaseContext, _BaseProcess = (
        multiprocessing.context.ForkServerContext,
        multiprocessing.context.ForkServerProcess,
    )
else:  # pragma: no cover - Windows, some macOS builds
    _BaseContext, _BaseProcess = (
        multiprocessing.context.SpawnContext,
        multiprocessing.context.SpawnProcess,
    )


class _WorkerProcess(_BaseProcess):
    @staticmethod
    def _Popen(process_obj):
        with _without_main():
            return _BaseProcess._Popen(process_obj)


class _WorkerContext(_BaseContext):
    Process = _WorkerProcess


_PRELOAD = ["ingest._warm"]
_POOLS_MADE = [0]  # pools started by this process (see _ForkServerStart.stop_if_unused)


def _pool(workers: int):
    # forkserver (spawn on platforms without it): a fresh interpreter per worker, never a fork
    # of a process that may hold JAX threads or open HDF5 handles.
    ctx = _WorkerContext()
    if ctx.get_start_method() == "forkserver":
        # The server imports the readers (NumPy, h5py, boost-histogram, numba's kernels) once;
        # each worker is a fork of it and starts warm instead of paying ~1 s of imports.
        ctx.set_forkserver_preload(_PRELOAD)
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_ignore_sigint)


def _may_use_pool(workers, executor) -> bool:
    """Whether a crawl with these arguments starts a pool of its own (given enough files)."""
    return executor is None and (workers or os.cpu_count() or 1) > 1


class _ForkServerStart:
    """The pool's fork server, started at the beginning of a crawl: it imports the
    readers (``ingest._warm``, ~1-2 s) while this process checks the arguments, loads the unit
    registry and walks the lake, instead of after. ``stop`` kills it again when this crawl
    started it and then failed (a check, a busy lock): nothing is left running, and no server
    holds the caller's stderr open. A server already running is used as it is."""

    def __init__(self, workers, executor):
        self.started = False
        self.pools = _POOLS_MADE[0]
        if not _may_use_pool(workers, executor):
            return
        ctx = _WorkerContext()
        if ctx.get_start_method() != "forkserver":
            return
        from multiprocessing import forkserver

        server = forkserver._forkserver
        before = getattr(server, "_forkserver_pid", None)
        ctx.set_forkserver_preload(_PRELOAD)
        try:
            with _without_main():  # the server must not import the caller's __main__ either
                server.ensure_running()
        except OSError:  # pragma: no cover - the pool will try again (and say why)
            return
        self.started = getattr(server, "_forkserver_pid", None) not in (None, before)

    def stop(self) -> None:
        if self.started:
            stop_forkserver()
            self.started = False

    def stop_if_unused(self) -> None:
        """Stop a server this crawl started for nothing (one file, every file resumed)."""
        if _POOLS_MADE[0] == self.pools:
            self.stop()


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Stop a pool now (Ctrl-C, an error): workers are killed, not waited for.

    A file being read is simply not recorded; the next run reads it again.
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=1.0)
            if p.is_alive():
                p.kill()
                p.join(timeout=1.0)


def stop_forkserver() -> None:
    """Kill multiprocessing's fork server, if this process started one (the command does so
    on Ctrl-C just before it exits: the server holds the command's stderr open, and its own
    exit would keep a pipe reading it waiting ~1-2 s more). A later pool starts a new one."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if not pid:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    # Forgotten as multiprocessing's own _stop does it (the alive pipe closed, the process
    # reaped, the socket removed), so that a later pool starts a new server.
    with contextlib.suppress(Exception):
        server._stop()
    if getattr(server, "_forkserver_pid", None) is not None:  # reaped already by someone else
        with contextlib.suppress(Exception):
            if server._forkserver_alive_fd is not None:
                os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
        server._forkserver_pid = None
        address = getattr(server, "_forkserver_address", None)
        with contextlib.suppress(Exception):
            from multiprocessing import util

            if address and not util.is_abstract_socket_namespace(address):
                os.unlink(address)
        server._forkserver_address = None


def _run(tasks, executor, workers, on_result):
    """Run ``process_file`` over tasks (inline, in a pool, or in a given executor)."""
    tasks = list(tasks)
    if not tasks:
        return
    own = None
    if executor is None:
        n = min(workers or os.cpu_count() or 1, len(tasks))
        if n <= 1:
            for task in tasks:
                on_result(process_file(task))
            return
        executor = own = _pool(n)
        _POOLS_MADE[0] += 1
    # A bounded window of submitted files keeps the partial results in memory small.
    window = max(4, 2 * (workers or os.cpu_count() or 1))
    pending = set()
    try:
        it = iter(tasks)
        for task in it:
            pending.add(executor.submit(process_file, task))
            if len(pending) >= window:
                break
        while pending:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                on_result(fut.result())
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(executor.submit(process_file, nxt))
    except BaseException:
        # Ctrl-C or an error: stop at once; what was recorded stays recorded.
        if own is not None:
            _stop_pool(own)
            own = None
        for fut in pending:
            fut.cancel()
        raise
    finally:
        if own is not None:
            own.shutdown(wait=True, cancel_futures=True)


class _Progress:
    """A tqdm bar (bytes, files) on a terminal; else ``[k/n] PATH`` lines on stderr."""

    def __init__(self, mode, n_files: int, k0: int, total_bytes: int, bytes0: int, desc="ingest"):
        if mode is None:
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.n, self.k = mode, n_files, k0
        self.bar = None
        if mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total_bytes,
                initial=bytes0,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                file=sys.stderr,
                dynamic_ncols=True,
            )
            self.bar.set_postfix_str(f"files {k0}/{n_files}")

    def update(self, path: str, size: int):
        self.k += 1
        if self.mode == "lines":
            print(f"[{self.k}/{self.n}] {path}", file=sys.stderr, flush=True)
        elif self.bar is not None:
            self.bar.update(size)
            self.bar.set_postfix_str(f"files {self.k}/{self.n}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------- the crawl
def _check_bounds(bounds, d: int):
    if bounds is None:
        return [None] * d
    bounds = list(bounds)
    if len(bounds) != d:
        raise ValueError(f"bounds: {len(bounds)} pairs for {d} variables")
    out = []
    for i, b in enumerate(bounds):
        if b is None:
            out.append(None)
            continue
        lo, hi = (float(v) for v in b)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"bounds of variable {i}: expected finite lo < hi, got {b!r}")
        out.append((lo, hi))
    return out


# energy's default node cap (energy._grid.MAX_DEFAULT_NODES, a test keeps them equal), here so
# that checking the arguments does not import energy, hence jax (~1 s): the crawl counts with
# NumPy, and the parent imports jax while its workers read.
NODE_CAP = 2**24


def _check_bins(bins, d: int, notes: list[str] | None = None) -> tuple[int, ...]:
    """Bins per axis, within the node cap: one integer for all axes shrinks to
    ``floor(cap ** (1/d))`` (as ``EnergyMap.from_samples`` does, with a note); bins given per
    axis over the cap are an error. Checked before the crawl: the counts of a crawl are held
    as int64 on the whole grid."""
    cap = NODE_CAP

    shape = (bins,) * d if np.ndim(bins) == 0 else tuple(bins)
    if len(shape) != d or any(int(n) != n or n < 2 for n in shape):
        raise ValueError(f"bins: expected an integer >= 2 per variable, got {bins!r}")
    shape = tuple(int(n) for n in shape)
    nodes = math.prod(shape)
    if nodes <= cap:
        return shape
    if np.ndim(bins) != 0:
        raise ValueError(
            f"bins {list(shape)}: {nodes} map nodes, over the cap of {cap} (2^{cap.bit_length() - 1});"
            " ask fewer bins (their product at most the cap)"
        )
    reduced = max(2, int(np.floor(cap ** (1.0 / d) + 1e-9)))
    if notes is not None:
        notes.append(
            f"bins: {shape[0]} per axis for {d} variables is {nodes} map nodes, over the cap of "
            f"{cap}; shrunk to {reduced} per axis (as energy.EnergyMap.from_samples does)"
        )
    return (reduced,) * d


def _edges(bounds, shape):
    """The histogram edges of ``energy.bin_edges`` (bins centred on the map's nodes: node k at
    ``lo + k dx``, ``dx = (hi - lo) / (n - 1)``, its bin ``[lo + (k - 1/2) dx, lo + (k + 1/2) dx)``),
    computed here in the same float64 steps so that the crawl does not import energy (and jax)
    before it starts; a test keeps the two equal bit for bit. Bounds and bins are checked."""
    edges = []
    for (lo, hi), n in zip(np.asarray(bounds, dtype=np.float64), shape, strict=True):
        dx = (hi - lo) / (int(n) - 1)
        edges.append(np.linspace(lo - dx / 2, hi + dx / 2, int(n) + 1))
    return tuple(edges)


@dataclasses.dataclass
class _Plan:
    """A crawl's arguments, checked before any work."""

    roots: list
    specs: list
    prof_name: str | None
    shape: tuple[int, ...]
    wanted: list
    notes: list[str]


def _plan(roots, variables, profile, bins, bounds, workers) -> _Plan:
    roots = [roots] if isinstance(roots, str | os.PathLike) else list(roots)
    specs = resolve_vars(variables, profile)
    prof_name = None
    if profile is not None:
        from ._profiles import Profile, load_profile

        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        prof_name = prof.name
    d = len(specs)
    notes: list[str] = []
    shape = _check_bins(bins, d, notes)
    asked = _check_bounds(bounds, d)
    wanted = [a if a is not None else s.bounds for a, s in zip(asked, specs, strict=True)]
    if workers is not None and (int(workers) != workers or workers < 1):
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    _root_entries(roots)  # a missing root is an error now, not after other checks
    return _Plan(roots, specs, prof_name, shape, wanted, notes)


def count(
    roots,
    variables,
    *,
    profile=None,
    bins=64,
    bounds=None,
    workers: int | None = None,
    executor: cf.Executor | None = None,
    state: str | os.PathLike | None = None,
    progress: str | bool | None = None,
    exclude=(),
) -> Counts:
    """Crawl the roots and count the asked variables into a histogram on the map's node grid.

    Rows are the aligned records of a file; a row with a missing value in any variable, a
    value outside a profile's physical range or outside the bounds is dropped and counted by
    reason. Bin k of axis i covers ``[lo_i + (k - 1/2) dx_i, lo_i + (k + 1/2) dx_i)`` with
    ``dx_i = (hi_i - lo_i) / (bins_i - 1)`` (``energy.bin_edges``). Bounds come from
    ``bounds``, else the profile, else a first pass over the data (its extremes).

    Args:
        roots: directories, files or glob patterns.
        variables: ``"NAME[:UNIT]"`` strings (or ``(name, unit)`` pairs), in axis order.
        profile: a shipped profile name (``"grid"``, ``"casting"``, ``"wind"``), a TOML path or
            None.
        bins: bins (= map nodes) per axis, one int or one per variable. The map may have at
            most 2**24 nodes: one int shrinks to ``floor(2**(24/d))`` (the report says so), bins
            given per variable over the cap are an error.
        bounds: ``[(lo, hi)]`` per variable in the asked units (an entry may be None).
        workers: local processes (default: all cores; 1 reads in this process).
        executor: any ``concurrent.futures.Executor`` (e.g. ``dask`` ``client.get_executor()``);
            it overrides ``workers``.
        state: folder of the resumable state (None: not resumable). Created with a marker;
            an existing folder without it is refused (never deleted). ``STATE.lock`` beside it
            is held while the crawl runs: a second crawl of the same state fails at once.
        progress: None (a bar on a terminal, else lines), ``"bar"``, ``"lines"`` or False.
        exclude: paths the crawl leaves out.

    Returns:
        :class:`Counts`.

    Raises:
        EmptyCrawlError: no row was counted (the report says why).
        ValueError: bad arguments, unknown profile or unit, a missing root, the state folder
            inside the lake (all checked before any work).
        StateError: ``state`` exists and is not a crawl state (nothing is changed).
        BusyError: another crawl is using ``state``.

    Example:
        >>> c = count("lake/", ["wind_speed:m/s", "power:kW"], profile="wind")  # doctest: +SKIP
        >>> c.counts.shape
        (64, 64)
    """
    server = _ForkServerStart(workers, executor)
    try:
        plan = _plan(roots, variables, profile, bins, bounds, workers)
        if state is None:
            c = _count(plan, workers, executor, None, progress, exclude)
            server.stop_if_unused()
            return c
        state = os.path.abspath(os.fspath(state))
        _check_folder_of(state, "the state folder")
        _check_outside_lake(plan.roots, {"the state folder": state})
        with CrawlLock(_lock_path(state), f"the crawl state {state}"):
            c = _count(plan, workers, executor, state, progress, exclude)
    except BaseException:
        server.stop()
        raise
    server.stop_if_unused()
    return c


def _count(plan: _Plan, workers, executor, state, progress, exclude) -> Counts:
    """The crawl of :func:`count`, its arguments checked (and the state locked)."""
    roots, specs, prof_name, shape = plan.roots, plan.specs, plan.prof_name, plan.shape
    wanted = list(plan.wanted)
    d = len(specs)
    if progress is False:
        progress = "off"
    excl = list(exclude) + ([state] if state is not None else [])
    files, pre_skipped = discover(roots, exclude=excl)
    config = {
        "version": 1,
        "roots": sorted(os.path.abspath(os.fspath(r)) for r in roots),
        "variables": [dataclasses.asdict(s) for s in specs],
        "bins": list(shape),
        "bounds": [list(b) if b is not None else None for b in wanted],
    }
    st = CrawlState(os.fspath(state), config) if state is not None else None

    # Bounds: asked, from the profile, stored by an interrupted run, or a pass over the data.
    if any(b is None for b in wanted):
        stored = st.load_bounds() if st is not None else None
        if stored is None:
            lo, hi = np.full(d, np.inf), np.full(d, -np.inf)

            # A bar on a terminal for this first pass; no "[k/n]" lines (those count the
            # files counted into the map).
            mode = "off" if progress not in (None, "bar") else progress
            if mode is None and not sys.stderr.isatty():
                mode = "off"
            bar = _Progress(mode, len(files), 0, sum(s for _, s in files), 0, desc="bounds")

            lo_from: list[str | None] = [None] * d  # the file of each extreme (for errors)
            hi_from: list[str | None] = [None] * d

            def on_extremes(res: FileResult):
                if res.lo is not None:
                    for i in range(d):
                        if res.lo[i] < lo[i]:
                            lo[i], lo_from[i] = res.lo[i], res.path
                        if res.hi[i] > hi[i]:
                            hi[i], hi_from[i] = res.hi[i], res.path
                bar.update(res.path, res.size)

            tasks = [FileTask(p, tuple(specs), None) for p, _ in files]
            try:
                _run(tasks, executor, workers, on_extremes)
            finally:
                bar.close()
            # Finite extremes only (+-inf never reach them); a constant or a span too narrow
            # for distinct bins is widened; a span no map can hold is an error naming it.
            names = [s.name for s in specs]
            stored = auto_bounds(names, lo, hi, lo_from, hi_from, shape, wanted)
            if stored is not None and st is not None:
                st.save_bounds(stored)
        if stored is not None:
            wanted = [w if w is not None else s for w, s in zip(wanted, stored, strict=True)]
    if any(b is None for b in wanted):
        # No row survived anywhere: count with placeholder bounds so the report says why.
        wanted = [w if w is not None else (0.0, 1.0) for w in wanted]
    edges = _edges(wanted, shape)
    # What a file's counts depend on: a part recorded under anything else is counted again.
    counted_under = {
        "version": 1,
        "variables": [dataclasses.asdict(s) for s in specs],
        "profile": prof_name,
        "edges": [e.tolist() for e in edges],
    }

    # Counts are added as files finish (integers: exact in any order) and each file keeps only
    # its report lines, so memory stays one histogram whatever the size of the lake.
    total = np.zeros(int(np.prod(shape)), dtype=np.int64)
    results: dict[str, FileResult] = {}

    def add(res: FileResult):
        if res.index is not None and res.index.size:
            total[res.index] += res.counts
        res.index = res.counts = None
        results[res.path] = res

    # Resume: keep the records of files unchanged since; recount the others.
    present = {p for p, _ in files}
    recounted = 0
    if st is not None:
        for res, same_config in st.load(counted_under):
            if res.path not in present:
                st.forget(res.path)
                continue
            if not same_config:
                recounted += 1
                st.forget(res.path)
                continue
            try:
                same = tuple(fingerprint(res.path)) == tuple(res.fingerprint)
            except OSError:
                same = False
            if same:
                add(res)
            else:
                st.forget(res.path)
    resumed = len(results)
    todo = [(p, s) for p, s in files if p not in results]
    prog = _Progress(
        None if progress is None else progress,
        len(files),
        resumed,
        sum(s for _, s in files),
        sum(res.size for res in results.values()),
    )

    def on_result(res: FileResult):
        if st is not None:
            st.save(res, counted_under)
        add(res)
        prog.update(res.path, res.size)

    try:
        _run([FileTask(p, tuple(specs), edges) for p, _ in todo], executor, workers, on_result)
    finally:
        prog.close()

    report = IngestReport(files_resumed=resumed)
    report.notes.extend(plan.notes)
    if recounted:
        report.notes.append(
            f"{recounted} files recounted: an earlier run in {state} counted them under another "
            "configuration (variables, units, bins or bounds)"
        )
    report.files_skipped.extend(pre_skipped)
    dropped = dict.fromkeys(DROP_REASONS, 0)
    units_seen: dict[str, set] = {s.name: set() for s in specs}
    for path in sorted(results):
        res = results[path]
        if res.skipped is not None:
            report.files_skipped.append((path, res.skipped))
            continue
        report.files_read.append(path)
        report.bytes_read += res.size
        report.rows_used += res.rows_used
        for k, v in res.dropped.items():
            dropped[k] = dropped.get(k, 0) + int(v)
        for k, v in res.units.items():
            units_seen.setdefault(k, set()).add(v)
    report.files_skipped.sort()
    report.rows_dropped = {k: v for k, v in dropped.items() if v}
    report.units = {k: sorted(v) for k, v in units_seen.items() if v}
    units = []
    for s in specs:
        seen = report.units.get(s.name, [])
        units.append(s.unit if s.unit is not None else (seen[0] if len(seen) == 1 else None))
    if report.rows_used == 0:
        where = ", ".join(os.fspath(r) for r in roots)
        raise EmptyCrawlError(f"no rows counted from {where}:\n{report}", report)
    return Counts(
        counts=total.reshape(shape),
        bounds=[tuple(map(float, b)) for b in wanted],
        names=[s.name for s in specs],
        units=units,
        report=report,
        profile=prof_name,
    )


def ingest(
    roots,
    variables,
    *,
    output: str | os.PathLike | None = None,
    profile=None,
    bins=64,
    bounds=None,
    smoothing=1.0,
    workers: int | None = None,
    executor: cf.Executor | None = None,
    progress: str | bool | None = None,
    _before_build=None,
):
    """Crawl a data lake into an energy map: ``E = -log p`` of the counted rows.

    The map is ``energy.EnergyMap.from_counts(counts, bounds, smoothing, names, units,
    provenance)`` of :func:`count`'s histogram. With ``output``, the crawl is resumable (its
    state sits beside the output as ``OUT.ingest-state``, removed once the map is written):
    running the same call again after a crash, Ctrl-C or ``kill -9`` finishes with exactly the
    counts of an uninterrupted run. ``OUT.ingest-state.lock`` is held while it runs: a second
    run writing the same output fails at once (:class:`BusyError`).

    Everything is checked before any work, and nothing is written when a check fails: the
    variables, units, profile, bins (node cap), bounds, smoothing and workers; the output's
    folder exists and is writable; the output and its state are neither an input nor inside a
    crawled folder; an existing ``OUT.ingest-state`` was made by ingest.

    Pool workers never import the calling script again, so a script without
    ``if __name__ == "__main__":`` works too.

    Args:
        roots: directories, files or glob patterns.
        variables: ``"NAME[:UNIT]"`` strings, in axis order.
        output: the ``.npz`` to write (atomically), or None.
        profile, bins, bounds, workers, executor, progress: as in :func:`count`.
        smoothing: Gaussian width in grid cells for ``from_counts`` (finite, >= 0; one for all
            axes or one per variable).

    Returns:
        ``(map, report)``: the ``energy.EnergyMap`` and the :class:`IngestReport`.

    Raises:
        ValueError, StateError, BusyError, PermissionError: a check above (the message names
            the path or value); EmptyCrawlError: no row was counted.

    Example:
        >>> m, report = ingest("lake/", ["ws:m/s", "p:kW"], profile="wind",
        ...                    output="wind.npz")  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
    """
    server = _ForkServerStart(workers, executor)
    try:
        out = _ingest(
            roots,
            variables,
            output,
            profile,
            bins,
            bounds,
            smoothing,
            workers,
            executor,
            progress,
            _before_build,
        )
    except BaseException:
        server.stop()
        raise
    server.stop_if_unused()
    return out


def _ingest(
    roots,
    variables,
    output,
    profile,
    bins,
    bounds,
    smoothing,
    workers,
    executor,
    progress,
    before_build=None,
):
    """:func:`ingest`, its fork server started; ``before_build()`` (the command line sets its
    compilation cache up there) is called before the map build."""
    plan = _plan(roots, variables, profile, bins, bounds, workers)
    d = len(plan.specs)
    sm = np.asarray(smoothing, dtype=np.float64) if np.ndim(smoothing) <= 1 else None
    if sm is None or sm.ndim == 1 and sm.size not in (1, d):
        raise ValueError(f"smoothing: one width or one per variable ({d}), got {smoothing!r}")
    if not (np.all(np.isfinite(sm)) and np.all(sm >= 0)):
        raise ValueError(f"smoothing must be finite and >= 0 (grid cells), got {smoothing!r}")
    lock = None
    state = None
    if output is not None:
        output = os.path.abspath(os.fspath(output))
        if os.path.isdir(output):
            raise ValueError(f"the output {output} is a folder: name the .npz file to write")
        _check_folder_of(output, "the output")
        state = state_path(output)
        _check_outside_lake(plan.roots, {"the output": output, "its crawl state": state})
        lock = CrawlLock(_lock_path(state), output).acquire()
    try:
        c = _count(plan, workers, executor, state, progress, [output] if output else [])
        if before_build is not None:
            before_build()
        import energy

        m = energy.EnergyMap.from_counts(
            c.counts,
            c.bounds,
            smoothing=smoothing,
            names=c.names,
            units=[u if u is not None else "" for u in c.units],
            provenance=c.provenance(),
        )
        if output is not None:
            m.save(output)
            CrawlState.remove_folder(state)
    finally:
        if lock is not None:
            lock.release()
    return m, c.report
