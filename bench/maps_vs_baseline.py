"""Map build and load times against a baseline commit, interleaved in one process.

For each grid (4-D from 1e4 to 2**24 nodes, and a 40^3 map) it times, alternating the current
code and the baseline (``energy`` of commit ``--baseline``, default c48fa8c, exported with
``git archive`` to a temporary folder and imported under another name):

- ``from_counts``: a map from a histogram of 200k 4-D Gaussian-mixture samples;
- ``load``: ``energy.load`` of the same version-1 file (written once by the current code);
- ``pyramid``: the first level read (``energy_at``) after a load, which builds the pyramid
  (the baseline built it inside ``load`` / ``from_counts``: its figure is 0 by construction);

and, in a fresh subprocess, the peak RSS added by ``from_counts`` (over a process that already
holds the counts), against the grid's float32 bytes. Prints a table, writes
``bench/results/maps_vs_baseline.json`` and, with matplotlib, ``bench/results/maps_vs_baseline.png`` (time vs nodes).

Run: ``python bench/maps_vs_baseline.py [--quick] [--repeats N] [--baseline REV]``. ``run(quick)`` returns
the result dict (for a ``python -m bench`` driver).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
from bench._common import import_revision, summary  # noqa: E402

BASELINE = "c48fa8c"
N_SAMPLES = 200_000

FULL_SHAPES = [(10,) * 4, (18,) * 4, (32,) * 4, (48,) * 4, (64,) * 4, (40,) * 3]
QUICK_SHAPES = [(10,) * 4, (18,) * 4, (40,) * 3]


def _counts(shape, seed=0):
    """Histogram of a 3-mode Gaussian mixture on [-4, 4]^d: (counts, bounds)."""
    rng = np.random.default_rng(seed)
    d = len(shape)
    centres = rng.uniform(-2, 2, size=(3, d))
    x = centres[rng.integers(0, 3, N_SAMPLES)] + 0.6 * rng.normal(size=(N_SAMPLES, d))
    bounds = [(-4.0, 4.0)] * d
    import energy

    edges = energy.bin_edges(bounds, shape)
    counts, _ = np.histogramdd(x, bins=edges)
    return counts, bounds


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _block(m):
    import jax

    jax.block_until_ready(jax.tree_util.tree_leaves(m))
    return m


def _from_counts(mod, counts, bounds):
    return _block(mod.EnergyMap.from_counts(counts, bounds))


def _load(mod, path):
    return _block(mod.load(path))


def _first_level(m, q):
    """The first read of a pyramid level (the new code builds the pyramid here)."""
    sigma = float(np.asarray(m._noise_levels)[3])
    return m.energy_at(q, sigma).block_until_ready()


_stats = summary


_RSS_CHILD = r"""
import json, sys
import numpy as np
import energy

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
shape = tuple(json.loads(sys.argv[1]))
counts = np.load(sys.argv[2])
bounds = [(-4.0, 4.0)] * len(shape)
energy.EnergyMap.from_counts(np.ones((3,) * len(shape)), bounds[:1] * len(shape))  # imports
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark (VmHWM)
    f.write("5")
m = energy.EnergyMap.from_counts(counts, bounds)
m.values.block_until_ready()
print(json.dumps({"added": status("VmHWM") - before}))
"""


def _peak_rss(shape, counts, root: Path) -> dict:
    """Peak RSS added by the current code's from_counts, in a fresh process (Linux ru_maxrss)."""
    path = root / "counts.npy"
    np.save(path, counts)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, json.dumps(list(shape)), str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    added = json.loads(out.stdout.strip().splitlines()[-1])["added"]
    grid = int(np.prod(shape)) * 4
    return {"added_bytes": added, "grid_f32_bytes": grid, "ratio": added / grid}


def _node_cap() -> dict:
    import jax

    from energy import _grid

    return {"node_cap": _grid.default_node_cap(), "device": str(jax.devices()[0])}


