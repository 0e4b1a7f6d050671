"""Building a map from counts: float32 in slabs, no index arrays, same energies (issue 10).

The reference is the float64 build of the previous release, copied here: Gaussian smoothing in
float64, ``-log`` in float64, empty cells from scipy's feature transform with its d index arrays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import energy
from energy import _grid, _pyramid


def _reference(counts, bounds, smoothing):
    """The float64 build (energies rounded to float32 as a map stores them) and its data mask."""
    c = np.asarray(counts, dtype=np.float64)
    total = float(c.sum())
    sig = [float(s) for s in smoothing]
    if any(s > 0 for s in sig):
        c = ndimage.gaussian_filter(c, sig, mode="reflect", truncate=4.0)
    peak_one = float(np.prod([1.0 / (np.sqrt(2 * np.pi) * s) if s > 0.4 else 1.0 for s in sig]))
    threshold = 1e-3 * peak_one if any(s > 0 for s in sig) else 0.5
    data = c > threshold
    spacing = (bounds[:, 1] - bounds[:, 0]) / (np.array(c.shape) - 1)
    e = np.empty_like(c)
    e[data] = -np.log(c[data] / (total * float(np.prod(spacing))))
    if (~data).any():
        dist, nearest = ndimage.distance_transform_edt(~data, return_indices=True)
        e[~data] = e[tuple(ix[~data] for ix in nearest)] + dist[~data]
    e += _pyramid.log_integral(jnp.asarray(e, jnp.float32), bounds)
    return e, data


def _counts(shape, seed, n=3000):
    rng = np.random.default_rng(seed)
    d = len(shape)
    x = rng.normal(size=(n, d)) * 0.15 + rng.choice([-0.4, 0.3], size=(n, 1))
    b = np.array([(-1.0, 1.0)] * d)
    counts, _ = np.histogramdd(x, bins=_grid.bin_edges(b, shape))
    return counts, b


def _ulps(e):
    """One float32 ulp of the largest |energy| (the storage precision of the map)."""
    return float(np.spacing(np.float32(np.abs(e).max())))


@pytest.mark.parametrize("shape", [(40,), (30, 25), (12, 14, 16), (10, 9, 8, 7)])
@pytest.mark.parametrize("smoothing", [1.0, 0.0])
def test_energies_match_the_float64_build(shape, smoothing):
    counts, b = _counts(shape, seed=len(shape))
    sm = [smoothing] * len(shape)
    ref, data = _reference(counts, b, sm)
    e, stats = _grid.counts_to_energies(counts, b, sm)
    assert e.dtype == np.float32
    assert stats["data_cells"] == int(data.sum()) and stats["empty_cells"] == int((~data).sum())
    # Data cells: the float64 energies rounded to float32, within 4 ulps of the largest energy
    # (smoothing rounds to float32 once per axis, ~d * 6e-8 relative in c, i.e. absolute in E;
    # then two float32 roundings), up to a common shift: log Z also sums the empty cells, and
    # where two data cells are equally near an empty one the choice may differ (ties).
    diff = e[data].astype(np.float64) - ref[data]
    tol = 4 * _ulps(ref)
    assert diff.max() - diff.min() <= tol, (diff.max() - diff.min(), tol)
    if len(shape) <= _grid.FULL_TRANSFORM_MAX_AXES or smoothing > 0:
        assert np.abs(diff).max() <= tol + 1e-5
    else:
        # Unsmoothed 3-D/4-D histograms have many tied empty cells: their energies differ, so
        # log Z (and the common shift) moves a little; the map is still a normalised density.
        assert np.abs(diff).max() <= 5e-2
        assert abs(_pyramid.log_integral(jnp.asarray(e), b)) <= 1e-5
    if len(shape) <= _grid.FULL_TRANSFORM_MAX_AXES:
        # The same feature transform as before: empty cells agree too.
        np.testing.assert_allclose(e, ref, rtol=0, atol=tol + 1e-5)


def _rule_holds(e0, e):
    """Every empty cell = some nearest data cell's energy + r (brute force); data cells kept."""
    fin = np.isfinite(e0)
    pts, vals = np.argwhere(fin), e0[fin].astype(np.float64)
    assert np.array_equal(e[fin], e0[fin])
    ties = 0
    for idx in np.argwhere(~fin):
        r2 = ((pts - idx) ** 2).sum(axis=1)
        near = r2 == r2.min()
        cand = vals[near] + np.sqrt(r2.min())
        ties += len(np.unique(cand)) > 1
        assert np.min(np.abs(cand - e[tuple(idx)])) <= 2e-6 * (1 + abs(e[tuple(idx)])), idx
    return ties


