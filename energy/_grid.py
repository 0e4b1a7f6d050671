"""NumPy building blocks for maps: bin edges, smoothing, counts to energies, quadrature.

Everything here runs once, when a map is built, in float64 on the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.special import logsumexp

# Largest grid (in nodes) that `from_samples` builds from a default integer `bins`: 2**24 nodes
# (64 MiB of float32) keeps a map, its pyramid and its build within a laptop's memory.
MAX_DEFAULT_NODES = 2**24
# Largest grid accepted at all: 2**28 nodes is 1 GiB of float32 energies.
MAX_NODES = 2**28
# Beyond the data, empty cells rise by this many nats per cell of distance to the nearest data
# cell: a gradient of one nat per cell always points back to the data (no plateau to wander on).
EMPTY_RISE_PER_CELL = 1.0
# A cell counts as "data" when its smoothed count is above this fraction of the peak a single
# isolated sample leaves after smoothing (about 3.7 smoothing widths around every sample).
DATA_FRACTION_OF_ONE_SAMPLE = 1e-3


def check_bounds(bounds, d: int | None = None) -> np.ndarray:
    """Bounds as a float64 array (d, 2) with finite lo < hi, or a ValueError naming the axis."""
    try:
        b = np.asarray(bounds, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bounds must be a sequence of (lo, hi) pairs, got {bounds!r}") from err
    if b.ndim != 2 or b.shape[1] != 2:
        raise ValueError(f"bounds must have shape (d, 2) as [(lo, hi), ...], got shape {b.shape}")
    if d is not None and b.shape[0] != d:
        raise ValueError(f"bounds has {b.shape[0]} axes, the grid has {d}")
    for i, (lo, hi) in enumerate(b):
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"bounds of axis {i} must be finite with lo < hi, got ({lo}, {hi})")
    return b


def bin_edges(bounds, shape: Sequence[int]) -> list[np.ndarray]:
    """Histogram edges whose bins are centred on the map's nodes.

    Node k of axis i sits at ``lo_i + k * dx_i`` with ``dx_i = (hi_i - lo_i) / (n_i - 1)``; its bin
    is ``[lo_i + (k - 1/2) dx_i, lo_i + (k + 1/2) dx_i)``, so there are ``n_i + 1`` edges from
    ``lo_i - dx_i / 2`` to ``hi_i + dx_i / 2``.

    Args:
        bounds: ``[(lo_i, hi_i)]`` per axis.
        shape: nodes per axis ``(n_1, ..., n_d)``, each at least 2.

    Returns:
        A list of ``d`` arrays of ``n_i + 1`` increasing edges.

    Example:
        >>> bin_edges([(0.0, 1.0)], (3,))[0]
        array([-0.25,  0.25,  0.75,  1.25])
    """
    shape = tuple(int(n) for n in shape)
    b = check_bounds(bounds, len(shape))
    edges = []
    for (lo, hi), n in zip(b, shape, strict=True):
        if n < 2:
            raise ValueError(f"each axis needs at least 2 nodes, got {n}")
        dx = (hi - lo) / (n - 1)
        edges.append(np.linspace(lo - dx / 2, hi + dx / 2, n + 1))
    return edges


def gaussian_filter_density(p: np.ndarray, sigma_cells: Sequence[float]) -> np.ndarray:
    """Convolve node values with a Gaussian of ``sigma_cells[j]`` cells along each axis.

    Zero outside the grid (the density of a map is supported on its bounds), the kernel normalised
    over the infinite lattice so that mass is conserved away from the faces. Separable: one dense
    ``(n_j, n_j)`` matrix product per axis, whatever the width.
    """
    out = np.asarray(p, dtype=np.float64)
    for j, s in enumerate(sigma_cells):
        if s <= 0:
            continue
        n = out.shape[j]
        m = int(np.ceil(10 * s)) + n  # lattice span for the normalisation
        norm = np.exp(-0.5 * (np.arange(-m, m + 1) / s) ** 2).sum()
        k = np.arange(n)
        kernel = np.exp(-0.5 * ((k[:, None] - k[None, :]) / s) ** 2) / norm
        out = np.moveaxis(np.tensordot(kernel, out, axes=([1], [j])), 0, j)
    return out


def _gl_nodes(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]."""
    t, w = np.polynomial.legendre.leggauss(q)
    return (t + 1) / 2, w / 2


