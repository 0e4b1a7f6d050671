"""`fit`: regression of an EnergyMap's energy (and its noise pyramid) by an ensemble of networks."""

from __future__ import annotations

import dataclasses
import json
import time
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._model import NetConfig, apply_one, init_ensemble
from ._surrogate import Surrogate
from ._train import check_settings, train_ensemble

__all__ = ["UNIFORM_FRACTION", "fit"]

# Fraction of training points drawn uniformly over the bounds (the rest follow the map's density
# exp(-E)). It decides how far the members are tied together away from the data: a probe found
# that 25 % uniform points gave a far/near uncertainty ratio of only 1.3-2.3, 5 % gave 4-7x.
# 5 % still teaches the rising energy of the empty regions (and is what the tests check).
UNIFORM_FRACTION = 0.05

# Cells of the map above which the node energies are not expanded into a sampling table.
_MAX_CELLS = 1 << 25


def fit(
    m: Any,
    key: jax.Array,
    *,
    members: int = 4,
    width: int = 64,
    depth: int = 3,
    steps: int = 3000,
    batch_size: int = 256,
    learning_rate: float = 3e-3,
    n_points: int = 32768,
    uniform_fraction: float = UNIFORM_FRACTION,
    pyramid: bool = True,
    grad_weight: float = 0.0,
    validation_fraction: float = 0.125,
    eval_every: int = 100,
    patience: int = 8,
    progress: bool | None = None,
) -> Surrogate:
    """Learn an EnergyMap's energy, and its noise pyramid, with an ensemble of Flax networks.

    Training points x are drawn per noise level sigma in {0} + m.noise_levels: with probability
    1 - uniform_fraction from the map's own density, p(x) ~ exp(-E(x)) (a node by inverse-CDF
    sampling, `searchsorted` on the cumulative density, then a uniform offset within its cell and,
    for sigma > 0, a Gaussian offset of width sigma * (hi - lo): samples of the smoothed density),
    otherwise uniformly over the bounds. Each member k minimises

        mean [ (E_k(x, sigma) - m.energy_at(x, sigma))^2 ] / var(E)
          + grad_weight * mean |grad E_k - grad m.energy_at|^2 (in normalised units)

    with Adam on its own minibatches; a held-out split picks each member's best weights and
    stops training early. Outside the map's bounds the surrogate adds a quadratic barrier.

    Args:
      m: an `energy.EnergyMap` (anything with values, bounds, energy, energy_at, noise_levels).
      key: PRNG key; the fit is deterministic for a key.
      members: ensemble size K (its spread is `uncertainty`; K >= 2 for a non-zero one).
      width, depth: hidden units per layer and hidden layers of each network.
      steps: maximum optimisation steps (rounded up to a multiple of eval_every).
      batch_size: points per step and member.
      learning_rate: peak Adam learning rate (warm-up, then cosine decay).
      n_points: training points in all (spread over the noise levels); a further
        validation_fraction of that is held out.
      uniform_fraction: share of points drawn uniformly over the bounds (see UNIFORM_FRACTION).
      pyramid: also learn the noise pyramid (energy_at for sigma > 0); else only sigma = 0.
      grad_weight: weight of the gradient-matching term (0: energies only).
      validation_fraction: held-out points, relative to n_points.
      eval_every, patience: validation every eval_every steps; stop after patience
        evaluations without improvement of any member.
      progress: tqdm progress bar (None: only on a terminal).

    Returns:
      A `Surrogate` with kind "map", the map's names, units, bounds, scale (hi - lo) and noise
      levels; provenance holds the settings and the loss log.

    Example:
      >>> m = energy.EnergyMap.from_samples(x, bins=32)
      >>> s = energy.tnn.fit(m, jax.random.key(0))
      >>> s(x[:5]), s.uncertainty(x[:5])
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
    for attr in ("values", "bounds", "energy", "energy_at"):
        if not hasattr(m, attr):
            raise TypeError(f"fit needs an EnergyMap (with .{attr}); got {type(m).__name__}")
    if not 0.0 <= uniform_fraction < 1.0:
        raise ValueError(f"uniform_fraction must be in [0, 1), got {uniform_fraction!r}")
    if not (isinstance(n_points, int) and n_points >= 64):
        raise ValueError(f"n_points must be an integer >= 64, got {n_points!r}")
    if not 0.0 < validation_fraction <= 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1], got {validation_fraction!r}")
    if not grad_weight >= 0.0:
        raise ValueError(f"grad_weight must be >= 0, got {grad_weight!r}")

    values = np.asarray(m.values, dtype=np.float64)
    if values.size > _MAX_CELLS:
        raise ValueError(f"map has {values.size} nodes; fit handles at most {_MAX_CELLS}")
    d = values.ndim
    bounds = np.asarray(m.bounds, dtype=np.float64)
    lo, hi = bounds[:, 0], bounds[:, 1]
    width_box = hi - lo
    levels = np.asarray(getattr(m, "noise_levels", np.zeros(0)), dtype=np.float64).reshape(-1)
    levels = levels[levels > 0] if pyramid else np.zeros(0)
    train_levels = np.concatenate([[0.0], levels])

    # The map's density on its nodes, its cumulative sum for inverse-CDF sampling, its moments.
    p = np.exp(-(values - values.min()))
    cdf = np.cumsum(p.ravel())
    cdf /= cdf[-1]
    grid = [np.linspace(a, b, n) for a, b, n in zip(lo, hi, values.shape, strict=True)]
    loc = np.empty(d)
    norm = np.empty(d)
    for j in range(d):
        marginal = p.sum(axis=tuple(i for i in range(d) if i != j))
        marginal = marginal / marginal.sum()
        loc[j] = marginal @ grid[j]
        norm[j] = np.sqrt(marginal @ (grid[j] - loc[j]) ** 2)
    # A map whose data sits in one cell still gets an order-one input scale: at least a cell.
    spacing = width_box / (np.asarray(values.shape) - 1)
    norm = np.maximum(norm, spacing)

    k_init, k_train, k_pool = jax.random.split(key, 3)
    n_val = max(64, int(round(validation_fraction * n_points)))
    per_level = max(32, n_points // len(train_levels))
    n_val_level = max(32, n_val // len(train_levels))
    sampling = (
        jnp.asarray(cdf, jnp.float32),
        jnp.asarray(train_levels, jnp.float32),
        jnp.asarray(lo, jnp.float32),
        jnp.asarray(hi, jnp.float32),
    )

    # Training and validation points in one draw (one compiled program), split per level.
    n_all = per_level + n_val_level
    x_all = np.asarray(_draw(k_pool, sampling, n_all, values.shape, float(uniform_fraction)))
    e_all, g_all = _targets(m._bare(), jnp.asarray(x_all), sampling[1], grad_weight > 0)
    e_all, g_all = np.asarray(e_all, np.float64), np.asarray(g_all, np.float64)
    sigma_all = np.broadcast_to(train_levels[:, None], e_all.shape)

    def part(sl: slice) -> dict[str, np.ndarray]:
        """Points sl of every level: states, levels, energies, gradients (flattened)."""
        return {
            "x": x_all[:, sl].reshape(-1, d),
            "sigma": sigma_all[:, sl].reshape(-1),
            "e": e_all[:, sl].reshape(-1),
            "g": g_all[:, sl].reshape(-1, d),
        }

    train = part(slice(0, per_level))
    val = part(slice(per_level, n_all))
    bad = ~np.isfinite(train["e"])
    if bad.any():
        raise ValueError(f"the map's energy is not finite at {int(bad.sum())} training points")

    level0 = train["sigma"] == 0.0
    e_shift = float(np.mean(train["e"][level0]))
    e_scale = float(max(np.std(train["e"][level0]), 1e-6))
    c_floor = float(levels.min() / 2) if levels.size else 1e-3
    logs = np.log(train_levels + c_floor)
    c_mean = float(logs.mean())
    c_std = float(logs.std()) if logs.size > 1 else 1.0

    def prepare(data: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """Normalised network inputs and targets."""
        return {
            "u": jnp.asarray((data["x"] - loc) / norm, jnp.float32),
            "c": jnp.asarray((np.log(data["sigma"] + c_floor) - c_mean) / c_std, jnp.float32),
            "y": jnp.asarray((data["e"] - e_shift) / e_scale, jnp.float32),
            "gy": jnp.asarray(data["g"] * norm / e_scale, jnp.float32),
        }

    config = NetConfig(d, int(width), int(depth), int(members), len(train_levels) > 1)
    graphdef, params = init_ensemble(config, k_init)

    loss_fn = _MapLoss(graphdef, float(grad_weight))

    t0 = time.perf_counter()
    result = train_ensemble(
        loss_fn,
        params,
        prepare(train),
        prepare(val),
        k_train,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        eval_every=eval_every,
        patience=patience,
        progress=progress,
        desc="tnn.fit",
    )
    seconds = time.perf_counter() - t0
    provenance = {
        "kind": "map",
        "trained_on": {
            "shape": list(values.shape),
            "bounds": bounds.tolist(),
            "n_samples": _jsonable(getattr(m, "n_samples", None)),
            "provenance": _jsonable(getattr(m, "provenance", None)),
        },
        "settings": {
            "members": members,
            "width": width,
            "depth": depth,
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "n_points": n_points,
            "uniform_fraction": uniform_fraction,
            "pyramid": pyramid,
            "grad_weight": grad_weight,
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
        norm=jnp.asarray(norm, jnp.float32),
        scale=jnp.asarray(width_box, jnp.float32),
        e_shift=jnp.full((members,), e_shift, jnp.float32),
        e_scale=jnp.asarray(e_scale, jnp.float32),
        noise_levels=jnp.asarray(levels, jnp.float32),
        box_lo=jnp.asarray(lo, jnp.float32),
        box_hi=jnp.asarray(hi, jnp.float32),
        kind="map",
        c_floor=c_floor,
        c_mean=c_mean,
        c_std=c_std,
        names=_strings(getattr(m, "names", None)),
        units=_strings(getattr(m, "units", None)),
        provenance=json.dumps(provenance),
    )


@dataclasses.dataclass(frozen=True)
class _MapLoss:
    """Squared error of the normalised energy (plus grad_weight times that of its gradient)."""

    graphdef: Any
    grad_weight: float

    def __call__(self, p, batch, _key):
        def one(u, c):
            return apply_one(self.graphdef, p, u, c)

        if self.grad_weight > 0:
            pred, g = jax.vmap(jax.value_and_grad(one))(batch["u"], batch["c"])
            return jnp.mean((pred - batch["y"]) ** 2) + self.grad_weight * jnp.mean(
                (g - batch["gy"]) ** 2
            )
        pred = jax.vmap(one)(batch["u"], batch["c"])
        return jnp.mean((pred - batch["y"]) ** 2)


@partial(jax.jit, static_argnums=(2, 3, 4))
def _draw(key, sampling, n: int, shape: tuple[int, ...], uniform_fraction: float) -> jax.Array:
    """n points per level (levels, n, d) of the map's density smoothed by each level.

    A node by inverse-CDF sampling (searchsorted on the cumulative node density: memory O(n),
    not O(n * cells) as a categorical draw would be), a uniform offset within its cell, a
    Gaussian offset of width sigma * (hi - lo); each point is instead uniform over the box with
    probability uniform_fraction.
    """
    cdf, levels, lo, hi = sampling
    d = len(shape)
    spacing = (hi - lo) / (jnp.asarray(shape, jnp.float32) - 1)

    def one(k, sigma):
        ku, kj, kg, kf, kb = jax.random.split(k, 5)
        u = jax.random.uniform(ku, (n,))
        idx = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), cdf.shape[0] - 1)
        nodes = jnp.stack(jnp.unravel_index(idx, shape), axis=-1).astype(jnp.float32)
        x = lo + (nodes + jax.random.uniform(kj, (n, d)) - 0.5) * spacing
        x = x + sigma * (hi - lo) * jax.random.normal(kg, (n, d))
        flat = lo + (hi - lo) * jax.random.uniform(kf, (n, d))
        x = jnp.where((jax.random.uniform(kb, (n,)) < uniform_fraction)[:, None], flat, x)
        return jnp.clip(x, lo, hi)

    return jax.vmap(one)(jax.random.split(key, levels.shape[0]), levels)


@partial(jax.jit, static_argnums=(3,))
def _targets(m, x: jax.Array, levels: jax.Array, with_grad: bool):
    """The map's energies (levels, n) at x (levels, n, d), level 0 being sigma = 0; gradients."""

    def at(xi, sigma):
        return jnp.where(sigma > 0, m.energy_at(xi, sigma), m.energy(xi))

    e = jax.vmap(jax.vmap(at, in_axes=(0, None)))(x, levels)
    if not with_grad:
        return e, jnp.zeros_like(x)
    g = jax.vmap(jax.vmap(jax.grad(at), in_axes=(0, None)))(x, levels)
    return e, g


def _strings(seq: Any) -> tuple[str, ...] | None:
    """A tuple of str, or None."""
    return None if seq is None else tuple(str(s) for s in seq)


def _jsonable(obj: Any) -> Any:
    """obj if json can write it, else its str."""
    try:
        json.dumps(obj)
    except (TypeError, ValueError):
        return str(obj)
    return obj
