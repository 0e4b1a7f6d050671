"""Tests of energy.Shield: exact thresholds, fail-closed reasons, conformal calibration,
transitions, surrogates, persistence and the audit log."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import energy
from energy import Reason, Shield

BOUNDS = [(-5.0, 5.0), (-5.0, 5.0)]


@pytest.fixture(scope="module")
def gauss_map():
    """A 2-D standard normal map built from 200k samples (seed 0) on fixed bounds."""
    x = np.random.default_rng(0).normal(size=(200_000, 2))
    return energy.EnergyMap.from_samples(x, bins=48, bounds=BOUNDS)


@pytest.fixture(scope="module")
def double_well():
    """E = (x0^2 - 1)^2 * 8 + x1^2 on a 101 x 41 grid: wells at x0 = +-1, barrier 8 at x0 = 0."""
    g0 = np.linspace(-2.0, 2.0, 101)
    g1 = np.linspace(-1.0, 1.0, 41)
    e = 8.0 * (g0[:, None] ** 2 - 1.0) ** 2 + g1[None, :] ** 2
    return energy.EnergyMap.from_grid(e, [(-2.0, 2.0), (-1.0, 1.0)], names=["a", "b"])


def square(x):
    """A plain jax energy function: E = |x|^2."""
    return jnp.sum(jnp.asarray(x) ** 2, axis=-1)


class FakeSurrogate:
    """Test double of a tnn surrogate: E = |x|^2, uncertainty = |x| (grows off the data)."""

    def energy(self, x):
        return jnp.sum(x**2, axis=-1)

    __call__ = energy

    def uncertainty(self, x):
        return jnp.sqrt(jnp.sum(x**2, axis=-1))


# --------------------------------------------------------------------- explicit thresholds
def test_explicit_threshold_is_exact_inclusive():
    t = np.float32(0.3)
    sh = Shield(lambda x: x[..., 0], threshold=t)
    above = np.nextafter(t, np.float32(1.0))
    below = np.nextafter(t, np.float32(0.0))
    x = np.array([[t, 0.0], [above, 0.0], [below, 0.0]], np.float32)
    d = sh(x)
    assert d.allow.tolist() == [True, False, True]
    assert d.reason.tolist() == [Reason.ALLOWED, Reason.ABOVE_THRESHOLD, Reason.ALLOWED]
    np.testing.assert_array_equal(np.asarray(d.energy), x[:, 0])


def test_explicit_threshold_on_map_nodes(double_well):
    m = double_well
    # Node (50, 20) is x = (0, 0): the barrier top, energy exactly 8.
    sh = Shield(m, threshold=8.0)
    d = sh(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.05]]))
    assert d.allow.tolist() == [True, True, False]
    assert float(d.energy[0]) == 8.0
    blocked = Shield(m, threshold=np.nextafter(np.float32(8.0), np.float32(0.0)))
    assert not bool(blocked(np.zeros(2)).allow)


def test_energy_matches_map(gauss_map):
    x = np.random.default_rng(1).normal(size=(5000, 2)) * 2.5
    d = Shield(gauss_map, threshold=1e9)(x)
    inside = np.all(np.abs(x) <= 5.0, axis=-1)
    ref = np.asarray(gauss_map.energy(x))
    np.testing.assert_allclose(np.asarray(d.energy)[inside], ref[inside], rtol=1e-6, atol=1e-6)
    # Outside: the map's barrier (finite, rising) is reported, and the state is blocked.
    np.testing.assert_allclose(np.asarray(d.energy)[~inside], ref[~inside], rtol=1e-5)
    assert np.all(np.asarray(d.reason)[~inside] == Reason.OUT_OF_BOUNDS)


def test_cubic_map_uses_the_map_energy():
    g = np.linspace(-1, 1, 21)
    e = g[:, None] ** 2 + g[None, :] ** 2
    m = energy.EnergyMap.from_grid(e, [(-1, 1), (-1, 1)], method="cubic")
    x = np.random.default_rng(2).uniform(-1, 1, size=(200, 2))
    d = Shield(m, threshold=0.5)(x)
    np.testing.assert_allclose(np.asarray(d.energy), np.asarray(m.energy(x)), rtol=1e-6)
    assert np.array_equal(np.asarray(d.allow), np.asarray(m.energy(x)) <= 0.5)


# --------------------------------------------------------------------- reasons, fail closed
REASON_CASES = [
    ("allowed", [0.5, 0.5], Reason.ALLOWED),
    ("above", [1.5, 0.0], Reason.ABOVE_THRESHOLD),
    ("nan", [np.nan, 0.0], Reason.NOT_FINITE),
    ("inf", [0.0, np.inf], Reason.NOT_FINITE),
    ("-inf", [-np.inf, 0.0], Reason.NOT_FINITE),
    ("outside", [2.5, 0.0], Reason.OUT_OF_BOUNDS),
    ("outside+nan", [2.5, np.nan], Reason.NOT_FINITE),
]


@pytest.mark.parametrize(
    ("name", "state", "reason"), REASON_CASES, ids=[c[0] for c in REASON_CASES]
)
def test_reason_codes(name, state, reason):
    sh = Shield(square, threshold=1.0, bounds=[(-2, 2), (-2, 2)])
    d = sh(np.array([state]))
    assert int(d.reason[0]) == reason
    assert bool(d.allow[0]) == (reason == Reason.ALLOWED)


def test_non_finite_energy_is_blocked():
    def broken(x):
        return jnp.where(x[..., 0] > 0, jnp.nan, -jnp.inf * (x[..., 1] > 0))

    d = Shield(broken, threshold=1.0)(np.array([[1.0, 0.0], [-1.0, 1.0], [-1.0, -1.0]]))
    assert d.reason.tolist() == [Reason.NOT_FINITE, Reason.NOT_FINITE, Reason.ALLOWED]


def _lowest(x):
    """An adversarial energy: very low everywhere, NaN-free even at NaN input."""
    return jnp.full(x.shape[:-1], -1e30)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6).map(lambda s: (s[0], 2)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    )
)
def test_property_nan_inf_out_of_bounds_always_blocked(x):
    lo, hi = -3.0, 3.0
    for fn in (_lowest, square):
        d = Shield(fn, threshold=1e30, bounds=[(lo, hi), (lo, hi)])(x)
        finite = np.all(np.isfinite(x), axis=-1)
        inside = np.all((x >= lo) & (x <= hi), axis=-1)
        allow = np.asarray(d.allow)
        reason = np.asarray(d.reason)
        assert not allow[~finite].any()
        assert np.all(reason[~finite] == Reason.NOT_FINITE)
        assert np.all(reason[finite & ~inside] == Reason.OUT_OF_BOUNDS)
        assert allow[finite & inside].all()  # threshold 1e30: everything proven is allowed


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.integers(1, 8).map(lambda n: (n, 2)),
        elements=st.one_of(
            st.floats(-20, 20), st.sampled_from([np.nan, np.inf, -np.inf, 5.0, -5.0])
        ),
    )
)
def test_property_map_fails_closed(gauss_map, x):
    sh = Shield(gauss_map, threshold=1e30)
    d = sh(x)
    finite = np.all(np.isfinite(x), axis=-1)
    inside = finite & np.all(np.abs(np.where(finite[:, None], x, 0.0)) <= 5.0, axis=-1)
    allow = np.asarray(d.allow)
    assert np.array_equal(allow, inside)
    assert np.all(np.asarray(d.reason)[~finite] == Reason.NOT_FINITE)
    assert np.all(np.isinf(np.asarray(d.energy)[~finite]))


@pytest.mark.parametrize("n", [1, 2, 5])
def test_per_state_energy_function_is_vmapped(n):
    def per_state(x):  # (d,) -> (): wrong if fed a batch directly
        return x[0] ** 2 + 2.0 * x[1] ** 2

    x = np.random.default_rng(14).normal(size=(n, 2)).astype(np.float32)
    d = Shield(per_state, threshold=1.0)(x)
    ref = x[:, 0] ** 2 + 2.0 * x[:, 1] ** 2
    np.testing.assert_allclose(np.asarray(d.energy), ref, rtol=1e-6)
    assert np.array_equal(np.asarray(d.allow), ref <= 1.0)


def test_nan_row_does_not_poison_the_batch():
    def mixes_rows(x):  # an energy that couples rows (like a batch statistic)
        return jnp.sum(x**2, -1) + 0.0 * jnp.sum(x)

    d = Shield(mixes_rows, threshold=1.0)(np.array([[0.1, 0.1], [np.nan, 0.0]]))
    assert d.reason.tolist() == [Reason.ALLOWED, Reason.NOT_FINITE]


def test_counts_and_summary():
    sh = Shield(square, threshold=1.0, bounds=[(-2, 2), (-2, 2)])
    x = np.array([[0, 0], [1.5, 0], [np.nan, 0], [3, 0], [0.1, 0.1]])
    d = sh(x)
    assert d.counts().tolist() == [2, 1, 1, 1, 0]
    assert d.summary() == {
        "allowed": 2,
        "above_threshold": 1,
        "out_of_bounds": 1,
        "not_finite": 1,
        "too_uncertain": 0,
    }


# --------------------------------------------------------------------- calibration
@pytest.mark.parametrize(("alpha", "n_min"), [(0.01, 99), (0.1, 9), (0.05, 19), (0.2, 4)])
def test_small_n_error(alpha, n_min):
    assert energy.conformal_rank(n_min, alpha) == n_min
    x = np.zeros((n_min - 1, 2))
    with pytest.raises(ValueError, match=rf"too few calibration states.*n >= {n_min}"):
        Shield.calibrate(square, x, alpha=alpha)
    sh = Shield.calibrate(square, np.zeros((n_min, 2)), alpha=alpha)
    assert sh.n_calibration == n_min


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, float("nan"), "0.1"])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        Shield.calibrate(square, np.zeros((100, 2)), alpha=alpha)


def test_threshold_is_the_conformal_order_statistic(gauss_map):
    rng = np.random.default_rng(3)
    cal = rng.normal(size=(500, 2))
    sh = Shield.calibrate(gauss_map, cal, alpha=0.05)
    k = math.ceil(501 * 0.95)
    e = np.sort(np.asarray(Shield(gauss_map, threshold=np.inf)(cal).energy))
    assert k == energy.conformal_rank(500, 0.05) == 476
    assert float(sh.threshold) == e[k - 1]
    # The state at the threshold is allowed, alone or in a batch; the next one is blocked.
    order = np.argsort(np.asarray(Shield(gauss_map, threshold=np.inf)(cal).energy))
    assert bool(sh(cal[order[k - 1]][None]).allow[0])
    assert not bool(sh(cal[order[k]][None]).allow[0])
    assert int(np.sum(~np.asarray(sh(cal).allow))) == 500 - k
    assert sh.provenance["calibration"]["rank"] == k


def test_conformal_coverage_across_seeds(gauss_map):
    """False-block rate of fresh in-distribution states, over 100 calibration draws.

    With n = 199, alpha = 0.1: k = 180 and the rate given a calibration draw is
    Beta(n + 1 - k, k) = Beta(20, 180), mean exactly 0.1, plus binomial noise of the m test
    states. The mean over S draws must lie within 4 standard errors of 0.1, and the spread
    across draws must match the Beta-binomial one.
    """
    n, m_test, n_seeds, alpha = 199, 1000, 100, 0.1
    k = energy.conformal_rank(n, alpha)
    a, b = n + 1 - k, k
    mean = a / (a + b)
    var_beta = a * b / ((a + b) ** 2 * (a + b + 1))
    var_seed = var_beta + (mean * (1 - mean) - var_beta) / m_test
    rates = []
    for seed in range(n_seeds):
        rng = np.random.default_rng(1000 + seed)
        sh = Shield.calibrate(gauss_map, rng.normal(size=(n, 2)), alpha=alpha)
        d = sh(rng.normal(size=(m_test, 2)))
        rates.append(1.0 - float(np.mean(np.asarray(d.allow))))
    rates = np.array(rates)
    se = math.sqrt(var_seed / n_seeds)
    assert mean == pytest.approx(0.1)
    assert abs(rates.mean() - mean) < 4 * se, (rates.mean(), mean, se)
    # sd of a sample sd is about sd / sqrt(2 S): 7% here; 30% is over 4 of those.
    assert 0.7 < rates.std(ddof=1) / math.sqrt(var_seed) < 1.3


def test_p_values_are_valid(gauss_map):
    rng = np.random.default_rng(4)
    sh = Shield.calibrate(gauss_map, rng.normal(size=(999, 2)), alpha=0.05)
    p = np.asarray(sh(rng.normal(size=(20_000, 2))).p_value)
    assert np.all((p > 0) & (p <= 1))
    # P(p <= a) is about a (uniform on the grid j / 1000), within binomial error.
    for a in (0.01, 0.05, 0.2, 0.5):
        frac = np.mean(p <= a)
        se = math.sqrt(a * (1 - a) / 20_000 + a * (1 - a) / 1000)
        assert abs(frac - a) < 4 * se, (a, frac)
    # Blocked by the threshold <=> p <= 1 - k / (n + 1) <=> #{s_i >= E} <= n - k.
    d = sh(rng.normal(size=(5000, 2)) * 1.5)
    ok = np.asarray(d.reason) <= Reason.ABOVE_THRESHOLD
    at_least = np.rint(np.asarray(d.p_value) * 1000).astype(int) - 1
    k = energy.conformal_rank(999, 0.05)
    assert np.array_equal(~np.asarray(d.allow)[ok], (at_least <= 999 - k)[ok])
    assert 0 < np.sum(~np.asarray(d.allow)[ok]) < np.sum(ok)


def test_explicit_shield_has_nan_p_values():
    assert np.isnan(np.asarray(Shield(square, threshold=1.0)(np.zeros((3, 2))).p_value)).all()


def test_calibration_counts_blocked_states(gauss_map):
    rng = np.random.default_rng(5)
    cal = rng.normal(size=(300, 2))
    cal[:3] = [[np.nan, 0], [9.0, 0], [0, -7.0]]
    sh = Shield.calibrate(gauss_map, cal, alpha=0.1)
    counts = sh.provenance["calibration"]["blocked_per_reason"]
    assert counts["not_finite"] == 1 and counts["out_of_bounds"] == 2
    # Blocked calibration states count as +inf scores (so the bound stays valid).
    assert np.isinf(np.asarray(sh.scores)[-3:]).all()
    cal[:40] = np.nan
    with pytest.raises(ValueError, match="infinite"):
        Shield.calibrate(gauss_map, cal, alpha=0.1)


def test_calibrate_bad_shapes():
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        Shield.calibrate(square, np.zeros(100), alpha=0.1)
    with pytest.raises(ValueError, match="numeric"):
        Shield.calibrate(square, np.array([["a", "b"]] * 20), alpha=0.1)


# --------------------------------------------------------------------- transitions
def test_transition_blocks_barrier_crossing(double_well):
    sh = Shield(double_well, threshold=2.0)
    left, right = np.array([-1.0, 0.0]), np.array([1.0, 0.0])
    assert sh(np.stack([left, right])).allow.all()  # both ends are safe ...
    d = sh.transition(left, right)
    assert not bool(d.allow)  # ... the move crosses the barrier
    assert int(d.reason) == Reason.ABOVE_THRESHOLD
    assert float(d.energy) == pytest.approx(8.0, abs=1e-5)  # the midpoint is a node: t = 1/2
    # A move inside one well is allowed; batched moves broadcast against one start.
    moves = sh.transition(left, np.array([[-1.2, 0.3], [1.0, 0.0], [-0.8, -0.2], [5.0, 0.0]]))
    assert moves.allow.tolist() == [True, False, True, False]
    assert moves.reason.tolist() == [0, 1, 0, 1]  # the far move hits the barrier before the face


def test_transition_reason_is_first_blocked_point():
    sh = Shield(square, threshold=1.0, bounds=[(-3, 3), (-3, 3)])
    d = sh.transition(np.zeros(2), np.array([[10.0, 0.0], [np.nan, 0.0]]))
    assert d.reason.tolist() == [Reason.ABOVE_THRESHOLD, Reason.NOT_FINITE]
    with pytest.raises(ValueError, match="n_points"):
        sh.transition(np.zeros(2), np.ones(2), n_points=1)


# --------------------------------------------------------------------- jit / pytree
def test_shield_is_a_pytree_and_jit_argument(gauss_map):
    sh = Shield.calibrate(gauss_map, np.random.default_rng(6).normal(size=(200, 2)), alpha=0.1)
    x = np.random.default_rng(7).normal(size=(64, 2))

    @jax.jit
    def n_allowed(shield, x):
        return jnp.sum(shield(x).allow)

    assert int(n_allowed(sh, x)) == int(np.sum(np.asarray(sh(x).allow)))
    leaves, treedef = jax.tree_util.tree_flatten(sh)
    sh2 = jax.tree_util.tree_unflatten(treedef, leaves)
    assert float(sh2.threshold) == float(sh.threshold) and sh2.alpha == 0.1
    moved = jax.device_put(sh, jax.devices()[0])
    assert np.array_equal(np.asarray(moved(x).allow), np.asarray(sh(x).allow))


def test_no_recompilation_for_a_new_threshold():
    traces = []

    def counted(x):
        if x.ndim == 2:  # not the shield's (7, 5, d) batch-shape probe
            traces.append(1)
        return jnp.sum(x**2, -1)

    x = np.zeros((16, 2), np.float32)
    for t in (1.0, 2.0, 3.0):
        Shield(counted, threshold=t)(x)
    assert len(traces) == 1
    rng = np.random.default_rng(8)
    cal = rng.normal(size=(50, 2))
    sh = Shield.calibrate(counted, cal, alpha=0.1)  # +1 trace: the probe (50 states, no scores)
    sh(x)  # +1: with scores
    n = len(traces)
    sh(x + 1.0)
    Shield.calibrate(counted, cal, alpha=0.2)(x)  # another threshold, same calibration scores
    assert len(traces) == n == 3


def test_vmap_and_batch_shapes():
    sh = Shield(square, threshold=1.0)
    x = np.random.default_rng(9).normal(size=(3, 5, 2))
    d = sh(x)
    assert d.allow.shape == d.energy.shape == d.reason.shape == d.p_value.shape == (3, 5)
    dv = jax.vmap(sh)(x)
    assert np.array_equal(np.asarray(dv.allow), np.asarray(d.allow))
    assert sh(np.zeros(2)).allow.shape == ()


def test_bad_inputs():
    sh = Shield(square, threshold=1.0, bounds=[(-1, 1), (-1, 1)])
    with pytest.raises(ValueError, match="d=3.*d=2"):
        sh(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="numeric"):
        sh(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="threshold"):
        Shield(square, threshold=float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        Shield(square, threshold=[1.0, 2.0])
    with pytest.raises(ValueError, match="bounds"):
        Shield(square, threshold=1.0, bounds=[(1, -1), (0, 1)])
    with pytest.raises(ValueError, match="uncertainty"):
        Shield(square, threshold=1.0, tolerance=0.5)


# --------------------------------------------------------------------- surrogates
def test_surrogate_uncertainty_blocks():
    sh = Shield(FakeSurrogate(), threshold=10.0, tolerance=2.0)
    assert sh.lo is None  # a surrogate has no hard bounds
    d = sh(np.array([[1.0, 0.0], [2.5, 0.0], [4.0, 0.0], [np.nan, 0.0]]))
    assert d.reason.tolist() == [
        Reason.ALLOWED,
        Reason.TOO_UNCERTAIN,
        Reason.TOO_UNCERTAIN,
        Reason.NOT_FINITE,
    ]
    assert Shield(FakeSurrogate(), threshold=10.0)(np.array([2.5, 0.0])).allow  # no tolerance


def test_surrogate_judges_states_outside_the_map(double_well):
    sh = Shield(double_well, threshold=2.0, surrogate=FakeSurrogate(), tolerance=2.3)
    x = np.array([[1.0, 0.0], [2.1, 0.0], [2.0, 1.1], [3.0, 0.0], [0.0, 0.0]])
    d = sh(x)
    # Inside: the map; outside: the surrogate's energy (|x|^2) and uncertainty (|x|).
    assert d.reason.tolist() == [
        Reason.ALLOWED,
        Reason.ABOVE_THRESHOLD,  # E = 4.41 > 2, u = 2.1 ok
        Reason.ABOVE_THRESHOLD,  # E = 5.21, u = 2.28 ok
        Reason.TOO_UNCERTAIN,  # u = 3 > 2.3
        Reason.ABOVE_THRESHOLD,  # map barrier top, 8
    ]
    assert float(d.energy[1]) == pytest.approx(2.1**2, rel=1e-6)
    sh_hi = Shield(double_well, threshold=5.0, surrogate=FakeSurrogate(), tolerance=2.3)
    assert bool(sh_hi(np.array([2.1, 0.0])).allow)
    with pytest.raises(ValueError, match="tolerance"):
        Shield(double_well, threshold=1.0, surrogate=FakeSurrogate())


def test_calibrate_with_surrogate_tolerance():
    rng = np.random.default_rng(10)
    cal = rng.normal(size=(400, 2)) * 0.5
    sh = Shield.calibrate(FakeSurrogate(), cal, alpha=0.1, tolerance=1.5)
    blocked = sh.provenance["calibration"]["blocked_per_reason"]["too_uncertain"]
    assert blocked == int(np.sum(np.linalg.norm(cal, axis=-1) > 1.5))
    d = sh(rng.normal(size=(20_000, 2)) * 0.5)
    rate = 1 - float(np.mean(np.asarray(d.allow)))
    assert rate <= 0.1 + 4 * math.sqrt(0.1 * 0.9 / 400)


# --------------------------------------------------------------------- persistence
def test_save_load_round_trip(tmp_path, gauss_map):
    rng = np.random.default_rng(11)
    sh = Shield.calibrate(gauss_map, rng.normal(size=(300, 2)), alpha=0.05, provenance={"a": 1})
    path = sh.save(tmp_path / "shield.npz")
    back = Shield.load(path)
    assert float(back.threshold) == float(sh.threshold)
    assert back.alpha == 0.05 and back.n_calibration == 300
    assert back.provenance["a"] == 1 and back.provenance["calibration"]["rank"] == 286
    x = np.concatenate([rng.normal(size=(500, 2)) * 2, [[np.nan, 0], [6.0, 0]]])
    d, e = sh(x), back(x)
    for a, b in zip(d, e, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # One plain .npz: no pickles.
    with np.load(path, allow_pickle=False) as f:
        assert set(f.files) == {"meta", "energies", "shield_scores"}
    # An explicit threshold saves and loads too (no scores).
    Shield(gauss_map, threshold=3.5).save(tmp_path / "explicit.npz")
    ex = Shield.load(tmp_path / "explicit.npz")
    assert float(ex.threshold) == 3.5 and ex.scores is None


def test_load_refuses_bad_files(tmp_path, gauss_map):
    sh = Shield.calibrate(gauss_map, np.random.default_rng(12).normal(size=(100, 2)), alpha=0.1)
    path = tmp_path / "s.npz"
    sh.save(path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["shield_scores"] = arrays["shield_scores"] + 1.0
    bad = tmp_path / "tampered.npz"
    np.savez(bad, **arrays)
    with pytest.raises(energy.MapFileError, match=r"tampered\.npz.*checksum"):
        Shield.load(bad)
    # A malformed threshold in a file whose checksums were made again is still refused.
    arrays["shield_scores"] = arrays["shield_scores"] - 1.0
    meta = json.loads(str(arrays.pop("meta")))
    meta["shield"]["threshold"] = "high"
    meta["checksum"] = energy._io.field_checksums(meta, arrays)
    np.savez(bad, meta=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(energy.MapFileError, match="threshold"):
        Shield.load(bad)
    gauss_map.save(tmp_path / "map.npz")
    with pytest.raises(energy.MapFileError, match="format"):
        Shield.load(tmp_path / "map.npz")
    with pytest.raises(energy.MapFileError, match="no such file"):
        Shield.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="EnergyMap"):
        Shield(square, threshold=1.0).save(tmp_path / "f.npz")


# --------------------------------------------------------------------- filter, audit log
def test_filter_keeps_allowed_states():
    sh = Shield(square, threshold=1.0)
    x = np.array([[0.1, 0.0], [2.0, 0.0], [np.nan, 0.0], [0.0, -0.9]])
    kept, d = sh.filter(x)
    np.testing.assert_array_equal(kept, x[[0, 3]])
    assert d.allow.tolist() == [True, False, False, True]
    assert sh.allow(x).tolist() == [True, False, False, True]


def test_shield_log_counts_and_jsonl(tmp_path):
    sh = Shield(square, threshold=1.0, bounds=[(-2, 2), (-2, 2)])
    path = tmp_path / "audit.jsonl"
    log = energy.ShieldLog(path)
    x1 = np.array([[0.0, 0.0], [1.5, 0.0], [np.nan, 1.0]])
    x2 = np.array([[3.0, 0.0], [0.5, 0.0]])
    log.record(x1, sh(x1), step=1)
    log.record(x2, sh(x2), step=2)
    assert log.counts == {
        "allowed": 2,
        "above_threshold": 1,
        "out_of_bounds": 1,
        "not_finite": 1,
        "too_uncertain": 0,
    }
    assert log.total == 5
    lines = [json.loads(s) for s in path.read_text().splitlines()]
    assert [r["reason"] for r in lines] == ["above_threshold", "not_finite", "out_of_bounds"]
    assert lines[1]["state"] == ["nan", 1.0] and lines[1]["energy"] == "inf"
    assert [r["step"] for r in lines] == [1, 1, 2]
    counters_only = energy.ShieldLog()
    counters_only.record(x1, sh(x1))
    assert counters_only.total == 3


SCORE_SETS = {
    "exponential": lambda rng: rng.exponential(size=5000),
    "normal+inf": lambda rng: np.concatenate([rng.normal(size=300), [np.inf] * 4]),
    "tied": lambda rng: np.round(rng.normal(size=500), 1),
    "constant": lambda rng: np.ones(20),
}


@pytest.mark.parametrize("name", list(SCORE_SETS))
def test_p_values_exact(name):
    """p = (1 + #{s_i >= E}) / (n + 1), exactly, on scores, their neighbours and extremes."""
    rng = np.random.default_rng(13)
    scores = np.sort(SCORE_SETS[name](rng).astype(np.float32))
    sh = Shield(lambda x: x[..., 0], threshold=0.0, scores=scores, alpha=0.1)
    fin = scores[np.isfinite(scores)]
    q = np.concatenate([fin, rng.choice(fin, 200), rng.normal(size=500) * 3, [1e30, -1e30]])
    q = np.concatenate([q, np.nextafter(q, np.inf), np.nextafter(q, -np.inf)]).astype(np.float32)
    p = np.asarray(sh(np.stack([q, np.zeros_like(q)], -1)).p_value)
    n = len(scores)
    at_least = n - np.searchsorted(scores, q, side="left")  # #{s_i >= E}
    np.testing.assert_array_equal(np.rint(p * (n + 1)).astype(int) - 1, at_least)
    ref = (at_least + 1).astype(np.float32) / np.float32(n + 1)
    np.testing.assert_allclose(p, ref, rtol=2e-7)
