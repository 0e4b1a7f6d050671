"""The noise pyramid: a map's density smoothed at each noise level, each on its own coarse grid.

A level smoothed by a Gaussian of width ``sigma`` (relative units: ``sigma * (hi_j - lo_j)`` on
axis j) is band-limited, so it is held on a grid of `level_shape` nodes: `NODES_PER_SIGMA` nodes
per sigma on each axis, never finer than the base grid, spanning the same bounds. Each level is
interpolated like the base map (multilinear or cubic B-spline).

A level is built under ``jit`` on the map's device, one compiled program per (grid shape, level
shapes): per axis, the line minimum is subtracted (so nothing underflows where the density
matters), the densities are multiplied by a dense ``(n_level, n)`` Gaussian matrix that smooths
and resamples in one product, and the result goes back to energies (``min - log``). Where a
product underflows (a node more than ~13 sigma away from its line's minimum, density below
``e^-87`` of that line's peak) the base energy at the nearest node is kept.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import _interp

# Nodes per sigma per axis of a level's grid. The energy of a Gaussian-smoothed density has
# curvature at most 1/sigma^2 on its convex side, so multilinear interpolation at spacing
# h = sigma / 3.5 errs there by at most h^2 / (8 sigma^2) = 0.010 nats per axis (a point mass, the
# worst case). With the default levels a 4-D pyramid holds 4.45x the base grid's nodes at 64^4
# (the default cap), 4.8x at 48^4, 5.5x at 32^4 (its finest levels are a few cells wide and
# stay at full resolution), against 10x when every level was a full copy.
NODES_PER_SIGMA = 3.5
# Products below this are treated as underflow (float32's smallest normal is 1.2e-38).
_TINY = 1e-30
# Full float32 products on every backend (GPUs would otherwise round the inputs to TF32).
_HIGHEST = jax.lax.Precision.HIGHEST
# Trace counts of the compiled programs, keyed by name (tests check one trace per shape).
TRACES: dict[str, int] = {}


def level_shape(shape: Sequence[int], sigma: float) -> tuple[int, ...]:
    """Nodes per axis of the level of width ``sigma`` (relative units) over a base ``shape``.

    ``min(n_j, ceil(NODES_PER_SIGMA / sigma) + 1)``: the level's spacing is at most sigma / 4 of the
    span on every axis, and never finer than the base grid's.
    """
    per_axis = math.ceil(NODES_PER_SIGMA / float(sigma) - 1e-9) + 1
    return tuple(int(min(n, max(2, per_axis))) for n in shape)


def level_shapes(shape: Sequence[int], levels: Sequence[float]) -> tuple[tuple[int, ...], ...]:
    """`level_shape` of every level."""
    return tuple(level_shape(shape, s) for s in np.asarray(levels, np.float64).reshape(-1))


def _count(name: str) -> None:
    """Count one trace of a compiled program (runs at trace time only)."""
    TRACES[name] = TRACES.get(name, 0) + 1


def _kernel(n: int, m: int, sigma_cells: float) -> np.ndarray:
    """Gaussian smoothing + resampling matrix ``(m, n)`` from n base nodes to m level nodes.

    Level node a sits at base position ``a (n - 1) / (m - 1)``; the Gaussian (``sigma_cells`` base
    cells wide) is normalised over the infinite lattice of base nodes, so mass is conserved away
    from the faces and nothing comes from outside the grid (zero density there). Float64 on the
    host; weights below 1e-37 are zero (float32 would flush them).
    """
    s = max(float(sigma_cells), 1e-6)
    pos = np.linspace(0.0, n - 1.0, m) if m < n else np.arange(n, dtype=np.float64)
    span = int(np.ceil(10 * s)) + n
    norm = np.exp(-0.5 * (np.arange(-span, span + 1) / s) ** 2).sum()
    k = np.exp(-0.5 * ((pos[:, None] - np.arange(n)[None, :]) / s) ** 2) / norm
    return np.where(k > 1e-37, k, 0.0)


def _smooth_axis(e: jax.Array, axis: int, k: jax.Array, nearest: np.ndarray) -> jax.Array:
    """Energies smoothed and resampled along one axis (log domain in and out)."""
    m = jnp.min(e, axis=axis, keepdims=True)
    p = jnp.exp(-(e - m))
    conv = jnp.moveaxis(jnp.tensordot(k, p, axes=([1], [axis]), precision=_HIGHEST), 0, axis)
    fallback = jnp.take(e, jnp.asarray(nearest), axis=axis)
    ok = conv > _TINY
    return jnp.where(ok, m - jnp.log(jnp.where(ok, conv, 1.0)), fallback)


def _smooth_level(e: jax.Array, kernels: tuple[jax.Array, ...], method: str) -> jax.Array:
    """One level's table: ``-log(G * exp(-e))`` resampled by ``kernels`` (traced)."""
    _count("level")
    coarse = []
    for j, k in enumerate(kernels):
        n, m = e.shape[j], k.shape[0]
        nearest = np.rint(np.linspace(0.0, n - 1.0, m)).astype(np.int32)
        e = _smooth_axis(e, j, k.astype(e.dtype), nearest)
        coarse.append(m < n)
    if method == "cubic":
        return cubic_table(e)
    # Coarsened axes of a multilinear level: shift each node by -(second difference) / 16, so
    # that interpolating a parabola errs by +-h^2 E'' / 16 (at nodes and mid-cells) instead of
    # 0 .. h^2 E'' / 8: half the worst error, on convex bowls and on ridges between modes alike.
    shift = jnp.zeros_like(e)
    for j, c in enumerate(coarse):
        if c and e.shape[j] >= 3:
            n = e.shape[j]
            mid = jax.lax.slice_in_dim(e, 1, n - 1, axis=j)
            d2 = (
                jax.lax.slice_in_dim(e, 0, n - 2, axis=j)
                - 2.0 * mid
                + jax.lax.slice_in_dim(e, 2, n, axis=j)
            )
            pad = [(0, 0)] * e.ndim
            pad[j] = (1, 1)
            shift = shift + jnp.pad(d2, pad, mode="edge") / 16.0
    return (e - shift).reshape(-1)