def run(quick: bool, repeats: int | None = None, baseline: str = BASELINE) -> dict:
    """Time the current code against ``baseline``; return (and write) the results."""

    import energy

    shapes = QUICK_SHAPES if quick else FULL_SHAPES
    reps = repeats or (2 if quick else 5)
    tmp = Path(tempfile.mkdtemp(prefix="bench-maps-"))
    base = import_revision(baseline, Path(tempfile.gettempdir()) / "bench-maps-baseline")[0]
    impls = {"new": energy, "base": base}
    rows = []
    for shape in shapes:
        nodes = int(np.prod(shape))
        counts, bounds = _counts(shape)
        path = tmp / f"map-{nodes}.npz"
        energy.EnergyMap.from_counts(counts, bounds).save(path)
        q = np.zeros((1024, len(shape)), np.float32)
        times = {k: {"from_counts": [], "load": [], "pyramid": []} for k in impls}
        # Big grids take a minute each on the baseline: fewer repeats there.
        n_rep = reps if nodes < 2**22 or quick else max(2, reps // 2)
        for r in range(n_rep + 1):  # the first round warms compilation caches, not recorded
            for name, mod in impls.items():
                t_fc, m = _timed(partial(_from_counts, mod, counts, bounds))
                del m
                t_ld, m = _timed(partial(_load, mod, path))
                t_py, _ = _timed(partial(_first_level, m, q))
                del m
                if r:
                    times[name]["from_counts"].append(t_fc)
                    times[name]["load"].append(t_ld)
                    times[name]["pyramid"].append(t_py)
        row = {"shape": list(shape), "nodes": nodes, "repeats": n_rep}
        for op in ("from_counts", "load"):
            new, old = times["new"][op], times["base"][op]
            row[op] = {
                "new": _stats(new),
                "base": _stats(old),
                "speedup": _stats([o / n for o, n in zip(old, new, strict=True)]),
            }
        # The baseline built its pyramid inside from_counts and load: only the new cost is shown.
        row["pyramid"] = {"new": _stats(times["new"]["pyramid"])}
        if nodes >= 10**6 or quick:
            row["peak_rss"] = _peak_rss(shape, counts, tmp)
        rows.append(row)
        _print_row(row)
        _write(rows, quick, baseline, partial=True)
    return _write(rows, quick, baseline, partial=False)


def _write(rows, quick: bool, baseline: str, partial: bool) -> dict:
    """Write the results so far (after every grid: a long run that is stopped keeps its rows)."""
    import jax

    result = {
        "bench": "maps",
        "baseline": baseline,
        "quick": quick,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), **_node_cap()},
        "jax": jax.__version__,
        "rows": rows,
        "complete": not partial,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "maps_vs_baseline-quick.json" if quick else "maps_vs_baseline.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n")
    if not quick and not partial:
        _plot(rows, RESULTS / "maps_vs_baseline.png")
    return result


def _print_row(row):
    s = row["shape"]
    parts = [f"{'x'.join(map(str, s)):>12} {row['nodes']:>9}"]
    for op in ("from_counts", "load"):
        r = row[op]
        parts.append(
            f"{op} {r['new']['median']:.3f}s vs {r['base']['median']:.3f}s "
            f"(x{r['speedup']['median']:.1f} [{r['speedup']['min']:.1f}, {r['speedup']['max']:.1f}])"
        )
    parts.append(f"first level (builds the pyramid) {row['pyramid']['new']['median']:.3f}s")
    if "peak_rss" in row:
        parts.append(f"rss {row['peak_rss']['ratio']:.2f}x grid f32")
    print(" | ".join(parts), flush=True)


def _plot(rows, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    rows4 = [r for r in rows if len(r["shape"]) == 4]
    n = [r["nodes"] for r in rows4]
    fig, ax = plt.subplots(figsize=(6, 4))
    for op, c in (("from_counts", "C0"), ("load", "C1"), ("pyramid", "C2")):
        ax.loglog(n, [r[op]["new"]["median"] for r in rows4], "o-", color=c, label=f"{op} (new)")
        if op != "pyramid":
            ax.loglog(
                n, [r[op]["base"]["median"] for r in rows4], "s--", color=c, label=f"{op} (base)"
            )
    ax.set_xlabel("grid nodes (4-D)")
    ax.set_ylabel("seconds (median)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small grids, 2 repeats")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--baseline", default=BASELINE, help="git revision of the baseline")
    a = p.parse_args(argv)
    run(a.quick, a.repeats, a.baseline)


if __name__ == "__main__":
    main()
