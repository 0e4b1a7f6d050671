"""Host building blocks for maps: bin edges, counts to energies, cubic coefficients.

Everything here runs once, when a map is built, in float64 on the host (log Z on the device, see
`_pyramid.log_integral`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
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


# Work on the host is done in slabs of about this many nodes (float64 temporaries of 8 MiB), so a
# build holds the float32 energies plus small buffers, never float64 copies of the grid.
CHUNK_NODES = 2**20
# Grids of d <= 2 axes fill their empty cells with scipy's full feature transform (d int32 index
# arrays: at most 8 bytes a node); d >= 3 axes work slice by slice (see `fill_empty`).
FULL_TRANSFORM_MAX_AXES = 2


def _slabs(n0: int, per_row: int):
    """``(start, stop)`` ranges along the first axis of about `CHUNK_NODES` nodes each."""
    step = max(1, CHUNK_NODES // max(1, per_row))
    for a in range(0, n0, step):
        yield a, min(n0, a + step)


def _check_counts(counts: np.ndarray) -> float:
    """Total of finite, non-negative counts (checked in slabs, no copy), else a ValueError."""
    if counts.dtype.kind not in "fiub":
        raise ValueError(f"counts must be numeric, got dtype {counts.dtype}")
    total = 0.0
    per_row = counts[0].size if counts.ndim > 1 else 1
    for a, b in _slabs(counts.shape[0], per_row):
        slab = counts[a:b]
        if counts.dtype.kind == "f" and not np.all(np.isfinite(slab)):
            raise ValueError("counts must be finite and non-negative")
        if counts.dtype.kind in "fi" and np.any(slab < 0):
            raise ValueError("counts must be finite and non-negative")
        total += float(slab.sum(dtype=np.float64))
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f"counts must be finite, non-negative and not all zero (total {total})")
    return total


def aligned_empty(shape: Sequence[int], dtype=np.float32) -> np.ndarray:
    """An uninitialised C-ordered array whose data starts on a 64-byte boundary.

    ``jax.device_put`` of such an array on a CPU shares its memory instead of copying it.
    """
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    buf = np.empty(n * dtype.itemsize + 64, np.uint8)
    off = -buf.ctypes.data % 64
    return buf[off : off + n * dtype.itemsize].view(dtype).reshape(tuple(shape))


def count_nonfinite(v: np.ndarray) -> int:
    """How many entries of ``v`` are NaN or inf (checked in slabs: no grid-sized temporary)."""
    if v.dtype.kind != "f":
        return 0
    if v.ndim == 0:
        return int(not np.isfinite(v))
    per_row = v[0].size if v.ndim > 1 else 1
    return sum(
        int(v[a:b].size - np.count_nonzero(np.isfinite(v[a:b])))
        for a, b in _slabs(v.shape[0], per_row)
    )


def counts_to_energies(
    counts: np.ndarray, bounds: np.ndarray, smoothing: Sequence[float]
) -> tuple[np.ndarray, dict]:
    """Energies ``-log p`` at the nodes from a node-centred histogram (float32).

    Rule: ``c = G_s * counts`` (Gaussian of ``smoothing`` cells per axis, reflected at the faces so
    that no count leaves the box), ``p = c / (N dV)`` on data
    cells (``c`` above `DATA_FRACTION_OF_ONE_SAMPLE` of one smoothed sample's peak; if no cell is,
    the cells of the largest ``c``); an empty cell at distance ``r`` cells from the nearest data
    cell gets that cell's energy plus ``EMPTY_RISE_PER_CELL * r`` (`fill_empty`); finally
    ``E += log Z`` so that ``exp(-E)``, interpolated multilinearly, integrates to 1 over the bounds.

    Memory: the smoothed counts are held in float32 (scipy filters each line in float64 and
    rounds once per axis) and become the energies in place; ``-log`` and ``+ log Z`` run in
    float64 on slabs of `CHUNK_NODES`. The energies agree with a float64 computation rounded to
    float32 within a few float32 ulps (tests/energy/test_build_memory.py).

    Returns:
        The energies (float32) and a dict of statistics for the provenance.
    """
    counts = np.asarray(counts)
    total = _check_counts(counts)
    sig = [float(s) for s in smoothing]
    e = aligned_empty(counts.shape, np.float32)
    if any(s > 0 for s in sig):
        # Reflecting faces: counts near a face stay inside the bounds (no mass leaks out of the
        # box, which would shift the weights of modes that sit on a face, e.g. idle states).
        ndimage.gaussian_filter(counts, sig, output=e, mode="reflect", truncate=4.0)
    else:
        e[...] = counts
    peak_one = float(np.prod([1.0 / (np.sqrt(2 * np.pi) * s) if s > 0.4 else 1.0 for s in sig]))
    threshold = DATA_FRACTION_OF_ONE_SAMPLE * peak_one if any(s > 0 for s in sig) else 0.5
    spacing = (bounds[:, 1] - bounds[:, 0]) / (np.array(e.shape) - 1)
    log_norm = float(np.log(total * float(np.prod(spacing))))
    if not np.any(e > threshold):
        threshold = float(np.nextafter(e.max(), -np.inf))  # the peak cells are the data
    # In place, slab by slab: data cells get -log(c / (N dV)) (float64), empty cells +inf.
    n_data = 0
    per_row = e[0].size if e.ndim > 1 else 1
    for a, b in _slabs(e.shape[0], per_row):
        slab = e[a:b]
        data = slab > threshold
        n_data += int(np.count_nonzero(data))
        c64 = slab.astype(np.float64)
        np.log(c64, out=c64, where=data)
        np.subtract(log_norm, c64, out=c64)
        c64[~data] = np.inf
        slab[...] = c64
    del slab, data, c64
    n_empty = int(e.size - n_data)
    if n_empty:
        fill_empty(e)
    # Small grids go to the device whole (as before); large ones in slabs, from the host array.
    small = e.size <= _pyramid.LOG_Z_SLAB_NODES
    log_z = _pyramid.log_integral(jnp.asarray(e, _pyramid.float_dtype()) if small else e, bounds)
    for a, b in _slabs(e.shape[0], per_row):
        e[a:b] = e[a:b].astype(np.float64) + log_z
    stats = {"total_counts": total, "data_cells": n_data, "empty_cells": n_empty}
    return e, stats


def fill_empty(e: np.ndarray) -> None:
    """In place: every ``inf`` (empty) cell of ``e`` gets its nearest finite cell's value + r.

    ``r`` is the Euclidean distance in cells to the nearest finite (data) cell, times
    `EMPTY_RISE_PER_CELL`. Exact, deterministic; when several data cells are equally near, one
    of them is chosen by a fixed rule (scipy's feature transform within a slice, then the slice
    of smallest index along the first axis).

    Grids of up to `FULL_TRANSFORM_MAX_AXES` axes use scipy's feature transform on the whole grid
    (d int32 index arrays). Larger ones never hold those: each slice along the first axis gets its
    own transform (exact within the slice: squared distance ``g`` and the energy of its nearest
    data cell), then along the first axis ``min_y g(y) + (x - y)^2`` is found exactly per column
    (all ``n_0`` slices compared, on the device under jit, blocks of `CHUNK_NODES`). Extra
    memory: one float32 grid of squared distances and blocks of `CHUNK_NODES`.
    """
    if e.ndim <= FULL_TRANSFORM_MAX_AXES:
        empty = ~np.isfinite(e)
        ft = ndimage.distance_transform_edt(empty, return_distances=False, return_indices=True)
        del empty
        flat = np.ravel_multi_index(tuple(ft), e.shape)
        grid = np.indices(e.shape, sparse=True)
        r2 = sum((f - g).astype(np.float64) ** 2 for f, g in zip(ft, grid, strict=True))
        del ft
        fill = e.reshape(-1)[flat].astype(np.float64) + EMPTY_RISE_PER_CELL * np.sqrt(r2)
        np.copyto(e, fill.astype(np.float32), where=~np.isfinite(e))
        return
    n0 = e.shape[0]
    rest = e.shape[1:]
    # Squared distances within a slice are integers up to (d - 1)(n - 1)^2: uint16 (2 bytes a node,
    # 65535 for "no data in this slice") when they fit, else float32 (inf).
    small = (len(rest) * (max(rest) - 1) ** 2) < 65535
    g = np.empty(e.shape, np.uint16 if small else np.float32)
    none = 65535 if small else np.inf
    ft = np.empty((len(rest), *rest), np.int32)
    grid = np.indices(rest, sparse=True)
    for i in range(n0):
        sl = e[i]
        empty = ~np.isfinite(sl)
        if not empty.any():
            g[i] = 0.0
            continue
        if empty.all():
            g[i] = none
            continue
        ndimage.distance_transform_edt(
            empty, return_distances=False, return_indices=True, indices=ft
        )
        r2 = np.zeros(rest, np.int64)
        for f, gr in zip(ft, grid, strict=True):
            r2 += (f - gr).astype(np.int64) ** 2
        g[i] = r2
        flat = np.ravel_multi_index(tuple(ft), rest)
        sl[...] = sl.reshape(-1)[flat.reshape(-1)].reshape(rest)  # nearest data cell's energy
        del empty, r2, flat
    del ft
    _nearest_along_first_axis(g.reshape(n0, -1), e.reshape(n0, -1))


def _nearest_along_first_axis(g: np.ndarray, e: np.ndarray) -> None:
    """In place on ``(n, C)`` views: ``e <- e[y*] + sqrt(g[y*] + (x - y*)^2)``, y* the argmin.

    Columns go to the device in blocks of a fixed width (one compiled program per ``n`` and
    width; a small grid is one block).
    """
    n, cols = g.shape
    width = min(cols, max(1, CHUNK_NODES // n))  # the whole grid at once when it is small
    for a in range(0, cols, width):
        b = min(cols, a + width)
        gb = np.full((n, width), np.inf, np.float32)
        pb = np.zeros((n, width), np.float32)
        gb[:, : b - a] = g[:, a:b]
        if g.dtype == np.uint16:
            gb[:, : b - a][g[:, a:b] == 65535] = np.inf  # no data in that slice
        pb[:, : b - a] = e[:, a:b]
        out = np.asarray(_envelope_jit(gb, pb))
        e[:, a:b] = out[:, : b - a]


def _envelope(g: jax.Array, p: jax.Array) -> jax.Array:
    """``p[y*] + sqrt(min_y g[y] + (x - y)^2)`` per row x and column, y* the smallest argmin."""
    _pyramid._count("envelope")
    n = g.shape[0]
    x = jnp.arange(n, dtype=jnp.float32)[:, None]

    def body(y, carry):
        best, pay = carry
        gy = jax.lax.dynamic_slice_in_dim(g, y, 1, axis=0)
        py = jax.lax.dynamic_slice_in_dim(p, y, 1, axis=0)
        cand = gy + (x - y.astype(jnp.float32)) ** 2  # integers: exact in float32 below 2**24
        better = cand < best
        return jnp.where(better, cand, best), jnp.where(better, py, pay)

    init = (jnp.full(g.shape, jnp.inf, jnp.float32), p)
    best, pay = jax.lax.fori_loop(0, n, body, init)
    return pay + EMPTY_RISE_PER_CELL * jnp.sqrt(best)


_envelope_jit = jax.jit(_envelope)


def cubic_coefficients(energies: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Cubic B-spline coefficients with mirror boundaries, padded by one node per side.

    Matches ``scipy.ndimage.map_coordinates(order=3, mode="mirror")``: the spline's slope normal
    to each face is zero, so with the barrier outside (zero slope at the face) the energy is C1.
    scipy filters each line in float64 and writes ``dtype``, straight into the padded array;
    the faces are then mirrored axis by axis (as ``np.pad(mode="reflect")``).
    """
    e = np.asarray(energies)
    out = aligned_empty(tuple(n + 2 for n in e.shape), dtype)
    inner = out[tuple(slice(1, -1) for _ in e.shape)]
    ndimage.spline_filter(e, order=3, output=inner, mode="mirror")
    for j in range(e.ndim):
        lo = [slice(None)] * e.ndim
        src = [slice(None)] * e.ndim
        lo[j], src[j] = 0, 2
        out[tuple(lo)] = out[tuple(src)]
        lo[j], src[j] = -1, -3
        out[tuple(lo)] = out[tuple(src)]
    return out
