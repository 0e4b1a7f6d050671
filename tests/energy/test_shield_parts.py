"""A large batch is decided in parts (energy, then allow and reason from it) and its p-value is
computed when first asked for (energy._shield.Shield._decides_in_parts, Decision._lazy): the
decision must be the one-program decision bit for bit, and a Decision must still behave as the
named tuple (allow, energy, reason, p_value) it was."""

from __future__ import annotations

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energy
from energy import Decision, Reason, Shield
from energy import _shield as S

N = S._PARTS_MIN_STATES  # the smallest batch decided in parts


@pytest.fixture(scope="module")
def cal_shield():
    rng = np.random.default_rng(31)
    m = energy.EnergyMap.from_samples(
        rng.normal(size=(20_000, 2)), bins=16, bounds=[(-4.0, 4.0), (-4.0, 4.0)]
    )
    return Shield.calibrate(m, np.round(rng.normal(size=(500, 2)), 1), alpha=0.05)


def _batch(sh: Shield, n: int = N) -> np.ndarray:
    """n states: in-distribution, shifted, out of bounds, NaN/inf, and the calibration scores'
    own states (ties with the scores), float32."""
    rng = np.random.default_rng(32)
    x = rng.normal(size=(n, 2)) * 1.5
    x[:50] = [[9.0, 0.0]] * 50
    x[50:60, 0] = np.nan
    x[60:70, 1] = np.inf
    x[70:80, 0] = -np.inf
    x[80:90] = [[4.0, -4.0]] * 10  # on the bounds: inside
    return x.astype(np.float32)


def _one_program(sh: Shield, x: np.ndarray) -> Decision:
    return S._decide_jit(sh._bare(), jnp.asarray(x), sh._table())


def _assert_same(a: Decision, b: Decision) -> None:
    for field in Decision._fields:
        got, want = np.asarray(getattr(a, field)), np.asarray(getattr(b, field))
        assert got.dtype == want.dtype, field
        np.testing.assert_array_equal(got, want, err_msg=field)


def _assert_close(a: Decision, b: Decision) -> None:
    """The same allow and reason, energies and p-values within float32 rounding."""
    for field in ("allow", "reason"):
        np.testing.assert_array_equal(np.asarray(getattr(a, field)), np.asarray(getattr(b, field)))
    np.testing.assert_allclose(np.asarray(a.energy), np.asarray(b.energy), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(a.p_value), np.asarray(b.p_value), atol=0.01)


def test_parts_decision_equals_one_program(cal_shield):
    """allow, energy, reason, p_value of the parts path: those of one program, bit for bit, and
    the p-value is the rank formula (1 + #{s_i >= score}) / (n + 1), score = +inf for a state
    blocked for another reason than its energy."""
    x = _batch(cal_shield)
    assert cal_shield._decides_in_parts(jnp.asarray(x))
    d = cal_shield(x)
    assert d._make_p is not None  # the p-value is not computed yet
    _assert_same(d, _one_program(cal_shield, x))
    reason = np.asarray(d.reason)
    assert set(np.unique(reason)) >= {0, 1, 2, 3}
    score = np.where(reason > Reason.ABOVE_THRESHOLD, np.inf, np.asarray(d.energy))
    scores = np.asarray(cal_shield.scores)
    n = scores.size
    at_least = n - np.searchsorted(scores, score, side="left")
    np.testing.assert_array_equal(
        np.rint(np.asarray(d.p_value) * (n + 1)).astype(int) - 1, at_least
    )


def test_parts_decision_of_a_function_and_of_an_explicit_threshold():
    """A plain energy function (its NaN rows get the stand-in) and a shield without scores
    (NaN p-values): the parts path decides as one program."""

    def f(x):
        return jnp.sum(x**2, -1) - jnp.mean(x[..., 0])  # a batch statistic: NaN would poison it

    x = _batch(Shield(f, threshold=2.0))
    for sh in (
        Shield(f, threshold=2.0),
        Shield(f, threshold=2.0, bounds=[(-3.0, 3.0), (-3.0, 3.0)]),
        Shield(f, threshold=2.0, scores=np.linspace(-1.0, 5.0, 101), alpha=0.05),
    ):
        assert sh._decides_in_parts(jnp.asarray(x))
        _assert_same(sh(x), _one_program(sh, x))
    assert np.isnan(np.asarray(Shield(f, threshold=2.0)(x).p_value)).all()


def test_p_value_computed_once_and_only_when_asked(cal_shield, monkeypatch):
    """Reading allow/energy/reason (by name, index or slice) computes no p-value; the first
    d.p_value does, once; later reads (index, unpacking, flattening) reuse it."""
    calls = []
    p_jit = S._p_jit

    def counted(*args):
        calls.append(1)
        return p_jit(*args)

    monkeypatch.setattr(S, "_p_jit", counted)
    x = _batch(cal_shield)
    d = cal_shield(x)
    _ = d.allow, d.energy, d.reason, d[0], d[1], d[2], d[-2], d[:3], len(d), d.counts()
    jax.block_until_ready(d[:3])
    assert calls == []
    p = d.p_value
    assert len(calls) == 1
    assert d[3] is p and d[-1] is p and tuple(d)[3] is p and d._asdict()["p_value"] is p
    allow, _, _, p2 = d
    assert p2 is p and allow is d.allow
    assert jax.tree_util.tree_leaves(d)[3] is p
    assert len(calls) == 1