def log_integral(energies: np.ndarray, bounds: np.ndarray) -> float:
    """``log of the integral over the bounds of exp(-E(x))`` for the multilinear interpolant E.

    Gauss-Legendre with q points per cell and axis on the exact multilinear values (multilinear
    interpolation is linear along each axis, so the refined values are exact); q is as large as
    keeps each slab within 2**22 points (q = 1, the midpoint rule, on the largest grids).
    """
    e = np.asarray(energies, dtype=np.float64)
    d = e.ndim
    cells = np.array(e.shape) - 1
    q = int(np.clip(np.floor((2**22 / np.prod(cells, dtype=np.float64)) ** (1 / d)), 1, 6))
    t, w = _gl_nodes(q)
    logw = np.log(w)
    dx = (bounds[:, 1] - bounds[:, 0]) / cells
    per_slab = max(1, int(2**22 // max(1, np.prod(cells[1:] * q, dtype=np.float64) * q)))
    parts = []
    for a in range(0, cells[0], per_slab):
        b = min(cells[0], a + per_slab)
        ref = e[a : b + 1]
        for j in range(d):
            lo_nodes = np.take(ref, np.arange(ref.shape[j] - 1), axis=j)
            hi_nodes = np.take(ref, np.arange(1, ref.shape[j]), axis=j)
            shape = [1] * (d + 1)
            shape[j + 1] = q
            tt = t.reshape(shape)
            ref = np.expand_dims(lo_nodes, j + 1) * (1 - tt) + np.expand_dims(hi_nodes, j + 1) * tt
            new_shape = list(lo_nodes.shape)
            new_shape[j] *= q
            ref = ref.reshape(new_shape)
        lw = 0.0
        for j in range(d):
            shape = [1] * d
            shape[j] = ref.shape[j]
            lw = lw + np.tile(logw, ref.shape[j] // q).reshape(shape)
        parts.append(logsumexp(-ref + lw))
    return float(logsumexp(parts) + np.log(dx).sum())


def counts_to_energies(
    counts: np.ndarray, bounds: np.ndarray, smoothing: Sequence[float]
) -> tuple[np.ndarray, dict]:
    """Energies ``-log p`` at the nodes from a node-centred histogram.

    Rule: ``c = G_s * counts`` (Gaussian of ``smoothing`` cells per axis, reflected at the faces so
    that no count leaves the box), ``p = c / (N dV)`` on data
    cells (``c`` above `DATA_FRACTION_OF_ONE_SAMPLE` of one smoothed sample's peak); an empty cell at
    distance ``r`` cells from the nearest data cell gets that cell's energy plus
    ``EMPTY_RISE_PER_CELL * r``; finally ``E += log Z`` so that ``exp(-E)``, interpolated
    multilinearly, integrates to 1 over the bounds.

    Returns:
        The energies and a dict of statistics for the provenance.
    """
    c = np.asarray(counts, dtype=np.float64)
    total = float(c.sum())
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f"counts must be finite, non-negative and not all zero (total {total})")
    if np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError("counts must be finite and non-negative")
    sig = [float(s) for s in smoothing]
    if any(s > 0 for s in sig):
        # Reflecting faces: counts near a face stay inside the bounds (no mass leaks out of the
        # box, which would shift the weights of modes that sit on a face, e.g. idle states).
        c = ndimage.gaussian_filter(c, sig, mode="reflect", truncate=4.0)
    peak_one = float(np.prod([1.0 / (np.sqrt(2 * np.pi) * s) if s > 0.4 else 1.0 for s in sig]))
    threshold = DATA_FRACTION_OF_ONE_SAMPLE * peak_one if any(s > 0 for s in sig) else 0.5
    data = c > threshold
    spacing = (bounds[:, 1] - bounds[:, 0]) / (np.array(c.shape) - 1)
    cell_volume = float(np.prod(spacing))
    e = np.empty_like(c)
    e[data] = -np.log(c[data] / (total * cell_volume))
    n_empty = int((~data).sum())
    if n_empty:
        dist, nearest = ndimage.distance_transform_edt(~data, return_indices=True)
        e[~data] = e[tuple(ix[~data] for ix in nearest)] + EMPTY_RISE_PER_CELL * dist[~data]
    e += log_integral(e, bounds)
    stats = {"total_counts": total, "data_cells": int(data.sum()), "empty_cells": n_empty}
    return e, stats


def smooth_energies(energies: np.ndarray, sigma_cells: Sequence[float]) -> np.ndarray:
    """Energies of the map's density convolved with a Gaussian (``sigma_cells`` per axis).

    ``E_s = -log(G_s * exp(-E))``, computed around ``min E`` to avoid underflow; where the
    convolution underflows in float64 the unsmoothed energy is kept (it is then above ~640 nats).
    """
    e = np.asarray(energies, dtype=np.float64)
    e0 = e.min()
    conv = gaussian_filter_density(np.exp(-(e - e0)), sigma_cells)
    tiny = 1e-280  # well above float64's smallest normal (2.2e-308)
    safe = np.where(conv > tiny, conv, 1.0)
    return np.where(conv > tiny, -np.log(safe) + e0, e)


def cubic_coefficients(energies: np.ndarray) -> np.ndarray:
    """Cubic B-spline coefficients with mirror boundaries, padded by one node per side.

    Matches ``scipy.ndimage.map_coordinates(order=3, mode="mirror")``: the spline's slope normal
    to each face is zero, so with the barrier outside (zero slope at the face) the energy is C1.
    """
    c = ndimage.spline_filter(np.asarray(energies, dtype=np.float64), order=3, mode="mirror")
    return np.pad(c, 1, mode="reflect")
