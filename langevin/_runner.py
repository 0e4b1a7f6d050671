"""The chain runner: many Langevin chains in one compiled program (batched kernels + ``lax.scan``).

A run is a list of phases (`langevin._phases.plan`: data, one `Phase` per part of the run),
executed inside one ``jax.jit`` by `run_phase`, one blocked scan each. A phase is a kernel of
`_kernels` (`ula_move` or `mala_move`, batched over chains, with the fixed-axis mask, the box and
the divergence guard) applied over per-step tables (global step index, noise level, step size,
temperature) and host-side flags:

1. adaptation before annealing (targets without a grid spacing and no ``step_size``): MALA steps
   whose per-chain step follows dual averaging (`_adaptation`) towards acceptance 0.574; the step
   is then the median over chains (times `ULA_FRACTION` for ULA, whose bias grows with the step);
2. annealing (the schedule): noise levels of a pyramid, or temperatures;
3. adaptation after annealing (MALA on a gridded target): the same dual averaging, starting from
   the grid step;
4. sampling: ``n_steps`` steps on the target at the final temperature, optionally recorded every
   ``thin`` steps.

Every step's random draw is a function of (key, global step) alone (`_draw_blocks`), so a phase
can be split anywhere without changing a number.

Performance: one batched normal draw of shape ``(n_chains, d)`` per step (no key split per
chain), made for a block of up to 32 steps at once (`scan_blocked`); a gradient-only ULA loop
(energies only where asked) whose divergence check reads the gradient, not the moved state; one
compilation per configuration (an `EnergyMap` is passed as arrays, so a new map of the same
shape reuses the program).

Compile time: phases 2-4 share ONE compiled step (one phase: all their steps, the level, step
size and temperature per step, host-side flags resolved when constant and a ``lax.cond``
otherwise), and blocks of equal length (no tail loop): one loop nest in the program instead of
one or two per phase (XLA compile about halved on a 2-D map; only ``thin`` adds a second copy,
for the recorded steps). On targets without a grid, the adaptation before annealing and MALA's
temperature annealing are phases of their own, as a per-step flag or temperature costs a cheap
target's later steps 20-50%.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _target
from ._adaptation import dual_averaging_init, dual_averaging_update
from ._draw_blocks import (
    MALA_DRAW_BLOCK_MIN_D,
    chain_constraints,
    normal_draw,
    normal_uniform_draw,
    scan_blocked,
)
from ._kernels import Constraints, mala_move, ula_move
from ._phases import MALA_FLAGS, ULA_FRACTION, ULA_FRACTION_COLD, Phase, constant, plan
from ._prepare import Config
from ._progress import tick as _tick

__all__ = ["ULA_FRACTION", "ULA_FRACTION_COLD", "compiled", "program"]

Array = jax.Array


class Chains(NamedTuple):
    """The state of all chains between phases (``e``, ``g``: MALA's energies and gradients)."""

    x: Array
    e: Array | None
    g: Array | None
    bad: Array
    acc: Array


def _tables(ph: Phase, filler, fill):
    """A per-step table of ``ph.length``: ``filler``'s first steps, then ``fill`` (None: none)."""
    if filler is None:
        return None
    n_rest = ph.length - filler.shape[0]
    return jnp.concatenate([filler, jnp.broadcast_to(fill, (n_rest,)).astype(filler.dtype)])


def program(
    p: dict, cfg: Config, part: str = "all", n_chunked: int = 0, state=None, start=0, length=0
):
    """The whole run for one setting (vmapped over settings by `langevin.sweep`), or a part.

    ``part="all"``: the whole run, returns the outputs. A run cut in chunks (see
    `run_in_chunks`): ``"head"`` runs every step but the last ``n_chunked`` sampling steps and
    returns ``state = {"carry", "h"}``; ``"chunk"`` runs ``length`` sampling steps from global
    step ``start`` on ``state``; ``"tail"`` turns ``state`` into the outputs. Draws depend on the
    global step only, so the chunking does not change a number. With ``thin``, the chunks (of
    whole thin blocks) also return their recorded ``trajectory`` / ``energy_trace``
    (`langevin._resumable` streams them to the host or to files).
    """
    target = _target.join(p["target"], cfg.target)
    objective = None if cfg.objective is None else _target.from_key(cfg.objective)
    weight = p["weight"]
    dtype = p["m"].dtype
    n, d = cfg.n, cfg.d
    m, free, fixed = p["m"], p["free"], p["fixed"]
    box = Constraints(free, fixed, p["lo"], p["hi"]) if cfg.reflect else Constraints(free, fixed)
    temp = p["temperature"]
    key = p["key"]

    def total(x, lvl):
        e = target(x) if lvl is None else target.energy_at(x, lvl)
        return e + weight * objective(x) if objective is not None else e

    grad_b = jax.vmap(jax.grad(total), in_axes=(0, None))
    vg_b = jax.vmap(jax.value_and_grad(total), in_axes=(0, None))

    constrain, constrain_block = chain_constraints(cfg.sharding)

    def tick(t):
        _tick(p["run_id"], t, cfg.progress_every)

    # ---- the random draws of a phase, made for a block of steps at once (see `scan_blocked`).
    # A block holds each step's normals as one flat row of n * d numbers (number c * d + j is
    # chain c's axis j: the same numbers as a (n, d) draw), reshaped to (n, d) inside the step.
    # XLA on CPU vectorises a loop along its last axis: a (steps, n, 4) draw ran 4 lanes wide
    # (SSE) instead of 8 (AVX), the draw at d = 4 measured 2x slower than the flat one.
    def ula_draw(phase_key):
        normals = normal_draw(phase_key, (n * d,), dtype)
        return lambda ts: constrain_block(normals(ts))

    def mala_draw(phase_key):
        draws = normal_uniform_draw(phase_key, n, d, dtype)

        def draw(ts):
            z, u = draws(ts)
            return constrain_block(z), constrain_block(u)

        return draw

    # ---- the phases' kernels: one step over (carry, per-step tables and flags, draws)
    def run_ula(ph: Phase, s: Chains, h) -> Chains:
        """ULA over the phase's tables ``(step, level, step size, temperature, noisy)``."""
        c_noisy = constant(ph.flag("noisy"))
        xs = (
            ph.start + jnp.arange(ph.length),
            _tables(ph, ph.level, 0.0),
            jnp.broadcast_to(h, (ph.length,))
            if ph.step_size is None
            else _tables(ph, ph.step_size, h),
            jnp.broadcast_to(temp, (ph.length,))
            if ph.temperature is None
            else _tables(ph, ph.temperature, temp),
            ph.flag("noisy") if c_noisy is None else None,
        )

        def body(carry, xs_t):
            x, bad = carry
            (t, lvl, h, tt, noisy), z = xs_t
            z = z.reshape(x.shape)
            if c_noisy is None:  # annealing and sampling in one scan: the level's energy or not
                g = jax.lax.cond(noisy, lambda: grad_b(x, lvl), lambda: grad_b(x, None))
            else:  # one energy for the whole phase (lvl None: the target)
                g = grad_b(x, lvl)
            x, ok = ula_move(x, g, z, h, tt, m, box)
            tick(t)
            return (constrain(x), bad | ~ok), None

        key_ph = jax.random.fold_in(key, ph.stream)
        x, bad = scan_blocked(body, (s.x, s.bad), xs, ula_draw(key_ph), n * d, in_loop=ph.in_loop)
        return s._replace(x=x, bad=bad)

    def mala(x, e, g, h, tt, z, u, vg):
        """One batched MALA move on ``vg`` (positions -> energies, gradients)."""
        s, info = mala_move(x, e, g, z, u, h, tt, m, vg, box)
        return constrain(s.position), s.energy, s.energy_grad, info.acceptance_rate

    def run_mala(ph: Phase, s: Chains, h_init):
        """MALA over the phase's tables and flags (`langevin._phases.MALA_FLAGS`); returns the
        chains, the run's step after the phase and the final dual-averaging state."""
        flags = {name: ph.flag(name) for name in MALA_FLAGS}
        c = {name: constant(a) for name, a in flags.items()}

        def pick(name, flag, on, off):
            if c[name] is None:
                return jax.lax.cond(flag, on, off)
            return on() if c[name] else off()

        def pick_value(name, flag, on, off):
            if c[name] is None:
                return jnp.where(flag, on, off)
            return on if c[name] else off

        t_adapt = jnp.where(temp > 0, temp, 1.0)  # adaptation runs at T (at 1 when T = 0)
        mu = jnp.log(10.0 * p["h0"])

        def body(carry, xs_t):
            x, e, g, bad, acc, da, h_cur = carry
            (t, lvl_t, h_t, t_t, it_t, *fl), (z, u) = xs_t
            z = z.reshape(x.shape)
            f = dict(zip(flags, fl, strict=True))

            def vg(y):
                return pick("noisy", f["noisy"], lambda: vg_b(y, lvl_t), lambda: vg_b(y, None))

            if c["refresh"] is not False:
                e, g = pick("refresh", f["refresh"], lambda: vg(x), lambda: (e, g))
            t_run = temp if t_t is None else t_t
            tt = t_run if c["adapt"] is False else pick_value("adapt", f["adapt"], t_adapt, t_run)
            h_own = h_cur if c["end"] is not False else h_init  # no adaptation: the given step
            h = h_own if h_t is None else pick_value("own", f["own"], h_own, h_t)

            def plain():
                return (*mala(x, e, g, h, tt, z, u, vg), da)

            def adapting():  # dual averaging of a per-chain step (Hoffman & Gelman 2014)
                x2, e2, g2, a = mala(x, e, g, jnp.exp(da.log_step)[:, None], tt, z, u, vg)
                return x2, e2, g2, a, dual_averaging_update(da, a, it_t, mu, dtype)

            # a `cond` (not a select): the steps outside adaptation keep a scalar step and skip
            # the dual-averaging arithmetic (measured 2x on a cheap target with a select)
            x, e, g, a, da = pick("adapt", f["adapt"], adapting, plain)
            if c["end"] is not False:
                h_cur = pick("end", f["end"], lambda: median_step(da), lambda: h_cur)
            if c["count"] is not False:
                acc = acc + pick_value("count", f["count"], a, jnp.zeros_like(a))
            tick(t)
            return (x, e, g, bad, acc, da, h_cur), None

        e, g = s.e, s.g
        if ph.fresh:
            first_noisy = bool(ph.length and flags["noisy"][0])
            e, g = vg_b(s.x, ph.level[0] if first_noisy else None)
        da = dual_averaging_init(p["h0"], (n,), dtype)
        carry = (s.x, e, g, s.bad, s.acc, da, jnp.asarray(h_init, dtype))
        if ph.length:
            dyn = lambda name, a: jnp.asarray(a) if c[name] is None else None  # noqa: E731
            it = None if ph.adapt_iter is None else jnp.asarray(ph.adapt_iter, jnp.int32)
            xs = (
                ph.start + jnp.arange(ph.length),
                _tables(ph, ph.level, 0.0),
                _tables(ph, ph.step_size, 0.0),
                ph.temperature,
                it,
                *(dyn(name, a) for name, a in flags.items()),
            )
            draw = mala_draw(jax.random.fold_in(key, ph.stream))
            block = (n * (d + 1), 0 if d >= MALA_DRAW_BLOCK_MIN_D else 1)
            carry = scan_blocked(body, carry, xs, draw, *block, in_loop=ph.in_loop)
        x, e, g, bad, acc, da, h = carry
        return Chains(x, e, g, bad, acc), h, da

    def median_step(da):
        """The step after adaptation: the median over the (real) chains of their ``h̄``."""
        return jnp.median(jnp.exp(da.log_step_avg[: cfg.n_real])).astype(dtype)

    def run_phase(ph: Phase, s: Chains, h) -> tuple[Chains, Array]:
        """The chains and the run's step after the phase."""
        if ph.kernel == "ula":
            return (run_ula(ph, s, h) if ph.length else s), h
        s, h_out, da = run_mala(ph, s, h)
        if not ph.adapts_to_end:
            return s, h_out
        h_adapted = median_step(da)
        scale = ph.adapted_step_scale
        return s, h_adapted if scale is None else h_adapted * scale

    def record(ph: Phase, s: Chains, h):
        """The phase in blocks of ``record_every`` steps; positions and energies after each."""
        every = ph.record_every

        def block(s, j):
            flags = {name: a[:every] for name, a in ph.flags.items()}  # the same at every step
            sub = dataclasses.replace(
                ph,
                start=ph.start + j * every,
                length=every,
                flags=flags,
                record_every=0,
                in_loop=True,
            )
            s, _ = run_phase(sub, s, h)
            return s, (s.x, jax.vmap(total, in_axes=(0, None))(s.x, None))

        return jax.lax.scan(block, s, jnp.arange(ph.length // every))

    # ---- init
    k_init = jax.random.fold_in(key, 0)
    if cfg.init_kind == "given":
        x = p["x0"].astype(dtype)
    elif cfg.init_kind == "uniform":
        x = p["init_lo"] + (p["init_hi"] - p["init_lo"]) * jax.random.uniform(k_init, (n, d), dtype)
    else:
        x = p["init_lo"] + p["init_hi"] * jax.random.normal(k_init, (n, d), dtype)
    mala_state = cfg.method == "mala"
    if part in ("chunk", "tail"):
        h = state["h"]
        s = _unpack(state["carry"], mala_state)
    else:
        x = constrain(jnp.where(free, x, fixed))
        h = p["h"]
        s = Chains(x, None, None, jnp.zeros((n,), bool), jnp.zeros((n,), dtype))

    traj = etrace = None
    for ph in plan(p, cfg, part, n_chunked, start, length):
        if ph.record_every:
            s, (traj, etrace) = record(ph, s, h)
        else:
            s, h = run_phase(ph, s, h)
    if part == "chunk":
        out = {"carry": _pack(s, mala_state), "h": h}
        return out if traj is None else {**out, "trajectory": traj, "energy_trace": etrace}
    if part == "head":
        return {"carry": _pack(s, mala_state), "h": jnp.asarray(h, dtype)}

    e_map = jax.vmap(target)(s.x)
    e_obj = jax.vmap(objective)(s.x) if objective is not None else None
    e_tot = e_map + weight * e_obj if objective is not None else e_map
    return {
        "positions": s.x,
        "energies": e_map,
        "total": e_tot,
        "objective": e_obj,
        "acceptance": s.acc / cfg.n_steps if cfg.method == "mala" else None,
        "diverged": s.bad | ~jnp.isfinite(e_tot),
        "step_size": jnp.asarray(h, dtype),
        "trajectory": traj,
        "energy_trace": etrace,
    }


compiled = jax.jit(program, static_argnames=("cfg", "part", "n_chunked", "length"))


def run_in_chunks(p: dict, cfg: Config, chunk_steps: int, on_chunk=None) -> dict:
    """The run of ``compiled(p, cfg)``, its sampling steps cut in chunks of ``chunk_steps``.

    The head (init, adaptation, annealing and the sampling steps that do not fill a chunk) is one
    call, then each chunk is one call (one compiled program for all chunks), then the tail; the
    results are those of the uncut run, bit for bit. Between calls control returns to Python
    (``on_chunk(steps_done)`` is called): a chunk boundary is where a run can be interrupted,
    and, as the state between chunks is the whole state of the chains, where it can resume.
    ``thin`` runs are not cut.

    Checked bit for bit (tests/langevin/test_chunks.py): ULA on maps and functions, MALA on
    functions. MALA on a map with adaptation after annealing gives different last bits (the
    uncut program computes those steps inside the phase scan's ``cond``s, which XLA compiles
    differently); the command line therefore does not cut its runs yet.
    """
    if cfg.thin or chunk_steps >= cfg.n_steps:
        return compiled(p, cfg)
    k = cfg.n_steps // chunk_steps
    n_chunked = k * chunk_steps
    state = compiled(p, cfg, part="head", n_chunked=n_chunked)
    first = cfg.n_pre + cfg.n_anneal + cfg.n_post + cfg.n_steps - n_chunked
    for i in range(k):
        start = first + i * chunk_steps
        state = compiled(
            p,
            cfg,
            part="chunk",
            n_chunked=n_chunked,
            state=state,
            start=start,
            length=chunk_steps,
        )
        if on_chunk is not None:
            jax.block_until_ready(state)
            on_chunk(start + chunk_steps)
    return compiled(p, cfg, part="tail", n_chunked=n_chunked, state=state)


def _unpack(carry: tuple, mala: bool) -> Chains:
    """`Chains` from a saved state's carry: ``(x, e, g, bad, acc)`` (MALA), ``(x, bad, acc)``."""
    if mala:
        return Chains(*carry)
    x, bad, acc = carry
    return Chains(x, None, None, bad, acc)


def _pack(s: Chains, mala: bool) -> tuple:
    """The carry of a saved state (`_unpack`'s inverse)."""
    return (s.x, s.e, s.g, s.bad, s.acc) if mala else (s.x, s.bad, s.acc)
