"""The shield's p-values come from a bucketed search table (energy._shield._PTable): they must
be exactly the rank-based conformal p-values of a binary search in the sorted scores."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import energy
from energy import Shield
from energy import _shield as S

SCORE_SETS = {
    "normal": lambda rng: rng.normal(size=3000) * 2.0 + 5.0,
    "heavy ties": lambda rng: np.round(rng.normal(size=2000), 1),
    "one value": lambda rng: np.full(50, 2.5),
    "zeros both signs": lambda rng: np.concatenate(
        [np.zeros(5), -np.zeros(5), rng.normal(size=40)]
    ),
    "with infinities": lambda rng: np.concatenate(
        [rng.exponential(size=500), [np.inf] * 30, [-np.inf] * 3]
    ),
    "all infinite": lambda rng: np.full(8, np.inf),
    "wide range": lambda rng: np.concatenate(
        [rng.normal(size=300) * 1e-30, rng.normal(size=300) * 1e30, [-1e38, 1e38]]
    ),
    "one": lambda rng: np.array([0.5]),
    "denormals": lambda rng: np.concatenate([[1e-40, -1e-40, 1e-45, 0.0], rng.normal(size=20)]),
}


def _queries(scores: np.ndarray, rng) -> np.ndarray:
    """Every score, its float neighbours, ties, zeros of both signs, infinities, random values."""
    fin = scores[np.isfinite(scores)]
    q = [scores, rng.normal(size=400) * 3.0, [0.0, -0.0, np.inf, -np.inf, 1e38, -1e38]]
    if fin.size:
        q += [rng.choice(fin, 200), rng.uniform(fin.min(), fin.max(), size=200)]
    q = np.concatenate(q).astype(scores.dtype)
    q = np.concatenate([q, np.nextafter(q, q.dtype.type(np.inf)), np.nextafter(q, -np.inf)])
    return q.astype(scores.dtype)


def _reference_p(sh: Shield, x: np.ndarray) -> np.ndarray:
    """The p-values of the decision without table (a binary search in the sorted scores)."""
    return np.asarray(jax.jit(lambda s, x: s._decide(x).p_value)(sh._bare(), jnp.asarray(x)))


@pytest.mark.parametrize("name", list(SCORE_SETS))
def test_shield_pvalue_exact(name):
    """sh(x).p_value (through the table) equals the binary-search p-value bit for bit."""
    rng = np.random.default_rng(21)
    scores = np.sort(SCORE_SETS[name](rng).astype(np.float32))
    sh = Shield(lambda x: x[..., 0], threshold=0.0, scores=scores, alpha=0.1)
    assert sh._table() is not None  # the table path is the one under test
    q = _queries(scores, rng)
    x = np.stack([q, np.zeros_like(q)], -1)
    p = np.asarray(sh(x).p_value)
    np.testing.assert_array_equal(p, _reference_p(sh, x))
    # the p-value of any energy, infinities included (not only those of finite states)
    table_p = jax.jit(lambda s, e, t: s._p_value(e, t))(sh, jnp.asarray(q), sh._table())
    search_p = jax.jit(lambda s, e: s._p_value(e))(sh, jnp.asarray(q))
    np.testing.assert_array_equal(np.asarray(table_p), np.asarray(search_p))
    # and the rank formula itself: (1 + #{s_i >= E}) / (n + 1), -0.0 == 0.0 (and a denormal
    # counts as 0.0, as the device compares it: XLA flushes them)
    n = scores.size

    def flush(v):
        return np.where(np.abs(v) < np.finfo(v.dtype).tiny, 0.0, v).astype(v.dtype)

    at_least = n - np.searchsorted(np.sort(flush(scores)), flush(q), side="left")
    np.testing.assert_array_equal(np.rint(np.asarray(table_p) * (n + 1)).astype(int) - 1, at_least)


def test_shield_pvalue_table_counts_match_searchsorted_exhaustively():
    """count_below equals jnp.searchsorted(side='left') on a dense sweep of float32 values."""
    rng = np.random.default_rng(22)
    scores = np.sort(np.round(rng.normal(size=700), 2).astype(np.float32))
    table = S._p_table(scores)
    lo, hi = np.float32(-4.0).view(np.int32), np.float32(4.0).view(np.int32)
    # every 997th float32 bit pattern of [-4, 4] (both signs walked by their bit patterns)
    pos = np.arange(0, hi, 997, dtype=np.int32).view(np.float32)
    neg = -np.arange(0, -lo if lo < 0 else hi, 997, dtype=np.int32).view(np.float32)
    ends = np.array([np.inf, -np.inf, 0.0, -0.0], np.float32)
    q = jnp.asarray(np.concatenate([pos, neg, scores, ends]))
    got = jax.jit(lambda t, e: t.count_below(e))(table, q)
    want = jnp.searchsorted(jnp.asarray(scores), q, side="left")
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_shield_pvalue_calibrated_map_matches_binary_search():
    """A calibrated map shield: full decisions with table vs without, on normal, shifted,
    out-of-bounds and non-finite states and on the calibration states themselves."""
    rng = np.random.default_rng(23)
    train = rng.normal(size=(20_000, 2))
    cal = rng.normal(size=(2_000, 2))
    m = energy.EnergyMap.from_samples(train, bins=32, bounds=[(-4.0, 4.0), (-4.0, 4.0)])
    sh = Shield.calibrate(m, cal, alpha=0.05)
    x = np.concatenate(
        [cal, rng.normal(size=(3000, 2)) + 1.5, [[9.0, 0.0], [np.nan, 0.0], [0.0, np.inf]]]
    ).astype(np.float32)
    fast = sh(x)
    slow = jax.jit(lambda s, x: s._decide(x))(sh._bare(), jnp.asarray(x))  # no table
    for field in fast._fields:
        np.testing.assert_array_equal(np.asarray(getattr(fast, field)), getattr(slow, field))
    moves = sh.transition(x[:100], x[100:200])
    slow_moves = S._transition_impl(sh._bare(), jnp.asarray(x[:100]), jnp.asarray(x[100:200]), 33)
    np.testing.assert_array_equal(np.asarray(moves.p_value), np.asarray(slow_moves.p_value))


def test_shield_pvalue_float64_scores():
    """Under x64 the scores are float64 and the table uses 64-bit keys: still exact."""
    rng = np.random.default_rng(24)
    with jax.enable_x64(True):
        scores = np.sort(np.concatenate([rng.normal(size=500), [np.inf], np.zeros(3)]))
        sh = Shield(lambda x: x[..., 0], threshold=0.0, scores=scores)
        assert sh._table() is not None and sh._table().keys.dtype == np.uint64
        q = _queries(scores, rng)
        x = np.stack([q, np.zeros_like(q)], -1)
        np.testing.assert_array_equal(np.asarray(sh(x).p_value), _reference_p(sh, x))
        table_p = jax.jit(lambda s, e, t: s._p_value(e, t))(sh, jnp.asarray(q), sh._table())
        search_p = jax.jit(lambda s, e: s._p_value(e))(sh, jnp.asarray(q))
        np.testing.assert_array_equal(np.asarray(table_p), np.asarray(search_p))


def test_shield_pvalue_table_made_once_per_scores():
    """The table is cached on the shield and rebuilt only for new scores."""
    sh = Shield(lambda x: x[..., 0], threshold=0.0, scores=np.arange(10.0))
    assert sh._table() is sh._table()
    sh2 = Shield.calibrate(lambda x: x[..., 0], np.arange(40.0)[:, None], alpha=0.1)
    assert sh2._table() is not sh._table()
    assert sh2._table().keys.shape[0] >= 40 and sh2._table() is sh2._table()
