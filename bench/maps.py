"""Maps: building a map from counts and loading a saved map, against the floors of that work.

For each grid (nodes from 1e4 up), a smooth random histogram on the node grid, interleaved:

- ``EnergyMap.from_counts``: the build (smoothing, normalisation, noise pyramid, on the device);
- ``floor: gaussian_filter + log``: scipy's smoothing of the same counts and a -log: the least a
  build must do;
- ``energy.load``: reading the saved .npz (validation and checksum included) and its A/A twin;
- ``floor: np.load + sha256``: reading the same file's arrays and hashing its energies.
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
