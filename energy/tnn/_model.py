"""Energy networks (Flax nnx) and the pure functions that evaluate an ensemble of them."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = [
    "EnergyNet",
    "NetConfig",
    "abstract_ensemble",
    "apply_ensemble",
    "apply_one",
    "init_ensemble",
]


class NetConfig(NamedTuple):
    """Static description of an ensemble of energy networks (hashable, JSON-able).

    Attributes:
      ndim: number of state variables d.
      width: units per hidden layer.
      depth: number of hidden layers.
      members: ensemble size K.
      conditional: whether the network takes a noise level as an extra input.
    """

    ndim: int
    width: int
    depth: int
    members: int
    conditional: bool


class EnergyNet(nnx.Module):
    """A smooth multilayer perceptron u (d,) [, c] -> scalar energy.

    h_0 = [u, c]; h_{i+1} = silu(W_i h_i + b_i); E = w . h_depth + b. SiLU is smooth, so the
    Langevin drift (the gradient of E) is continuous; it grows at most linearly in |u|.

    Args:
      ndim: number of inputs d.
      width: units per hidden layer.
      depth: number of hidden layers.
      conditional: add one input for the (normalised) log noise level c.
      rngs: Flax random streams for the initialisation.

    Example:
      >>> net = EnergyNet(2, 32, 2, False, rngs=nnx.Rngs(0))
      >>> net(jnp.zeros(2)).shape
      ()
    """

    def __init__(self, ndim: int, width: int, depth: int, conditional: bool, *, rngs: nnx.Rngs):
        n_in = ndim + (1 if conditional else 0)
        sizes = [n_in] + [width] * depth
        self.conditional = conditional
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )
        self.out = nnx.Linear(width, 1, rngs=rngs)

    def __call__(self, u: jax.Array, c: jax.Array | None = None) -> jax.Array:
        """Energy of one normalised state u (d,) at normalised log noise level c (scalar)."""
        h = u
        if self.conditional:
            h = jnp.concatenate([u, jnp.reshape(c, (1,)).astype(u.dtype)])
        for layer in self.hidden:
            h = nnx.silu(layer(h))
        return self.out(h)[0]


def init_ensemble(config: NetConfig, key: jax.Array) -> tuple[nnx.GraphDef, nnx.State]:
    """K independently initialised networks as one graph definition and a stacked state (K, ...)."""

    graphdef = nnx.split(nnx.eval_shape(lambda: _build(config, key)))[0]
    return graphdef, _init_states(config, jax.random.split(key, config.members))


@partial(jax.jit, static_argnums=0)
def _init_states(config: NetConfig, keys: jax.Array) -> nnx.State:
    """Stacked initial states of all members: one compiled program (cached per config)."""
    return jax.vmap(lambda k: nnx.split(_build(config, k))[1])(keys)


def abstract_ensemble(config: NetConfig) -> tuple[nnx.GraphDef, nnx.State]:
    """Graph definition and the shapes (K, ...) of an ensemble's state, without allocating it."""
    graphdef, state = nnx.split(nnx.eval_shape(lambda: _build(config, jax.random.key(0))))
    k = config.members
    return graphdef, jax.tree.map(lambda a: jax.ShapeDtypeStruct((k, *a.shape), a.dtype), state)


def _build(config: NetConfig, key: jax.Array) -> EnergyNet:
    """One network of the ensemble, initialised from key."""
    return EnergyNet(
        config.ndim, config.width, config.depth, config.conditional, rngs=nnx.Rngs(params=key)
    )


def apply_one(graphdef: nnx.GraphDef, state: nnx.State, u: jax.Array, c: jax.Array) -> jax.Array:
    """Energy of one member (unstacked state) at one normalised state u (d,)."""
    return nnx.merge(graphdef, state)(u, c)


def apply_ensemble(
    graphdef: nnx.GraphDef, state: nnx.State, u: jax.Array, c: jax.Array
) -> jax.Array:
    """Energies of all K members (stacked state) at one normalised state u (d,): shape (K,)."""
    return jax.vmap(apply_one, in_axes=(None, 0, None, None))(graphdef, state, u, c)
