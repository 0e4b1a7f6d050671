"""`langevin.sample`: run chains on a target and return their final states (a `SampleResult`).

The pieces, each in its own module: the options checked once (`_options.Options`), resolved on
the target into the program's inputs (`_prepare.prepare`), the compiled program (`_runner`), built
from the kernels of `_kernels` and the adaptation of `_adaptation`, the progress bar
(`_progress`) and the result type (`_result`).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from . import _plain, _progress, _resumable, _runner
from ._options import Options
from ._prepare import Prepared, prepare, total_steps
from ._result import SampleResult

__all__ = ["SampleResult", "sample"]


def sample(
    target,
    key,
    n_chains,
    n_steps=None,
    init=None,
    method="ula",
    step_size=None,
    temperature=1.0,
    schedule="auto",
    *,
    bounds="auto",
    fixed=None,
    objective=None,
    weight=1.0,
    thin=None,
    n_warmup=None,
    progress=None,
    devices=None,
    checkpoint=None,
    checkpoint_every=300.0,
    trace=None,
) -> SampleResult:
    """Run ``n_chains`` Langevin chains on ``target`` and return their final states.

    Samples ``p(x) ∝ exp(-E_total(x) / T)`` with ``E_total = E + weight * objective``, using the
    preconditioned move ``x' = x - h M ∇E + sqrt(2 h T M) z`` with ``M = diag(scale^2)`` (the
    target's ``scale``, its box size, or 1), exactly (``mala``) or up to O(h) (``ula``).

    Args:
        target: an `energy.EnergyMap`, a surrogate, or any jax function ``(d,) -> scalar``.
            Optional attributes are used when present: ``ndim``, ``lo``/``hi``, ``scale``,
            ``spacing``, ``noise_levels`` + ``energy_at(x, sigma)``.
        key: a JAX key (``jax.random.key(seed)``); the same key gives the same result.
        n_chains: number of chains.
        n_steps: steps of the sampling phase after annealing (None: 1000).
        init: ``(n_chains, d)`` or ``(d,)`` starting states, or ``(K, d)`` with K dividing
            n_chains: K superchains (chain i starts at ``init[i // (n_chains / K)]``; what
            ``res.nested_rhat()`` needs; give K over-dispersed points); None: uniform in the
            target's box (or ``bounds``), else ``N(0, scale^2)`` (superchains of 16 points on
            the ensemble path, for a plain function with ``ndim``).
        method: ``"ula"`` (unadjusted, gradient only) or ``"mala"`` (Metropolis-adjusted).
            On a plain function with ``schedule="auto"``, ULA samples by the
            Leimkuhler-Matthews scheme (exact on Gaussians, O(h^2) bias) at a step stable at
            the stiffest chain, its drift capped per chain (docs/langevin.md).
        step_size: ``h`` in relative units (physical when the target has no scale/box);
            None: ``0.25 (spacing/scale)^2`` on a grid, else adapted by MALA warm-up.
        temperature: ``T >= 0`` (0: gradient descent, i.e. optimisation).
        schedule: ``"auto"``: the noise pyramid when the target has one (maps); on a plain
            function (no pyramid, grid or box; T > 0; no ``step_size``) no tempering but a
            warm-up adapted over the ensemble (step size and a dense or diagonal
            preconditioner, docs/langevin.md), then untempered sampling; other targets
            (T = 0, a box) a geometric temperature schedule from 10 T to T. None:
            fixed-temperature chains; or `NoiseAnnealing` / a temperature schedule
            (`geometric`, `linear`, `cosine`).
        bounds: ``"auto"`` (the target's ``lo``/``hi``: chains reflect at the faces), None
            (no box), or ``[(lo, hi), ...]``.
        fixed: variables held fixed: ``{axis or name: value}`` or a ``(d,)`` vector with NaN
            for free axes; the others are sampled conditionally on them.
        objective: a function ``(d,) -> scalar`` added to the energy with ``weight``.
        weight: ``lambda`` in ``E + lambda * objective``.
        thin: record the state and total energy every ``thin`` sampling steps (diagnostics).
        n_warmup: adaptation steps where a step size is adapted (default 200; on the
            ensemble path of a plain function 1000, ended after a window once the ensemble
            is stationary, or extended by windows up to 3000 while it is not:
            ``res.n_warmup`` says how many ran; a given value runs in full).
        progress: a progress bar (None: on a terminal, never under ``CI``).
        devices: devices to shard the chains over (None: all of ``jax.devices()``); results do
            not depend on the number of devices. Under ``jax.distributed`` (every process
            making the same call) that is all hosts' devices, and every process gets all the
            results (docs/scale.md).
        checkpoint: a folder where the run's state (chains, key, position) is saved at chunk
            boundaries of the sampling phase (after the annealing, then every
            ``checkpoint_every`` seconds); the same call after a crash or ``kill -9`` resumes
            from it and ends with exactly the states of an uninterrupted run with the same
            ``checkpoint``. A folder of another configuration is refused; the folder is removed
            at the end if this call created it. Not under ``jax.distributed`` yet.
        checkpoint_every: seconds between saves (0: at every chunk boundary).
        trace: with ``thin``, a folder where the recorded draws are written chunk by chunk
            (``trajectory.npy``, ``energy_trace.npy``) instead of being held in memory;
            ``res.trajectory`` is then a memory map of the file. Needed with ``checkpoint``.

    Returns:
        A `SampleResult` (positions, energies, acceptance, diverged, trajectory, ...).

    Example:
        >>> import jax, jax.numpy as jnp, langevin
        >>> res = langevin.sample(lambda x: 0.5 * x @ x, jax.random.key(0), n_chains=256,
        ...                       init=jnp.zeros(2), progress=False)
        >>> res.positions.shape
        (256, 2)

    References:
        Song & Ermon (2019), Generative Modeling by Estimating Gradients of the Data
        Distribution, Algorithm 1 (annealed Langevin dynamics).
    """
    opts = Options(
        n_chains,
        n_steps,
        init,
        method,
        step_size,
        temperature,
        schedule,
        bounds=bounds,
        fixed=fixed,
        objective=objective,
        weight=weight,
        thin=thin,
        n_warmup=n_warmup,
        progress=progress,
        devices=devices,
    )
    if trace is not None and opts.thin is None:
        raise ValueError(f"trace={trace!r} records draws: it needs thin=k")
    try:
        every = float(checkpoint_every)
    except (TypeError, ValueError):
        every = float("nan")
    if not (every >= 0.0 and every < float("inf")):
        raise ValueError(
            f"checkpoint_every must be a number of seconds >= 0, got {checkpoint_every!r}"
        )
    plain = _plain.applies(target, schedule, step_size, temperature, bounds)
    if plain and (checkpoint is not None or trace is not None):
        raise ValueError(
            "checkpoint= and trace= are not available yet on the ensemble-adaptation path of a "
            "plain function (schedule='auto'); pass schedule=None with a step_size, or an "
            "explicit schedule, to run the chunked runner"
        )
    if plain:  # no tempering: prepare checks everything, the ensemble path runs
        opts = dataclasses.replace(opts, schedule=None)
    prep = prepare(target, key, opts)
    if plain:
        return plain_result(_plain.run(prep, n_warmup), prep)
    if checkpoint is None and trace is None:
        out = run_with_progress(lambda: _runner.compiled(prep.p, prep.cfg), prep)
    else:
        out = run_with_progress(
            lambda: _resumable.run(prep, checkpoint=checkpoint, every=every, trace=trace), prep
        )
    return result(out, prep)


def plain_result(r: _plain.PlainRun, prep: Prepared) -> SampleResult:
    """Wrap the ensemble path's output: `result` plus what only that path measures."""
    out = r.out
    return dataclasses.replace(
        result(out, prep),
        n_anneal=0,
        n_warmup=r.n_warmup,
        schedule=r.schedule,
        n_stuck=int(out["n_stuck"]),
        n_restarted=int(out["n_restarted"]),
        n_superchains=r.n_superchains,
        preconditioner=out["factor"],
        wall_time=r.wall_time,
    )


def run_with_progress(fn, prep: Prepared):
    """Call ``fn()`` with a progress bar over every step of the run (if the run asks for one)."""

    def set_run_id(i):
        prep.p["run_id"] = jnp.int32(i)

    return _progress.run_with_progress(
        fn, total_steps(prep.cfg), prep.cfg.progress_every, set_run_id
    )


def result(out: dict, prep: Prepared) -> SampleResult:
    """Trim padded chains and wrap the program's output."""
    n_real = prep.cfg.n_real

    def cut(a, axis=0):
        if a is None:
            return None
        return a[:n_real] if axis == 0 else a[:, :n_real]

    return SampleResult(
        positions=cut(out["positions"]),
        energies=cut(out["energies"]),
        total_energies=cut(out["total"]),
        objective=cut(out["objective"]),
        acceptance=cut(out["acceptance"]),
        diverged=cut(out["diverged"]),
        step_size=out["step_size"],
        trajectory=cut(out["trajectory"], 1),
        energy_trace=cut(out["energy_trace"], 1),
        n_steps=prep.cfg.n_steps,
        n_anneal=prep.cfg.n_anneal,
        n_warmup=prep.n_warmup,
        method=prep.cfg.method,
        schedule=prep.schedule,
        names=prep.info.names,
        n_superchains=prep.n_superchains,
    )


def sample_in_chunks(target, key, chunk_steps: int, on_chunk=None, **kwargs) -> SampleResult:
    """`sample` with its sampling steps run in chunks of ``chunk_steps`` (same results).

    Control returns to Python between chunks (``on_chunk(steps_done)``): the command line uses
    it so that an interrupt lands on a chunk boundary, the point a resumable run restarts from.
    """
    opts = Options(**kwargs)
    if _plain.applies(target, opts.schedule, opts.step_size, opts.temperature, opts.bounds):
        # the ensemble path is one program (its warm-up adapts across chains): no chunks
        prep = prepare(target, key, dataclasses.replace(opts, schedule=None))
        res = plain_result(_plain.run(prep, opts.n_warmup), prep)
        if on_chunk is not None:
            on_chunk(prep.cfg.n_steps)
        return res
    prep = prepare(target, key, opts)
    out = run_with_progress(
        lambda: _runner.run_in_chunks(prep.p, prep.cfg, chunk_steps, on_chunk), prep
    )
    return result(out, prep)
