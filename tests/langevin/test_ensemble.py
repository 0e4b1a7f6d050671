"""The adaptation over the ensemble (`langevin._ensemble`) and its runner, piece by piece."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from langevin import _ensemble as ens
from langevin import _ensemble_run as runner


def _rotated_cov(d, condition, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    v = np.logspace(0, np.log10(condition), d)
    return (q * v) @ q.T


# ------------------------------------------------------------------------------- windows
def test_windows_follow_stan_doubling():
    w = ens.windows(500)
    assert np.flatnonzero(w.end).tolist() == [99, 149, 249, 449]  # 75 | 25 50 100 200 | 50
    assert np.flatnonzero(w.average).tolist() == list(range(450, 500))
    # moments from the second half of each slow window only
    assert np.flatnonzero(w.collect[75:100]).tolist() == list(range(12, 25))
    assert not w.collect[:75].any() and not w.collect[450:].any()
    assert w.start[[0, 75, 100, 150, 250, 450]].all() and w.start.sum() == 6


@pytest.mark.parametrize("n", [20, 37, 200, 1000, 1234])
def test_windows_cover_the_warmup(n):
    w = ens.windows(n)
    ends = np.flatnonzero(w.end)
    assert ends.size >= 1 and ends[-1] < n - 1  # a slow window, then the terminal buffer
    assert w.average[ends[-1] + 1 :].all() and not w.average[: ends[-1] + 1].any()
    assert all(w.collect[e] for e in ends)  # each window collects up to its last step


def test_windows_extension_adds_slow_windows_before_the_terminal_buffer():
    """windows(n, k): the schedule of n steps up to its terminal buffer, then k more slow
    windows as long as the last one, then the same terminal buffer."""
    base, ext = ens.windows(1000), ens.windows(1000, n_extend=5)
    assert ext.end.size == 1000 + 5 * 400  # 150 | 50 100 200 400 | 5 x 400 | 100
    for b, e in zip(base, ext, strict=True):
        np.testing.assert_array_equal(b[:900], e[:900])  # the first 900 steps unchanged
        np.testing.assert_array_equal(b[900:], e[2900:])  # the terminal buffer last
    assert np.flatnonzero(ext.end).tolist() == [199, 299, 499, 899, 1299, 1699, 2099, 2499, 2899]
    assert np.flatnonzero(ext.start[900:2900]).tolist() == [0, 400, 800, 1200, 1600]
    assert not ext.average[:2900].any()
    # each added window collects its second half
    assert np.flatnonzero(ext.collect[900:1300]).tolist() == list(range(200, 400))
    for b, e in zip(ens.windows(10), ens.windows(10, n_extend=3), strict=True):
        np.testing.assert_array_equal(b, e)  # no slow window: nothing to extend


def test_short_warmup_adapts_the_step_only():
    w = ens.windows(10)
    assert not w.end.any() and not w.collect.any() and w.average[5:].all()


# --------------------------------------------------------------------------- step size
def test_step_follows_the_mean_acceptance():
    s = ens.init(8, 2, dense=False)
    flags = (False, False, False, False)
    up = ens.update(s, jnp.zeros((8, 2)), jnp.full(8, 0.9), *flags)
    assert float(up.log_step - s.log_step) == pytest.approx(ens.STEP_GAIN * (0.9 - 0.574))
    down = ens.update(s, jnp.zeros((8, 2)), jnp.full(8, 0.1), *flags)
    assert float(down.log_step) < float(s.log_step)
    nan = ens.update(s, jnp.zeros((8, 2)), jnp.full(8, jnp.nan), *flags)
    assert np.isfinite(float(nan.log_step))  # a non-finite acceptance counts as 0


def test_final_step_is_the_mean_log_step_of_the_terminal_buffer():
    s = ens.init(4, 1, dense=False)
    for a, avg in [(0.9, False), (0.574, True), (0.574, True)]:
        s = ens.update(s, jnp.zeros((4, 1)), jnp.full(4, a), False, False, avg, False)
    assert float(ens.final_step_size(s)) == pytest.approx(0.1 * np.exp(0.9 - 0.574), rel=1e-5)


# ---------------------------------------------------------------------- preconditioner
def _sums(y, dense):
    y = jnp.asarray(y, jnp.float32)
    s2 = y.T @ y if dense else jnp.sum(y * y, axis=0)
    return jnp.sum(y, axis=0), s2, jnp.float32(y.shape[0])


def test_dense_factor_whitens_a_rotated_ill_conditioned_gaussian():
    """Two windows: the second estimate, made in the first one's whitened coordinates, leaves
    whitened eigenvalues within the Marchenko-Pastur edges (1 +- sqrt(d / n))^2 (+ margin)."""
    d, n = 20, 4000
    cov = _rotated_cov(d, 1e4, 0)
    rng = np.random.default_rng(1)
    chol_true = np.linalg.cholesky(cov)
    factor = jnp.eye(d)
    for _ in range(2):
        x = rng.normal(size=(n, d)) @ chol_true.T
        y = ens.to_whitened(factor, jnp.asarray(x, jnp.float32))
        factor = ens.estimate_factor(*_sums(y, True), n, factor)
    lf = np.asarray(factor, np.float64)
    inv = np.linalg.inv(lf)
    eig = np.linalg.eigvalsh(inv @ cov @ inv.T)
    edge = np.sqrt(d / n)
    assert eig.min() > (1 - edge) ** 2 - 0.1 and eig.max() < (1 + edge) ** 2 + 0.1


def test_diagonal_factor_is_the_sds():
    rng = np.random.default_rng(2)
    sd = np.array([0.01, 1.0, 300.0])
    x = rng.normal(size=(20000, 3)) * sd
    factor = ens.estimate_factor(*_sums(x, False), 20000, jnp.ones(3))
    # MC error of an sd from 20000 draws: 0.5%; 5 sigma
    np.testing.assert_allclose(np.asarray(factor), sd, rtol=0.025)


def test_factor_falls_back_when_the_chains_did_not_move():
    old = jnp.array([[2.0, 0.0], [1.0, 1.0]])
    y = jnp.ones((16, 2))  # zero variance
    assert np.array_equal(ens.estimate_factor(*_sums(y, True), 16, old), old)
    assert np.array_equal(ens.estimate_factor(*_sums(y, False), 16, jnp.ones(2)), jnp.ones(2))


def test_whitened_energy_is_the_preconditioned_move():
    """MALA on E(L y) with identity is MALA on E with M = L L^T: same accept ratio, same law."""
    a = jnp.array([[2.0, 0.3], [0.3, 0.5]])
    fn = lambda x: 0.5 * x @ a @ x  # noqa: E731
    lf = jnp.linalg.cholesky(jnp.linalg.inv(a))
    fy = ens.whitened_energy(fn, lf)
    y = jnp.array([0.3, -1.2])
    np.testing.assert_allclose(fy(y), fn(lf @ y), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(fy)(y), y, rtol=1e-5, atol=1e-6)  # identity in y
    x = jnp.array([[1.0, 2.0], [-3.0, 0.5]])
    np.testing.assert_allclose(ens.to_whitened(lf, ens.from_whitened(lf, x)), x, rtol=1e-5)


# --------------------------------------------------------------------------- stuck chains
def test_stuck_mask_is_relative_to_the_ensemble():
    s = ens.init(5, 1, dense=False)
    s = s._replace(acc=jnp.array([6.0, 5.0, 0.2, 6.0, 0.0]), n_acc=jnp.float32(10.0))
    assert np.asarray(ens.stuck_mask(s)).tolist() == [False, False, True, False, True]
    low = s._replace(acc=jnp.full(5, 0.1))  # everyone low: a step problem, not stuck chains
    assert not np.asarray(ens.stuck_mask(low)).any()


def test_curvature_is_the_top_eigenvalue_at_each_chain():
    """Secant power iteration: the largest |eigenvalue| of the Hessian at each chain, a
    quadratic with eigenvalues 1, 4, 25 (rotated) and a quartic whose curvature grows outward."""
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    a = jnp.asarray((q * np.array([1.0, 4.0, 25.0])) @ q.T, jnp.float32)
    grad = jax.vmap(jax.grad(lambda y: 0.5 * y @ a @ y))
    y = jax.random.normal(jax.random.key(1), (8, 3))
    lam = ens.curvature(grad, y, grad(y), jax.random.key(2))
    np.testing.assert_allclose(lam, 25.0, rtol=1e-2)
    quartic = jax.vmap(jax.grad(lambda y: jnp.sum(y**4)))  # curvature 12 y^2
    y = jnp.array([[1.0], [2.0], [3.0]])
    lam = ens.curvature(quartic, y, quartic(y), jax.random.key(3))
    np.testing.assert_allclose(lam, [12.0, 48.0, 108.0], rtol=2e-2)


def test_ula_step_is_stable_at_the_stiffest_chain():
    for lam in (0.5, 1.5, 2.0, 40.0, 350.0):
        h = float(ens.ula_step_size(jnp.float32(lam), jnp.float32(0.3)))
        assert h * lam <= ens.ULA_STABILITY * (1 + 1e-6) < 2  # stable on a Gaussian: h lam < 2
        assert h <= ens.ULA_MAX_STEP
    h = float(ens.ula_step_size(jnp.float32(40.0), 0.3))  # lam rounded up by <= 2^(1/16)
    assert 1.5 / 40 / 2 ** (1 / 16) <= h <= 1.5 / 40
    assert float(ens.ula_step_size(jnp.float32(np.nan), jnp.float32(0.3))) == pytest.approx(0.3)
    assert float(ens.ula_step_size(jnp.float32(-np.inf), jnp.float32(0.3))) == pytest.approx(0.3)


def test_cap_drift_bounds_the_drift_and_keeps_bad_gradients_bad():
    h, t, d = 0.25, 1.0, 2
    g = jnp.array([[0.3, -0.4], [300.0, -400.0], [np.nan, 1.0], [np.inf, 1.0], [0.0, 0.0]])
    c = np.asarray(ens.cap_drift(g, h, t))
    np.testing.assert_array_equal(c[0], np.asarray(g[0]))  # the bulk: untouched
    np.testing.assert_array_equal(c[4], [0.0, 0.0])
    cap = ens.ULA_DRIFT_CAP * np.sqrt(2 * h * t * d)
    assert h * np.linalg.norm(c[1]) == pytest.approx(cap, rel=1e-5)
    np.testing.assert_allclose(c[1] / np.linalg.norm(c[1]), [0.6, -0.8], rtol=1e-6)
    assert not np.isfinite(c[2]).all() and not np.isfinite(c[3]).all()


def test_cap_drift_keeps_an_unstable_step_bounded():
    """ULA (Leimkuhler-Matthews) at h = 1 on a Gaussian of curvature 50 (h lam = 50, far past
    the stability limit 2), as a chain meets a region stiffer than its step: without the cap the
    overshoot grows geometrically (|x| > 1e30 in 30 steps); with it the chains stay within a
    few drift lengths and keep moving."""
    lam, h, n, d = 50.0, 1.0, 256, 2
    grad = lambda x: lam * x  # noqa: E731
    keys = jax.random.split(jax.random.key(0), 31)

    def run(cap):
        x = jnp.ones((n, d))
        prev = jax.random.normal(keys[0], (n, d))
        for k in keys[1:]:
            z = jax.random.normal(k, (n, d))
            g = ens.cap_drift(grad(x), h, 1.0) if cap else grad(x)
            x = x - h * g + jnp.sqrt(2 * h) * ens.lm_noise(prev, z)
            prev = z
        return np.asarray(x)

    assert not (np.abs(run(False)) < 1e30).all()
    x = run(True)
    assert np.isfinite(x).all()
    assert np.abs(x).max() < 10 * ens.ULA_DRIFT_CAP * np.sqrt(2 * h * d)


# ------------------------------------------------------------------------------- runner
def test_runner_learns_a_rotated_gaussian():
    """d = 10, condition 1e3: the final L whitens the target (eigenvalues near 1) and the
    adapted step is near MALA's optimum 1.36 d^-1/3 = 0.63 in whitened units."""
    d = 10
    cov = _rotated_cov(d, 1e3, 3)
    prec = jnp.asarray(np.linalg.inv(cov), jnp.float32)
    out = runner.run(
        lambda x: 0.5 * x @ prec @ x,
        jax.random.key(0),
        jax.random.normal(jax.random.key(1), (512, d)),
        n_warmup=300,
        n_steps=100,
    )
    lf = np.asarray(out["factor"], np.float64)
    inv = np.linalg.inv(lf)
    eig = np.linalg.eigvalsh(inv @ cov @ inv.T)
    assert 0.5 < eig.min() and eig.max() < 2.0
    assert 0.3 < float(out["step_size"]) < 1.2
    assert abs(float(np.mean(out["acceptance"])) - 0.574) < 0.1