def test_small_or_traced_batches_decide_in_one_program(cal_shield):
    """Below _PARTS_MIN_STATES states, with a surrogate or tolerance, or inside a trace, the
    decision is one program with its p-value (XLA drops what a traced caller does not use)."""
    x = _batch(cal_shield)
    small = cal_shield(x[: N - 1])
    assert small._make_p is None
    _assert_same(small, _one_program(cal_shield, x[: N - 1]))
    assert not cal_shield._decides_in_parts(jnp.asarray(x[: N - 1]))
    seen = []

    @jax.jit
    def decide(x):
        d = cal_shield(x)
        seen.append(d._make_p is None)
        return d

    # (the map closed over is a constant of that program: energies within float rounding)
    _assert_close(decide(x), cal_shield(x))
    assert seen == [True]

    @jax.jit
    def decide_with(sh, x):
        return sh(x)

    _assert_same(decide_with(cal_shield, x), cal_shield(x))
    allow = jax.jit(lambda x: cal_shield(x).allow)(x)
    np.testing.assert_array_equal(np.asarray(allow), np.asarray(cal_shield(x).allow))
    # vmapped: another program, the same decisions (energies within float rounding)
    dv = jax.vmap(cal_shield)(x.reshape(2, N // 2, 2))
    assert dv.allow.shape == (2, N // 2) and dv.p_value.shape == (2, N // 2)
    _assert_close(jax.tree_util.tree_map(jnp.ravel, dv), cal_shield(x))


def test_decision_is_the_named_tuple_it_was(cal_shield):
    """Fields, indexing, unpacking, _fields/_asdict/_replace, immutability, repr; a pytree of
    the four arrays (keyed by field name) in and out of jit."""
    x = _batch(cal_shield)
    d = cal_shield(x)
    assert Decision._fields == ("allow", "energy", "reason", "p_value") and len(d) == 4
    assert d[0] is d.allow and d[1] is d.energy and d[2] is d.reason
    assert d[:2] == (d.allow, d.energy) and d[::3] == (d.allow, d.p_value)
    with pytest.raises(IndexError):
        d[4]
    with pytest.raises(AttributeError, match="immutable"):
        d.allow = None
    a, e, r, p = d
    assert (a, e, r, p) == tuple(d) and list(d._asdict()) == list(Decision._fields)
    assert (
        d.allow.dtype == bool and d.reason.dtype == jnp.int32 and d.p_value.dtype == d.energy.dtype
    )
    # _replace keeps an unasked p-value unasked
    lazy = cal_shield(x)._replace(allow=~d.allow)
    assert lazy._make_p is not None and lazy.energy is not None
    np.testing.assert_array_equal(np.asarray(lazy.allow), ~np.asarray(d.allow))
    np.testing.assert_array_equal(np.asarray(lazy.p_value), np.asarray(d.p_value))
    assert d._replace(p_value=1.0).p_value == 1.0
    with pytest.raises(ValueError, match="no field"):
        d._replace(allowed=1)
    assert repr(Decision(1, 2.0, 0, 0.5)) == "Decision(allow=1, energy=2.0, reason=0, p_value=0.5)"
    assert Decision(allow=1, energy=2.0, reason=0, p_value=0.5)[3] == 0.5
    # equality as tuples; pickling and copies carry the p-value
    small = Decision(np.True_, np.float32(1.5), np.int32(0), np.float32(0.25))
    assert small == Decision(True, 1.5, 0, 0.25) and small == (True, 1.5, 0, 0.25)
    assert small != Decision(True, 1.5, 1, 0.25) and small != "Decision"
    with pytest.raises(TypeError):
        hash(small)
    for copied in (pickle.loads(pickle.dumps(cal_shield(x))), copy.copy(cal_shield(x))):
        assert copied._make_p is None
        _assert_same(copied, d)
    # pytree: four leaves in field order, paths by field name, lazy p-value computed
    leaves, tree = jax.tree_util.tree_flatten(cal_shield(x))
    assert len(leaves) == 4 and tree == jax.tree_util.tree_structure(d)
    _assert_same(jax.tree_util.tree_unflatten(tree, leaves), d)
    paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(d)[0]]
    assert paths == [".allow", ".energy", ".reason", ".p_value"]
    # a lazy decision as a jit argument, and summed in a jitted function
    p = jax.jit(lambda d: d.p_value)(cal_shield(x))
    np.testing.assert_array_equal(np.asarray(p), np.asarray(d.p_value))
    counts = jax.jit(lambda d: d.counts())(cal_shield(x))
    assert int(counts.sum()) == N and cal_shield(x).summary() == d.summary()