# One compiled program per (grid shape, level shape, method): the kernels are arguments.
_smooth_level_jit = jax.jit(_smooth_level, static_argnums=(2,))


@functools.lru_cache(maxsize=64)
def _prefilter_matrix(n: int) -> np.ndarray:
    """Inverse of the cubic B-spline interpolation matrix with mirror boundaries, ``(n, n)``."""
    a = np.zeros((n, n))
    i = np.arange(n)
    a[i, i] = 4.0 / 6.0
    a[i[:-1], i[:-1] + 1] = 1.0 / 6.0
    a[i[1:], i[1:] - 1] = 1.0 / 6.0
    a[0, 1] = 2.0 / 6.0  # mirror: c[-1] = c[1]
    a[n - 1, n - 2] = 2.0 / 6.0  # mirror: c[n] = c[n-2]
    return np.linalg.inv(a)


def cubic_table(e: jax.Array) -> jax.Array:
    """Cubic B-spline coefficients (mirror boundaries) padded by one node per side (traced).

    Equal to ``_grid.cubic_coefficients`` (scipy's ``spline_filter(order=3, mode="mirror")``).
    """
    c = e
    for j, n in enumerate(e.shape):
        inv = jnp.asarray(_prefilter_matrix(n), e.dtype)
        c = jnp.moveaxis(jnp.tensordot(inv, c, axes=([1], [j]), precision=_HIGHEST), 0, j)
    return jnp.pad(c, 1, mode="reflect").reshape(-1)


def table_size(shape: Sequence[int], method: str) -> int:
    """Entries of a level's table (cubic tables are padded by one node per side)."""
    pad = 2 if method == "cubic" else 0
    return int(np.prod([n + pad for n in shape]))


