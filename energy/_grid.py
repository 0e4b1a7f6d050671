"""Host building blocks for maps: bin edges, counts to energies, cubic coefficients.

Everything here runs once, when a map is built, in float64 on the host (log Z on the device, see
`_pyramid.log_integral`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from . import _pyramid

# Largest grid (in nodes) that `from_samples` builds from a default integer `bins`: 2**24 nodes
# (64 MiB of float32) keeps a map, its pyramid and its build within a laptop's memory.
MAX_DEFAULT_NODES = 2**24
# On an accelerator the default cap follows its memory: a map holds its energies (4 bytes a node),
# its pyramid (<= 4.5x, see `_pyramid.NODES_PER_SIGMA`) and, while it builds, ~3 grids of
# temporaries: ~40 bytes a node, of which half the device's memory may be used.
BYTES_PER_NODE = 40
# Largest grid accepted at all: 2**28 nodes is 1 GiB of float32 energies.
MAX_NODES = 2**28
# Beyond the data, empty cells rise by this many nats per cell of distance to the nearest data
# cell: a gradient of one nat per cell always points back to the data (no plateau to wander on).
EMPTY_RISE_PER_CELL = 1.0
# A cell counts as "data" when its smoothed count is above this fraction of the peak a single
# isolated sample leaves after smoothing (about 3.7 smoothing widths around every sample).
DATA_FRACTION_OF_ONE_SAMPLE = 1e-3


def default_node_cap(device=None) -> int:
    """Largest grid `from_samples` builds from an integer ``bins``, for ``device`` (default: JAX's).

    ``MAX_DEFAULT_NODES`` (2**24) on a CPU or a device that reports no memory; on an accelerator
    the largest power of two with ``BYTES_PER_NODE * nodes <= bytes_limit / 2`` (from
    ``device.memory_stats()``), between 2**24 and `MAX_NODES`.
    """
    import jax

    dev = device if device is not None else jax.devices()[0]
    if dev.platform == "cpu":
        return MAX_DEFAULT_NODES
    try:
        limit = int((dev.memory_stats() or {}).get("bytes_limit", 0))
    except Exception:  # noqa: BLE001 - a backend without memory stats: the CPU default
        limit = 0
    if limit <= 0:
        return MAX_DEFAULT_NODES
    nodes = 2 ** int(np.floor(np.log2(limit / 2 / BYTES_PER_NODE)))
    return int(min(MAX_NODES, max(MAX_DEFAULT_NODES, nodes)))


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
    e += _pyramid.log_integral(jnp.asarray(e, _pyramid.float_dtype()), bounds)
    stats = {"total_counts": total, "data_cells": int(data.sum()), "empty_cells": n_empty}
    return e, stats


def cubic_coefficients(energies: np.ndarray) -> np.ndarray:
    """Cubic B-spline coefficients with mirror boundaries, padded by one node per side.

    Matches ``scipy.ndimage.map_coordinates(order=3, mode="mirror")``: the spline's slope normal
    to each face is zero, so with the barrier outside (zero slope at the face) the energy is C1.
    """
    c = ndimage.spline_filter(np.asarray(energies, dtype=np.float64), order=3, mode="mirror")
    return np.pad(c, 1, mode="reflect")
