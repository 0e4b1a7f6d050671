"""The phases of a run, as data: a kernel and per-step tables (what `_runner` executes).

A run of `langevin.sample` is a short list of `Phase` objects, built by `plan` from the run's
static `Config` (and, for its tables, the prepared arrays ``p``). The runner executes each with
one blocked ``lax.scan`` (`langevin._draw_blocks.scan_blocked`) of its kernel's step; nothing
else decides what a step does. For a map sampled by MALA with noise annealing, for instance:

    [Phase("anneal+adapt+sample", "mala", start=0, length=n_anneal + n_post + n_free,
           level=sigma per annealing step, step_size=h per annealing step,
           flags: noisy / refresh on annealing rows, adapt on the n_post steps after them,
           end on the last of those, count on the sampling steps),
     Phase("record", "mala", start=..., length=n_steps - n_free, record_every=thin)]

Tables cover the first steps of a phase; the steps after them use the target (``level``), the
run's current step (``step_size``) and the run's temperature (``temperature``). Flags are host
(NumPy) booleans per step; a flag that is the same at every step is resolved when tracing
(`constant`), so a phase without annealing carries no ``cond``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ._prepare import Config

__all__ = ["MALA_FLAGS", "Phase", "constant", "plan"]

Array = jax.Array

# Without a grid, ULA uses 1/50 of the adapted MALA step: on a Gaussian of width w the MALA step
# is ~w^2, so ULA's stationary variance is inflated by ~1 / (1 - 0.01), 1% (0.5% on the std).
ULA_FRACTION = 0.02
# At T = 0 ULA is gradient descent: a quarter of the MALA step keeps it stable on curvature up to
# ~8 / h_mala, with no sampling bias to worry about.
ULA_FRACTION_COLD = 0.25

# MALA's per-step flags: ``noisy`` (the level's energy, else the target), ``refresh`` (the energy
# changed: recompute ``E, ∇E`` at the current states), ``adapt`` (a per-chain dual-averaging
# step), ``end`` (last adaptation step: the step becomes the median over chains), ``own`` (use
# the adapted / current step, not the table's) and ``count`` (add to the acceptance). ULA reads
# ``noisy`` only.
MALA_FLAGS = ("noisy", "refresh", "adapt", "end", "own", "count")

# Random streams: the draws of a phase are those of ``fold_in(key, stream)`` at each global step.
STREAM_ADAPT_BEFORE = 1
STREAM_STEPS = 2


@dataclasses.dataclass(frozen=True, eq=False)
class Phase:
    """One phase of a run: ``length`` steps of ``kernel`` from global step ``start``.

    Attributes:
        name: what a reader calls it ("adapt", "anneal", "anneal+sample", "record", ...).
        kernel: "ula" or "mala" (the moves of `langevin._kernels`).
        start: global index of the first step (an int, or a traced int for a chunk).
        length: number of steps.
        stream: the draws come from ``fold_in(key, stream)`` and the global step index.
        level: noise level of the first steps (a pyramid level), or None (the target only).
        step_size: step of the first steps, or None (the run's current step throughout).
        temperature: temperature of the first steps, or None (the run's temperature).
        flags: per-step host booleans (`MALA_FLAGS`; ULA reads ``noisy``), each of ``length``.
        adapt_iter: dual-averaging iteration of each step (0 outside adaptation), or None.
        fresh: MALA: energies and gradients computed at entry (the phase's first energy).
        adapts_to_end: after the phase, the run's step is the median over chains of the
            adapted steps (times ``adapted_step_scale`` when given).
        adapted_step_scale: None, or that factor.
        record_every: 0, or ``thin``: the positions and energies are recorded every so many steps.
        in_loop: the phase runs inside another loop (a recorded block of a ``record`` phase).
    """

    name: str
    kernel: str
    start: int | Array
    length: int
    stream: int = STREAM_STEPS
    level: Array | None = None
    step_size: Array | None = None
    temperature: Array | None = None
    flags: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    adapt_iter: np.ndarray | None = None
    fresh: bool = False
    adapts_to_end: bool = False
    adapted_step_scale: Array | float | None = None
    record_every: int = 0
    in_loop: bool = False

    def flag(self, name: str) -> np.ndarray:
        """The per-step flag ``name`` (all False when the phase does not set it)."""
        return self.flags.get(name, np.zeros(self.length, bool))


def constant(flags: np.ndarray) -> bool | None:
    """True / False when a flag is the same at every step, else None (decided per step)."""
    return True if flags.all() else (False if not flags.any() else None)


def _sampling(kernel: str, start, length: int, name: str = "sample", record_every=0) -> Phase:
    """Steps on the target at the run's step and temperature (acceptance counted)."""
    flags = {"own": np.ones(length, bool), "count": np.ones(length, bool)}
    return Phase(name, kernel, start, length, flags=flags, record_every=record_every)


def _adapt_before(p: dict, cfg: Config) -> Phase:
    """MALA with dual averaging before annealing (targets without a grid), in a loop of its own:
    inside the common scan it would cost every later step a ``cond`` (+20-50% measured)."""
    n = cfg.n_pre
    scale = None
    if cfg.method == "ula":  # no noise at T = 0: no bias to bound, only stability
        scale = jnp.where(p["temperature"] > 0, ULA_FRACTION, ULA_FRACTION_COLD)
    return Phase(
        "adapt",
        "mala",
        0,
        n,
        stream=STREAM_ADAPT_BEFORE,
        flags={"adapt": np.ones(n, bool)},
        adapt_iter=np.arange(n),
        fresh=True,
        adapts_to_end=True,
        adapted_step_scale=scale,
    )


def _ula_main(p: dict, cfg: Config, offset: int, n_free: int) -> Phase:
    """Annealing and the unrecorded sampling steps of ULA in ONE scan (one compiled step)."""
    n_an = cfg.n_anneal
    length = n_an + n_free
    level = step = temperature = None
    noisy = np.zeros(length, bool)
    if cfg.anneal == "noise":
        level, step = p["anneal_sigma"], p["anneal_h"]
        noisy[:n_an] = True
    elif cfg.anneal == "temperature":
        temperature = p["anneal_t"]
    return Phase(
        "anneal+sample",
        "ula",
        offset,
        length,
        level=level,
        step_size=step,
        temperature=temperature,
        flags={"noisy": noisy},
    )


def _mala_main(p: dict, cfg: Config, offset: int, n_an: int, n_free: int) -> Phase:
    """MALA's annealing over noise levels, adaptation after it and sampling in ONE scan."""
    n_post = cfg.n_post
    length = n_an + n_post + n_free
    noise = cfg.anneal == "noise"
    seg = np.repeat(np.arange(3), [n_an, n_post, n_free])  # part of each step
    idx = np.arange(length)
    adapt = seg == 1
    noisy = (seg == 0) & noise
    refresh = np.zeros(length, bool)
    if noise:
        refresh[np.arange(0, n_an, cfg.anneal_row)] = True
        if n_an < length:
            refresh[n_an] = True
    refresh[:1] = False  # the energies at the first step are computed on entry
    flags = {
        "noisy": noisy,
        "refresh": refresh,
        "adapt": adapt,
        "end": adapt & (idx == n_an + n_post - 1),
        "own": ~adapt & ~noisy,
        "count": seg == 2,
    }
    return Phase(
        "anneal+adapt+sample",
        "mala",
        offset,
        length,
        level=p["anneal_sigma"] if noise else None,
        step_size=p["anneal_h"] if noise else None,
        flags=flags,
        adapt_iter=np.where(adapt, idx - n_an, 0),
        fresh=True,
    )


def plan(
    p: dict, cfg: Config, part: str = "all", n_chunked: int = 0, start=0, length: int = 0
) -> list[Phase]:
    """The phases of a run (or of a part of it, see `langevin._runner.program`), in order."""
    n_keep = cfg.n_steps // cfg.thin if cfg.thin else 0
    # A cut run with thin chunks its recorded steps themselves (n_chunked = n_keep * thin, see
    # langevin._resumable.plan): each chunk records its draws and the tail records none.
    recorded_in_chunks = part != "all" and n_keep > 0
    if part == "chunk":
        every = cfg.thin if recorded_in_chunks else 0
        return [_sampling(cfg.method, start, length, "chunk", record_every=every)]
    if part == "tail":
        return []
    n_free = cfg.n_steps - n_chunked - (0 if recorded_in_chunks else n_keep * cfg.thin)
    phases = [_adapt_before(p, cfg)] if cfg.n_pre else []
    offset = cfg.n_pre
    if cfg.method == "ula":
        phases.append(_ula_main(p, cfg, offset, n_free))
    else:
        n_an = cfg.n_anneal
        if cfg.anneal == "temperature":
            # Temperature annealing (plain functions) in a loop of its own: a temperature read
            # per step costs MALA's later steps ~1.5x on a cheap target.
            phases.append(
                Phase("anneal", "mala", offset, n_an, temperature=p["anneal_t"], fresh=True)
            )
            offset, n_an = offset + n_an, 0
        phases.append(_mala_main(p, cfg, offset, n_an, n_free))
    offset += cfg.n_anneal + cfg.n_post + n_free
    if part == "all" and n_keep:
        phases.append(_sampling(cfg.method, offset, n_keep * cfg.thin, "record", cfg.thin))
    return phases
