"""The stencil read as rows of K values along the last axis (`energy._interp.slice_rows`).

Rows and single values must gather the same numbers and give the same energies and gradients,
bit for bit, on every point (inside, on faces and corners, outside the box, NaN); a vmapped
gradient at d >= 3 must use the rows; a batch of points keeps the single values.
"""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import energy
from energy import _interp

SHAPES = [(9,), (6, 7), (5, 6, 4), (4, 5, 3, 6)]


def _map(rng, shape, method):
    bounds = [(-1.0, 2.0 + j) for j in range(len(shape))]
    return energy.EnergyMap.from_grid(rng.normal(size=shape), bounds, method=method), bounds


def _points(rng, bounds, n=40):
    """Inside, on every corner's neighbourhood and faces, outside the box, and one NaN point."""
    lo, hi = np.array(bounds).T
    inside = rng.uniform(lo, hi, size=(n, len(lo)))
    corners = np.array(
        [[(hi if (c >> j) & 1 else lo)[j] for j in range(len(lo))] for c in range(2 ** len(lo))]
    )
    faces = inside[: len(lo)].copy()
    faces[np.arange(len(lo)), np.arange(len(lo))] = hi  # one upper face per point
    outside = rng.uniform(lo - 2.0, hi + 2.0, size=(n, len(lo)))
    nan = np.full((1, len(lo)), np.nan)
    return np.concatenate([inside, corners, faces, outside, nan]).astype(np.float32)


def _node_units(m, x):
    n1 = jnp.asarray(m.shape, x.dtype)[:, None] - 1.0
    u = (x.T - m.lo[:, None]) * ((n1[:, 0] / (m.hi - m.lo))[:, None])
    return jnp.clip(u, 0.0, n1)


@pytest.mark.parametrize("method", ["linear", "cubic"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"d{len(s)}")
def test_rows_gather_the_same_values_as_single_values(rng, shape, method):
    m, bounds = _map(rng, shape, method)
    x = jnp.asarray(_points(rng, bounds))
    table = (m.values if method == "linear" else m._coeffs).reshape(-1)
    uc = _node_units(m, x)
    got = {}
    for rows in (True, False):
        got[rows] = jax.jit(
            lambda u, rows=rows: _interp._gather(table, jnp.int32(0), u, m._spec, rows=rows)
        )(uc)
    finite = np.all(np.isfinite(np.asarray(uc)), axis=0)
    assert not finite[-1]  # the NaN point
    k = 2 if method == "linear" else 4
    assert got[True][0].shape == got[False][0].shape == (k ** len(shape), x.shape[0])
    # the NaN point's stencil is read at a clipped index either way; its t is NaN
    np.testing.assert_array_equal(got[True][0][:, finite], got[False][0][:, finite])
    np.testing.assert_array_equal(got[True][1], got[False][1])


@pytest.mark.parametrize("method", ["linear", "cubic"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"d{len(s)}")
def test_rows_and_single_values_give_the_same_energies_and_gradients(
    rng, shape, method, monkeypatch
):
    m, bounds = _map(rng, shape, method)
    x = jnp.asarray(_points(rng, bounds))
    out = {}
    for rows in (True, False):
        monkeypatch.setattr(_interp, "slice_rows", lambda spec, n, rows=rows: rows)
        # a new function per choice: traced afresh, the choice read at trace time
        out[rows] = jax.jit(jax.vmap(jax.value_and_grad(lambda y: m._energy(y))))(x)
    np.testing.assert_array_equal(out[True][0], out[False][0])
    np.testing.assert_array_equal(out[True][1], out[False][1])
    assert np.isnan(out[True][0][-1]) and np.all(np.isnan(out[True][1][-1]))
    assert np.all(np.isfinite(out[True][0][:-1])) and np.all(np.isfinite(out[True][1][:-1]))


def _gathers(fn, *args):
    """slice_sizes of every gather in the jaxpr of ``fn(*args)`` (nested jaxprs included)."""
    sizes = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "gather":
                sizes.append(tuple(eqn.params["slice_sizes"]))
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return sizes


@pytest.mark.parametrize(("shape", "method"), [((5, 6, 4), "linear"), ((4, 5, 3, 6), "cubic")])
def test_a_vmapped_gradient_at_d3_and_more_reads_rows(rng, shape, method):
    m, bounds = _map(rng, shape, method)
    x = jnp.asarray(_points(rng, bounds)[:-1])
    k = 2 if method == "linear" else 4
    assert _gathers(jax.vmap(jax.grad(m.energy)), x) == [(k,)]
    # a batch of points in one call: single values (points minor)
    assert _gathers(jax.grad(lambda y: m.energy(y).sum()), x) == [(1,)]


@pytest.mark.parametrize("shape", [(17,), (9, 13)], ids=["d1", "d2"])
def test_d1_and_d2_keep_single_values(rng, shape):
    m, bounds = _map(rng, shape, "linear")
    x = jnp.asarray(_points(rng, bounds)[:-1])
    assert _gathers(jax.vmap(jax.grad(m.energy)), x) == [(1,)]