def build(
    values: jax.Array, levels: np.ndarray, shapes: tuple[tuple[int, ...], ...], method: str
) -> jax.Array:
    """The pyramid of a map: every level's table, flattened and concatenated (coarsest first).

    Level i has the grid ``shapes[i]`` (`level_shapes`). ``levels`` must be concrete (they set
    the kernels); ``values`` may be traced.
    """
    cells = np.array(values.shape) - 1.0
    parts = []
    for sigma, shape in zip(np.asarray(levels, np.float64).reshape(-1), shapes, strict=True):
        kernels = tuple(
            jnp.asarray(_kernel(n, m, sigma * c), jnp.float32)
            for n, m, c in zip(values.shape, shape, cells, strict=True)
        )
        parts.append(_smooth_level_jit(values, kernels, method))
    return jnp.concatenate(parts)


def smooth(values: jax.Array, sigma_rel: np.ndarray) -> jax.Array:
    """Energies of the density smoothed by ``sigma_rel`` (relative units, per axis), same grid."""
    sig = np.broadcast_to(np.asarray(sigma_rel, np.float64), (values.ndim,))
    cells = np.array(values.shape) - 1.0
    # An axis with sigma 0 is left alone: the identity matrix.
    kernels = tuple(
        jnp.asarray(_kernel(n, n, s * c) if s > 0 else np.eye(n), jnp.float32)
        for n, s, c in zip(values.shape, sig, cells, strict=True)
    )
    return _smooth_level_jit(values, kernels, "linear").reshape(values.shape)


def read(
    flat: jax.Array,
    level: jax.Array,
    shapes: tuple[tuple[int, ...], ...],
    nodes: tuple[int, ...],
    method: str,
    uc: jax.Array,
) -> jax.Array:
    """Interpolate level ``level`` (traced) of a flat pyramid at ``uc`` (d, N), map node units.

    ``uc`` is already clipped to the map's grid. One gather of the stencil, whatever the level:
    the level's offset, node counts and strides are looked up from small constant tables.
    """
    d = len(nodes)
    pad = 2 if method == "cubic" else 0
    sizes = [table_size(s, method) for s in shapes]
    starts = jnp.asarray(np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32))
    nl = jnp.asarray(np.array(shapes, np.float64), uc.dtype)[level]  # (d,)
    tshape = np.array(shapes, np.int64) + pad
    strides = np.ones_like(tshape)
    for j in range(d - 2, -1, -1):
        strides[:, j] = strides[:, j + 1] * tshape[:, j + 1]
    st = jnp.asarray(strides.astype(np.int32))[level]  # (d,)
    k = 2 if method == "linear" else 4
    combos = np.array(list(itertools.product(range(k), repeat=d)), np.int32)  # (K^d, d)
    offs = jnp.sum(jnp.asarray(combos) * st[None, :], axis=1)
    n1 = jnp.asarray(np.array(nodes, np.float64) - 1.0, uc.dtype)
    u = uc * ((nl - 1.0) / n1)[:, None]
    i0 = jnp.clip(jnp.floor(u), 0.0, (nl - 2.0)[:, None])
    t = u - i0
    base = starts[level] + jnp.sum(i0.astype(jnp.int32) * st[:, None], axis=0)
    vals = jnp.take(flat, offs[:, None] + base[None, :], mode="clip")
    spec = _interp.make_spec(nodes, method)
    return _interp._contract(vals, t, spec, with_grad=False)[0]


