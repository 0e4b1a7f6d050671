"""The runner's phases as data (`langevin._phases.plan`): what a run does, step by step."""

import jax
import jax.numpy as jnp
import numpy as np

import langevin
from langevin import _phases, _prepare
from langevin._options import Options


def _plan(target, part="all", n_chunked=0, **kw):
    prep = _prepare.prepare(target, jax.random.key(0), Options(**kw, progress=False))
    return prep.cfg, _phases.plan(prep.p, prep.cfg, part, n_chunked)


def _steps(phases):
    return [(ph.name, ph.kernel, ph.start, ph.length, ph.record_every) for ph in phases]


def test_mala_on_a_map_anneals_adapts_and_samples_in_one_phase_then_records(gauss_map):
    cfg, phases = _plan(gauss_map, n_chains=8, n_steps=40, method="mala", n_warmup=6, thin=10)
    n_an = cfg.n_anneal
    assert n_an > 0 and cfg.n_post == 6 and cfg.n_pre == 0
    assert _steps(phases) == [
        ("anneal+adapt+sample", "mala", 0, n_an + 6, 0),
        ("record", "mala", n_an + 6, 40, 10),
    ]
    main = phases[0]
    adapt = main.flag("adapt")
    assert adapt.sum() == 6 and adapt[n_an : n_an + 6].all()
    assert np.flatnonzero(main.flag("end")).tolist() == [n_an + 5]
    assert main.flag("noisy")[:n_an].all() and not main.flag("noisy")[n_an:].any()
    assert main.level.shape == (n_an,) and main.fresh
    assert main.flag("refresh")[0] == False  # noqa: E712 (computed on entry)
    assert main.flag("refresh")[n_an]  # the target's energy after the last level
    assert _phases.constant(phases[1].flag("count")) is True


def test_ula_on_a_function_adapts_in_a_phase_of_its_own_then_anneals():
    sched = langevin.geometric(10.0, 1.0, 30)
    _, phases = _plan(
        lambda x: 0.5 * x @ x,
        n_chains=8,
        n_steps=20,
        init=jnp.zeros(2),
        n_warmup=12,
        schedule=sched,
    )
    assert _steps(phases) == [("adapt", "mala", 0, 12, 0), ("anneal+sample", "ula", 12, 50, 0)]
    adapt, main = phases
    assert adapt.stream == _phases.STREAM_ADAPT_BEFORE and adapt.adapts_to_end
    assert float(adapt.adapted_step_scale) == np.float32(_phases.ULA_FRACTION)
    assert main.stream == _phases.STREAM_STEPS and main.temperature.shape == (30,)
    assert _phases.constant(main.flag("noisy")) is False


def test_a_cut_run_plans_its_head_and_chunks(gauss_map):
    cfg, head = _plan(gauss_map, "head", 30, n_chains=8, n_steps=40)
    assert _steps(head) == [("anneal+sample", "ula", 0, cfg.n_anneal + 10, 0)]
    chunk = _phases.plan({}, cfg, "chunk", 30, start=cfg.n_anneal + 10, length=15)
    assert _steps(chunk) == [("chunk", "ula", cfg.n_anneal + 10, 15, 0)]
    assert _phases.plan({}, cfg, "tail", 30) == []