def test_runner_ula_is_exact_on_a_gaussian_at_a_large_step():
    """ULA (Leimkuhler-Matthews) on a rotated 2-D Gaussian (sds 3 and 0.5): the step is set by
    the curvature (~1 in whitened units, 1.5 / lam), far above Euler-Maruyama's bias-bounded
    0.1, and the stationary variances are exact: Euler-Maruyama at this step would inflate them
    by 1 / (1 - h / 2), about 2x. Variances over 2000 chains x 300 recorded steps (~600 000
    nearly independent draws: MC error ~0.2%)."""
    rot = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
    cov = (rot * np.array([9.0, 0.25])) @ rot.T
    prec = jnp.asarray(np.linalg.inv(cov), jnp.float32)
    out = runner.run(
        lambda x: 0.5 * x @ prec @ x,
        jax.random.key(2),
        jax.random.normal(jax.random.key(3), (2000, 2)),
        method="ula",
        n_warmup=300,
        n_steps=300,
        thin=1,
    )
    h = float(out["step_size"])
    assert 0.5 < h <= ens.ULA_MAX_STEP
    traj = np.asarray(out["trajectory"], np.float64).reshape(-1, 2)
    np.testing.assert_allclose(np.cov(traj.T), cov, rtol=0.03, atol=0.03 * 0.25)
    assert np.all(np.isfinite(np.asarray(out["positions"])))


