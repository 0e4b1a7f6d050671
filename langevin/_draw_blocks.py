"""Random draws made for a block of steps at once, and the blocked ``lax.scan`` that consumes them."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DRAW_BLOCK_ELEMENTS",
    "DRAW_BLOCK_STEPS",
    "MALA_DRAW_BLOCK_MIN_D",
    "block_length",
    "chain_constraints",
    "block_bits",
    "block_words",
    "cos_quarter",
    "normal_draw",
    "normal_from_words",
    "normal_uniform_draw",
    "scan_blocked",
    "threefry2x32",
]

# Random draws: the normals (and MALA's uniforms) of up to DRAW_BLOCK_STEPS steps are drawn at
# once, one draw of shape (K, n_chains * d) (each step's normals a flat row, reshaped to
# (n_chains, d) inside the step: XLA on CPU vectorises along the last axis, which a d of 4 would
# make 4 lanes wide), and the steps then scan over them. On CPU a draw made inside each step of
# the loop cost two to three times the rest of a ULA step (measured at d = 2 and 4 with 4k-32k
# chains); drawn in blocks it cost about as much as the map gradient, since then about half
# (Box-Muller, flat rows: ~13% of a ULA step at d = 4). A step's draw is still a function of (key, step) alone (bit-identical to a draw
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
    step: Callable,
    carry,
    xs: tuple,
    draw: Callable,
    per_step: int,
    max_steps: int = 0,
    in_loop: bool = False,
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
        in_loop: the scan runs inside another loop (the same in every program that runs it):
            a single step is then not padded (see below).

    Returns:
        The final carry.
    """
    length = xs[0].shape[0]
    k, pad = block_length(length, per_step, max_steps)
    if length == 1 and not in_loop:
        # One step would be a loop of one trip, which XLA inlines into the program around it
        # and compiles differently from the same step inside a loop (MALA's acceptance got
        # other last bits: a run cut in chunks that left one sampling step in its head differed
        # from the uncut run, tests/langevin/test_chunks.py). A padding step (which keeps the
        # carry) keeps the step inside a loop of two trips. Inside another loop (the runner's
        # recorded blocks with thin=1) every program inlines it alike: no padding step there.
        pad = 1
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


# ----------------------------------------------------------------------------- the generator
# The chains' noise: Threefry-2x32 (20 rounds, the hash of jax's default generator, Salmon et al.
# 2011) applied to the counter (global step, index of the number) under a key pair derived from
# the user's key, written out round by round in ``jnp`` so that XLA fuses the whole draw (hash,
# bits to floats, the normal transform) into one loop. jax.random.normal on CPU runs the hash's
# rounds as a rolled loop (a pass over memory per 4 rounds) plus a fold_in per step: this draw was
# measured about 2x faster inside the runner's scan on CPU (d = 2, 4096 chains, blocks of 32
# steps). It is pure integer arithmetic on counters, so the numbers are the same on one device
# and sharded.
#
# A float32 normal is made from both 32-bit words of its own hash by one Box-Muller branch
# (`normal_from_words`): z = s sqrt(-2 log u) cos(pi f / 2), u from 31 bits of the first word,
# the sign s and f from 24 bits of the second, the cosine a polynomial. It costs about half of
# sqrt(2) erf^-1(2u - 1) on one word (XLA's erf_inv: a log1p, a square root and two polynomials
# of degree 8, both evaluated: 3.5 ns of the 6.2 ns a normal cost, against 1.7 ns here; measured
# inside a scan on CPU, d = 2 and 4, 4096 chains), and reaches 6.6 sigma instead of 5.3. Two
# normals per hash (one from each word) would halve the hash too, but XLA on CPU has no
# multi-output loop fusion: each word's consumer recomputes the whole hash (measured no gain,
# and 5x slower where the words are interleaved into the (chains, d) layout).
# See docs/langevin.md, "Random numbers".
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(v: jax.Array, r: int) -> jax.Array:
    return (v << np.uint32(r)) | (v >> np.uint32(32 - r))


def threefry2x32(k0, k1, x0, x1) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 hash (20 rounds) of counters ``(x0, x1)`` (uint32, broadcasting) under
    the key ``(k0, k1)``; the same numbers as ``jax.extend.random.threefry_2x32``."""
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotl(x1, r)
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def key_words(key: jax.Array, n_pairs: int = 1) -> jax.Array:
    """The generator's key pairs (uint32 ``(n_pairs, 2)``), derived from a JAX key of any
    implementation (one pair per kind of draw, so each kind's numbers do not depend on how
    many of the other kind a step draws)."""
    return jax.random.bits(key, (n_pairs, 2), jnp.uint32)


def block_words(words: jax.Array, ts: jax.Array, shape: tuple) -> tuple[jax.Array, jax.Array]:
    """Both ``(K, *shape)`` output words of the hash of the counter (step, flat index of the
    number in ``shape``) for the steps ``ts`` (K,): number ``i`` of step ``t`` is a function of
    ``(words, t, i)`` alone: not of the blocking, nor of ``shape``'s leading size (padding chains
    leave the others' draws unchanged), nor of the sharding (elementwise on the counters)."""
    strides = np.cumprod((1,) + tuple(shape[:0:-1]))[::-1]
    idx = jnp.zeros(shape, jnp.uint32)
    for axis, stride in enumerate(strides):
        idx = idx + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * np.uint32(stride)
    c0 = jnp.asarray(ts).astype(jnp.uint32).reshape((-1,) + (1,) * len(shape))
    return threefry2x32(words[0], words[1], c0, idx[None])


