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


def _row_offsets(spec: Spec, rows: bool) -> np.ndarray:
    """Flat offsets of the stencil's gathers, axis 0 slowest (matches `_contract`).

    ``rows``: the K**(d-1) rows along the last axis (their K values are contiguous in the
    table, one slice each); else the K**d single values.
    """
    k = 2 if spec.kind == "linear" else 4
    strides = _strides(spec.table_shape)
    if rows:
        strides = strides[:-1]
    offs = [int(np.dot(o, strides)) for o in itertools.product(range(k), repeat=len(strides))]
    return np.asarray(offs, dtype=np.int32)


def slice_rows(spec: Spec, n_points: int) -> bool:
    """Whether `_gather` reads the stencil of ``n_points`` points as rows of K values.

    Rows (K**(d-1) slices of K values instead of K**d single values) where d >= 3 and the call
    holds one point -- what ``jax.vmap`` over chains traces, the samplers' case: 10-20% less
    time for a vmapped gradient at d = 3, 4 (docs/energy.md). Elsewhere single values: with
    many points the rows must be transposed to put the points minor (1.7-3x slower for a cubic
    map at d = 4), and at d <= 2 the rows are no faster. Either way the gathered values are the
    same, but the fusion XLA makes of them differs, and XLA on CPU contracts multiply-adds into
    FMAs as the fused code allows: the choice is kept where it leaves every result unchanged
    (tests/langevin/test_bit_identical.py, tests/energy/test_interp_rows.py).
    """
    return len(spec.nodes) >= 3 and n_points == 1


def _weights(t: jax.Array, kind: str) -> tuple[list[jax.Array], list[jax.Array]]:
    """Stencil weights and their derivatives in t along one axis: K arrays each."""
    if kind == "linear":
        one = jnp.ones_like(t)
        return [1.0 - t, t], [-one, one]
    # Uniform cubic B-spline basis for the nodes i-1, i, i+1, i+2 at fraction t of cell i.
    t2, t3 = t * t, t * t * t
    s = 1.0 - t
    w = [
        s * s * s / 6.0,
        (3 * t3 - 6 * t2 + 4) / 6.0,
        (-3 * t3 + 3 * t2 + 3 * t + 1) / 6.0,
        t3 / 6.0,
    ]
    dw = [-0.5 * s * s, 1.5 * t2 - 2 * t, -1.5 * t2 + t + 0.5, 0.5 * t2]
    return w, dw


def _gather(table: jax.Array, start: jax.Array, u: jax.Array, spec: Spec, rows=None):
    """Stencil values (K**d, N) and fractions t (d, N) for points u (d, N) in node units.

    ``rows``: read the stencil as rows of K values along the last axis (default: `slice_rows`)
    or as K**d single values; the values are the same either way.

    Points run along the last (minor) axis everywhere: with d in the minor axis XLA on CPU
    vectorises poorly (several times slower).
    """
    n = jnp.asarray(spec.nodes, dtype=u.dtype)[:, None]
    i0 = jnp.clip(jnp.floor(u), 0.0, n - 2.0)
    t = u - i0
    strides = jnp.asarray(_strides(spec.table_shape), dtype=jnp.int32)[:, None]
    # A reduction here (not d adds) on purpose: it ends a fusion, so the flat index is computed
    # once and not again inside every consumer of the gather (measured 2-4x at d = 2..4).
    base = start + jnp.sum(i0.astype(jnp.int32) * strides, axis=0)
    # Indices are in bounds by construction (u is clipped to the grid); "clip" also keeps the
    # cast of a NaN in bounds. (On CPU, mode="promise_in_bounds" with a 2-D index -- which vmap
    # makes of any index -- is several times slower than this.)
    if rows is None:
        rows = slice_rows(spec, u.shape[1])
    offs = jnp.asarray(_row_offsets(spec, rows))
    if not rows:
        return jnp.take(table, offs[:, None] + base[None, :], mode="clip"), t
    # Points first: the transpose to (K**d, N) is free for one point.
    k = 2 if spec.kind == "linear" else 4
    got = jax.lax.gather(
        table,
        (base[:, None] + offs[None, :])[..., None],
        jax.lax.GatherDimensionNumbers(
            offset_dims=(2,), collapsed_slice_dims=(), start_index_map=(0,)
        ),
        slice_sizes=(k,),
        mode=jax.lax.GatherScatterMode.CLIP,
    )
    vals = got.reshape(got.shape[0], -1).T
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
        tangent = tangent + _rowsum(grad_u * du)
    if not isinstance(dtable, SymbolicZero):
        # The value is linear in the table: its tangent is the same interpolation of dtable.
        dvals, _ = _gather(dtable, start, u, spec)
        tangent = tangent + _contract(dvals, t, spec, with_grad=False)[0]
    return value, tangent


interp_nodes.defjvp(_interp_nodes_jvp, symbolic_zeros=True)


def _rowsum(a: jax.Array) -> jax.Array:
    """Sum over the short leading axis as d elementwise adds.

    These sums sit in the hot output fusion, where a reduction would end the fusion and cost
    more than the interpolation itself on CPU (measured 2-5x).
    """
    out = a[0]
    for j in range(1, a.shape[0]):
        out = out + a[j]
    return out


def barrier_cells(r: jax.Array) -> jax.Array:
    """Energy of a distance ``r >= 0`` beyond a face, in grid cells: ``r^2 / (1 + r)``.

    Zero with zero slope at the face (a C1 map stays C1 across it), then rising by one nat per
    cell. Written as ``r * (r / (1 + r))``: finite for any finite r, no overflow of ``r^2``.
    """
    return r * (r / (1.0 + r))


def grid_energy(
    table: jax.Array,
    start: jax.Array,
    lo: jax.Array,
    hi: jax.Array,
    x: jax.Array,
    spec: Spec,
) -> jax.Array:
    """Energy of a grid table at points x (N, d) in physical units, barrier included: (N,).

    Outside the bounds the energy is that of the nearest point of the box plus
    ``sum_j barrier_cells(r_j)``, r_j the distance beyond face j in cells of axis j.
    """
    n1 = jnp.asarray(spec.nodes, dtype=x.dtype)[:, None] - 1.0
    # One multiplier per axis, formed once: nothing left for the compiler to refold differently
    # in single- and multi-device programs (sharded chains stay bit-identical).
    inv = (n1[:, 0] / (hi - lo))[:, None]
    u = (x.T - lo[:, None]) * inv
    uc = jnp.clip(u, 0.0, n1)
    return interp_nodes(table, start, uc, spec) + _rowsum(barrier_cells(jnp.abs(u - uc)))