def test_runner_ula_step_follows_the_stiffest_chain():
    """On the banana (quartic arms) the stable step is set where the arms are stiffest: h times
    the largest curvature over the final states stays below 2 and no chain diverges."""
    b = 0.03
    fn = lambda x: 0.5 * (x[0] / 10) ** 2 + 0.5 * (x[1] - b * (x[0] ** 2 - 100)) ** 2  # noqa: E731
    out = runner.run(
        fn,
        jax.random.key(4),
        jax.random.normal(jax.random.key(5), (512, 2)),
        method="ula",
        n_warmup=400,
        n_steps=400,
    )
    h = float(out["step_size"])
    assert h < 0.02  # MALA's step here is ~0.05 in whitened units; the bulk alone allows ~1
    factor = out["factor"]
    y = ens.to_whitened(factor, out["positions"])
    grad = jax.vmap(jax.grad(ens.whitened_energy(fn, factor)))
    lam = ens.curvature(grad, y, grad(y), jax.random.key(6))
    assert h * float(jnp.max(lam)) < 2.0
    assert not np.asarray(out["diverged"]).any()
    assert np.all(np.isfinite(np.asarray(out["positions"])))


def test_runner_restarts_stuck_chains_in_warmup():
    """Chains started 40 sds out in a narrow quartic well barely move at the ensemble's step:
    they are counted and restarted at healthy chains' positions during warm-up."""

    def fn(x):
        return 0.5 * jnp.sum(x**2) + 0.25 * jnp.sum(x**4)

    x0 = jnp.concatenate([jnp.zeros((120, 2)), jnp.full((8, 2), 40.0)])
    out = runner.run(fn, jax.random.key(4), x0, n_warmup=200, n_steps=50)
    assert int(out["n_restarted"]) >= 8
    assert float(np.max(np.abs(np.asarray(out["positions"])))) < 6.0
    kept = runner.run(fn, jax.random.key(4), x0, n_warmup=200, n_steps=50, restart_stuck=False)
    assert int(kept["n_restarted"]) == 0