def block_bits(words: jax.Array, ts: jax.Array, shape: tuple, wide: bool = False) -> jax.Array:
    """``(K, *shape)`` random words for the steps ``ts`` (K,) (`block_words`): the first output
    word of each hash, or with ``wide`` both joined into uint64 words (needs x64)."""
    y0, y1 = block_words(words, ts, shape)
    if not wide:
        # One output word per number: interleaving both words into the (chains, d) layout
        # was measured 5x slower on CPU inside the scan (a shuffle XLA does not fuse).
        return y0
    u64 = jnp.uint64
    return (y0.astype(u64) << u64(32)) | y1.astype(u64)


def uniform_from_bits(bits: jax.Array, dtype) -> jax.Array:
    """Floats in ``[0, 1)`` from random words (the top mantissa bits, as jax.random.uniform)."""
    dtype = jnp.dtype(dtype)
    width = 8 * bits.dtype.itemsize
    one = np.array(1.0, dtype).view(bits.dtype)
    mant = (bits >> np.array(width - jnp.finfo(dtype).nmant, bits.dtype)) | one
    return jax.lax.bitcast_convert_type(mant, dtype) - np.array(1.0, dtype)


def normal_from_bits(bits: jax.Array, dtype) -> jax.Array:
    """Standard normals from random words: ``sqrt(2) erf^-1(u)``, ``u`` uniform on ``(-1, 1)``
    (the transform of jax.random.normal)."""
    dtype = jnp.dtype(dtype)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = jnp.maximum(
        lo, uniform_from_bits(bits, dtype) * np.array(2.0, dtype) - np.array(1.0, dtype)
    )
    return np.array(np.sqrt(2.0), dtype) * jax.lax.erf_inv(u)


# cos(pi f / 2) = P(f^2) on [0, 1]: near-minimax (Lawson) coefficients in float32; the float32
# Horner evaluation is within 1.5e-7 of the cosine at every one of the 2^23 values of f
# (tests/langevin/test_rng_law.py checks it exhaustively).
_COS_QUARTER = (
    1.0,
    -1.2337005138397217,
    0.2536693215370178,
    -0.02086268737912178,
    0.0009177247411571443,
    -2.3824917661841027e-05,
)


def cos_quarter(f: jax.Array) -> jax.Array:
    """``cos(pi f / 2)`` for float32 ``f`` in ``[0, 1]`` (a polynomial in ``f^2``)."""
    s = f * f
    acc = jnp.full_like(f, _COS_QUARTER[-1])
    for c in _COS_QUARTER[-2::-1]:
        acc = acc * s + np.float32(c)
    return acc


def normal_from_words(y0: jax.Array, y1: jax.Array, dtype) -> jax.Array:
    """Standard normals from the two output words of a hash (one normal per pair).

    float32: one branch of Box-Muller, ``z = s sqrt(-2 log u) cos(pi f / 2)``: ``u = (k + 1/2) /
    2^31`` with ``k`` the top 31 bits of ``y0`` (so ``u`` in ``(0, 1]``, ``|z| <= 6.66``), the
    sign ``s`` the top bit of ``y1`` and ``f`` in ``[0, 1)`` its next 23 bits. ``R = sqrt(-2 log
    u)`` is Rayleigh, ``cos(pi f / 2)`` has the law of ``|cos(theta)|`` for ``theta`` uniform,
    and the random sign makes ``R cos(theta)``: exactly N(0, 1) up to float32 rounding (the
    cosine polynomial within 1.5e-7, XLA's log and sqrt within a few ulps). float64:
    ``sqrt(2) erf^-1(2u - 1)`` with ``u`` from the 64-bit word ``y0 y1``, as `normal_from_bits`.
    """
    dtype = jnp.dtype(dtype)
    if dtype.itemsize == 8:
        u64 = jnp.uint64
        return normal_from_bits((y0.astype(u64) << u64(32)) | y1.astype(u64), dtype)
    f32 = jnp.float32
    k = jax.lax.bitcast_convert_type(y0 >> np.uint32(1), jnp.int32).astype(f32)
    u = k * np.float32(2.0**-31) + np.float32(2.0**-32)
    r = jnp.sqrt(np.float32(-2.0) * jnp.log(u))
    mant = ((y1 << np.uint32(1)) >> np.uint32(9)) | np.uint32(0x3F800000)
    f = jax.lax.bitcast_convert_type(mant, f32) - np.float32(1.0)
    v = jax.lax.bitcast_convert_type(r * cos_quarter(f), jnp.uint32)
    z = jax.lax.bitcast_convert_type(v ^ (y1 & np.uint32(0x80000000)), f32)
    return z.astype(dtype)


def normal_draw(key: jax.Array, shape: tuple, dtype) -> Callable:
    """The draws of a block of steps: ``steps (K,) -> (K, *shape)`` standard normals, each step's
    a function of ``(key, step)`` alone (`normal_from_words` of the hash of (step, index))."""
    words = key_words(key)[0]

    def draw(ts):
        return normal_from_words(*block_words(words, ts, shape), dtype)

    return draw


def normal_uniform_draw(key: jax.Array, n: int, d: int, dtype) -> Callable:
    """MALA's draws of a block of steps: ``steps (K,) -> (normals (K, n * d), uniforms (K, n))``;
    a step's normals are flat (reshape to ``(n, d)``: the numbers of a ``(n, d)`` draw), so that
    XLA vectorises the draw along a long last axis; the uniforms come from another key pair, so
    they do not depend on the normals."""
    words = key_words(key, 2)
    wide = jnp.dtype(dtype).itemsize == 8

    def draw(ts):
        z = normal_from_words(*block_words(words[0], ts, (n * d,)), dtype)
        return z, uniform_from_bits(block_bits(words[1], ts, (n,), wide), dtype)

    return draw
