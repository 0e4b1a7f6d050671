"""A gather-light multilinear lookup for the shield's hot path.

The shield evaluates a linear ``EnergyMap`` with a per-cell table: row ``c`` holds the ``2**d``
corner energies of grid cell ``c`` (axis 0 slowest, the map's stencil order), so a batch needs
one contiguous row gather per state instead of ``2**d`` scattered ones. The arithmetic inside the
bounds repeats the map's (same fractions, same contraction order), so the value agrees with
``m.energy(x)`` to float rounding; outside the bounds the map's barrier is added, as the map
does. Everything works on the state's coordinates as separate columns: on CPU, XLA vectorises
reductions over a short minor axis (d = 2) poorly, several times slower than column arithmetic.
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
    cells: jax.Array,
    nodes: tuple[int, ...],
    lo: jax.Array,
    hi: jax.Array,
    cols: list[jax.Array],
) -> jax.Array:
    """Multilinear energy at the states whose coordinates are ``cols`` (d arrays of shape (...)).

    Uses a :func:`cell_table`; adds the map's barrier ``sum_j sqrt(r_j^2 + 1) - 1`` (``r_j`` the
    distance beyond face j in grid cells) outside the bounds.
    """
    d = len(nodes)
    shape = cols[0].shape
    strides = [int(np.prod([n - 1 for n in nodes[j + 1 :]])) for j in range(d)]
    cell = None
    ts = []
    excess = None
    for j in range(d):
        n1 = float(nodes[j] - 1)
        u = (cols[j].reshape(-1) - lo[j]) / (hi[j] - lo[j]) * n1  # position in node units
        uc = jnp.clip(u, 0.0, n1)
        i0 = jnp.clip(jnp.floor(uc), 0.0, n1 - 1.0)
        ts.append(uc - i0)
        term = i0.astype(jnp.int32) * strides[j]
        cell = term if cell is None else cell + term
        # Cells beyond the faces, capped at 1e18 so that r^2 stays finite in float32.
        r = jnp.minimum(jnp.maximum(-u, 0.0) + jnp.maximum(u - n1, 0.0), 1e18)
        b = r * r / (1.0 + jnp.sqrt(1.0 + r * r))  # = sqrt(1 + r^2) - 1, no cancellation
        excess = b if excess is None else excess + b
    rows = cells.at[cell].get(mode="promise_in_bounds")  # (N, 2**d), in range by the clip
    v = [rows[:, c] for c in range(2**d)]
    for j in range(d):  # contract axis 0 first: corners with bit j = 0 against bit j = 1
        half = len(v) // 2
        v = [v[c] * (1.0 - ts[j]) + v[half + c] * ts[j] for c in range(half)]
    return (v[0] + excess).reshape(shape)
