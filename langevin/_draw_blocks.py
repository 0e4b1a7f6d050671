"""Random draws made for a block of steps at once, and the blocked ``lax.scan`` that consumes them."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "DRAW_BLOCK_ELEMENTS",
    "DRAW_BLOCK_STEPS",
    "MALA_DRAW_BLOCK_MIN_D",
    "block_length",
    "chain_constraints",
    "scan_blocked",
]

# Random draws: the normals (and MALA's uniforms) of up to DRAW_BLOCK_STEPS steps are drawn at
# once, one vmapped draw of shape (K, n_chains, ...), and the steps then scan over them. On CPU
# a draw made inside each step of the loop cost two to three times the rest of a ULA step
# (measured at d = 2 and 4 with 4k-32k chains); drawn in blocks it costs about as much as the
# map gradient. A step's draw is still a function of (key, step) alone (bit-identical to a draw
# made inside the step), so the draws do not depend on the blocking. A block holds at most
# DRAW_BLOCK_ELEMENTS numbers (2 MB in float32). MALA gains from blocks only from d = 3 on
# (measured 1.2-1.6x at d = 4 but 0.85-0.9x at d = 2): below that it draws inside each step.
DRAW_BLOCK_STEPS = 32
DRAW_BLOCK_ELEMENTS = 1 << 19
MALA_DRAW_BLOCK_MIN_D = 3


def chain_constraints(sharding) -> tuple[Callable, Callable]:
    """``(constrain, constrain_block)`` for chains sharded by ``sharding`` (a NamedSharding of
    (chains, d) over devices, or None: both then return their argument). ``constrain`` keeps a
    (chains, ...) array on that sharding; ``constrain_block`` shards a block of per-step draws
    (steps, chains, ...) along its chain axis."""
    if sharding is None:
        return (lambda a: a), (lambda a: a)
    from jax.sharding import NamedSharding, PartitionSpec

    def constrain(a):
        return jax.lax.with_sharding_constraint(a, sharding)

    def constrain_block(a):
        spec = PartitionSpec(None, *sharding.spec[:1], *([None] * (a.ndim - 2)))
        return jax.lax.with_sharding_constraint(a, NamedSharding(sharding.mesh, spec))

    return constrain, constrain_block


def block_length(length: int, per_step: int, max_steps: int = 0) -> tuple[int, int]:
    """Steps per block of draws and the padding steps that make ``length`` a whole number of blocks.

    The longest block allowed is ``min(max_steps or DRAW_BLOCK_STEPS, DRAW_BLOCK_ELEMENTS //
    per_step, length)``; among the lengths from half of it up, the one with the least estimated
    cost ``(length + padding) * (1 + 4 / k)`` (longer blocks draw faster: 25-step blocks were
    measured ~8% slower than 32-step ones on a ULA run) is taken, so that every block runs the
    same compiled body (no separate tail loop: one copy of the step in the program).
    """
    k_max = min(max_steps or DRAW_BLOCK_STEPS, DRAW_BLOCK_ELEMENTS // max(per_step, 1), length)
    k_max = max(1, k_max)
    best = None
    for k in range(k_max, (k_max + 1) // 2 - 1, -1):
        pad = -length % k
        cost = (length + pad) * (1.0 + 4.0 / k)
        if best is None or cost < best[2]:
            best = (k, pad, cost)
    return best[:2]


def scan_blocked(
    step: Callable, carry, xs: tuple, draw: Callable, per_step: int, max_steps: int = 0
):
    """``lax.scan`` of ``step`` over ``xs`` with the per-step random draws made in blocks.

    All blocks have the same length (`block_length`); when the steps do not fill the last one,
    the padding steps leave the carry unchanged (a select on the carry), so the program holds
    one copy of ``step`` whatever the length.

    Args:
        step: ``(carry, (xs_t, draws_t)) -> (carry, None)``.
        carry: the loop state.
        xs: a tuple of per-step arrays (or None) with the global step indices first.
        draw: ``steps (K,) -> draws`` with a leading axis K.
        per_step: how many numbers one step draws (sets the block length).
        max_steps: the longest block (0: `DRAW_BLOCK_STEPS`; 1: a draw inside each step).

    Returns:
        The final carry.
    """
    length = xs[0].shape[0]
    k, pad = block_length(length, per_step, max_steps)
    n_blocks = (length + pad) // k

    def extend(a):
        if a is None or not pad:
            return a
        return jnp.concatenate([a, jnp.broadcast_to(a[-1:], (pad,) + a.shape[1:])])

    xs = jax.tree_util.tree_map(extend, xs)
    active = None if not pad else jnp.arange(length + pad) < length
    if pad:
        inner = step

        def step(c, xs_t):  # noqa: F811 (a padding step keeps the carry)
            (xs_s, on), draws = xs_t
            new, _ = inner(c, (xs_s, draws))
            return jax.tree_util.tree_map(lambda a, b: jnp.where(on, a, b), new, c), None

        xs = (xs, active)

    def block(c, xs_b):
        ts = xs_b[0][0] if pad else xs_b[0]
        c, _ = jax.lax.scan(step, c, (xs_b, draw(ts)))
        return c, None

    blocks = jax.tree_util.tree_map(lambda a: a.reshape((n_blocks, k) + a.shape[1:]), xs)
    carry, _ = jax.lax.scan(block, carry, blocks)
    return carry
