"""A gather-light multilinear lookup for the shield's hot path.

The shield evaluates a linear ``EnergyMap`` inside its bounds with a per-cell table: row ``c``
holds the ``2**d`` corner energies of grid cell ``c`` (axis 0 slowest, the map's stencil order),
so a batch needs one contiguous row gather per state instead of ``2**d`` scattered ones. The
arithmetic repeats the map's (same fractions, same contraction order), so the value agrees with
``m.energy(x)`` to float rounding; outside the bounds the map's barrier is added, as the map does.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

# Largest per-cell table built (bytes): 2**d corners per cell make it about 2**d times the map.
# 256 MiB keeps e.g. a 4096 x 4096 float32 map (4 x 64 MiB) on the fast path; beyond it the
# shield calls the map's own energy.
MAX_CELL_TABLE_BYTES = 256 * 2**20


def cell_table(values: np.ndarray) -> np.ndarray | None:
    """Corner energies per cell, shape ``(prod(n_i - 1), 2**d)``; None if over the size cap."""
    v = np.asarray(values)
    d = v.ndim
    n_cells = int(np.prod([n - 1 for n in v.shape]))
    if n_cells * 2**d * v.itemsize > MAX_CELL_TABLE_BYTES:
        return None
    cols = []
    for corner in itertools.product(range(2), repeat=d):
        sl = tuple(slice(c, n - 1 + c) for c, n in zip(corner, v.shape, strict=True))
        cols.append(v[sl].reshape(-1))
    return np.ascontiguousarray(np.stack(cols, axis=-1))


def cell_energy(
    cells: jax.Array, nodes: tuple[int, ...], lo: jax.Array, hi: jax.Array, x: jax.Array
) -> jax.Array:
    """Multilinear energy at ``x`` (..., d) from a :func:`cell_table`, the map's barrier added."""
    d = len(nodes)
    shape = x.shape[:-1]
    flat = x.reshape((-1, d))
    n1 = jnp.asarray(nodes, dtype=flat.dtype) - 1.0
    u = jnp.clip((flat - lo) / (hi - lo) * n1, 0.0, n1)
    i0 = jnp.clip(jnp.floor(u), 0.0, n1 - 1.0)
    t = u - i0
    # Row-major cell index over the (n_i - 1) cells per axis.
    strides = np.array([int(np.prod([n - 1 for n in nodes[j + 1 :]])) for j in range(d)])
    cell = jnp.sum(i0.astype(jnp.int32) * jnp.asarray(strides, jnp.int32), axis=-1)
    v = cells.at[cell].get(mode="promise_in_bounds")  # (N, 2**d), indices in range by the clip
    for j in range(d):
        v = v.reshape((v.shape[0], 2, -1))
        w0 = (1.0 - t[:, j])[:, None]
        w1 = t[:, j][:, None]
        v = v[:, 0] * w0 + v[:, 1] * w1
    e = v.reshape(-1) + _barrier(flat, lo, hi, (hi - lo) / n1)
    return e.reshape(shape)


def _barrier(x: jax.Array, lo: jax.Array, hi: jax.Array, spacing: jax.Array) -> jax.Array:
    """The map's barrier outside its box, ``sum_j sqrt(r_j^2 + 1) - 1``, r_j in grid cells."""
    r = (jnp.maximum(lo - x, 0.0) + jnp.maximum(x - hi, 0.0)) / spacing
    # r^2 / (1 + sqrt(1 + r^2)) == sqrt(1 + r^2) - 1 without cancellation; r - 1 past 1e6 cells.
    rc = jnp.minimum(r, 1e6)
    near = rc * rc / (1.0 + jnp.sqrt(1.0 + rc * rc))
    return jnp.sum(jnp.where(r > 1e6, r - 1.0, near), axis=-1)