@pytest.mark.parametrize("shape", [(30, 25), (12, 14, 16), (6, 7, 5, 6), (20, 3, 4)])
def test_empty_cells_get_the_nearest_data_cell_plus_distance(shape):
    rng = np.random.default_rng(7)
    e0 = np.where(rng.random(shape) < 0.05, rng.normal(size=shape) * 3, np.inf).astype(np.float32)
    e0.flat[0] = 1.0  # at least one data cell
    e = e0.copy()
    _grid.fill_empty(e)
    assert np.all(np.isfinite(e))
    ties = _rule_holds(e0, e)
    assert ties > 0  # the grids have ties: the rule is checked on them too
    again = e0.copy()
    _grid.fill_empty(again)
    assert np.array_equal(again, e)  # deterministic


def test_slice_fill_handles_slices_without_data():
    # Data only in slice 3 of 9 along the first axis: every other slice is filled across slices.
    e0 = np.full((9, 5, 6), np.inf, np.float32)
    e0[3, 1, 2], e0[3, 4, 5] = 2.0, -1.0
    e = e0.copy()
    _grid.fill_empty(e)
    _rule_holds(e0, e)
    assert e[8, 4, 5] == pytest.approx(-1.0 + 5.0)


def test_counts_without_a_data_cell_use_the_peak():
    # Fractional counts all below the unsmoothed threshold (0.5): the largest cells are the data.
    counts = np.full((6, 5), 0.1)
    counts[2, 3] = 0.3
    e, stats = _grid.counts_to_energies(counts, np.array([(0.0, 1.0), (0.0, 1.0)]), [0.0, 0.0])
    assert stats["data_cells"] == 1
    assert np.argmin(e) == np.ravel_multi_index((2, 3), e.shape)
    assert e[0, 0] == pytest.approx(e[2, 3] + np.hypot(2, 3), abs=1e-5)


def test_from_counts_holds_numpy_memory_of_one_and_a_half_grids(monkeypatch):
    """numpy's peak (tracemalloc) while building: the float32 energies + small slabs.

    Slabs are made small, and the grid long along its first axis (a slice's transform
    temporaries are 1/256 of the grid, 1/64 at 64^4), so that a small grid shows the rule;
    the map's energies share the build's buffer (no copy on a CPU).
    """
    monkeypatch.setattr(_grid, "CHUNK_NODES", 2**11)
    monkeypatch.setattr(_pyramid, "LOG_Z_SLAB_NODES", 2**12)
    counts, b = _counts((256, 8, 8, 8), seed=1, n=20_000)
    energy.EnergyMap.from_counts(counts, b)  # compile first
    grid = counts.size * 4
    tracemalloc.start()
    try:
        m = energy.EnergyMap.from_counts(counts, b)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Energies (1 grid) + within-slice squared distances in uint16 (0.5) + slabs (~0.2 here,
    # 2**-4 of this grid; 2**-4 of 64^4 too at the default 2**20). The float64 build held ~20.
    assert peak <= 1.8 * grid, peak / grid
    ref, data = _reference(counts, b, [1.0] * 4)
    assert np.abs(np.asarray(m.values)[data] - ref[data]).max() < 1e-4  # the same map


_RSS_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import energy

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    n = int(sys.argv[1])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100_000, 4)) * 0.6
    bounds = [(-4.0, 4.0)] * 4
    counts, _ = np.histogramdd(x, bins=energy.bin_edges(bounds, (n,) * 4))
    energy.EnergyMap.from_counts(counts, bounds)  # compiles this shape's programs
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    m = energy.EnergyMap.from_counts(counts, bounds)
    m.values.block_until_ready()
    print(json.dumps({"added": status("VmHWM") - before, "grid": counts.size * 4}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_build_peak_rss_within_three_grids():
    """Peak RSS added by a build (warm: its programs compiled) <= 3x the grid's float32 bytes."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, "48"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["added"] <= 3 * r["grid"], r["added"] / r["grid"]
