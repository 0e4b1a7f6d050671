"""Maps: building a map from counts and loading a saved map, against the floors of that work.

For each grid (nodes from 1e4 up), a smooth random histogram on the node grid, interleaved:

- ``EnergyMap.from_counts``: the build (smoothing, normalisation, noise pyramid, on the device);
- ``floor: gaussian_filter + log``: scipy's smoothing of the same counts and a -log: the least a
  build must do;
- ``energy.load``: reading the saved .npz (validation and checksum included) and its A/A twin;
- ``floor: np.load + sha256``: reading the same file's arrays and hashing its energies.

``python -m bench.maps [--quick] [--repeats N] [--baseline REV]`` runs the scaling study of issue
10 instead (`scaling`): 4-D grids from 1e4 to 2**24 nodes, the current code interleaved with
``energy`` of ``REV`` (default ``main``, exported with ``git archive``) in one process, for
``from_counts``, ``load`` (a file without a stored pyramid, which both read) and ``load + first
level`` (load, then one ``energy_at``: the current code reads a stored pyramid, the baseline
builds it), each >= 5 rounds (the baseline once at >= 2**22 nodes: a minute a build), median and
range; then, in a fresh process per (code, operation, grid), the peak RSS the operation adds
(first call, which compiles, and a second one). JSON with ``os.getloadavg()`` per grid in
``bench/results/maps_scaling.json``; a log-log plot in ``docs/img/maps_scaling.png`` when
matplotlib is importable.

``python -m bench.maps --load [--quick] [--repeats N] [--baseline REV]`` times ``energy.load``
alone (`load_bench`): wall and CPU time at 40^3 and 64^4, files with and without a stored
pyramid, interleaved with ``REV``; JSON in ``bench/results/maps_load.json``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

import numpy as np

from . import _common as C

SUITE = "maps"
SIZES = {
    "smoke": {"grids": [(64, 64)], "repeats": 2},
    "quick": {"grids": [(128, 128), (16,) * 4], "repeats": 3},
    "full": {"grids": [(256, 256), (64,) * 3, (32,) * 4, (48,) * 4], "repeats": 5},
}


def _counts(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = len(shape)
    x = rng.normal(size=(200_000, d)) * 0.25
    edges = [np.linspace(-1, 1, n + 1) for n in shape]
    return np.histogramdd(x, bins=edges)[0]


def _floor_build(counts):
    from scipy.ndimage import gaussian_filter

    p = gaussian_filter(counts.astype(np.float32), 1.0) + 1e-6
    return -np.log(p / p.sum())


def _floor_load(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    key = "values" if "values" in arrays else max(arrays, key=lambda k: arrays[k].size)
    return hashlib.sha256(np.ascontiguousarray(arrays[key]).tobytes()).hexdigest()


def run(size: str, backend: str, repeats: int | None = None) -> dict:
    import energy

    cfg = SIZES[size]
    rows, ratios = [], []
    tmp = tempfile.mkdtemp(prefix="groundstate-bench-maps-")
    try:
        for shape in cfg["grids"]:
            counts = _counts(shape)
            bounds = [(-1.0, 1.0)] * len(shape)
            nodes = int(np.prod(shape))
            case = {"d": len(shape), "grid": "x".join(map(str, shape)), "nodes": nodes}
            path = os.path.join(tmp, f"map{len(shape)}.npz")
            energy.EnergyMap.from_counts(counts, bounds).save(path)
            engines = {
                "EnergyMap.from_counts": lambda c=counts, b=bounds: (
                    energy.EnergyMap.from_counts(c, b).values
                ),
                "floor: gaussian_filter + log": lambda c=counts: _floor_build(c),
                "energy.load": lambda p=path: energy.load(p).values,
                "energy.load (A/A)": lambda p=path: energy.load(p).values,
                "floor: np.load + sha256": lambda p=path: _floor_load(p),
            }
            timings = C.measure(engines, repeats or cfg["repeats"])
            rows += C.rows_of(SUITE, case, timings, nodes, "nodes")
            for a, b in (
                ("energy.load", "energy.load (A/A)"),
                ("energy.load", "floor: np.load + sha256"),
                ("EnergyMap.from_counts", "floor: gaussian_filter + log"),
            ):
                if r := C.ratio(SUITE, case, timings, a, b):
                    ratios.append(r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"rows": rows, "ratios": ratios}


def print_result(res: dict) -> None:
    C.print_table("maps: build and load (M nodes/s)", res["rows"], res["ratios"], ["grid"])
    for row in res["rows"]:
        if "median_s" in row and not row["engine"].startswith("floor"):
            C.say(f"  {row['case']['grid']:<12} {row['engine']:<24} {row['median_s']:.3f} s median")


# ---------------------------------------------------------------- scaling study (issue 10)
SCALING_SHAPES = [(10,) * 4, (18,) * 4, (32,) * 4, (48,) * 4, (64,) * 4]
QUICK_SCALING_SHAPES = [(10,) * 4, (18,) * 4, (32,) * 4]
# Baseline rounds at and above this many nodes (its build takes ~a minute there).
BIG = 2**22


def _mixture_counts(shape, seed=0, n=200_000):
    """Histogram of a 3-mode Gaussian mixture on [-4, 4]^d (node-centred bins): counts, bounds."""
    import energy

    rng = np.random.default_rng(seed)
    d = len(shape)
    centres = rng.uniform(-2, 2, size=(3, d))
    x = centres[rng.integers(0, 3, n)] + 0.6 * rng.normal(size=(n, d))
    bounds = [(-4.0, 4.0)] * d
    return np.histogramdd(x, bins=energy.bin_edges(bounds, shape))[0], bounds


_CHILD = r"""
import json, sys, time, importlib.util
import numpy as np
where, op, counts_path, map_path, calls = sys.argv[1:6]
if where:
    spec = importlib.util.spec_from_file_location(
        "energy", where + "/energy/__init__.py", submodule_search_locations=[where + "/energy"])
    energy = importlib.util.module_from_spec(spec); sys.modules["energy"] = energy
    spec.loader.exec_module(energy)