def test_runner_checks_its_arguments():
    with pytest.raises(ValueError, match="x0 must have shape"):
        runner.run(lambda x: x @ x, jax.random.key(0), jnp.zeros(3))
    with pytest.raises(ValueError, match="method"):
        runner.run(lambda x: x @ x, jax.random.key(0), jnp.zeros((2, 3)), method="hmc")


# ------------------------------------------------------------------- draws and progress
def test_blocked_draws_are_the_per_step_draws(monkeypatch):
    """From d = 3 the draws of a block of steps are made at once (`scan_blocked`); they are the
    draws made inside each step, so the run agrees with the unblocked one to rounding (the
    programs fuse differently)."""
    fn = lambda x: 0.5 * jnp.sum(x**2 * jnp.arange(1.0, 6.0))  # noqa: E731
    x0 = jax.random.normal(jax.random.key(0), (48, 5))
    kw = dict(n_warmup=60, n_steps=45, thin=9)
    for method in ("mala", "ula"):
        blocked = runner.run(fn, jax.random.key(1), x0, method=method, **kw)
        monkeypatch.setattr(runner, "MALA_DRAW_BLOCK_MIN_D", 10**6)  # a draw inside each step
        runner._run.clear_cache()
        single = runner.run(fn, jax.random.key(1), x0, method=method, **kw)
        monkeypatch.undo()
        runner._run.clear_cache()
        for k in ("positions", "trajectory"):
            np.testing.assert_allclose(blocked[k], single[k], rtol=1e-4, atol=1e-5)


