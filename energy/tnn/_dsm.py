"""`fit_samples`: a noise-conditional energy learnt from raw samples by denoising score matching."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ._model import NetConfig, apply_one, init_ensemble
from ._surrogate import Surrogate
from ._train import check_settings, train_ensemble

__all__ = ["fit_samples", "geometric_levels"]

# Smallest noise level (relative to the per-axis data std): annealed chains end with about this
# much blur, and score matching below it needs far more steps for little gain.
SIGMA_MIN = 0.01


@dataclasses.dataclass(frozen=True)
class _DSMLoss:
    """Denoising score matching over noise levels, weighted by sigma^2 (see fit_samples)."""

    graphdef: Any
    levels: tuple[float, ...]
    c_mean: float
    c_std: float

    def energy_one(self, p, v, s):
        """E(u, sigma) of one member at one point v = u / sqrt(1 + s^2) (see Surrogate)."""
        c = (jnp.log(s) - self.c_mean) / self.c_std
        return apply_one(self.graphdef, p, v, c) + 0.5 * jnp.sum(v * v)

    def __call__(self, p, batch, k):
        u_b = batch["u"]
        d = u_b.shape[-1]
        levels = jnp.asarray(self.levels, jnp.float32)
        ki, kz = jax.random.split(k)
        i = jax.random.randint(ki, (u_b.shape[0],), 0, levels.shape[0])
        s = levels[i]
        z = jax.random.normal(kz, u_b.shape)
        noisy = u_b + s[:, None] * z

        def grad_u(ut, st):
            scale = jnp.sqrt(1.0 + st * st)
            return jax.grad(lambda w: self.energy_one(p, w / scale, st))(ut)

        g = jax.vmap(grad_u)(noisy, s)
        return jnp.mean(jnp.sum((s[:, None] * g - z) ** 2, axis=-1)) / d


def geometric_levels(sigma_max: float, sigma_min: float, n_levels: int) -> np.ndarray:
    """Geometric noise levels sigma_i = sigma_max (sigma_min/sigma_max)^(i/(L-1)), decreasing."""
    if not (0 < sigma_min < sigma_max and np.isfinite(sigma_max)):
        raise ValueError(
            f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}"
        )
    if not (isinstance(n_levels, int) and n_levels >= 2):
        raise ValueError(f"n_levels must be an integer >= 2, got {n_levels!r}")
    return np.geomspace(sigma_max, sigma_min, n_levels)


def fit_samples(
    samples: ArrayLike,
    key: jax.Array,
    *,
    members: int = 4,
    width: int = 128,
    depth: int = 3,
    steps: int = 4000,
    batch_size: int = 256,
    learning_rate: float = 2e-3,
    n_levels: int = 10,
    sigma_max: float | None = None,
    sigma_min: float = SIGMA_MIN,
    validation_fraction: float = 0.1,
    eval_every: int = 200,
    patience: int = 6,
    names: Sequence[str] | None = None,
    units: Sequence[str] | None = None,
    progress: bool | None = None,
) -> Surrogate:
    """Learn a noise-conditional energy E(x, sigma) from samples by denoising score matching.

    States are normalised per axis, u = (x - mean) / std. For noise levels
    sigma_1 > ... > sigma_L (geometric; relative to std), each member minimises the denoising
    score-matching loss (Vincent 2011) weighted by sigma^2 (Song & Ermon 2019):

        L = E_{u, i, z} | sigma_i grad_u E(u + sigma_i z, sigma_i) - z |^2 / d,

    whose minimiser is -log of the data density smoothed by a Gaussian of width sigma_i. The
    energy is parameterised as E(u, sigma) = f(v, log sigma) + |v|^2 / 2 with
    v = u / sqrt(1 + sigma^2): the Gaussian part keeps it rising far from the data and the
    network f learns the rest. Energies are defined up to an additive constant; each member's is
    centred on the training data (mean 0 there at the smallest level), so members are comparable
    and their spread is `uncertainty`.

    Args:
      samples: (n, d) states, finite.
      key: PRNG key; the fit is deterministic for a key.
      members: ensemble size K.
      width, depth: hidden units per layer and hidden layers.
      steps: maximum optimisation steps (rounded up to a multiple of eval_every).
      batch_size: samples per step and member.
      learning_rate: peak Adam learning rate.
      n_levels: number of noise levels L.
      sigma_max: largest level (relative); default the largest distance between two (normalised)
        samples, so that the coarsest level joins all modes (Song & Ermon 2020, technique 1).
      sigma_min: smallest level (relative).
      validation_fraction: share of samples held out for early stopping.
      eval_every, patience: validation cadence and early-stopping patience (evaluations).
      names, units: per-axis names and units (optional).
      progress: tqdm progress bar (None: only on a terminal).

    Returns:
      A `Surrogate` of kind "samples": energy(x) = E(x, sigma_L), energy_at(x, sigma),
      noise_levels (L,), scale = the per-axis std.

    Example:
      >>> s = energy.tnn.fit_samples(x, jax.random.key(0))
      >>> res = langevin.sample(s, jax.random.key(1), n_chains=1000)  # anneals over s.noise_levels

    References:
      Vincent, "A connection between score matching and denoising autoencoders" (2011).
      Song & Ermon, "Generative modeling by estimating gradients of the data distribution" (2019);
      "Improved techniques for training score-based generative models" (2020).
    """
    check_settings(
        members=members,
        width=width,
        depth=depth,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        eval_every=eval_every,
        patience=patience,
    )
    x = np.asarray(samples)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"samples must be real numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"samples must have shape (n, d), got shape {x.shape}")
    n, d = x.shape
    if n < 16:
        raise ValueError(f"samples needs at least 16 rows to learn from, got {n}")
    finite = np.isfinite(x)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(
            f"samples has {int((~finite).sum())} non-finite values (first at row {row}, "
            f"column {col}: {x[row, col]!r}); drop or fill them first"
        )
    x = x.astype(np.float64)
    for label, seq in (("names", names), ("units", units)):
        if seq is not None and len(seq) != d:
            raise ValueError(f"{label} has {len(seq)} entries for {d} columns of samples")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")

    loc = x.mean(axis=0)
    std = x.std(axis=0)
    flat = np.flatnonzero(~(std > 0))
    if flat.size:
        label = names[flat[0]] if names is not None else f"column {flat[0]}"
        raise ValueError(f"samples: {label} is constant ({x[0, flat[0]]!r}); drop it")
    u = (x - loc) / std

    k_perm, k_init, k_train, k_sub = jax.random.split(key, 4)
    perm = np.asarray(jax.random.permutation(k_perm, n))
    n_val = max(8, int(round(validation_fraction * n)))
    u_val, u_train = u[perm[:n_val]], u[perm[n_val:]]

    if sigma_max is None:
        sub = u_train[np.asarray(jax.random.permutation(k_sub, len(u_train)))[:1000]]
        sq = np.sum(sub * sub, axis=1)
        d2 = sq[:, None] + sq[None, :] - 2.0 * sub @ sub.T
        sigma_max = float(np.sqrt(max(d2.max(), 0.0)))
    levels = geometric_levels(float(sigma_max), float(sigma_min), n_levels)
    logs = np.log(levels)
    c_mean, c_std = float(logs.mean()), float(logs.std())
    levels_j = jnp.asarray(levels, jnp.float32)

    config = NetConfig(d, int(width), int(depth), int(members), True)
    graphdef, params = init_ensemble(config, k_init)
    loss_fn = _DSMLoss(graphdef, tuple(float(v) for v in levels), c_mean, c_std)

    t0 = time.perf_counter()
    result = train_ensemble(
        loss_fn,
        params,
        {"u": jnp.asarray(u_train, jnp.float32)},
        {"u": jnp.asarray(u_val, jnp.float32)},
        k_train,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        eval_every=eval_every,
        patience=patience,
        progress=progress,
        desc="tnn.fit_samples",
    )
    seconds = time.perf_counter() - t0

    # Centre each member: mean energy 0 over (up to 4096) training samples at the finest level.
    ref = jnp.asarray(u_train[:4096], jnp.float32)
    s_min = levels_j[-1]
    v_ref = ref / jnp.sqrt(1.0 + s_min * s_min)
    e_ref = jax.jit(
        jax.vmap(lambda p: jnp.mean(jax.vmap(lambda v: loss_fn.energy_one(p, v, s_min))(v_ref)))
    )(result.params)

    provenance = {
        "kind": "samples",
        "trained_on": {"n_samples": int(n), "ndim": int(d), "n_validation": int(n_val)},
        "settings": {
            "members": members,
            "width": width,
            "depth": depth,
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "n_levels": n_levels,
            "sigma_max": float(sigma_max),
            "sigma_min": float(sigma_min),
            "validation_fraction": validation_fraction,
            "eval_every": eval_every,
            "patience": patience,
        },
        "steps_run": result.steps,
        "stopped_early": result.stopped_early,
        "best_val_loss": result.best_val.tolist(),
        "loss_log": result.history,
        "train_seconds": seconds,
    }
    return Surrogate(
        graphdef=graphdef,
        config=config,
        params=result.params,
        loc=jnp.asarray(loc, jnp.float32),
        norm=jnp.asarray(std, jnp.float32),
        scale=jnp.asarray(std, jnp.float32),
        e_shift=jnp.asarray(e_ref, jnp.float32),
        e_scale=jnp.ones((), jnp.float32),
        noise_levels=levels_j,
        box_lo=jnp.asarray(x.min(axis=0), jnp.float32),
        box_hi=jnp.asarray(x.max(axis=0), jnp.float32),
        kind="samples",
        c_floor=0.0,
        c_mean=c_mean,
        c_std=c_std,
        names=None if names is None else tuple(str(a) for a in names),
        units=None if units is None else tuple(str(a) for a in units),
        provenance=json.dumps(provenance),
    )