else:
    import energy
import jax

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

counts = np.load(counts_path)
bounds = [(-4.0, 4.0)] * counts.ndim
energy.EnergyMap.from_counts(np.ones((3,) * counts.ndim), bounds)  # imports, first jit
out = {}
for name in ("first", "second")[: int(calls)]:
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t0 = time.perf_counter()
    m = energy.EnergyMap.from_counts(counts, bounds) if op == "from_counts" else energy.load(map_path)
    jax.block_until_ready(jax.tree_util.tree_leaves(m))
    out[name] = {"added_bytes": status("VmHWM") - before, "s": time.perf_counter() - t0}
    del m
print(json.dumps(out))
"""


def _rss(where: str, op: str, counts_path: str, map_path: str, grid_bytes: int, calls=2) -> dict:
    """Peak RSS an operation adds in a fresh process (first call, and a second one)."""
    import json
    import os
    import subprocess
    import sys

    env = dict(
        os.environ, PYTHONPATH=str(C.ROOT), JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu")
    )
    r = subprocess.run(
        [sys.executable, "-c", _CHILD, where, op, counts_path, map_path, str(calls)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    if r.returncode:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for v in res.values():
        v["ratio_to_grid_f32"] = v["added_bytes"] / grid_bytes
    return res


_stats = C.summary


def _write_result(out_json, bench, baseline, quick, repeats, rows, complete) -> dict:
    """The JSON of a maps study so far (written after every grid, so a cut run keeps its rows)."""
    import json
    import os
    import time

    import jax

    result = {
        "bench": bench,
        "baseline": baseline,
        "quick": quick,
        "repeats": repeats,
        "machine": C.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "rows": rows,
        "complete": complete,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    C.RESULTS.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1) + "\n")
    return result


def scaling(quick: bool = False, repeats: int = 5, baseline: str = "main") -> dict:
    """Time and peak RSS of from_counts and load against ``baseline``, 1e4 .. 2**24 nodes."""
    import os
    import shutil
    import tempfile
    import time
    from functools import partial

    import jax

    import energy

    shapes = QUICK_SCALING_SHAPES if quick else SCALING_SHAPES
    tmp = tempfile.mkdtemp(prefix="bench-maps-scaling-")
    base, base_dir = C.import_revision(baseline, tmp)
    impls = {"new": energy, "base": base}
    rows = []
    out_json = C.RESULTS / ("maps_scaling-quick.json" if quick else "maps_scaling.json")

    def block(m):
        jax.block_until_ready(jax.tree_util.tree_leaves(m))
        return m

    try:
        for shape in shapes:
            nodes = int(np.prod(shape))
            counts, bounds = _mixture_counts(shape)
            lazy = os.path.join(tmp, f"lazy-{nodes}.npz")
            stored = os.path.join(tmp, f"stored-{nodes}.npz")
            m = energy.EnergyMap.from_counts(counts, bounds)
            m.save(lazy)  # no pyramid: both codes read it
            sigma = float(m.noise_levels[3])  # builds the pyramid
            m.save(stored)
            del m
            q = np.zeros((1024, len(shape)), np.float32)

            def fc(mod, c=counts, b=bounds):
                return block(mod.EnergyMap.from_counts(c, b))

            def ld(mod, path=lazy):
                return block(mod.load(path))

            def level(mod, path, x=q, s=sigma):
                return mod.load(path).energy_at(x, s).block_until_ready()

            ops = {
                "from_counts": {"new": partial(fc, energy), "base": partial(fc, base)},
                "load": {"new": partial(ld, energy), "base": partial(ld, base)},
                # the current code reads the stored pyramid; the baseline builds its own
                "load_then_level": {
                    "new": partial(level, energy, stored),
                    "base": partial(level, base, lazy),
                },
            }
            times = {op: {k: [] for k in impls} for op in ops}
            load0 = os.getloadavg()
            n_base = repeats if nodes < BIG else 1
            for r in range(repeats + 1):  # round 0 compiles: not recorded
                for op, fns in ops.items():
                    for k in ("new", "base"):
                        if k == "base" and r > n_base:
                            continue
                        t0 = time.perf_counter()
                        fns[k]()
                        if r:
                            times[op][k].append(time.perf_counter() - t0)
            row = {
                "shape": list(shape),
                "nodes": nodes,
                "grid_f32_bytes": nodes * 4,
                "loadavg_before": list(load0),
                "loadavg_after": list(os.getloadavg()),
            }
            for op in ops:
                new, old = times[op]["new"], times[op]["base"]
                row[op] = {
                    "new": _stats(new),
                    "base": _stats(old),
                    "base_over_new_median": float(np.median(old) / np.median(new)),
                }
            cpath = os.path.join(tmp, "counts.npy")
            np.save(cpath, counts)
            row["peak_rss"] = {
                k: {
                    # the baseline's build at >= BIG nodes: one call (a minute)
                    op: _rss(
                        where, op, cpath, lazy, nodes * 4, 1 if k == "base" and nodes >= BIG else 2
                    )
                    for op in ("from_counts", "load")
                }
                for k, where in (("new", ""), ("base", base_dir))
            }
            rows.append(row)
            _say_row(row)
            result = _write_result(
                out_json, "maps_scaling", baseline, quick, repeats, rows, shape == shapes[-1]
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not quick:
        _plot(rows, C.ROOT / "docs" / "img" / "maps_scaling.png")
    return result


# ---------------------------------------------------------------- energy.load alone (issue 10)
LOAD_SHAPES = [(40,) * 3, (64,) * 4]
QUICK_LOAD_SHAPES = [(40,) * 3, (32,) * 4]


def _without_log_z(src, out) -> None:
    """``src`` as a file saved before log Z was stored: the field removed, checksums made again."""
    import json

    from energy import _io

    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta.pop("log_z", None)
    meta.pop("checksum", None)
    _io.write_npz_atomic(out, arrays, meta)


def load_bench(quick: bool = False, repeats: int = 7, baseline: str = "main") -> dict:
    """Wall and CPU time of ``energy.load`` against ``baseline``, interleaved, per grid and file.

    Per grid (40^3 and 64^4, the targets of issue 10), three files of one map built by the
    current code: ``stored`` (with its pyramid, as a map that was used is saved), ``plain``
    (without), ``stored, no log_z`` (the stored file as saved before log Z was stored: what the
    baseline writes). Each round runs every (code, file) once, in a new random order (seeded);
    the first round (imports, compilation) is not recorded. CPU time is ``time.process_time``
    (every thread of the process). JSON in ``bench/results/maps_load[-quick].json``.
    """
    import time

    import jax

    import energy

    shapes = QUICK_LOAD_SHAPES if quick else LOAD_SHAPES
    tmp = tempfile.mkdtemp(prefix="bench-maps-load-")
    base, _ = C.import_revision(baseline, tmp)
    impls = {"new": energy, "base": base}
    rng = np.random.default_rng(0)
    rows = []
    out_json = C.RESULTS / ("maps_load-quick.json" if quick else "maps_load.json")
    try:
        for shape in shapes:
            counts, bounds = _mixture_counts(shape)
            name = "x".join(map(str, shape))
            files = {
                "plain": os.path.join(tmp, f"plain-{name}.npz"),
                "stored": os.path.join(tmp, f"stored-{name}.npz"),
                "stored, no log_z": os.path.join(tmp, f"old-{name}.npz"),
            }
            m = energy.EnergyMap.from_counts(counts, bounds)
            m.save(files["plain"])
            _ = m.noise_levels  # builds the pyramid
            m.save(files["stored"])
            del m
            _without_log_z(files["stored"], files["stored, no log_z"])
            cases = [(k, f) for f in files for k in impls]
            wall = {c: [] for c in cases}
            cpu = {c: [] for c in cases}
            load0 = os.getloadavg()
            for r in range(repeats + 1):
                for i in rng.permutation(len(cases)):
                    k, f = cases[i]
                    t0, c0 = time.perf_counter(), time.process_time()
                    jax.block_until_ready(jax.tree_util.tree_leaves(impls[k].load(files[f])))
                    t1, c1 = time.perf_counter(), time.process_time()
                    if r:
                        wall[(k, f)].append(t1 - t0)
                        cpu[(k, f)].append(c1 - c0)
            row = {
                "shape": list(shape),
                "nodes": int(np.prod(shape)),
                "file_bytes": {f: os.path.getsize(p) for f, p in files.items()},
                "loadavg_before": list(load0),
                "loadavg_after": list(os.getloadavg()),
            }
            for f in files:
                row[f] = {
                    k: {"wall_s": C.summary(wall[(k, f)]), "cpu_s": C.summary(cpu[(k, f)])}
                    for k in impls
                }
                ratio = np.asarray(wall[("base", f)]) / np.asarray(wall[("new", f)])
                row[f]["base_over_new_wall"] = C.summary(ratio)
            rows.append(row)
            _say_load_row(row, files)
            result = _write_result(
                out_json, "maps_load", baseline, quick, repeats, rows, shape == shapes[-1]
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _say_load_row(row, files) -> None:
    def fmt(s):
        return f"{s['median']:.3f} [{s['min']:.3f}-{s['max']:.3f}]"

    print(
        f"{'x'.join(map(str, row['shape']))} ({row['nodes']} nodes), load avg "
        f"{row['loadavg_before'][0]:.1f}->{row['loadavg_after'][0]:.1f}",
        flush=True,
    )
    for f in files:
        r = row[f]
        print(
            f"  {f:<17} {row['file_bytes'][f] / 2**20:8.1f} MiB  "
            + "  ".join(
                f"{k}: wall {fmt(r[k]['wall_s'])} s cpu {fmt(r[k]['cpu_s'])} s"
                for k in ("new", "base")
            )
            + f"  base/new {fmt(r['base_over_new_wall'])}",
            flush=True,
        )


def _say_row(row) -> None:
    parts = [f"{'x'.join(map(str, row['shape'])):>12} {row['nodes']:>9}"]
    for op in ("from_counts", "load", "load_then_level"):
        n, b = row[op]["new"], row[op]["base"]
        parts.append(
            f"{op} {n['median']:.3f} [{n['min']:.3f}-{n['max']:.3f}] s vs "
            f"{b['median']:.3f} [{b['min']:.3f}-{b['max']:.3f}] (x{row[op]['base_over_new_median']:.1f})"
        )
    rss = row["peak_rss"]
    for k in ("new", "base"):
        fc = rss[k]["from_counts"]
        if "first" in fc:
            last = fc.get("second", fc["first"])
            parts.append(
                f"rss {k} build {fc['first']['ratio_to_grid_f32']:.2f}x/"
                f"{last['ratio_to_grid_f32']:.2f}x"
            )
    parts.append(f"load avg {row['loadavg_before'][0]:.1f}->{row['loadavg_after'][0]:.1f}")
    print(" | ".join(parts), flush=True)


def _plot(rows, path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not importable: no plot")
        return
    n = [r["nodes"] for r in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for op, c in (("from_counts", "C0"), ("load", "C1"), ("load_then_level", "C2")):
        for k, style in (("new", "o-"), ("base", "s--")):
            med = [r[op][k]["median"] for r in rows]
            lo = [r[op][k]["median"] - r[op][k]["min"] for r in rows]
            hi = [r[op][k]["max"] - r[op][k]["median"] for r in rows]
            ax.errorbar(n, med, yerr=[lo, hi], fmt=style, color=c, label=f"{op} ({k})", ms=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("grid nodes (4-D)")
    ax.set_ylabel("seconds (median, min-max)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    for k, style in (("new", "o-"), ("base", "s--")):
        for op, c in (("from_counts", "C0"), ("load", "C1")):
            ys = [
                (r["peak_rss"][k][op].get("second") or r["peak_rss"][k][op].get("first") or {}).get(
                    "ratio_to_grid_f32"
                )
                for r in rows
            ]
            pts = [(x, y) for x, y in zip(n, ys, strict=True) if y is not None]
            if pts:
                ax2.plot(*zip(*pts, strict=True), style, color=c, label=f"{op} ({k})", ms=4)
    ax2.axhline(3.0, color="k", lw=0.8, ls=":")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("grid nodes (4-D)")
    ax2.set_ylabel("peak RSS added / grid f32 bytes (2nd call; base >= 2^22: 1st)")
    ax2.legend(fontsize=7)
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="maps: build and load scaling against a baseline")
    p.add_argument("--quick", action="store_true", help="grids up to 32^4")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--baseline", default="main", help="git revision of the baseline")
    p.add_argument("--plot", action="store_true", help="only plot bench/results/maps_scaling.json")
    p.add_argument(
        "--load",
        action="store_true",
        help="only energy.load, wall and CPU time, 40^3 and 64^4 (--quick: 32^4)",
    )
    a = p.parse_args(argv)
    if a.load:
        load_bench(a.quick, a.repeats, a.baseline)
        return
    if a.plot:  # e.g. the rows of a run stopped before its last grid
        import json

        rows = json.loads((C.RESULTS / "maps_scaling.json").read_text())["rows"]
        _plot(rows, C.ROOT / "docs" / "img" / "maps_scaling.png")
        return
    scaling(a.quick, a.repeats, a.baseline)


if __name__ == "__main__":
    main()
