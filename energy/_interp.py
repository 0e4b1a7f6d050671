"""Tensor-product interpolation on a regular grid with a fused analytic gradient.

One gather of the ``K**d`` stencil values per point (``K = 2`` multilinear, ``K = 4`` cubic
B-spline), then one pass over the axes that contracts the stencil into the value and, in the
same sweep, every partial derivative. The derivative is exposed through a ``custom_jvp`` so that
``jax.grad`` of an energy costs one gather, not the two (forward + transposed scatter) that
autodiff through a gather costs.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

KINDS = ("linear", "cubic")


class Spec(NamedTuple):
    """Static description of a table: node counts, stencil kind, table shape (per level)."""

    nodes: tuple[int, ...]
    kind: str
    table_shape: tuple[int, ...]


def make_spec(nodes: tuple[int, ...], kind: str) -> Spec:
    """Spec of a grid of ``nodes`` interpolated by ``kind`` (cubic tables are padded by 1)."""
    if kind not in KINDS:
        raise ValueError(f"method must be one of {KINDS}, got {kind!r}")
    pad = 1 if kind == "cubic" else 0
    return Spec(tuple(int(n) for n in nodes), kind, tuple(int(n) + 2 * pad for n in nodes))


def _strides(shape: tuple[int, ...]) -> np.ndarray:
    """C-order element strides of ``shape``."""
    return np.array([int(np.prod(shape[j + 1 :])) for j in range(len(shape))], dtype=np.int64)


def _stencil_offsets(spec: Spec) -> np.ndarray:
    """Flat offsets of the K**d stencil, axis 0 slowest (matches the reshape in `_contract`)."""
    k = 2 if spec.kind == "linear" else 4
    strides = _strides(spec.table_shape)
    offs = [int(np.dot(o, strides)) for o in itertools.product(range(k), repeat=len(spec.nodes))]
    return np.asarray(offs, dtype=np.int32)


def _weights(t: jax.Array, kind: str) -> tuple[list[jax.Array], list[jax.Array]]:
    """Stencil weights and their derivatives in t along one axis: K arrays each."""
    if kind == "linear":
        one = jnp.ones_like(t)
        return [1.0 - t, t], [-one, one]
    # Uniform cubic B-spline basis for the nodes i-1, i, i+1, i+2 at fraction t of cell i.
    t2, t3 = t * t, t * t * t
    s = 1.0 - t
    w = [s * s * s / 6.0, (3 * t3 - 6 * t2 + 4) / 6.0, (-3 * t3 + 3 * t2 + 3 * t + 1) / 6.0, t3 / 6.0]
    dw = [-0.5 * s * s, 1.5 * t2 - 2 * t, -1.5 * t2 + t + 0.5, 0.5 * t2]
    return w, dw


def _gather(table: jax.Array, start: jax.Array, u: jax.Array, spec: Spec):
    """Stencil values (K**d, N) and fractions t (d, N) for points u (d, N) in node units.

    Points run along the last (minor) axis everywhere: with d in the minor axis XLA on CPU
    vectorises poorly (several times slower).
    """
    n = jnp.asarray(spec.nodes, dtype=u.dtype)[:, None]
    i0 = jnp.clip(jnp.floor(u), 0.0, n - 2.0)
    t = u - i0
    strides = jnp.asarray(_strides(spec.table_shape), dtype=jnp.int32)[:, None]
    base = start + jnp.sum(i0.astype(jnp.int32) * strides, axis=0)
    idx = jnp.asarray(_stencil_offsets(spec))[:, None] + base[None, :]
    # Indices are in bounds by construction (u is clipped to the grid; XLA clamps NaN casts).
    # A flat 1-D index gathers several times faster on CPU than the same 2-D index.
    vals = table.at[idx.reshape(-1)].get(mode="promise_in_bounds").reshape(idx.shape)
    return vals, t


def _contract(vals: jax.Array, t: jax.Array, spec: Spec, with_grad: bool):
    """Contract the stencil axis by axis; optionally carry every partial derivative along.

    The stencil index has axis 0 slowest, so contracting axis j combines K contiguous blocks of
    rows: elementwise work only. Returns the value (N,) and, with ``with_grad``, the gradient in
    node units (d, N).
    """
    d = len(spec.nodes)
    k = 2 if spec.kind == "linear" else 4
    v = vals
    grads: list[jax.Array] = []

    def combine(a: jax.Array, weights: list[jax.Array], rest: int) -> jax.Array:
        out = a[:rest] * weights[0]
        for i in range(1, k):
            out = out + a[i * rest : (i + 1) * rest] * weights[i]
        return out

    for j in range(d):
        rest = k ** (d - 1 - j)
        w, dw = _weights(t[j], spec.kind)
        if with_grad:
            grads = [combine(g, w, rest) for g in grads]
            grads.append(combine(v, dw, rest))
        v = combine(v, w, rest)
    if not with_grad:
        return v[0], None
    return v[0], jnp.concatenate(grads, axis=0)


@partial(jax.custom_jvp, nondiff_argnums=(3,))
def interp_nodes(table: jax.Array, start: jax.Array, u: jax.Array, spec: Spec) -> jax.Array:
    """Interpolate a flat table at points ``u`` (d, N) in node units, already clipped to the grid.

    ``start`` is the flat offset of the level to read (0 for a single table).
    """
    vals, t = _gather(table, start, u, spec)
    return _contract(vals, t, spec, with_grad=False)[0]


def _interp_nodes_jvp(spec, primals, tangents):
    table, start, u = primals
    dtable, _, du = tangents
    vals, t = _gather(table, start, u, spec)
    value, grad_u = _contract(vals, t, spec, with_grad=not isinstance(du, SymbolicZero))
    tangent = jnp.zeros_like(value)
    if not isinstance(du, SymbolicZero):
        tangent = tangent + jnp.sum(grad_u * du, axis=0)
    if not isinstance(dtable, SymbolicZero):
        # The value is linear in the table: its tangent is the same interpolation of dtable.
        dvals, _ = _gather(dtable, start, u, spec)
        tangent = tangent + _contract(dvals, t, spec, with_grad=False)[0]
    return value, tangent


interp_nodes.defjvp(_interp_nodes_jvp, symbolic_zeros=True)


def barrier(x: jax.Array, lo: jax.Array, hi: jax.Array, spacing: jax.Array) -> jax.Array:
    """Energy added outside the box: ``sum_j sqrt(r_j^2 + 1) - 1`` with r_j in grid cells.

    ``x`` is (d, N) and the bounds (d, 1). Zero with zero slope at the faces (so a C1 map stays
    C1), then rising by one nat per cell: finite for any finite input, with a gradient that points
    back into the box.
    """
    r = (jnp.maximum(lo - x, 0.0) + jnp.maximum(x - hi, 0.0)) / spacing
    # sqrt(r^2 + 1) - 1 written as r^2 / (1 + sqrt(1 + r^2)) (no cancellation near the face), and
    # as r - 1 beyond 1e6 cells where r^2 could overflow (the two agree there to float precision).
    rc = jnp.minimum(r, 1e6)
    near = rc * rc / (1.0 + jnp.sqrt(1.0 + rc * rc))
    return jnp.sum(jnp.where(r > 1e6, r - 1.0, near), axis=0)


def grid_energy(
    table: jax.Array,
    start: jax.Array,
    lo: jax.Array,
    hi: jax.Array,
    x: jax.Array,
    spec: Spec,
) -> jax.Array:
    """Energy of a grid table at points x (N, d) in physical units, barrier included: (N,)."""
    xt = x.T
    lo, hi = lo[:, None], hi[:, None]
    n1 = jnp.asarray(spec.nodes, dtype=x.dtype)[:, None] - 1.0
    u = jnp.clip((xt - lo) / (hi - lo) * n1, 0.0, n1)
    return interp_nodes(table, start, u, spec) + barrier(xt, lo, hi, (hi - lo) / n1)
