"""The chain runner: many Langevin chains in one compiled program (batched kernels + ``lax.scan``).

A run is a sequence of phases, inside one ``jax.jit``; each phase is a kernel of `_kernels`
(`ula_move` or `mala_move`, batched over chains, with the fixed-axis mask, the box and the
divergence guard) applied over per-step tables (global step index, noise level, step size,
temperature):

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

Compile time: phases 2-4 share ONE compiled step (`scan_blocked` over all their steps, the
phase's level, step size and temperature per step, host-side flags resolved when constant and a
``lax.cond`` otherwise), and blocks of equal length (no tail loop): one loop nest in the program
instead of one or two per phase (XLA compile about halved on a 2-D map; only ``thin`` adds a
second copy, for the recorded steps). On targets without a grid, the adaptation before annealing
and MALA's temperature annealing keep loops of their own, as a per-step flag or temperature costs
a cheap target's later steps 20-50%.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from . import _target
from ._adaptation import dual_averaging_init, dual_averaging_update
from ._draw_blocks import MALA_DRAW_BLOCK_MIN_D, scan_blocked
from ._kernels import Constraints, mala_move, ula_move
from ._prepare import Config
from ._progress import tick as _tick

__all__ = ["compiled", "program"]

Array = jax.Array

# Without a grid, ULA uses 1/50 of the adapted MALA step: on a Gaussian of width w the MALA step
# is ~w^2, so ULA's stationary variance is inflated by ~1 / (1 - 0.01), 1% (0.5% on the std).
ULA_FRACTION = 0.02
# At T = 0 ULA is gradient descent: a quarter of the MALA step keeps it stable on curvature up to
# ~8 / h_mala, with no sampling bias to worry about.
ULA_FRACTION_COLD = 0.25


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

    def constrain(x):
        if cfg.sharding is None:
            return x
        return jax.lax.with_sharding_constraint(x, cfg.sharding)

    def tick(t):
        _tick(p["run_id"], t, cfg.progress_every)

    # ---- init
    k_init = jax.random.fold_in(key, 0)
    if cfg.init_kind == "given":
        x = p["x0"].astype(dtype)
    elif cfg.init_kind == "uniform":
        x = p["init_lo"] + (p["init_hi"] - p["init_lo"]) * jax.random.uniform(k_init, (n, d), dtype)
    else:
        x = p["init_lo"] + p["init_hi"] * jax.random.normal(k_init, (n, d), dtype)
    x = constrain(jnp.where(free, x, fixed))
    bad = jnp.zeros((n,), bool)

    # ---- random draws, made for a block of steps at once (see `scan_blocked`)
    def constrain_block(a):
        """Shard a block of per-step draws (steps, chains, ...) along its chain axis."""
        if cfg.sharding is None:
            return a
        spec = PartitionSpec(None, "chains", *([None] * (a.ndim - 2)))
        return jax.lax.with_sharding_constraint(a, NamedSharding(cfg.sharding.mesh, spec))

    def ula_draw(phase_key):
        def draw(ts):
            z = jax.vmap(
                lambda t: jax.random.normal(jax.random.fold_in(phase_key, t), (n, d), dtype)
            )
            return constrain_block(z(ts))

        return draw

    mala_block = (n * (d + 1), 0 if d >= MALA_DRAW_BLOCK_MIN_D else 1)

    def mala_draw(phase_key):
        def one(t):
            kz, ku = jax.random.split(jax.random.fold_in(phase_key, t))
            return jax.random.normal(kz, (n, d), dtype), jax.random.uniform(ku, (n,), dtype)

        def draw(ts):
            z, u = jax.vmap(one)(ts)
            return constrain_block(z), constrain_block(u)

        return draw

    # ---- the kernels over a phase
    def ula_phase(x, bad, phase_key, xs):
        """ULA over per-step tables ``xs = (step, level, step size, temperature, noisy)``."""

        def body(carry, xs_t):
            x, bad = carry
            (t, lvl, h, tt, noisy), z = xs_t
            if noisy is None:  # one energy for the whole scan (lvl None: the target)
                g = grad_b(x, lvl)
            else:  # annealing and sampling in one scan: the level's energy or the target
                g = jax.lax.cond(noisy, lambda: grad_b(x, lvl), lambda: grad_b(x, None))
            x, ok = ula_move(x, g, z, h, tt, m, box)
            tick(t)
            return (constrain(x), bad | ~ok), None

        return scan_blocked(body, (x, bad), xs, ula_draw(phase_key), n * d)

    def mala(x, e, g, h, tt, z, u, vg):
        """One batched MALA move on ``vg`` (positions -> energies, gradients)."""
        s, info = mala_move(x, e, g, z, u, h, tt, m, vg, box)
        return constrain(s.position), s.energy, s.energy_grad, info.acceptance_rate

    def target_vg(y):
        return vg_b(y, None)

    def mala_main(x, bad, acc, n_free, n_an, start, h_init):
        """MALA's annealing over noise levels, adaptation after it and sampling in ONE scan.

        Steps in order: annealing over noise levels (``n_an``; temperature annealing runs apart,
        before), adaptation (``cfg.n_post``) and the untraced sampling steps (``n_free``).
        Per-step inputs: level, step size, and host-side flags (NumPy, so a flag constant over
        the run is resolved when tracing): ``noisy`` (the level's energy, else the target),
        ``refresh`` (the energy changed: recompute ``E, ∇E`` at the current states), ``adapt``
        (per-chain dual-averaging step), ``end`` (last adaptation step: the step becomes the
        median over chains), ``own`` (use the adapted / given step, not the level's) and
        ``count`` (add to the acceptance). Returns ``x, e, g, bad, acc, h``.
        """
        n_post = cfg.n_post
        total_n = n_an + n_post + n_free
        noise = cfg.anneal == "noise"
        seg = np.repeat(np.arange(3), [n_an, n_post, n_free])  # phase of each step
        idx = np.arange(total_n)
        adapt = seg == 1
        it = np.where(adapt, idx - n_an, 0)
        end = adapt & (idx == n_an + n_post - 1)
        noisy = (seg == 0) & noise
        refresh = np.zeros(total_n, bool)
        if noise:
            refresh[np.arange(0, n_an, cfg.anneal_row)] = True
            if n_an < total_n:
                refresh[n_an] = True
        own = ~adapt & ~noisy
        count = seg == 2
        first_noisy = bool(total_n and noisy[0])
        refresh[:1] = False  # the energies at step 0 are computed before the scan

        t_adapt = jnp.where(temp > 0, temp, 1.0)  # adaptation runs at T (at 1 when T = 0)
        zeros_f = lambda k: jnp.zeros((k,), dtype)  # noqa: E731
        lvl = h_lvl = None
        if noise:
            lvl = jnp.concatenate([p["anneal_sigma"], zeros_f(n_post + n_free)])
            h_lvl = jnp.concatenate([p["anneal_h"], zeros_f(n_post + n_free)])

        def const(flags):
            """True / False when a flag is the same at every step, else None (per step)."""
            return True if flags.all() else (False if not flags.any() else None)

        flags = dict(noisy=noisy, refresh=refresh, adapt=adapt, end=end, own=own, count=count)
        c = {name: const(a) for name, a in flags.items()}

        def pick(name, flag, on, off):
            if c[name] is None:
                return jax.lax.cond(flag, on, off)
            return on() if c[name] else off()

        def pick_value(name, flag, on, off):
            if c[name] is None:
                return jnp.where(flag, on, off)
            return on if c[name] else off

        mu = jnp.log(10.0 * p["h0"])

        def body(carry, xs_t):
            x, e, g, bad, acc, da, h_cur = carry
            (t, lvl_t, h_t, it_t, *fl), (z, u) = xs_t
            f = dict(zip(flags, fl, strict=True))

            def vg(y):
                return pick("noisy", f["noisy"], lambda: vg_b(y, lvl_t), lambda: vg_b(y, None))

            if c["refresh"] is not False:
                e, g = pick("refresh", f["refresh"], lambda: vg(x), lambda: (e, g))
            tt = temp if c["adapt"] is False else pick_value("adapt", f["adapt"], t_adapt, temp)
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
                h_cur = pick(
                    "end",
                    f["end"],
                    lambda: jnp.median(jnp.exp(da.log_step_avg[: cfg.n_real])).astype(dtype),
                    lambda: h_cur,
                )
            if c["count"] is not False:
                acc = acc + pick_value("count", f["count"], a, jnp.zeros_like(a))
            tick(t)
            return (x, e, g, bad, acc, da, h_cur), None

        e, g = vg_b(x, p["anneal_sigma"][0] if first_noisy else None)
        da = dual_averaging_init(p["h0"], (n,), dtype)
        carry = (x, e, g, bad, acc, da, jnp.asarray(h_init, dtype))
        if total_n == 0:
            return x, e, g, bad, acc, carry[-1]
        dyn = lambda name, a: jnp.asarray(a) if c[name] is None else None  # noqa: E731
        xs = (
            start + jnp.arange(total_n),
            lvl,
            h_lvl,
            jnp.asarray(it, jnp.int32),
            *(dyn(name, a) for name, a in flags.items()),
        )
        x, e, g, bad, acc, _, h = scan_blocked(body, carry, xs, mala_draw(k_steps), *mala_block)
        return x, e, g, bad, acc, h

    def adapt_phase(x, h0, phase_key, start, length):
        """Dual averaging of a per-chain step towards the target acceptance; returns the median."""
        t_adapt = jnp.where(temp > 0, temp, 1.0)
        mu = jnp.log(10.0 * h0)
        e, g = vg_b(x, None)

        def body(carry, xs_i):
            x, e, g, da = carry
            (i,), (z, u) = xs_i
            x, e, g, a = mala(x, e, g, jnp.exp(da.log_step)[:, None], t_adapt, z, u, target_vg)
            tick(start + i)
            return (x, e, g, dual_averaging_update(da, a, i, mu, dtype)), None

        init = (x, e, g, dual_averaging_init(h0, (n,), dtype))
        xs = (jnp.arange(length),)
        x, _, _, da = scan_blocked(body, init, xs, mala_draw(phase_key), *mala_block)
        return x, jnp.median(jnp.exp(da.log_step_avg[: cfg.n_real])).astype(dtype)

    offset = 0
    h = p["h"]
    n_keep = cfg.n_steps // cfg.thin if cfg.thin else 0
    # A cut run with thin chunks its recorded steps themselves (n_chunked = n_keep * thin, see
    # langevin._resumable.plan): each chunk records its draws and the tail records none.
    recorded_in_chunks = part != "all" and n_keep > 0
    n_free = cfg.n_steps - n_chunked - (0 if recorded_in_chunks else n_keep * cfg.thin)
    acc = jnp.zeros((n,), dtype)
    k_steps = jax.random.fold_in(key, 2)  # one key for every step (draws by global step index)

    def run_ula(carry, h, start, length):
        x, bad, acc = carry
        xs = (
            start + jnp.arange(length),
            None,
            jnp.broadcast_to(h, (length,)),
            jnp.broadcast_to(temp, (length,)),
            None,
        )
        x, bad = ula_phase(x, bad, k_steps, xs)
        return x, bad, acc

    def run_mala(carry, h, start, length):
        def body(c, xs_t):
            x, e, g, bad, acc = c
            (t,), (z, u) = xs_t
            x, e, g, a = mala(x, e, g, h, temp, z, u, target_vg)
            tick(t)
            return (x, e, g, bad, acc + a), None

        xs = (start + jnp.arange(length),)
        return scan_blocked(body, carry, xs, mala_draw(k_steps), *mala_block)

    run_h = run_ula if cfg.method == "ula" else run_mala
    if part == "chunk" and recorded_in_chunks:  # `length` is a whole number of thin blocks
        h = state["h"]

        def rec(c, j):
            c = run_h(c, h, start + j * cfg.thin, cfg.thin)
            return c, (c[0], jax.vmap(total, in_axes=(0, None))(c[0], None))

        carry, (traj, etrace) = jax.lax.scan(rec, state["carry"], jnp.arange(length // cfg.thin))
        return {"carry": carry, "h": h, "trajectory": traj, "energy_trace": etrace}
    if part == "chunk":
        return {"carry": run_h(state["carry"], state["h"], start, length), "h": state["h"]}
    if part == "tail":
        carry, h = state["carry"], state["h"]
    elif cfg.method == "ula":
        if cfg.n_pre:
            x, h_mala = adapt_phase(x, p["h0"], jax.random.fold_in(key, 1), offset, cfg.n_pre)
            # no noise at T = 0: no bias to bound, only stability
            h = h_mala * jnp.where(temp > 0, ULA_FRACTION, ULA_FRACTION_COLD)
            offset += cfg.n_pre
        # Annealing and the untraced sampling steps run in ONE scan (one compiled step): per-step
        # step size, temperature and level; under noise annealing a per-step flag picks the
        # level's energy or the target (a `cond`: only one of the two runs).
        steps = offset + jnp.arange(cfg.n_anneal + n_free)
        h_all = jnp.broadcast_to(h, steps.shape)
        t_all = jnp.broadcast_to(temp, steps.shape)
        lvl = noisy = None
        if cfg.anneal == "noise":
            lvl = jnp.concatenate([p["anneal_sigma"], jnp.zeros((n_free,), dtype)])
            h_all = jnp.concatenate([p["anneal_h"], h_all[cfg.n_anneal :]])
            if n_free:
                noisy = np.arange(cfg.n_anneal + n_free) < cfg.n_anneal
        elif cfg.anneal == "temperature":
            t_all = jnp.concatenate([p["anneal_t"], t_all[cfg.n_anneal :]])
        if steps.shape[0]:
            x, bad = ula_phase(x, bad, k_steps, (steps, lvl, h_all, t_all, noisy))
        offset += cfg.n_anneal + n_free

        carry = (x, bad, acc)
    else:
        if cfg.n_pre:
            # Adaptation before annealing (targets without a grid: plain functions, cheap per
            # step) runs in a loop of its own: inside the common scan it costs every later step
            # a `cond` (measured +20-50% there). Adaptation after annealing (maps) stays inside.
            x, h = adapt_phase(x, p["h0"], jax.random.fold_in(key, 1), 0, cfg.n_pre)
            offset = cfg.n_pre
        n_an = cfg.n_anneal
        if cfg.anneal == "temperature":
            # Temperature annealing (plain functions) in a loop of its own too: a temperature
            # read per step costs MALA's later steps ~1.5x on a cheap target.
            xs = (offset + jnp.arange(n_an), p["anneal_t"])
            e, g = vg_b(x, None)

            def anneal_body(c, xs_t):
                x, e, g = c
                (t, tt), (z, u) = xs_t
                x, e, g, _ = mala(x, e, g, h, tt, z, u, target_vg)
                tick(t)
                return (x, e, g), None

            x, _, _ = scan_blocked(anneal_body, (x, e, g), xs, mala_draw(k_steps), *mala_block)
            offset, n_an = offset + n_an, 0
        x, e, g, bad, acc, h = mala_main(x, bad, acc, n_free, n_an, offset, h)
        offset += n_an + cfg.n_post + n_free

        carry = (x, e, g, bad, acc)

    if part == "head":
        return {"carry": carry, "h": jnp.asarray(h, dtype)}
    traj = etrace = None
    if n_keep and not recorded_in_chunks:

        def block(c, j):
            c = run_h(c, h, offset + n_free + j * cfg.thin, cfg.thin)
            xj = c[0]
            return c, (xj, jax.vmap(total, in_axes=(0, None))(xj, None))

        carry, (traj, etrace) = jax.lax.scan(block, carry, jnp.arange(n_keep))
    x, bad, acc = carry[0], carry[-2], carry[-1]

    e_map = jax.vmap(target)(x)
    e_obj = jax.vmap(objective)(x) if objective is not None else None
    e_tot = e_map + weight * e_obj if objective is not None else e_map
    bad = bad | ~jnp.isfinite(e_tot)
    return {
        "positions": x,
        "energies": e_map,
        "total": e_tot,
        "objective": e_obj,
        "acceptance": acc / cfg.n_steps if cfg.method == "mala" else None,
        "diverged": bad,
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
