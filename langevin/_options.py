"""The options of a run, checked once: a frozen `Options` shared by `sample`, `sweep` and `prepare`.

`Options` holds what the caller asked for (checked when it is built, with errors naming the
argument and the value); what depends on the target (the dimension, the box, the fixed axes, the
step rule, the schedule) is resolved from it by `langevin._prepare.prepare`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _target

__all__ = ["DEFAULT_N_STEPS", "Options"]

# Default length of the sampling phase (after annealing): the annealing phase already leaves the
# chains near equilibrium; 1000 steps of ~0.7 grid cell each relax them within the finest level.
DEFAULT_N_STEPS = 1000


@dataclasses.dataclass(frozen=True)
class Options:
    """Every argument of `langevin.sample` but the target and the key (see its docstring).

    Build it with the same keywords as `sample`; the checks that need no target run here, so a
    sweep checks its options once and derives each setting with `dataclasses.replace` (which
    checks again).
    """

    n_chains: int
    n_steps: int | None = None
    init: Any = None
    method: str = "ula"
    step_size: float | None = None
    temperature: float = 1.0
    schedule: Any = "auto"
    bounds: Any = "auto"
    fixed: Any = None
    objective: Any = None
    weight: float = 1.0
    thin: int | None = None
    n_warmup: int | None = None
    progress: bool | None = None
    devices: Any = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen: set once here)
        set_("n_chains", _check_count(self.n_chains, "n_chains", 1))
        n_steps = DEFAULT_N_STEPS if self.n_steps is None else self.n_steps
        set_("n_steps", _check_count(n_steps, "n_steps", 1))
        if self.method not in ("ula", "mala"):
            raise ValueError(f"method must be 'ula' or 'mala', got {self.method!r}")
        try:
            temperature = float(self.temperature)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"temperature must be a number >= 0, got {self.temperature!r}"
            ) from err
        if not (math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be finite and >= 0, got {temperature}")
        set_("temperature", temperature)
        if self.thin is not None:
            thin = _check_count(self.thin, "thin", 1)
            if thin > self.n_steps:
                raise ValueError(f"thin = {thin} is larger than n_steps = {self.n_steps}")
            set_("thin", thin)
        if self.objective is not None and not callable(self.objective):
            raise TypeError(
                f"objective must be a callable (d,) -> scalar, got {type(self.objective)}"
            )
        try:
            weight = float(self.weight)
        except (TypeError, ValueError) as err:
            raise ValueError(f"weight must be a number, got {self.weight!r}") from err
        if not math.isfinite(weight):
            raise ValueError(f"weight must be finite, got {weight}")
        set_("weight", weight)
        if self.step_size is not None:
            h = float(self.step_size)
            if not (math.isfinite(h) and h > 0):
                raise ValueError(f"step_size must be finite and > 0, got {self.step_size}")
            set_("step_size", h)
        if self.n_warmup is not None:
            set_("n_warmup", _check_count(self.n_warmup, "n_warmup", 1))


def check_key(key):
    """A JAX PRNG key (new-style, or a legacy ``uint32[2]``), else a ValueError."""
    if not (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        try:
            key = jnp.asarray(key)
        except TypeError as err:
            raise ValueError(f"key must be a JAX PRNG key, got {type(key).__name__}") from err
        if key.shape != (2,) or key.dtype != jnp.uint32:
            raise ValueError(f"key must be a JAX PRNG key (jax.random.key(seed)), got {key!r}")
    return key


def float_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def fixed_vector(fixed, info: _target.TargetInfo) -> np.ndarray:
    """``fixed`` (dict axis/name -> value, or a (d,) vector with NaN = free) as a (d,) vector."""
    d = info.d
    out = np.full(d, np.nan)
    if fixed is None:
        return out
    if isinstance(fixed, dict):
        for k, v in fixed.items():
            if isinstance(k, str):
                if info.names is None or k not in info.names:
                    raise ValueError(f"fixed: unknown variable {k!r} (target names: {info.names})")
                j = info.names.index(k)
            elif isinstance(k, (int, np.integer)) and -d <= k < d:
                j = int(k) % d
            else:
                raise ValueError(f"fixed: axis {k!r} out of range for d = {d}")
            v = float(v)
            if not math.isfinite(v):
                raise ValueError(f"fixed: value of {k!r} must be finite, got {v}")
            out[j] = v
        return out
    arr = np.asarray(fixed, dtype=np.float64)
    if arr.shape != (d,):
        raise ValueError(
            f"fixed must be a dict or a vector of shape ({d},) (NaN = free), got {arr.shape}"
        )
    if np.any(np.isinf(arr)):
        raise ValueError(f"fixed values must be finite (NaN marks a free axis), got {arr}")
    return arr


def box(bounds, info: _target.TargetInfo) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Box for reflection: "auto" = the target's lo/hi, None = no box, or explicit pairs."""
    if isinstance(bounds, str):
        if bounds != "auto":
            raise ValueError(f"bounds must be 'auto', None or [(lo, hi), ...], got {bounds!r}")
        return info.lo, info.hi
    if bounds is None:
        return None, None
    b = np.asarray(bounds, dtype=np.float64)
    if b.shape != (info.d, 2):
        raise ValueError(f"bounds must have shape ({info.d}, 2) as [(lo, hi), ...], got {b.shape}")
    if not np.all(b[:, 0] < b[:, 1]) or np.any(np.isnan(b)):
        raise ValueError(f"bounds need lo < hi on every axis, got {b.tolist()}")
    return b[:, 0].copy(), b[:, 1].copy()


def devices_of(devices, n_chains: int):
    """The devices to shard over: all by default (one device: no sharding)."""
    if devices is None:
        devices = jax.devices()
    devices = list(devices)
    if len(devices) == 0:
        raise ValueError("devices must not be empty")
    return devices