def test_plain_path_reports_progress(monkeypatch, capsys):
    """The ensemble path feeds a progress bar over warm-up and sampling (`langevin._progress`),
    and the bar does not change the results."""
    import langevin
    from langevin import _progress

    seen = []
    original = _progress._progress_update

    def record(run_id, step):
        seen.append(int(np.max(np.asarray(step))))
        original(run_id, step)

    monkeypatch.setattr(_progress, "_progress_update", record)
    kw = dict(n_chains=32, n_steps=130, n_warmup=70, init=jnp.zeros(3))
    fn = lambda x: 0.5 * x @ x  # noqa: E731
    with_bar = langevin.sample(fn, jax.random.key(4), progress=True, **kw)
    assert "langevin" in capsys.readouterr().err
    assert seen and max(seen) == 200  # n_warmup + n_steps, every PROGRESS_EVERY steps
    without = langevin.sample(fn, jax.random.key(4), progress=False, **kw)
    np.testing.assert_array_equal(with_bar.positions, without.positions)


@pytest.mark.parametrize("kw", [dict(checkpoint="ckpt"), dict(trace="tr", thin=5)])
def test_plain_path_refuses_checkpoint_and_trace_clearly(tmp_path, kw):
    """Not implemented on the ensemble path: a clear error that says what runs them, and no
    folder is created."""
    import langevin

    kw = {k: (str(tmp_path / v) if k in ("checkpoint", "trace") else v) for k, v in kw.items()}
    with pytest.raises(ValueError, match="ensemble-adaptation path.*schedule=None"):
        langevin.sample(lambda x: 0.5 * x @ x, jax.random.key(0), 16, init=jnp.zeros(2), **kw)
    assert list(tmp_path.iterdir()) == []