def _refined(e, q: int):
    """The multilinear values at q Gauss-Legendre points per cell and axis, and their log weights."""
    d = e.ndim
    tt, w = np.polynomial.legendre.leggauss(q)
    tt, lw = (tt + 1) / 2, np.log(w / 2)  # nodes and log weights on [0, 1]
    ref = e
    for j in range(d):
        lo_n = jax.lax.slice_in_dim(ref, 0, ref.shape[j] - 1, axis=j)
        hi_n = jax.lax.slice_in_dim(ref, 1, ref.shape[j], axis=j)
        shape = [1] * (ref.ndim + 1)
        shape[j + 1] = q
        tj = jnp.asarray(tt.reshape(shape), ref.dtype)
        r = jnp.expand_dims(lo_n, j + 1) * (1 - tj) + jnp.expand_dims(hi_n, j + 1) * tj
        new_shape = list(lo_n.shape)
        new_shape[j] *= q
        ref = r.reshape(new_shape)
    logw = 0.0
    for j in range(d):
        shape = [1] * d
        shape[j] = ref.shape[j]
        logw = logw + jnp.tile(jnp.asarray(lw, ref.dtype), ref.shape[j] // q).reshape(shape)
    return ref, logw


def _log_integral_parts(e, q: int):
    """Per-row sums of ``exp(-(E - min) + log w)`` over the refined grid, and the min (traced)."""
    _count("log_z")
    ref, logw = _refined(e, q)
    m = jnp.min(ref)
    terms = jnp.exp(-(ref - m) + logw)
    # Float32 sums over the last axis only (at most a few hundred terms); the rest on the host in
    # float64.
    return jnp.sum(terms, axis=-1), m


def _log_integral_at(values, start, h: int, q: int):
    """`_log_integral_parts` of node rows ``[start, start + h]`` of ``values`` (traced)."""
    return _log_integral_parts(jax.lax.dynamic_slice_in_dim(values, start, h + 1, axis=0), q)


_log_integral_jit = jax.jit(_log_integral_parts, static_argnums=(1,))
_log_integral_at_jit = jax.jit(_log_integral_at, static_argnums=(2, 3))
# Grids above this many nodes are integrated in slabs of about this many nodes along the first
# axis (one compiled program per slab shape): the device then holds one slab's temporaries, not
# several copies of the grid, and a host array is never copied to the device whole.
LOG_Z_SLAB_NODES = 2**21


def quadrature_order(shape: Sequence[int]) -> int:
    """Gauss-Legendre points per cell and axis: as many (up to 6) as keep 2**20 points in all.

    The error of q points on one cell is ~ (dE)^(2q) / (2q)! relative, dE the energy change across
    the cell: q = 2 is 1e-4 at 2 nats per cell; large grids (q = 1, the midpoint rule) have small
    dE. 2**20 points keep the load of a 40^3 map (q = 2) within a few milliseconds.
    """
    cells = np.array(shape) - 1
    d = len(shape)
    return int(np.clip(np.floor((2**20 / np.prod(cells, dtype=np.float64)) ** (1 / d)), 1, 6))


def log_integral(values: jax.Array, bounds: np.ndarray) -> float:
    """``log of the integral over the bounds of exp(-E)`` for the multilinear interpolant of E.

    Gauss-Legendre with q points per cell and axis (`quadrature_order`) on the exact multilinear
    values, computed on the device; the sum is accumulated in float64 on the host.
    """
    q = quadrature_order(values.shape)
    cells = np.array(values.shape) - 1
    dx = (bounds[:, 1] - bounds[:, 0]) / cells
    if values.ndim < 2 or values.size <= LOG_Z_SLAB_NODES:
        rows, m = _log_integral_jit(jnp.asarray(values), q)
        total = np.asarray(rows, np.float64).sum()
        return float(np.log(total) - float(m) + np.log(dx).sum())
    # In slabs of h cells (node rows [s, s + h]) along the first axis; the last slab starts
    # earlier so that every slab has the same shape (one program), and its cells already
    # counted are dropped. Each slab is shifted by its own minimum; the sums are combined on
    # the host in float64 relative to the smallest.
    on_device = isinstance(values, jax.Array)
    n_cells = int(cells[0])
    h = int(max(1, min(n_cells, LOG_Z_SLAB_NODES // int(np.prod(values.shape[1:])))))
    parts = []
    for a in range(0, n_cells, h):
        s0 = min(a, n_cells - h)
        if on_device:  # sliced inside the program: the map's array is not copied
            rows, m_s = _log_integral_at_jit(values, jnp.int32(s0), h, q)
        else:
            slab = jnp.asarray(values[s0 : s0 + h + 1], float_dtype())
            rows, m_s = _log_integral_jit(slab, q)
        parts.append((np.asarray(rows[(a - s0) * q :], np.float64).sum(), float(m_s)))
    m = min(p[1] for p in parts)
    total = sum(t * np.exp(m - m_s) for t, m_s in parts)
    return float(np.log(total) - m + np.log(dx).sum())


def float_dtype():
    """float64 under ``jax_enable_x64``, float32 otherwise."""
    return jnp.zeros(()).dtype if jax.config.jax_enable_x64 else jnp.float32
