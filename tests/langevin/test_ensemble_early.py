"""Warm-up that ends when the ensemble has converged (`langevin._ensemble.converged`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import langevin
from langevin import _ensemble as ens
from langevin import _ensemble_run as runner
from langevin import _plain


def _sums(y, dense):
    y = jnp.asarray(y, jnp.float32)
    s2 = y.T @ y if dense else jnp.sum(y * y, axis=0)
    return jnp.sum(y, axis=0), s2, jnp.float32(y.shape[0])


@pytest.mark.parametrize("dense", [True, False])
def test_converged_is_noise_against_a_moved_or_stretched_ensemble(dense):
    n, d = 2000, 6
    y = np.random.default_rng(0).normal(size=(n, d))
    old = jnp.eye(d) if dense else jnp.ones(d)
    zero = jnp.zeros(d)
    assert bool(ens.converged(*_sums(y, dense), n, old, zero))
    # the mean moved by 0.15 sd in every coordinate (noise: 0.03)
    assert not bool(ens.converged(*_sums(y, dense), n, old, jnp.full(d, 0.15)))
    # one direction 20% wider: the preconditioner still has to change
    assert not bool(ens.converged(*_sums(y * np.r_[1.2, np.ones(d - 1)], dense), n, old, zero))
    # the previous mean is compared in the current whitened coordinates (x = L y)
    assert bool(ens.converged(*_sums(y, dense), n, 3.0 * old, jnp.full(d, 0.03)))


def test_converged_from_two_windows_after_the_first():
    """The first window compares with the identity it started from: it never counts; then
    EARLY_STOP_WINDOWS stationary windows in a row end the warm-up."""
    n, d = 4000, 2
    y = jax.random.normal(jax.random.key(0), (n, d))
    w = ens.windows(1000)
    s = ens.init(n, d, dense=True)
    update = jax.jit(ens.update)  # eager, every call would compile its lax.conds again
    ends = []
    for t in range(600):
        flags = (w.collect[t], w.end[t], w.average[t], w.start[t])
        s = update(s, y, jnp.full(n, 0.574), *(jnp.asarray(f) for f in flags))
        if w.end[t]:
            ends.append(bool(s.converged))
    assert ens.EARLY_STOP_WINDOWS == 2
    assert ends == [False, False, True]  # windows ending at 199, 299, 499


def _gauss(sd):
    return lambda x: 0.5 * jnp.sum((x / sd) ** 2)


def test_warmup_stops_early_on_an_easy_gaussian_and_not_on_a_hard_start():
    sd = jnp.array([0.1, 1.0, 10.0])
    kw = dict(n_warmup=400, n_steps=20, early_stop=True)  # windows end at 79 119 199 359
    fn = _gauss(sd)  # one function object: one compilation for both runs
    easy = runner.run(
        fn, jax.random.key(0), jax.random.normal(jax.random.key(1), (256, 3)) * sd, **kw
    )
    assert int(easy["n_warmup"]) < 400
    np.testing.assert_allclose(np.std(np.asarray(easy["positions"]), 0) / sd, 1.0, atol=0.2)
    # all chains from one point 100 sds out in the widest direction: the ensemble comes in
    # and spreads over the warm-up's whole length
    hard = runner.run(fn, jax.random.key(0), jnp.full((256, 3), 1000.0), **kw)
    assert int(hard["n_warmup"]) == 400


def test_early_stop_jumps_to_the_terminal_buffer():
    """After the jump the step is still averaged over the whole terminal buffer: the adapted
    step is MALA's optimum on a standard Gaussian, and n_warmup is a window end + 100."""
    d = 5
    out = runner.run(
        _gauss(jnp.ones(d)),
        jax.random.key(2),
        jax.random.normal(jax.random.key(3), (1000, d)),
        n_warmup=400,
        n_steps=50,
        early_stop=True,
    )
    ends = np.flatnonzero(ens.windows(400).end)
    assert int(out["n_warmup"]) in [e + 1 + 40 for e in ends[2:-1]]  # the buffer: 10%
    assert abs(float(np.mean(out["acceptance"])) - ens.TARGET_ACCEPTANCE) < 0.05


def test_sample_default_warmup_ends_early_and_says_so():
    """langevin.sample on a plain function: the default warm-up is a cap; a given n_warmup is
    run in full."""
    sd = jnp.array([0.5, 2.0])
    x0 = jax.random.normal(jax.random.key(5), (256, 2)) * sd
    res = langevin.sample(
        _gauss(sd), jax.random.key(4), n_chains=256, init=x0, n_steps=10, progress=False
    )
    assert res.n_warmup < _plain.PLAIN_WARMUP
    cap = ens.windows(_plain.PLAIN_WARMUP, _plain.PLAIN_EXTEND).end.size
    assert cap == 3000
    assert f"{res.n_warmup} warm-up steps (converged; cap {cap})" in res.schedule
    given = langevin.sample(
        _gauss(sd),
        jax.random.key(4),
        n_chains=256,
        init=x0,
        n_steps=10,
        n_warmup=300,
        progress=False,
    )
    assert given.n_warmup == 300 and "converged" not in given.schedule


def test_extension_windows_run_only_while_the_ensemble_still_changes():
    """n_extend: a warm-up that converged within its n_warmup steps is the same run, bit for
    bit; one that did not goes on in more slow windows (n_warmup beyond the base length, up to
    the cap) and ends right."""
    sd = jnp.array([0.1, 1.0, 10.0])
    fn = _gauss(sd)
    x0 = jax.random.normal(jax.random.key(1), (256, 3)) * sd
    kw = dict(n_warmup=400, n_steps=20, early_stop=True)
    plain = runner.run(fn, jax.random.key(0), x0, **kw)
    extended = runner.run(fn, jax.random.key(0), x0, n_extend=3, **kw)
    assert int(plain["n_warmup"]) < 400
    assert int(extended["n_warmup"]) == int(plain["n_warmup"])
    np.testing.assert_array_equal(extended["positions"], plain["positions"])
    # from one point 100 sds out: the base schedule (400) is not enough to converge
    far = jnp.full((256, 3), 1000.0)
    cap = runner.warmup_length(runner.EnsembleConfig("mala", 400, 20, 0, True, True, n_extend=3))
    assert cap == 400 + 3 * 160  # windows end 79 119 199 359, then 3 x 160
    hard = runner.run(fn, jax.random.key(0), far, n_extend=3, **kw)
    assert 400 < int(hard["n_warmup"]) <= cap
    np.testing.assert_allclose(np.std(np.asarray(hard["positions"]), 0) / sd, 1.0, atol=0.2)
