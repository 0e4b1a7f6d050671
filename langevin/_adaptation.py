"""Step-size adaptation by dual averaging (Hoffman & Gelman 2014, §3.2), as an init/update pair.

Per chain, after each step with acceptance probability ``a_t`` (t = 1, 2, ...):

    H_t = (1 - 1/(t + t0)) H_{t-1} + (delta - a_t) / (t + t0)
    log h_t = mu - sqrt(t) / gamma * H_t,        mu = log(10 h_0)
    log h̄_t = t^-kappa log h_t + (1 - t^-kappa) log h̄_{t-1}

The step used while adapting is ``h_t``; the step kept afterwards is ``h̄`` (the runner takes
the median of ``h̄`` over chains).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "DualAveragingState",
    "TARGET_ACCEPTANCE",
    "dual_averaging_init",
    "dual_averaging_update",
]

# MALA's optimal acceptance 0.574 (Roberts & Rosenthal 1998); Hoffman & Gelman's constants.
TARGET_ACCEPTANCE = 0.574
DA_GAMMA, DA_T0, DA_KAPPA = 0.05, 10.0, 0.75


class DualAveragingState(NamedTuple):
    """``log h_t`` (the step to use now), ``log h̄_t`` (the running average) and ``H_t``."""

    log_step: jax.Array
    log_step_avg: jax.Array
    h_bar: jax.Array


def dual_averaging_init(step_size, shape, dtype) -> DualAveragingState:
    """The state before the first step: ``log h = log h̄ = log h_0``, ``H = 0``, of ``shape``."""
    zeros = jnp.zeros(shape, dtype)
    log_h0 = zeros + jnp.log(step_size)
    return DualAveragingState(log_h0, log_h0, zeros)


def dual_averaging_update(
    state: DualAveragingState, acceptance, iteration, mu, dtype
) -> DualAveragingState:
    """The state after step ``iteration`` (0-based) had acceptance probability ``acceptance``.

    ``mu = log(10 h_0)`` is the point the steps shrink towards.
    """
    i1 = (iteration + 1).astype(dtype)
    eta = 1.0 / (i1 + DA_T0)
    h_bar = (1.0 - eta) * state.h_bar + eta * (TARGET_ACCEPTANCE - acceptance)
    log_h = mu - jnp.sqrt(i1) / DA_GAMMA * h_bar
    w = i1**-DA_KAPPA
    log_h_avg = w * log_h + (1.0 - w) * state.log_step_avg
    return DualAveragingState(log_h, log_h_avg, h_bar)
