"""One optax training loop for a whole ensemble: vmapped over members, scanned over steps."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

__all__ = ["TrainResult", "check_settings", "train_ensemble"]


class TrainResult(NamedTuple):
    """What `train_ensemble` returns.

    Attributes:
      params: the stacked (K, ...) parameters with the best validation loss of each member.
      history: [[step, mean train loss, mean validation loss], ...] at each evaluation.
      steps: optimisation steps run (early stopping may end it before the budget).
      best_val: (K,) best validation loss of each member.
      stopped_early: whether early stopping ended training.
    """

    params: Any
    history: list[list[float]]
    steps: int
    best_val: np.ndarray
    stopped_early: bool


def check_settings(**settings: Any) -> None:
    """Positive integers / numbers in range, or a ValueError naming the argument and value."""
    for name in ("members", "width", "depth", "steps", "batch_size", "eval_every", "patience"):
        if name in settings:
            v = settings[name]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if "learning_rate" in settings:
        v = settings["learning_rate"]
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"learning_rate must be a positive number, got {v!r}")


def train_ensemble(
    loss_fn: Callable[[Any, Any, jax.Array], jax.Array],
    params: Any,
    train_data: Any,
    val_data: Any,
    key: jax.Array,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    eval_every: int,
    patience: int,
    progress: bool | None,
    desc: str,
) -> TrainResult:
    """Train K members at once with Adam, keep each member's best weights, stop early.

    Every step, member k draws its own minibatch (indices with replacement) and its own noise
    from key, and takes one step of Adam (gradients clipped to global norm 1, learning rate with a
    linear warm-up and a cosine decay to 5 %). Every `eval_every` steps the validation loss of
    each member (on fixed data and a fixed key, so comparable between evaluations) is recorded; a
    member's best weights are kept; training stops after `patience` evaluations without any
    member improving. Deterministic for a key.

    Args:
      loss_fn: (params of one member, batch, key) -> scalar loss; batch is train_data indexed
        along axis 0. Hashable and comparable (a frozen dataclass), so that compiled programs
        are reused between fits with equal losses.
      params: stacked (K, ...) initial parameters.
      train_data, val_data: pytrees of arrays with a leading example axis.
      key: PRNG key.
      steps, batch_size, learning_rate, eval_every, patience: the optimisation budget.
      progress: show a tqdm bar (None: only on a terminal).
      desc: label of the bar.

    Returns:
      A TrainResult.
    """
    k_members = jax.tree.leaves(params)[0].shape[0]
    hyper = (int(steps), float(learning_rate), int(batch_size))
    opt_state = _opt_init(hyper, params)
    val_key = jax.random.fold_in(key, 0x7A1)

    show = sys.stderr.isatty() if progress is None else bool(progress)
    n_chunks = math.ceil(steps / eval_every)
    best = params
    best_val = np.full(k_members, np.inf)
    history: list[list[float]] = []
    stale = 0
    done = 0
    stopped = False
    train_key = jax.random.fold_in(key, 0x7A0)
    with tqdm(total=n_chunks * eval_every, desc=desc, disable=not show, leave=False) as bar:
        for i in range(n_chunks):
            keys = jax.random.split(jax.random.fold_in(train_key, i), (eval_every, k_members))
            params, opt_state, train_loss = _chunk(
                loss_fn, hyper, params, opt_state, keys, train_data
            )
            val = np.asarray(_validate(loss_fn, params, val_data, val_key), dtype=np.float64)
            if not np.all(np.isfinite(val)):
                raise FloatingPointError(
                    f"{desc}: validation loss became {val} at step {done + eval_every}; "
                    "lower learning_rate"
                )
            improved = val < best_val
            best = _keep_best(best, params, jnp.asarray(improved))
            best_val = np.where(improved, val, best_val)
            done += eval_every
            history.append([done, float(train_loss), float(np.mean(val))])
            bar.update(eval_every)
            bar.set_postfix(val=f"{np.mean(val):.4g}")
            stale = 0 if improved.any() else stale + 1
            if stale >= patience:
                stopped = True
                break
    return TrainResult(best, history, done, best_val, stopped)


# The compiled pieces are module-level and take the loss (a hashable, comparable object) and the
# optimiser settings as static arguments and the data as arguments, so a second fit with the same
# network and data shapes reuses the compiled programs.


def _optimizer(hyper: tuple[int, float, int]) -> optax.GradientTransformation:
    """Adam with global-norm clipping, linear warm-up and cosine decay to 5 %."""
    steps, learning_rate, _ = hyper
    warmup = max(1, min(100, steps // 10))
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, warmup, max(steps, warmup + 1), end_value=0.05 * learning_rate
    )
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


@partial(jax.jit, static_argnums=0)
def _opt_init(hyper, params):
    """Optimiser state of every member."""
    return jax.vmap(_optimizer(hyper).init)(params)


@partial(jax.jit, static_argnums=(0, 1))
def _chunk(loss_fn, hyper, params, opt_state, keys, data):
    """len(keys) steps of every member (keys: (steps, K)); returns the mean training loss."""
    opt = _optimizer(hyper)
    batch_size = hyper[2]
    n = jax.tree.leaves(data)[0].shape[0]

    def member_step(p, o, k):
        kb, kl = jax.random.split(k)
        idx = jax.random.randint(kb, (batch_size,), 0, n)
        batch = jax.tree.map(lambda a: a[idx], data)
        loss, g = jax.value_and_grad(loss_fn)(p, batch, kl)
        updates, o = opt.update(g, o, p)
        return optax.apply_updates(p, updates), o, loss

    def body(carry, ks):
        p, o = carry
        p, o, loss = jax.vmap(member_step)(p, o, ks)
        return (p, o), loss

    (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), keys)
    return params, opt_state, jnp.mean(losses)


@partial(jax.jit, static_argnums=0)
def _validate(loss_fn, params, data, key):
    """Validation loss of every member on all of data, with a fixed key: (K,)."""
    return jax.vmap(lambda q: loss_fn(q, data, key))(params)


@jax.jit
def _keep_best(best, params, improved):
    """Each member's weights where it improved, else its best so far."""

    def pick(b, q):
        mask = improved.reshape((improved.shape[0],) + (1,) * (q.ndim - 1))
        return jnp.where(mask, q, b)

    return jax.tree.map(pick, best, params)
